"""The environments through the Python API: a household walkthrough wins, a WebShop
expert episode scores 1.0, groups are identical, finished environments repeat, errors
are Python exceptions with the Rust message."""

import numpy as np
import pytest

import spear_rs
from spear_rs import envs


@pytest.fixture(scope="module")
def household():
    return envs.household(env_num=3, group_n=2, seed=1, num_games=12)


def test_household_walkthrough_wins(household):
    obs, infos = household.reset()
    assert len(obs) == 6 and len(infos) == 6
    assert all(o.startswith("-= Welcome to TextWorld, ALFRED! =-") for o in obs)
    for i in infos:
        assert {"won", "admissible_commands", "extra.gamefile", "anchor", "task_score", "task_id", "task"} <= i.keys()
        assert i["won"] is False and "look" in i["admissible_commands"]
        assert i["task_type"] in i["extra.gamefile"]
    # Copies of a group start from the same game; the three groups from distinct games.
    ids = [i["task_id"] for i in infos]
    assert ids[0] == ids[1] and ids[2] == ids[3] and ids[4] == ids[5] and len({ids[0], ids[2], ids[4]}) == 3
    total = np.zeros(6)
    for _ in range(50):
        acts = household.expert_actions()
        if all(a is None for a in acts):
            break
        obs, rewards, dones, infos = household.step([a or "look" for a in acts])
        assert rewards.dtype == np.float64 and dones.dtype == np.bool_
        total += rewards
    assert all(i["won"] for i in infos)
    assert dones.all() and total.tolist() == [10.0] * 6  # 10·won, once
    # Finished environments repeat their last observation with reward 0.
    obs2, rewards2, dones2, infos2 = household.step(["look"] * 6)
    assert obs2 == obs and rewards2.tolist() == [0.0] * 6 and dones2.all()
    assert infos2[0]["step"] == infos[0]["step"]


def test_household_inadmissible_and_step_cap():
    e = envs.household(env_num=1, group_n=1, seed=0, num_games=2, max_steps=3)
    obs, infos = e.reset(task_ids=[1])
    assert infos[0]["task_id"] == 1
    for k in range(3):
        obs, rewards, dones, infos = e.step(["dance wildly"])
        assert obs[0] == "Nothing happens."
        assert dones[0] == (k == 2)
    assert not infos[0]["won"] and rewards[0] == 0.0


def test_group_copies_stay_identical_under_equal_actions():
    e = envs.household(env_num=1, group_n=4, seed=3, num_games=5)
    obs, infos = e.reset()
    rng = np.random.default_rng(0)
    for _ in range(10):
        adm = infos[0]["admissible_commands"]
        a = adm[rng.integers(len(adm))]
        obs, rewards, dones, infos = e.step([a] * 4)
        assert len(set(obs)) == 1 and len({tuple(i["admissible_commands"]) for i in infos}) == 1


def test_webshop_expert_scores_one():
    e = envs.webshop(env_num=4, group_n=2, seed=0, num_products=300)
    obs, infos = e.reset()
    assert all(o.startswith("WebShop [SEP] Instruction: [SEP] ") for o in obs)
    assert infos[0]["available_actions"] == {"has_search_bar": True, "clickables": ["search"]}
    assert infos[0]["goal_idx"] == infos[1]["goal_idx"] and infos[0]["goal_idx"] >= 500  # train goals
    for _ in range(15):
        acts = e.expert_actions()
        obs, rewards, dones, infos = e.step([a or "click[back to search]" for a in acts])
        if dones.all():
            break
    assert dones.all()
    assert [i["task_score"] for i in infos] == [1.0] * 8
    assert all(i["won"] for i in infos)


def test_webshop_eval_split_and_bad_action():
    e = envs.webshop(env_num=2, group_n=1, seed=5, split="eval", num_products=300)
    obs, infos = e.reset()
    assert all(i["goal_idx"] < 500 for i in infos)
    obs, rewards, dones, infos = e.step(["click[nothing like this]", "jump"])
    assert rewards.tolist() == [0.0, 0.0] and not dones.any()
    assert infos[0]["task_score"] == 0.0


def test_errors_are_python_exceptions_with_the_rust_message(household):
    household.reset()
    with pytest.raises(ValueError, match=r"got 2 actions for 6 environments \(env_num 3 × group_n 2\)"):
        household.step(["look", "look"])
    with pytest.raises(IndexError, match="task 99 is out of range: the split has 12 tasks"):
        household.reset(task_ids=[0, 1, 99])
    with pytest.raises(ValueError, match="one task per group"):
        household.reset(task_ids=[0])
    with pytest.raises(ValueError, match="unknown split"):
        envs.household(split="test")
    with pytest.raises(ValueError, match="unknown task type"):
        envs.household(num_games=1, task_types=["juggle"])
    with pytest.raises(RuntimeError, match="does not exist"):
        envs.household(data_dir="/nonexistent/alfworld")
    with pytest.raises(RuntimeError, match="nope"):
        envs.webshop(data_dir="/nonexistent/nope")
    with pytest.raises(ValueError, match="at least 1"):
        envs.webshop(env_num=0)
    fresh = envs.household(num_games=1)
    with pytest.raises(RuntimeError, match="step called before reset"):
        fresh.step(["look"])


def test_random_policy_over_512_household_envs():
    e = envs.household(env_num=64, group_n=8, seed=0, num_games=64)
    assert len(e) == 512 and e.num_envs == 512
    obs, infos = e.reset()
    rng = np.random.default_rng(0)
    steps = 0
    while not e.dones.all() and steps < 50:
        acts = [i["admissible_commands"][rng.integers(len(i["admissible_commands"]))] for i in infos]
        obs, rewards, dones, infos = e.step(acts)
        steps += 1
    assert e.dones.all() and steps == 50 or e.dones.all()
    assert len(obs) == 512
