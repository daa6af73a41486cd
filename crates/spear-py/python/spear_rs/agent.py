"""verl-agent's agent side: the prompt templates, the history memory and the
``<think>/<action>`` projection, computed in Rust for the whole batch.

``project(texts, env)`` returns ``(actions, valids)``: the action is the stripped text
of the first ``<action>…</action>`` (lower-cased), or the last 30 (household) / 20
(WebShop) characters when there is none; valid needs both tags, ``<think>`` and
``</think>``, and no CJK ideograph.
"""

from ._native import (
    BatchMemory,
    household_prompt,
    household_prompts,
    household_task,
    project,
    webshop_available_actions,
    webshop_format_obs,
    webshop_prompt,
    webshop_prompts,
    webshop_task,
)

__all__ = [
    "BatchMemory",
    "household_prompt",
    "household_prompts",
    "household_task",
    "project",
    "webshop_available_actions",
    "webshop_format_obs",
    "webshop_prompt",
    "webshop_prompts",
    "webshop_task",
]
