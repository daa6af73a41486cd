//! Scripted "fake training" (issue "Done when"): 300 steps of the SPEAR
//! pipeline of spec §2.8 on synthetic batches, driving the schedules, the
//! replay buffer and the update plan, with hand-computed expectations.
//!
//! Synthetic batch at every step t: 32 groups × 8 trajectories × 5 steps
//! (1280 step-samples). In each group trajectories 0–3 win (episode reward 10)
//! and 4–7 lose (0); all actions are valid. Dr.BoT group filter off (ratio 1),
//! Dr.GRPO advantages (no std), official replay defaults.
//!
//! Hand computation:
//! * score = R + min(1, 0.1·5)·μ(t) = R + 0.5·μ(t); within a group all bonuses
//!   are equal, so the group mean is 5 + 0.5μ and A = ±5: the 4 winners' 20
//!   step-samples per group are stored, 32·20 = 640 per step.
//! * D_R group mean at step t is 5 + 0.5μ(t) ≤ 5.5, and a stored score is
//!   10 + 0.5μ(t') ≥ 10, so every stored sample beats P50: fill = 640·k after
//!   k insertions since the last clear.
//! * trigger: 640·k > 1.5·2048 = 3072 ⇔ k ≥ 5. The buffer is checked before
//!   the update of step t, so replay fires at t = 6 (entries 1–5), is cleared,
//!   refills with steps 6–10 and fires at t = 11, …: t = 6, 11, …, 296 (59 times).
//!   Staleness never bites (entries span 5 steps ≤ tolerate 5).
//! * each draw: 3200 eligible (Ã = 10 + 0.5μ(t') − P50 > 0), n = min(2048, 2048) = 2048.
//! * plan: on-policy 1280 rows → mini-batches of 1024 + 256; replay 2048 →
//!   1024 + 1024; micro 8 → grad_accum 128, replay scale γ(t)/128.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use spear_rl::config::{DrBotConfig, Estimator, RlConfig};
use spear_rl::drbot::filter_groups_by_std;
use spear_rl::reward::{apply_invalid_action_penalty, assign_episode_scores, compute_step_returns};
use spear_rl::{
    compute_advantages, replay_weight, toolcall_weight, Batch, GroupId, Phase, PlanOp,
    ReplayBuffer, StepSample, TrajId, UpdatePlan,
};
use std::f64::consts::PI;

const GROUPS: u64 = 32;
const G: u64 = 8;
const STEPS: u32 = 5;

fn synthetic_batch(t: u64) -> Batch {
    let mut samples = Vec::new();
    for g in 0..GROUPS {
        for k in 0..G {
            let won = k < 4;
            for step in 0..STEPS {
                samples.push(StepSample {
                    uid: GroupId(g),
                    traj_uid: TrajId(g * G + k),
                    step_index: step,
                    prompt_tokens: vec![1; 16],
                    response_tokens: vec![2; 8],
                    response_mask: vec![1; 8],
                    old_log_probs: vec![-0.7; 8],
                    rollout_log_probs: vec![],
                    policy_version: 0,
                    step_reward: if won && step == STEPS - 1 { 10.0 } else { 0.0 },
                    episode_reward: if won { 10.0 } else { 0.0 },
                    episode_length: STEPS,
                    tool_calls: STEPS,
                    is_action_valid: true,
                    anchor_obs: format!("g{g}-s{step}"),
                    collected_at: t,
                    score: 0.0,
                    step_return: 0.0,
                    advantage: 0.0,
                });
            }
        }
    }
    Batch::new(samples)
}

