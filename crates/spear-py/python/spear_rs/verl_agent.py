"""Drop-in replacements for verl-agent's ALFWorld and WebShop environment packages
(``agent_system/environments/env_package/{alfworld,webshop}``) and their environment
managers (``agent_system/environments/env_manager.py``).

The switch in verl-agent's ``make_envs`` is one import line per environment::

    # from agent_system.environments.env_package.alfworld import build_alfworld_envs, alfworld_projection
    from spear_rs.verl_agent import build_alfworld_envs, alfworld_projection

    # from agent_system.environments.env_package.webshop import build_webshop_envs, webshop_projection
    from spear_rs.verl_agent import build_webshop_envs, webshop_projection

The ``build_*_envs`` functions take verl-agent's arguments and return objects with the
same ``reset``/``step`` tuples (ALFWorld: ``(text_obs, image_obs=None, infos)`` and
``(text_obs, None, rewards, dones, infos)``; WebShop: ``(obs, infos)`` and
``(obs, rewards, dones, infos)``) and info keys. No Ray actors are started:
``resources_per_worker`` is accepted and ignored, the steps run on Rust threads.
"""

from __future__ import annotations

import os
import warnings
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import envs as _envs
from ._native import (
    BatchMemory,
    household_prompts,
    household_task,
    project,
    webshop_available_actions,
    webshop_format_obs,
    webshop_prompts,
    webshop_task,
)

__all__ = [
    "AlfworldEnvs",
    "WebshopEnvs",
    "build_alfworld_envs",
    "build_webshop_envs",
    "alfworld_projection",
    "webshop_projection",
    "AlfWorldEnvironmentManager",
    "WebshopEnvironmentManager",
]

# ALFWorld's task-type ids (config_tw.yaml `env.task_types`).
_TASK_TYPES = {
    1: "pick_and_place_simple",
    2: "look_at_obj_in_light",
    3: "pick_clean_then_place_in_recep",
    4: "pick_heat_then_place_in_recep",
    5: "pick_cool_then_place_in_recep",
    6: "pick_two_obj_and_place",
}


def _alfworld_data_root(env_kwargs: Dict[str, Any]) -> Optional[str]:
    root = env_kwargs.get("data_dir") or os.environ.get("ALFWORLD_DATA")
    if root and (os.path.isdir(os.path.join(root, "json_2.1.1")) or os.path.isdir(root)):
        return root
    return None


def _task_types_from_config(path: Optional[str]) -> Optional[List[str]]:
    if not path or not os.path.exists(path):
        return None
    try:
        import yaml  # verl-agent depends on PyYAML
    except ImportError:
        return None
    with open(path) as f:
        cfg = yaml.safe_load(f) or {}
    ids = (cfg.get("env") or {}).get("task_types")
    return None if ids is None else [_TASK_TYPES[int(i)] for i in ids]


class AlfworldEnvs:
    """verl-agent's ``AlfworldEnvs`` on spear-rs's household engine."""

    def __init__(
        self,
        alf_config_path: Optional[str],
        seed: int,
        env_num: int,
        group_n: int,
        resources_per_worker: Optional[dict] = None,
        is_train: bool = True,
        env_kwargs: Optional[dict] = None,
    ):
        env_kwargs = dict(env_kwargs or {})
        if is_train:
            split = "train"
        else:
            eval_dataset = env_kwargs.get("eval_dataset", "eval_in_distribution")
            split = "valid_seen" if eval_dataset == "eval_in_distribution" else "valid_unseen"
        root = _alfworld_data_root(env_kwargs)
        if root is None:
            warnings.warn(
                "spear_rs: no ALFWorld data ($ALFWORLD_DATA unset or missing): "
                f"using generated {split} games",
                stacklevel=3,
            )
        self._envs = _envs.household(
            env_num,
            group_n,
            seed,
            split=split,
            data_dir=root,
            num_games=env_kwargs.get("num_games"),
            games_seed=env_kwargs.get("games_seed", 0),
            task_types=_task_types_from_config(alf_config_path),
            max_steps=env_kwargs.get("max_steps", 50),
        )
        self.num_processes = env_num * group_n
        self.group_n = group_n
        self.multi_modal = False

    def reset(self):
        obs, infos = self._envs.reset()
        return obs, None, infos

    def step(self, actions: Sequence[str]):
        if len(actions) != self.num_processes:
            raise ValueError("The num of actions must be equal to the num of processes")
        obs, rewards, dones, infos = self._envs.step(list(actions))
        return obs, None, rewards, dones, infos

    @property
    def get_admissible_commands(self) -> List[List[str]]:
        return self._envs.admissible_commands

    def close(self) -> None:
        self._envs.close()


