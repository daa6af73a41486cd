//! Reward shaping (spec §2.2, §2.8): the episode score with SPEAR's intrinsic
//! tool-call reward, the invalid-action penalty, and GiGPO's discounted step
//! returns.

use crate::config::{RewardConfig, ToolCallReward, ToolCallVariant};
use crate::sample::{group_samples, Batch, GroupIndex};
use crate::schedule::toolcall_weight;

/// Tool-call reward r_tc = min(cap, per_call·calls) (spec §2.2: `min(1, 0.1·calls)`).
pub fn toolcall_reward(calls: u32, per_call: f64, cap: f64) -> f64 {
    (per_call * calls as f64).min(cap)
}

/// Weight of r_tc at step t: 0 (`none`), 1 (`constant`) or μ(t) (`cosine`), spec §2.2, §2.6.
pub fn toolcall_mode_weight(mode: ToolCallReward, t: u64, max_toolcall_steps: u64) -> f64 {
    match mode {
        ToolCallReward::None => 0.0,
        ToolCallReward::Constant => 1.0,
        ToolCallReward::Cosine => toolcall_weight(t, max_toolcall_steps),
    }
}

/// Episode score with the intrinsic reward (spec §2.2), for one sample:
///
/// * `Agent` (verl-agent `EpisodeRewardManager`): s = R_ep + max(0, r_tc·w(t)),
///   with calls = episode length.
/// * `MathQwen25`: s = R + r_tc·w(t), whether or not the answer is right.
/// * `MathQwen3`: if R ≤ 0, s = R + r_tc·w(t); else s = R + 𝟙(calls > 0)·w(t);
///   w clamped ≥ 0.
///
/// The bonus goes into the episode score only, never into GiGPO step rewards.
pub fn episode_score(extrinsic: f64, calls: u32, t: u64, cfg: &RewardConfig) -> f64 {
    let w = toolcall_mode_weight(cfg.toolcall_reward, t, cfg.max_toolcall_steps);
    score_with_weight(extrinsic, calls, w, cfg)
}

/// [`episode_score`] with the tool-call weight w(t) = μ(t) already computed.
fn score_with_weight(extrinsic: f64, calls: u32, w: f64, cfg: &RewardConfig) -> f64 {
    let r_tc = toolcall_reward(calls, cfg.toolcall_per_call, cfg.toolcall_cap);
    match cfg.toolcall_variant {
        ToolCallVariant::Agent => extrinsic + (r_tc * w).max(0.0),
        ToolCallVariant::MathQwen25 => extrinsic + r_tc * w,
        ToolCallVariant::MathQwen3 => {
            let w = w.max(0.0);
            if extrinsic <= 0.0 {
                extrinsic + r_tc * w
            } else {
                extrinsic + if calls > 0 { w } else { 0.0 }
            }
        }
    }
}

/// Sets `score` of every sample of a freshly collected batch at step `t`
/// (spec §2.8 step 2): `episode_score(episode_reward, calls, t)`, where calls =
/// `episode_length` for the agent variant and `tool_calls` for math. Returns the tool-call
/// weight μ(t) it used (the trainer logs it).
pub fn assign_episode_scores(batch: &mut Batch, t: u64, cfg: &RewardConfig) -> f64 {
    let w = toolcall_mode_weight(cfg.toolcall_reward, t, cfg.max_toolcall_steps);
    for s in &mut batch.samples {
        let calls = match cfg.toolcall_variant {
            ToolCallVariant::Agent => s.episode_length,
            ToolCallVariant::MathQwen25 | ToolCallVariant::MathQwen3 => s.tool_calls,
        };
        s.score = score_with_weight(s.episode_reward, calls, w, cfg);
    }
    w
}

/// Invalid-action penalty (spec §2.2, §2.8 step 4; `apply_invalid_action_penalty`):
/// s_i −= coef·(1 − valid_i) and R_i −= coef·(1 − valid_i), on that step's
/// sample only (not propagated to earlier steps). Returns the valid-action ratio.
pub fn apply_invalid_action_penalty(batch: &mut Batch, coef: f64) -> f64 {
    let mut valid = 0usize;
    for s in &mut batch.samples {
        if s.is_action_valid {
            valid += 1;
        } else {
            s.score -= coef;
            s.step_return -= coef;
        }
    }
    if batch.is_empty() {
        1.0
    } else {
        valid as f64 / batch.len() as f64
    }
}

