"""The verl-agent drop-ins: build_*_envs with verl-agent's arguments and tuples, the
projections, and the environment managers driving whole episodes."""

import types
import warnings

import numpy as np
import pytest

from spear_rs import verl_agent as va


def config(history_length=2):
    return types.SimpleNamespace(env=types.SimpleNamespace(history_length=history_length))


def test_alfworld_envs_have_verl_agents_tuples(monkeypatch):
    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    with pytest.warns(UserWarning, match="generated train games"):
        e = va.build_alfworld_envs(None, 0, 2, 2, {"num_cpus": 0.1}, is_train=True, env_kwargs={"num_games": 8})
    text_obs, image_obs, infos = e.reset()
    assert image_obs is None and len(text_obs) == 4
    assert e.get_admissible_commands == [i["admissible_commands"] for i in infos]
    text_obs, image_obs, rewards, dones, infos = e.step(["look"] * 4)
    assert image_obs is None and len(rewards) == len(dones) == 4
    assert {"won", "admissible_commands", "extra.gamefile", "observation_text"} <= infos[0].keys()
    with pytest.raises(ValueError, match="num of actions"):
        e.step(["look"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = va.build_alfworld_envs(None, 1000, 2, 1, None, is_train=False,
                                    env_kwargs={"eval_dataset": "eval_out_of_distribution", "num_games": 4})
    _, _, infos = ev.reset()
    assert "valid_unseen" in infos[0]["extra.gamefile"]


def test_projections_follow_verl_agent():
    acts, valids = va.alfworld_projection(["<think>x</think><action>Go To Desk 1</action>", "blah"], None)
    assert acts == ["go to desk 1", "blah"] and valids == [1, 0]
    acts, valids = va.webshop_projection(["<think>x</think><action>click[Buy Now]</action>"])
    assert acts == ["click[buy now]"] and valids == [1]


def test_alfworld_manager_runs_expert_episodes_to_success():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        envs = va.build_alfworld_envs(None, 2, 3, 2, None, env_kwargs={"num_games": 10})
    m = va.AlfWorldEnvironmentManager(envs, va.alfworld_projection, config())
    obs, infos = m.reset({})
    assert obs["text"][0].startswith("\nYou are an expert agent operating in the ALFRED Embodied Environment.\n")
    assert obs["anchor"][0].startswith("-= Welcome")
    total_infos, total_batch = [[] for _ in range(6)], [[] for _ in range(6)]
    is_done = np.zeros(6, bool)
    for step in range(50):
        plan = envs._envs.expert_actions()
        texts = [f"<think>step {step}</think><action>{a or 'look'}</action>" for a in plan]
        obs, rewards, dones, infos = m.step(texts)
        for i in range(6):
            total_infos[i].append(infos[i])
            total_batch[i].append({"active_masks": not is_done[i]})
        is_done |= dones
        if is_done.all():
            break
    assert is_done.all()
    assert all(int(i["is_action_valid"]) == 1 for i in infos)
    assert "Prior to this step, you have already taken" in obs["text"][0]
    success = m.success_evaluator(total_infos=total_infos, total_batch_list=total_batch)
    assert success["success_rate"].tolist() == [1.0] * 6
    assert sum(len(v) for k, v in success.items() if k != "success_rate") == 6  # per task type


def test_webshop_manager_expert_scores_one():
    with pytest.warns(UserWarning, match="generated catalogue"):
        envs = va.build_webshop_envs(0, 2, 2, None, True, {"observation_mode": "text", "num_products": None,
                                                             "generated_products": 300})
    m = va.WebshopEnvironmentManager(envs, va.webshop_projection, config())
    obs, infos = m.reset({})
    assert "Your task is to: " in obs["text"][0] and obs["anchor"][0] == "'Search'"
    total_infos, total_batch = [[] for _ in range(4)], [[] for _ in range(4)]
    is_done = np.zeros(4, bool)
    for step in range(15):
        acts = envs._envs.expert_actions()
        obs, rewards, dones, infos = m.step([f"<think>t</think><action>{a or 'click[back to search]'}</action>" for a in acts])
        for i in range(4):
            total_infos[i].append(infos[i])
            total_batch[i].append({"active_masks": not is_done[i]})
        is_done |= dones
        if is_done.all():
            break
    success = m.success_evaluator(total_infos=total_infos, total_batch_list=total_batch)
    assert success["success_rate"].tolist() == [1.0] * 4
    assert success["webshop_task_score (not success_rate)"].tolist() == [1.0] * 4
    with pytest.raises(ValueError, match="group_n == 1"):
        va.build_webshop_envs(0, 2, 2, None, False, {"generated_products": 300})