def build_alfworld_envs(
    alf_config_path: Optional[str],
    seed: int,
    env_num: int,
    group_n: int,
    resources_per_worker: Optional[dict] = None,
    is_train: bool = True,
    env_kwargs: Optional[dict] = None,
) -> AlfworldEnvs:
    """verl-agent's ``build_alfworld_envs`` (same arguments). Games come from
    ``env_kwargs["data_dir"]`` or ``$ALFWORLD_DATA`` when set, else they are generated;
    the task types are read from the config file when PyYAML is installed."""
    return AlfworldEnvs(alf_config_path, seed, env_num, group_n, resources_per_worker, is_train, env_kwargs)


class WebshopEnvs:
    """verl-agent's ``WebshopMultiProcessEnv`` on spear-rs's WebShop."""

    def __init__(
        self,
        seed: int,
        env_num: int,
        group_n: int,
        resources_per_worker: Optional[dict] = None,
        is_train: bool = True,
        env_kwargs: Optional[dict] = None,
    ):
        if not is_train and group_n != 1:
            raise ValueError("evaluation environments need group_n == 1 (as verl-agent asserts)")
        kw = dict(env_kwargs or {})
        file_path, attr_path = kw.get("file_path"), kw.get("attr_path")
        data_dir, small = None, True
        if file_path and attr_path and os.path.exists(file_path) and os.path.exists(attr_path):
            data_dir = os.path.dirname(file_path)
            small = "_1000" in os.path.basename(file_path)
        else:
            warnings.warn("spear_rs: no WebShop data files: using a generated catalogue", stacklevel=3)
        self._envs = _envs.webshop(
            env_num,
            group_n,
            seed,
            split="train" if is_train else "eval",
            data_dir=data_dir,
            small=small,
            limit=kw.get("num_products"),
            human_goals=bool(kw.get("human_goals", False)),
            num_products=kw.get("generated_products", 5000),
            max_steps=kw.get("max_steps", 15),
        )
        self.group_n = group_n
        self.env_num = env_num
        self.num_processes = env_num * group_n
        self.is_train = is_train

    def reset(self):
        return self._envs.reset()

    def step(self, actions: Sequence[str]):
        if len(actions) != self.num_processes:
            raise ValueError(f"Expected {self.num_processes} actions, got {len(actions)}")
        return self._envs.step(list(actions))

    def close(self) -> None:
        self._envs.close()


def build_webshop_envs(
    seed: int,
    env_num: int,
    group_n: int,
    resources_per_worker: Optional[dict] = None,
    is_train: bool = True,
    env_kwargs: Optional[dict] = None,
) -> WebshopEnvs:
    """verl-agent's ``build_webshop_envs`` (same arguments). ``env_kwargs["file_path"]`` /
    ``["attr_path"]`` name WebShop's files as in verl-agent; without them a catalogue is
    generated. ``num_products`` and ``human_goals`` mean what they mean in WebShop."""
    return WebshopEnvs(seed, env_num, group_n, resources_per_worker, is_train, env_kwargs)


def alfworld_projection(actions: Sequence[str], action_pools: Any = None) -> Tuple[List[str], List[int]]:
    """verl-agent's ``alfworld_projection``: ``(actions, valids)``, valids as 0/1."""
    a, v = project(list(actions), "household")
    return a, [int(x) for x in v]


def webshop_projection(actions: Sequence[str]) -> Tuple[List[str], List[int]]:
    """verl-agent's ``webshop_projection``: ``(actions, valids)``, valids as 0/1."""
    a, v = project(list(actions), "webshop")
    return a, [int(x) for x in v]


def _history_length(config: Any, history_length: Optional[int]) -> int:
    if history_length is not None:
        return history_length
    try:
        return int(config.env.history_length)
    except AttributeError:
        return 2