/// GiGPO discounted step returns (spec §2.8, §4.2): per trajectory, ordered by
/// `step_index`, R_k = r_k + γ·R_{k+1} from the raw env step rewards (no tool
/// bonus). Overwrites `step_return`; run it before the invalid penalty.
///
/// **Order.** Upstream (`compute_step_discounted_returns` in `verl-agent/gigpo/core_gigpo.py`,
/// SPEAR @ 7e84315) takes a trajectory's samples in **batch order** (`np.where(traj_uids ==
/// uid)`) and discounts backwards over that order; it never reads a step index. The two agree
/// exactly when each trajectory's samples appear in the batch in step order, which is how
/// verl-agent's rollout (and ours) builds the batch: step-major, step 0 of every environment
/// first. For a batch whose samples are out of step order the port still discounts by
/// `step_index`, where upstream would discount in the order given (tested below).
/// Upstream casts the rewards to float32 (`astype(np.float32)`); the port keeps f64.
pub fn compute_step_returns(batch: &mut Batch, gamma: f64) {
    let groups = group_samples(&batch.samples);
    compute_step_returns_grouped(batch, &groups, gamma);
}

/// [`compute_step_returns`] with the batch's grouping computed once by the caller.
pub fn compute_step_returns_grouped(batch: &mut Batch, groups: &[GroupIndex], gamma: f64) {
    for group in groups {
        for (_, idx) in &group.trajectories {
            let mut order = idx.clone();
            order.sort_by_key(|&i| batch.samples[i].step_index);
            let mut running = 0.0;
            for &i in order.iter().rev() {
                running = batch.samples[i].step_reward + gamma * running;
                batch.samples[i].step_return = running;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::test_util::sample;

    fn cfg(mode: ToolCallReward, variant: ToolCallVariant) -> RewardConfig {
        RewardConfig {
            toolcall_reward: mode,
            toolcall_variant: variant,
            ..RewardConfig::default()
        }
    }

    #[test]
    fn agent_cosine_bonus() {
        let c = cfg(ToolCallReward::Cosine, ToolCallVariant::Agent);
        // won (10), 4 steps, t = 100 of 200: r_tc = min(1, 0.4) = 0.4, μ = 0.5 → 10 + 0.2 = 10.2
        assert!((episode_score(10.0, 4, 100, &c) - 10.2).abs() < 1e-12);
        // 25 steps saturate: r_tc = 1, μ(100) = 0.5 → 0 + 0.5
        assert!((episode_score(0.0, 25, 100, &c) - 0.5).abs() < 1e-12);
        // past T: no bonus
        assert_eq!(episode_score(0.0, 25, 201, &c), 0.0);
    }

    #[test]
    fn constant_and_none() {
        // constant: 0 + min(1, 0.3) = 0.3 at any t
        let c = cfg(ToolCallReward::Constant, ToolCallVariant::Agent);
        assert!((episode_score(0.0, 3, 999, &c) - 0.3).abs() < 1e-12);
        let n = cfg(ToolCallReward::None, ToolCallVariant::Agent);
        assert_eq!(episode_score(10.0, 3, 1, &n), 10.0);
    }

    #[test]
    fn math_variants() {
        let q25 = cfg(ToolCallReward::Cosine, ToolCallVariant::MathQwen25);
        // correct (+1), 2 calls, μ(100) = 0.5: 1 + 0.2·0.5 = 1.1
        assert!((episode_score(1.0, 2, 100, &q25) - 1.1).abs() < 1e-12);
        let q3 = cfg(ToolCallReward::Cosine, ToolCallVariant::MathQwen3);
        // correct: 1 + 1[2>0]·0.5 = 1.5
        assert!((episode_score(1.0, 2, 100, &q3) - 1.5).abs() < 1e-12);
        // wrong (−1): −1 + 0.2·0.5 = −0.9
        assert!((episode_score(-1.0, 2, 100, &q3) + 0.9).abs() < 1e-12);
        // correct without calls: 1 + 0
        assert_eq!(episode_score(1.0, 0, 100, &q3), 1.0);
    }

    #[test]
    fn penalty_and_returns() {
        // one trajectory of 3 steps, reward 10 at the last step (index 2).
        let mut b = Batch::new(vec![
            sample(0, 0, 0, 10.0),
            sample(0, 0, 2, 10.0),
            sample(0, 0, 1, 10.0),
        ]);
        b.samples[1].step_reward = 10.0;
        b.samples[2].is_action_valid = false;
        compute_step_returns(&mut b, 0.95);
        // R_2 = 10, R_1 = 0 + 0.95·10 = 9.5, R_0 = 0.95·9.5 = 9.025
        assert!((b.samples[1].step_return - 10.0).abs() < 1e-12);
        assert!((b.samples[2].step_return - 9.5).abs() < 1e-12);
        assert!((b.samples[0].step_return - 9.025).abs() < 1e-12);
        let ratio = apply_invalid_action_penalty(&mut b, 0.1);
        // step 1 invalid: s = 10 − 0.1 = 9.9, R_1 = 9.5 − 0.1 = 9.4; R_0 unchanged (not propagated)
        assert!((b.samples[2].score - 9.9).abs() < 1e-12);
        assert!((b.samples[2].step_return - 9.4).abs() < 1e-12);
        assert!((b.samples[0].step_return - 9.025).abs() < 1e-12);
        assert_eq!(b.samples[0].score, 10.0);
        assert!((ratio - 2.0 / 3.0).abs() < 1e-12);
    }

    /// Upstream's loop (`compute_step_discounted_returns`): per `traj_uid`, the samples in
    /// batch order, discounted backwards over that order.
    fn upstream_batch_order_returns(b: &Batch, gamma: f64) -> Vec<f64> {
        let mut out = vec![0.0; b.len()];
        let mut seen = Vec::new();
        for s in &b.samples {
            if !seen.contains(&s.traj_uid) {
                seen.push(s.traj_uid);
            }
        }
        for traj in seen {
            let idx: Vec<usize> = (0..b.len())
                .filter(|&i| b.samples[i].traj_uid == traj)
                .collect();
            let mut running = 0.0;
            for &i in idx.iter().rev() {
                running = b.samples[i].step_reward + gamma * running;
                out[i] = running;
            }
        }
        out
    }

    #[test]
    fn step_returns_match_upstream_when_batches_are_in_step_order() {
        // two trajectories, 3 steps each, step-major (as rollouts build batches)
        let rewards = [[1.0, 0.0, 10.0], [0.0, 2.0, 5.0]];
        let mut samples = Vec::new();
        for step in 0..3u32 {
            for traj in 0..2u64 {
                let mut x = sample(0, traj, step, 0.0);
                x.step_reward = rewards[traj as usize][step as usize];
                samples.push(x);
            }
        }
        let mut ordered = Batch::new(samples);
        let want = upstream_batch_order_returns(&ordered, 0.95);
        compute_step_returns(&mut ordered, 0.95);
        let got: Vec<f64> = ordered.samples.iter().map(|s| s.step_return).collect();
        assert_eq!(got, want);
        // traj 0: R_2 = 10, R_1 = 9.5, R_0 = 1 + 0.95·9.5 = 10.025
        assert!((got[0] - 10.025).abs() < 1e-12);

        // Out of step order (traj 0's step 2 before its step 0): upstream discounts in batch
        // order and differs; the port discounts by step_index and gives the same returns
        // per step as the ordered batch.
        let mut shuffled = ordered.clone();
        shuffled.samples.swap(0, 4);
        let upstream = upstream_batch_order_returns(&shuffled, 0.95);
        compute_step_returns(&mut shuffled, 0.95);
        let ours: Vec<f64> = shuffled.samples.iter().map(|s| s.step_return).collect();
        assert_ne!(ours, upstream);
        for (x, y) in shuffled.samples.iter().zip(&ours) {
            let same = ordered
                .samples
                .iter()
                .find(|o| o.traj_uid == x.traj_uid && o.step_index == x.step_index)
                .unwrap();
            assert_eq!(*y, same.step_return);
        }
    }

    #[test]
    fn assign_scores_uses_episode_length_for_agents() {
        let c = cfg(ToolCallReward::Cosine, ToolCallVariant::Agent);
        let mut b = Batch::new(vec![sample(0, 0, 0, 0.0)]);
        b.samples[0].episode_reward = 10.0;
        b.samples[0].episode_length = 5;
        b.samples[0].tool_calls = 0;
        assign_episode_scores(&mut b, 100, &c);
        // 10 + min(1, 0.5)·0.5 = 10.25
        assert!((b.samples[0].score - 10.25).abs() < 1e-12);
    }
}
