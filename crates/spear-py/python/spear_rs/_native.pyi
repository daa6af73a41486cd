"""Type stubs of the Rust extension ``spear_rs._native`` (kept in step with the Rust
signatures by ``tests/test_stubs.py``)."""

from os import PathLike
from typing import Any, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

__version__: str

F64Array = npt.NDArray[np.float64]
I64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ArrayLike = npt.ArrayLike

# ---------------------------------------------------------------- environments

class VecEnv:
    """``env_num`` tasks × ``group_n`` copies of one environment, stepped in parallel."""

    def reset(self, task_ids: Optional[Sequence[int]] = None) -> tuple[list[str], list[dict[str, Any]]]:
        """Reset every environment; ``task_ids`` (one per group) or seeded draws.
        Returns ``(observations, infos)``."""
    def step(self, actions: Sequence[str]) -> tuple[list[str], F64Array, BoolArray, list[dict[str, Any]]]:
        """Step every environment: ``(observations, rewards, dones, infos)``."""
    def expert_actions(self) -> list[Optional[str]]:
        """The expert's next action per environment: household, the walkthrough command
        for the current step; WebShop, the scripted oracle expert; math, None."""
    @property
    def admissible_commands(self) -> list[list[str]]:
        """Current admissible (household) or available (WebShop) actions per environment."""
    @property
    def kind(self) -> str:
        """``"household"``, ``"webshop"`` or ``"math"``."""
    @property
    def env_num(self) -> int: ...
    @property
    def group_n(self) -> int: ...
    @property
    def num_envs(self) -> int: ...
    @property
    def num_tasks_in_split(self) -> int: ...
    @property
    def dones(self) -> BoolArray: ...
    @property
    def task_names(self) -> list[str]: ...
    def close(self) -> None: ...
    def __len__(self) -> int: ...

def household_envs(
    env_num: int = 1,
    group_n: int = 1,
    seed: int = 0,
    *,
    split: str = "train",
    data_dir: Optional[Union[str, PathLike[str]]] = None,
    num_games: Optional[int] = None,
    games_seed: int = 0,
    task_types: Optional[Sequence[str]] = None,
    max_steps: int = 50,
) -> VecEnv: ...
def webshop_envs(
    env_num: int = 1,
    group_n: int = 1,
    seed: int = 0,
    *,
    split: str = "train",
    products_file: Optional[Union[str, PathLike[str]]] = None,
    attributes_file: Optional[Union[str, PathLike[str]]] = None,
    human_file: Optional[Union[str, PathLike[str]]] = None,
    limit: Optional[int] = None,
    num_products: int = 5000,
    products_seed: int = 0,
    catalog_seed: int = 42,
    human_goals: bool = False,
    max_steps: int = 15,
) -> VecEnv: ...
def math_envs(
    problems: Union[str, Sequence[dict[str, Any]]],
    env_num: int = 1,
    group_n: int = 1,
    seed: int = 0,
    *,
    interpreter: CodeInterpreter,
) -> VecEnv: ...

# ---------------------------------------------------------------- agent

def project(texts: Sequence[str], env: str = "household") -> tuple[list[str], list[bool]]:
    """``(actions, valids)`` of verl-agent's ``<think>/<action>`` projection."""

class BatchMemory:
    """The history of every environment of a batch (verl-agent's ``SimpleMemory``)."""

    def __init__(self, batch_size: int = 0) -> None: ...
    def reset(self, batch_size: int) -> None: ...
    def store(self, observations: Sequence[str], actions: Sequence[str]) -> None: ...
    def fetch(self, history_length: int) -> tuple[list[str], list[int]]: ...
    def lengths(self) -> list[int]: ...
    def __len__(self) -> int: ...

