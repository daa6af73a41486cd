"""The learners on numpy arrays against the Rust crates' results on the same inputs
(tests/fixtures/expected.json, written and checked by tests/expected_values.rs), and the
SPEAR pipeline of crates/spear-rl/tests/fake_training.rs driven from Python."""

import math

import numpy as np
import pytest

from spear_rs import learners as L


def arr(x, dtype=np.float64):
    return np.asarray(x, dtype=dtype)


@pytest.fixture(scope="module")
def batch(expected):
    return expected["learners"]["inputs"]


def test_grpo_family_equals_rust(expected, batch):
    e = expected["learners"]
    s, g, t = arr(batch["scores"]), arr(batch["group_ids"], np.int64), arr(batch["traj_ids"], np.int64)
    assert np.array_equal(L.grpo_advantages(s, g), arr(e["grpo"]))
    assert np.array_equal(L.grpo_advantages(s, g, t, step_weighted=False), arr(e["grpo_per_trajectory"]))
    assert np.array_equal(L.dr_grpo_advantages(s, g), arr(e["dr_grpo"]))
    assert np.array_equal(L.grpo_advantages(s, g, norm="mean"), arr(e["dr_grpo"]))
    assert np.array_equal(L.rloo_advantages(s, g, t), arr(e["rloo"]))
    # Python lists and other dtypes are converted; the result is the same.
    assert np.array_equal(L.grpo_advantages(batch["scores"], np.asarray(batch["group_ids"], np.int32)), arr(e["grpo"]))


def test_gigpo_equals_rust(expected, batch):
    e = expected["learners"]
    s, g, t = arr(batch["scores"]), arr(batch["group_ids"], np.int64), arr(batch["traj_ids"], np.int64)
    r = arr(batch["step_returns"])
    combined, episode, step = L.gigpo_advantages(s, g, batch["anchors"], r)
    want = e["gigpo_mean_std_norm"]
    assert np.array_equal(combined, arr(want["combined"]))
    assert np.array_equal(episode, arr(want["episode"]))
    assert np.array_equal(step, arr(want["step"]))
    combined, episode, step = L.gigpo_advantages(
        s, g, batch["anchors"], r, t, mode="mean_norm", step_advantage_weight=0.5, step_weighted=False
    )
    want = e["gigpo_mean_norm_w05_per_trajectory"]
    assert np.array_equal(combined, arr(want["combined"]))
    assert np.array_equal(step, arr(want["step"]))
    # Integer anchor ids group like the strings they stand for.
    ids = L.anchor_group_ids(g, batch["anchors"])
    assert np.array_equal(ids, arr(e["anchor_group_ids"], np.int64))
    c2, _, _ = L.gigpo_advantages(s, g, ids, r)
    assert np.array_equal(c2, arr(e["gigpo_mean_std_norm"]["combined"]))


def test_returns_penalty_scores_schedules_equal_rust(expected, batch):
    e = expected["learners"]
    g, t = arr(batch["group_ids"], np.int64), arr(batch["traj_ids"], np.int64)
    got = L.step_returns(batch["step_rewards"], g, t, batch["step_index"], 0.95)
    assert np.array_equal(got, arr(e["step_returns_gamma_095"]))
    scores = arr(batch["scores"])
    before = scores.copy()
    s2, r2, ratio = L.apply_invalid_action_penalty(scores, batch["valid"], 0.1, batch["step_returns"])
    assert np.array_equal(scores, before), "inputs are not changed"
    assert np.array_equal(s2, arr(e["penalty"]["scores"]))
    assert np.array_equal(r2, arr(e["penalty"]["step_returns"]))
    assert ratio == e["penalty"]["valid_ratio"]
    for case in e["episode_scores"]:
        got = L.episode_scores(
            case["rewards"], case["calls"], case["t"], toolcall_reward=case["toolcall_reward"], variant=case["variant"]
        )
        assert np.array_equal(got, arr(case["out"])), case
    sch = e["schedules"]
    assert [L.toolcall_weight(t) for t in sch["t"]] == sch["toolcall_weight_200"]
    assert [L.replay_weight(t, 300, 2.0) for t in sch["t"]] == sch["replay_weight_300_c2"]
    assert L.toolcall_reward(3) == pytest.approx(0.3) and L.toolcall_reward(40) == 1.0


def test_std_group_filter_draws_like_rust(expected, batch):
    e = expected["learners"]["std_group_filter"]
    f = L.StdGroupFilter(e["ratio"], seed=e["seed"])
    g, t = arr(batch["group_ids"], np.int64), arr(batch["traj_ids"], np.int64)
    for call in e["calls"]:
        rows, rep = f(batch["scores"], g, t)
        assert rows.tolist() == call["rows"]
        assert rep["kept_groups"].tolist() == call["kept_groups"]
        assert rep["kept_stds"].tolist() == call["kept_stds"]
        assert rep["mean_std_all"] == call["mean_std_all"]
        n = len(rows)
        assert n & (n - 1) == 0, "power-of-two subsample"


def test_response_filters_equal_rust(expected):
    e = expected["response_filters"]
    responses = [np.asarray(r, dtype=np.uint32) for r in e["responses"]]
    keep, stats = L.response_filters(
        responses, e["texts"], repetition_ngram=e["repetition_ngram"], repetition_threshold=e["repetition_threshold"]
    )
    assert keep.tolist() == e["keep"]
    assert stats == e["stats"]
    assert L.is_repetitive([1, 2] * 20, n=2, threshold=10) and not L.is_repetitive(list(range(50)))
    assert L.is_incomplete("<think>a</think> no action") and not L.is_incomplete("<think>a</think><action>x</action>")
    assert L.is_unreadable("bad \ufffd") and not L.is_unreadable("fine")


