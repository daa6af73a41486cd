"""The learners of ``spear-rl`` on numpy arrays, one row per step-sample.

Columns: ``scores`` (s_i), ``group_ids`` (verl-agent's ``uid``: the task group),
``traj_ids`` (``traj_uid``), ``anchors`` (GiGPO anchor observations, str or int ids),
``step_returns``. Inputs of the right dtype (float64 / int64 / bool) and contiguous
layout are read without a copy; anything array-like is converted once. Results are new
numpy arrays that own Rust's buffers (no copy on the way out).
"""

from ._native import (
    ReplayBatch,
    ReplayBuffer,
    StdGroupFilter,
    anchor_group_ids,
    apply_invalid_action_penalty,
    dr_grpo_advantages,
    episode_scores,
    gigpo_advantages,
    grpo_advantages,
    is_incomplete,
    is_repetitive,
    is_unreadable,
    replay_weight,
    response_filters,
    rloo_advantages,
    step_returns,
    toolcall_reward,
    toolcall_weight,
)

__all__ = [
    "ReplayBatch",
    "ReplayBuffer",
    "StdGroupFilter",
    "anchor_group_ids",
    "apply_invalid_action_penalty",
    "dr_grpo_advantages",
    "episode_scores",
    "gigpo_advantages",
    "grpo_advantages",
    "is_incomplete",
    "is_repetitive",
    "is_unreadable",
    "replay_weight",
    "response_filters",
    "rloo_advantages",
    "step_returns",
    "toolcall_reward",
    "toolcall_weight",
]
