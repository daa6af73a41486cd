"""The ``code_interpreter`` tool of SPEAR's math recipe.

``CodeInterpreter().run(code)`` returns the reply the model sees. Isolation follows the
``spear`` CLI: bubblewrap by default (read-only root, private /tmp, no network, rlimits,
a wall-clock kill) and an error when bubblewrap is missing or cannot start here; the
rlimits-only fallback (no filesystem or network isolation) runs only when asked for by
name, ``CodeInterpreter(isolation="rlimits")``.
"""

from ._native import CodeInterpreter

__all__ = ["CodeInterpreter"]