def household_prompts(
    tasks: Sequence[str],
    observations: Sequence[str],
    admissible: Sequence[Sequence[str]],
    memory: BatchMemory,
    history_length: int = 2,
) -> list[str]: ...
def webshop_prompts(
    tasks: Sequence[str],
    observations: Sequence[str],
    available: Sequence[Sequence[str]],
    memory: BatchMemory,
    history_length: int = 2,
) -> list[str]: ...
def household_prompt(
    task: str,
    observation: str,
    admissible: Sequence[str],
    history: Sequence[tuple[str, str]] = ...,
    history_length: int = 2,
) -> str: ...
def webshop_prompt(
    task: str,
    observation: str,
    available: Sequence[str],
    history: Sequence[tuple[str, str]] = ...,
    history_length: int = 2,
) -> str: ...
def household_task(first_observation: str) -> str: ...
def webshop_task(first_observation: str) -> str: ...
def webshop_format_obs(raw: str, task: str) -> str: ...
def webshop_available_actions(has_search_bar: bool, clickables: Sequence[str]) -> list[str]: ...

# ---------------------------------------------------------------- rewards

def math_dapo_score(solution_str: str, ground_truth: str, strict_box_verify: bool = False) -> dict[str, Any]:
    """``{"score": ±1.0, "acc": bool, "pred": str}``."""
def spear_math_score(
    response: str,
    ground_truth: str,
    n_tool_calls: int,
    global_step: int,
    *,
    variant: str = "qwen3",
    schedule: str = "cosine",
    max_toolcall_steps: int = 200,
    incomplete: str = "upstream",
) -> dict[str, Any]:
    """``score``, ``acc``, ``pred``, ``is_incomplete``, ``tool_call_reward``, ``outcome``."""
def token_set_ratio(s1: str, s2: str) -> int: ...
def fuzz_ratio(s1: str, s2: str) -> int: ...
def webshop_score_case(case_json: str) -> dict[str, Any]: ...

# ---------------------------------------------------------------- sandbox

class CodeInterpreter:
    """The ``code_interpreter`` tool: bubblewrap by default, rlimits only by name."""

    def __init__(
        self,
        *,
        isolation: str = "bwrap",
        timeout: float = 30.0,
        memory_mb: int = 1024,
        max_concurrency: int = 128,
        python: Optional[str] = None,
        url: Optional[str] = None,
    ) -> None: ...
    def run(self, code: str) -> str:
        """The reply the model sees for a ``code`` argument."""
    def run_many(self, codes: Sequence[str]) -> list[str]: ...
    def run_raw(self, code: str) -> dict[str, Any]: ...
    @property
    def isolation(self) -> str: ...
    @property
    def executor(self) -> str: ...

# ---------------------------------------------------------------- learners

def grpo_advantages(
    scores: ArrayLike,
    group_ids: ArrayLike,
    traj_ids: Optional[ArrayLike] = None,
    *,
    norm: str = "mean_std",
    step_weighted: bool = True,
    epsilon: float = 1e-6,
) -> F64Array: ...
def dr_grpo_advantages(
    scores: ArrayLike,
    group_ids: ArrayLike,
    traj_ids: Optional[ArrayLike] = None,
    *,
    step_weighted: bool = True,
) -> F64Array: ...
def gigpo_advantages(
    scores: ArrayLike,
    group_ids: ArrayLike,
    anchors: Union[Sequence[str], ArrayLike],
    step_returns: ArrayLike,
    traj_ids: Optional[ArrayLike] = None,
    *,
    mode: str = "mean_std_norm",
    step_advantage_weight: float = 1.0,
    step_weighted: bool = True,
    epsilon: float = 1e-6,
) -> tuple[F64Array, F64Array, F64Array]:
    """``(combined, episode, step)``: A = A^E + ω·A^S."""