class _ManagerBase:
    def __init__(self, envs, projection_f, config: Any = None, history_length: Optional[int] = None):
        self.envs = envs
        self.projection_f = projection_f
        self.config = config
        self.history_length = _history_length(config, history_length)
        self.memory = BatchMemory(0)

    def close(self) -> None:
        self.envs.close()

    def success_evaluator(self, *args, **kwargs) -> Dict[str, np.ndarray]:
        """verl-agent's ``success_evaluator``: the last active step's ``won`` per episode."""
        total_infos = kwargs["total_infos"]
        total_batch_list = kwargs["total_batch_list"]
        success: Dict[str, list] = defaultdict(list)
        for bs in range(len(total_batch_list)):
            for i in reversed(range(len(total_batch_list[bs]))):
                if total_batch_list[bs][i]["active_masks"]:
                    self._record(total_infos[bs][i], success)
                    break
        assert len(success["success_rate"]) == len(total_batch_list)
        return {k: np.array(v) for k, v in success.items()}

    def _record(self, info: dict, success: Dict[str, list]) -> None:
        success["success_rate"].append(float(info["won"]))


class AlfWorldEnvironmentManager(_ManagerBase):
    """verl-agent's ``AlfWorldEnvironmentManager`` with prompts, memory and projection in
    Rust. ``config.env.history_length`` (or ``history_length``) sets the history window."""

    def __init__(self, envs, projection_f=alfworld_projection, config: Any = None, history_length: Optional[int] = None):
        super().__init__(envs, projection_f, config, history_length)

    def reset(self, kwargs: Any = None):
        text_obs, image_obs, infos = self.envs.reset()
        self.memory.reset(len(text_obs))
        self.tasks = [household_task(o) for o in text_obs]
        self.pre_text_obs = text_obs
        text = household_prompts(self.tasks, text_obs, self.envs.get_admissible_commands, self.memory, self.history_length)
        return {"text": text, "image": image_obs, "anchor": text_obs}, infos

    def step(self, text_actions: Sequence[str]):
        actions, valids = self.projection_f(list(text_actions), self.envs.get_admissible_commands)
        text_obs, image_obs, rewards, dones, infos = self.envs.step(actions)
        self.memory.store(self.pre_text_obs, actions)
        self.pre_text_obs = text_obs
        text = household_prompts(self.tasks, text_obs, self.envs.get_admissible_commands, self.memory, self.history_length)
        for info, valid in zip(infos, valids):
            info["is_action_valid"] = np.array(valid)
        return {"text": text, "image": image_obs, "anchor": text_obs}, np.asarray(rewards), np.asarray(dones), infos

    def _record(self, info: dict, success: Dict[str, list]) -> None:
        won = float(info["won"])
        success["success_rate"].append(won)
        gamefile = info.get("extra.gamefile")
        if gamefile:
            for task in ("pick_and_place", "pick_two_obj_and_place", "look_at_obj_in_light",
                         "pick_heat_then_place_in_recep", "pick_cool_then_place_in_recep",
                         "pick_clean_then_place_in_recep"):
                if task in gamefile:
                    success[f"{task}_success_rate"].append(won)
                    break


class WebshopEnvironmentManager(_ManagerBase):
    """verl-agent's ``WebshopEnvironmentManager`` with prompts, memory and projection in Rust."""

    def __init__(self, envs, projection_f=webshop_projection, config: Any = None, history_length: Optional[int] = None):
        super().__init__(envs, projection_f, config, history_length)

    def _prompts(self, obs: List[str], infos: List[dict]) -> List[str]:
        avail = [
            webshop_available_actions(i["available_actions"]["has_search_bar"], i["available_actions"]["clickables"])
            for i in infos
        ]
        return webshop_prompts(self.tasks, obs, avail, self.memory, self.history_length)

    def reset(self, kwargs: Any = None):
        obs, infos = self.envs.reset()
        self.tasks = [webshop_task(o) for o in obs]
        obs = [webshop_format_obs(o, t) for o, t in zip(obs, self.tasks)]
        self.memory.reset(len(infos))
        self.pre_text_obs = obs
        return {"text": self._prompts(obs, infos), "image": None, "anchor": list(obs)}, infos

    def step(self, text_actions: Sequence[str]):
        actions, valids = self.projection_f(list(text_actions))
        next_obs, rewards, dones, infos = self.envs.step(actions)
        next_obs = [webshop_format_obs(o, t) for o, t in zip(next_obs, self.tasks)]
        self.memory.store(self.pre_text_obs, actions)
        self.pre_text_obs = next_obs
        for info, valid in zip(infos, valids):
            info["is_action_valid"] = np.array(valid)
        out = {"text": self._prompts(next_obs, infos), "image": None, "anchor": list(next_obs)}
        return out, np.asarray(rewards), np.asarray(dones), infos

    def _record(self, info: dict, success: Dict[str, list]) -> None:
        success["success_rate"].append(float(info["won"]))
        success["webshop_task_score (not success_rate)"].append(float(info["task_score"]))
