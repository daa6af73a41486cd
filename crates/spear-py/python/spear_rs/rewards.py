"""Rewards and verifiers: verl's ``math_dapo``, SPEAR's math reward, WebShop's
``get_reward`` and thefuzz's ``token_set_ratio``."""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence, Union

from ._native import fuzz_ratio, math_dapo_score, spear_math_score, token_set_ratio
from . import _native

__all__ = [
    "math_dapo_score",
    "compute_score",
    "spear_math_score",
    "token_set_ratio",
    "fuzz_ratio",
    "get_reward",
]


def compute_score(solution_str: str, ground_truth: str, strict_box_verify: bool = False) -> dict:
    """verl's ``math_dapo.compute_score``: ``{"score": ±1.0, "acc": bool, "pred": str}``.

    ``strict_box_verify=True`` is what SPEAR and ReTool use (last ``\\boxed{}`` of the
    last 100 characters, exact match); the default is Minerva's ``Answer:`` line with
    normalisation, as in verl.
    """
    return math_dapo_score(solution_str, ground_truth, strict_box_verify)


def get_reward(
    purchased_product: Mapping[str, Any],
    goal: Mapping[str, Any],
    price: float,
    options: Union[Mapping[str, str], Sequence[str]],
    verbose: bool = False,
):
    """WebShop's ``get_reward(purchased_product, goal, price, options)``.

    ``purchased_product`` uses WebShop's product keys (``Title``, ``BulletPoints``,
    ``Description``, ``Attributes``, ``product_category``, ``query``, ``name``), ``goal``
    its goal keys (``attributes``, ``goal_options``, ``price_upper``, ``name``, ``query``,
    ``product_category``), ``options`` the selected options (a dict as in the session, or
    the list of values). Returns the reward, or ``(reward, breakdown)`` with ``verbose``.
    spaCy's title nouns are approximated (see docs/webshop.md); the rest is exact.
    """
    case = {"product": dict(purchased_product), "goal": dict(goal), "selected_options": options, "price": price}
    r = _native.webshop_score_case(json.dumps(case))
    return (r["total"], r) if verbose else r["total"]
