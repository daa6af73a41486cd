"""Vectorised environments: ``env_num`` tasks × ``group_n`` copies, stepped in parallel
in Rust without the GIL.

>>> import spear_rs
>>> envs = spear_rs.envs.household(env_num=2, group_n=4, seed=0, num_games=16)
>>> obs, infos = envs.reset()
>>> obs, rewards, dones, infos = envs.step([i["admissible_commands"][0] for i in infos])

Environment ``i`` belongs to group ``i // group_n``; the copies of a group start from the
same task (verl-agent's GRPO groups). Infos carry what verl-agent's environment managers
read: ``won``, ``task_score``, ``anchor`` (the GiGPO anchor observation), ``task_id`` and
``task``, plus ``admissible_commands`` / ``extra.gamefile`` (household),
``available_actions`` / ``goal_idx`` (WebShop), ``n_tool_calls`` / ``context`` (math).
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

from . import _native
from ._native import VecEnv
from .sandbox import CodeInterpreter

__all__ = ["VecEnv", "household", "webshop", "math"]


def household(
    env_num: int = 1,
    group_n: int = 1,
    seed: int = 0,
    *,
    split: str = "train",
    data_dir: Optional[Union[str, os.PathLike]] = None,
    num_games: Optional[int] = None,
    games_seed: int = 0,
    task_types: Optional[Sequence[str]] = None,
    max_steps: int = 50,
) -> VecEnv:
    """ALFWorld-compatible household environments.

    Games are generated offline (``num_games`` of them, ALFWorld's split size by default,
    from ``games_seed``), or read from ALFWorld's data when ``data_dir`` names the directory
    holding ``json_2.1.1/`` (with AlfredTWEnv's filters). ``split`` is ``"train"``,
    ``"valid_seen"`` or ``"valid_unseen"``. Step reward ``10·won``; an episode ends when
    won or after ``max_steps`` steps.
    """
    return _native.household_envs(
        env_num,
        group_n,
        seed,
        split=split,
        data_dir=None if data_dir is None else os.fspath(data_dir),
        num_games=num_games,
        games_seed=games_seed,
        task_types=None if task_types is None else list(task_types),
        max_steps=max_steps,
    )


def webshop(
    env_num: int = 1,
    group_n: int = 1,
    seed: int = 0,
    *,
    split: str = "train",
    data_dir: Optional[Union[str, os.PathLike]] = None,
    small: bool = True,
    limit: Optional[int] = None,
    num_products: int = 5000,
    products_seed: int = 0,
    catalog_seed: int = 42,
    human_goals: bool = False,
    max_steps: int = 15,
) -> VecEnv:
    """WebShop environments (text mode, as verl-agent runs WebShop).

    Without ``data_dir`` the catalogue is generated (``num_products`` products from
    ``products_seed``); with it, WebShop's files are read from that directory
    (``items_shuffle_1000.json`` and ``items_ins_v2_1000.json`` when ``small``, else the
    full files; ``items_human_ins.json`` when present). ``split``: ``"train"`` (goals 500
    on, verl-agent's training goals), ``"eval"`` (goals 0–499) or ``"all"``. Step reward 10
    for a purchase scoring 1.0; ``info["task_score"]`` is WebShop's reward in [0, 1].
    """
    products = attributes = human = None
    if data_dir is not None:
        d = os.fspath(data_dir)
        sfx = "_1000" if small else ""
        products = os.path.join(d, f"items_shuffle{sfx}.json")
        attributes = os.path.join(d, f"items_ins_v2{sfx}.json")
        h = os.path.join(d, "items_human_ins.json")
        human = h if os.path.exists(h) else None
    return _native.webshop_envs(
        env_num,
        group_n,
        seed,
        split=split,
        products_file=products,
        attributes_file=attributes,
        human_file=human,
        limit=limit,
        num_products=num_products,
        products_seed=products_seed,
        catalog_seed=catalog_seed,
        human_goals=human_goals,
        max_steps=max_steps,
    )


def math(
    problems: Union[str, Sequence[dict]] = "aime2024",
    env_num: int = 1,
    group_n: int = 1,
    seed: int = 0,
    *,
    interpreter: Optional[CodeInterpreter] = None,
    isolation: str = "bwrap",
) -> VecEnv:
    """Math with the code interpreter: one conversation per environment.

    ``problems``: ``"aime2024"``, ``"aime2025"``, ``"generated:<count>"`` or a list of
    dicts with ``problem`` and ``answer`` (and optional ``id``, ``data_source``). The
    reset observation is the user message (problem + answer format); ``step`` takes one
    assistant turn, runs its first tool call in the sandbox and returns the tool reply,
    or ends the conversation (reward ±1 from the strict ``math_dapo`` verifier,
    ``won`` = correct). ``info["context"]`` is the model's next input (ChatML with the
    hermes tool block). Tool calls run in ``interpreter`` (by default a new
    ``CodeInterpreter(isolation=isolation)``: bubblewrap unless ``"rlimits"`` is named).
    """
    if interpreter is None:
        interpreter = CodeInterpreter(isolation=isolation)
    return _native.math_envs(problems, env_num, group_n, seed, interpreter=interpreter)