#[test]
fn three_hundred_steps_of_schedules_buffer_and_plan() {
    let mut cfg = RlConfig::default();
    cfg.advantage.estimator = Estimator::DrGrpo;
    cfg.drbot = DrBotConfig {
        rollout_filter_ratio: 1.0,
        ..DrBotConfig::default()
    };
    cfg.validate().unwrap();
    let seed = 0;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut buffer = ReplayBuffer::new(&cfg.replay, seed);
    let mut triggers = Vec::new();

    for t in 1..=300u64 {
        // 1–2. rollout, rewards, filters
        let mut batch = synthetic_batch(t);
        assign_episode_scores(&mut batch, t, &cfg.reward);
        compute_step_returns(&mut batch, cfg.gigpo.gamma);
        let (mut batch, _) = filter_groups_by_std(&batch, &cfg.drbot, &mut rng).unwrap();
        assert_eq!(batch.len(), 1280);
        // 4–5. penalty and advantages
        assert_eq!(
            apply_invalid_action_penalty(&mut batch, cfg.reward.invalid_action_penalty),
            1.0
        );
        compute_advantages(&mut batch, &cfg.advantage, &cfg.gigpo);

        // μ(t) through the scores: a losing trajectory scores 0.5·μ(t)
        let mu = toolcall_weight(t, cfg.reward.max_toolcall_steps);
        let lost = batch
            .samples
            .iter()
            .find(|s| s.episode_reward == 0.0)
            .unwrap();
        assert!((lost.score - 0.5 * mu).abs() < 1e-12);
        // Dr.GRPO: A = ±5 exactly
        assert!(batch
            .samples
            .iter()
            .all(|s| (s.advantage.abs() - 5.0).abs() < 1e-9));

        // 6. SIL draw before the update
        let draw = buffer.maybe_replay();
        let n_replay = match &draw {
            Some(d) => {
                triggers.push(t);
                assert_eq!(d.candidates, 3200, "t = {t}");
                assert_eq!(d.eligible, 3200);
                assert_eq!(d.samples.len(), 2048);
                assert!(!d.skipped);
                let p50 = d.p50_mean.unwrap();
                // Ã = s − P50, computed in f32 as upstream (spear_rl::replay module docs)
                assert!(d
                    .samples
                    .iter()
                    .all(|s| s.advantage == (s.score as f32 - p50 as f32) as f64));
                assert!(d
                    .samples
                    .iter()
                    .all(|s| (s.advantage - (s.score - p50)).abs() < 1e-6));
                assert!(d.samples.iter().all(|s| t - s.collected_at <= 5));
                assert_eq!(buffer.stored_samples(), 0);
                d.samples.len()
            }
            None => 0,
        };

        // 7. update plan
        let plan = UpdatePlan::build(batch.len(), n_replay, t, &cfg.update, &cfg.replay);
        let gamma = replay_weight(
            t,
            cfg.replay.max_replay_loss_steps,
            cfg.replay.replay_loss_coef,
        );
        assert_eq!(plan.replay_weight, gamma);
        let phases: Vec<(Phase, usize)> = plan
            .mini_batches
            .iter()
            .map(|m| (m.phase, m.rows.len()))
            .collect();
        if n_replay > 0 {
            assert_eq!(
                phases,
                vec![
                    (Phase::OnPolicy, 1024),
                    (Phase::OnPolicy, 256),
                    (Phase::Replay, 1024),
                    (Phase::Replay, 1024)
                ]
            );
            let replay_scales: Vec<f64> = plan
                .ops()
                .iter()
                .filter_map(|op| match op {
                    PlanOp::Backward {
                        phase: Phase::Replay,
                        loss_scale,
                        ..
                    } => Some(*loss_scale),
                    _ => None,
                })
                .collect();
            assert_eq!(replay_scales.len(), 2048 / 8);
            assert!(replay_scales
                .iter()
                .all(|&s| (s - gamma / 128.0).abs() < 1e-15));
        } else {
            assert_eq!(
                phases,
                vec![(Phase::OnPolicy, 1024), (Phase::OnPolicy, 256)]
            );
        }

        // 8. buffer update
        let rep = buffer.update(&batch, t);
        assert_eq!(rep.samples_stored, 640);
        assert_eq!(rep.entries_removed, 0);
        assert_eq!(rep.groups_recorded, 32);

        // curriculum values at the checkpoints (hand-computed)
        match t {
            1 => {
                // μ(1) = ½(cos(π/200) + 1) = 0.99993832 ; γ(1) = ½(1 − cos(π/200)) = 6.1684e-5
                assert!((mu - 0.5 * ((PI / 200.0).cos() + 1.0)).abs() < 1e-15);
                assert!((mu - 0.999_938_316).abs() < 1e-9);
                assert!((gamma - 6.168_376e-5).abs() < 1e-10);
            }
            100 => {
                // μ(100) = ½(cos(π/2) + 1) = 0.5 ; γ(100) = ½(1 − 0) = 0.5
                assert!((mu - 0.5).abs() < 1e-12);
                assert!((gamma - 0.5).abs() < 1e-12);
            }
            200 => {
                // μ(200) = ½(cos π + 1) = 0 ; γ(200) = ½(1 − cos π) = 1
                assert!(mu.abs() < 1e-12);
                assert!((gamma - 1.0).abs() < 1e-12);
            }
            300 => {
                // past both horizons: μ = 0, γ = c = 1
                assert_eq!(mu, 0.0);
                assert_eq!(gamma, 1.0);
            }
            _ => {}
        }
    }
    let expected: Vec<u64> = (6..=300).step_by(5).collect();
    assert_eq!(triggers.len(), 59);
    assert_eq!(triggers, expected);
    // D_R: 300 steps · 32 groups = 9600 ≤ 10240, nothing trimmed
    assert_eq!(buffer.baseline_len(), 9600);
}

#[test]
fn replay_is_reproducible_from_the_seed() {
    let run = || {
        let cfg = RlConfig::default();
        let mut buffer = ReplayBuffer::new(&cfg.replay, 42);
        let mut ids = Vec::new();
        for t in 1..=6u64 {
            let mut batch = synthetic_batch(t);
            assign_episode_scores(&mut batch, t, &cfg.reward);
            compute_advantages(&mut batch, &cfg.advantage, &cfg.gigpo);
            if let Some(d) = buffer.maybe_replay() {
                ids.extend(
                    d.samples
                        .iter()
                        .map(|s| (s.traj_uid.0, s.collected_at, s.step_index)),
                );
            }
            buffer.update(&batch, t);
        }
        ids
    };
    let a = run();
    assert_eq!(a.len(), 2048);
    assert_eq!(a, run());
}