def anchor_group_ids(group_ids: ArrayLike, anchors: Union[Sequence[str], ArrayLike]) -> I64Array: ...
def rloo_advantages(scores: ArrayLike, group_ids: ArrayLike, traj_ids: ArrayLike) -> F64Array: ...
def step_returns(
    step_rewards: ArrayLike,
    group_ids: ArrayLike,
    traj_ids: ArrayLike,
    step_index: ArrayLike,
    gamma: float = 0.95,
) -> F64Array: ...
def apply_invalid_action_penalty(
    scores: ArrayLike,
    valid: ArrayLike,
    coef: float = 0.1,
    step_returns: Optional[ArrayLike] = None,
) -> tuple[F64Array, F64Array, float]: ...
def episode_scores(
    episode_rewards: ArrayLike,
    calls: ArrayLike,
    t: int,
    *,
    toolcall_reward: str = "cosine",
    variant: str = "agent",
    max_toolcall_steps: int = 200,
    per_call: float = 0.1,
    cap: float = 1.0,
) -> F64Array: ...
def toolcall_weight(t: int, t_decay: int = 200) -> float: ...
def replay_weight(t: int, t_warm: int = 200, coef: float = 1.0) -> float: ...
def toolcall_reward(calls: int, per_call: float = 0.1, cap: float = 1.0) -> float: ...
def is_incomplete(text: str) -> bool: ...
def is_repetitive(tokens: ArrayLike, n: int = 20, threshold: int = 10) -> bool: ...
def is_unreadable(text: str) -> bool: ...
def response_filters(
    responses: Sequence[ArrayLike],
    texts: Sequence[str],
    *,
    max_response_length: int = 512,
    repetition_ngram: int = 20,
    repetition_threshold: int = 10,
    filter_overlong: bool = True,
    filter_incomplete: bool = True,
    filter_repetitive: bool = True,
    filter_unreadable: bool = True,
) -> tuple[BoolArray, dict[str, int]]:
    """``(keep, stats)``: ``keep[i]`` False for a response the filters mask out."""

class StdGroupFilter:
    """Dr.BoT's low-variance group filter with its own seeded RNG."""

    def __init__(self, ratio: float = 0.75, *, power_of_two_subsample: bool = True, seed: int = 0) -> None: ...
    def __call__(
        self, scores: ArrayLike, group_ids: ArrayLike, traj_ids: ArrayLike
    ) -> tuple[I64Array, dict[str, Any]]: ...

class ReplayBatch:
    """One replay draw."""

    steps: I64Array
    rows: I64Array
    advantages: F64Array
    scores: F64Array
    p50_mean: Optional[float]
    p50_std: Optional[float]
    p95_mean: Optional[float]
    candidates: int
    eligible: int
    skipped: bool
    def __len__(self) -> int: ...

class ReplayBuffer:
    """SPEAR's self-imitation replay buffer with the D_R baseline."""

    def __init__(
        self,
        *,
        buffer_size: int = 2048,
        trigger_factor: float = 1.5,
        baseline_buffer_size: int = 10240,
        tolerate_steps: int = 5,
        weight_decay: Optional[float] = None,
        norm_by_std: bool = False,
        keep: str = "non_negative",
        require_tool_call: bool = False,
        min_replay_samples: int = 1,
        seed: int = 0,
    ) -> None: ...
    def update(
        self,
        step: int,
        scores: ArrayLike,
        advantages: ArrayLike,
        group_ids: ArrayLike,
        traj_ids: ArrayLike,
        *,
        loss_mask: Optional[ArrayLike] = None,
        tool_calls: Optional[ArrayLike] = None,
    ) -> dict[str, int]: ...
    def maybe_replay(self) -> Optional[ReplayBatch]: ...
    def take_replay(self) -> ReplayBatch: ...
    def fill_measure(self) -> int: ...
    def is_full(self) -> bool: ...
    def clear(self) -> None: ...
    @property
    def stored_samples(self) -> int: ...
    @property
    def baseline_len(self) -> int: ...
    def baseline_percentile(self, q: float) -> Optional[float]: ...
    @staticmethod
    def recalibrate(score: float, p50_mean: float, p50_std: float = 0.0, norm_by_std: bool = False) -> float: ...
