"""spear-rs from Python.

Environments (``spear_rs.envs``), verl-agent's prompts, memory and projection
(``spear_rs.agent``), verifiers and rewards (``spear_rs.rewards``), the sandboxed code
interpreter (``spear_rs.sandbox``), advantages, Dr.BoT filters, schedules and the SPEAR
replay buffer on numpy arrays (``spear_rs.learners``), and drop-in replacements for
verl-agent's ALFWorld and WebShop packages (``spear_rs.verl_agent``).

Everything runs in Rust; errors arrive as Python exceptions with the Rust message.
"""

from . import agent, envs, learners, rewards, sandbox
from ._native import __version__

__all__ = ["agent", "envs", "learners", "rewards", "sandbox", "__version__"]