def test_replay_buffer_draws_like_rust(expected):
    e = expected["replay"]
    buf = L.ReplayBuffer(buffer_size=e["buffer_size"], seed=e["seed"])
    fired = 0
    for st in e["steps"]:
        draw = buf.maybe_replay()
        want = st["draw_before_update"]
        if want is None:
            assert draw is None, st["step"]
        else:
            fired += 1
            assert draw is not None, st["step"]
            assert draw.steps.tolist() == want["steps"]
            assert draw.rows.tolist() == want["rows"]
            assert draw.advantages.tolist() == want["advantages"]
            assert draw.scores.tolist() == want["scores"]
            assert (draw.p50_mean, draw.p50_std, draw.p95_mean) == (want["p50_mean"], want["p50_std"], want["p95_mean"])
            assert (draw.candidates, draw.eligible, draw.skipped) == (want["candidates"], want["eligible"], want["skipped"])
            assert len(draw) == len(want["rows"])
        rep = buf.update(
            st["step"], st["scores"], st["advantages"], arr(st["group_ids"], np.int64), arr(st["traj_ids"], np.int64)
        )
        assert rep == st["report"]
        assert buf.stored_samples == st["stored_after"]
        assert buf.fill_measure() == st["fill_after"]
    assert fired >= 2


GROUPS, G, STEPS = 32, 8, 5


def synthetic_batch():
    """crates/spear-rl/tests/fake_training.rs's batch: 32 groups × 8 trajectories × 5
    steps, trajectories 0–3 of each group win (episode reward 10)."""
    n = GROUPS * G * STEPS
    group = np.repeat(np.arange(GROUPS), G * STEPS)
    traj = np.repeat(np.arange(GROUPS * G), STEPS)
    won = (traj % G) < 4
    return n, group, traj, np.where(won, 10.0, 0.0), np.full(n, STEPS)


def test_buffer_fires_at_the_steps_of_the_rust_fake_training():
    """The Rust test asserts replay at t = 6, 11, …, 296 (59 times), 3200 candidates,
    2048 drawn with Ã = s − P50, 640 samples stored per step, |D_R| = 9600."""
    n, group, traj, episode_reward, calls = synthetic_batch()
    buf = L.ReplayBuffer()  # official defaults: 2048, ×1.5, D_R 10240, tolerate 5
    triggers = []
    for t in range(1, 301):
        scores = L.episode_scores(episode_reward, calls, t)  # agent variant, cosine μ(t)
        mu = L.toolcall_weight(t, 200)
        assert abs(scores[traj % G >= 4][0] - 0.5 * mu) < 1e-12
        adv = L.dr_grpo_advantages(scores, group, traj)
        assert np.all(np.abs(np.abs(adv) - 5.0) < 1e-9)
        draw = buf.maybe_replay()
        if draw is not None:
            triggers.append(t)
            assert (draw.candidates, draw.eligible, len(draw), draw.skipped) == (3200, 3200, 2048, False)
            # Ã = s − P50 computed in float32 as upstream (spear_rl::replay module docs), as the
            # Rust fake-training test asserts; within 1e-6 of the f64 difference.
            want = (draw.scores.astype(np.float32) - np.float32(draw.p50_mean)).astype(np.float64)
            assert np.array_equal(draw.advantages, want)
            assert np.all(np.abs(draw.advantages - (draw.scores - draw.p50_mean)) < 1e-6)
            assert np.all(t - draw.steps <= 5)
            assert buf.stored_samples == 0
        rep = buf.update(t, scores, adv, group, traj)
        assert rep == {"entries_removed": 0, "groups_recorded": 32, "samples_stored": 640}
        gamma = L.replay_weight(t, 200, 1.0)
        if t == 100:
            assert abs(mu - 0.5) < 1e-12 and abs(gamma - 0.5) < 1e-12
        if t == 300:
            assert mu == 0.0 and gamma == 1.0
    assert triggers == list(range(6, 301, 5))
    assert len(triggers) == 59
    assert buf.baseline_len == 9600


def test_arrays_are_not_copied_on_the_way_out():
    a = L.grpo_advantages(np.arange(8.0), np.zeros(8, np.int64))
    assert a.dtype == np.float64 and a.flags["OWNDATA"] is False  # a view of Rust's buffer
    assert a.flags["C_CONTIGUOUS"]
    # Strided input (not contiguous) is read correctly.
    s = np.arange(16.0)[::2]
    assert np.array_equal(L.grpo_advantages(s, np.zeros(8, np.int64)), L.grpo_advantages(s.copy(), np.zeros(8, np.int64)))


def test_learner_errors_are_python_exceptions():
    with pytest.raises(ValueError, match="`group_ids` has 2 rows but `scores` has 3"):
        L.grpo_advantages([1.0, 2.0, 3.0], [0, 0])
    with pytest.raises(ValueError, match="unknown norm"):
        L.grpo_advantages([1.0], [0], norm="median")
    with pytest.raises(ValueError, match="keeps no group"):
        L.StdGroupFilter(0.1)([1.0, 2.0], [0, 1], [0, 1])
    with pytest.raises(ValueError, match="tolerate_steps 11 is above the official cap of 10"):
        L.ReplayBuffer(tolerate_steps=11)
    with pytest.raises(ValueError, match="2 responses but 1 texts"):
        L.response_filters([[1], [2]], ["a"])
    assert math.isclose(L.ReplayBuffer.recalibrate(10.0, 4.0), 6.0)
