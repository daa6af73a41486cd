//! Property tests (issue "Done when"): GRPO zero on equal rewards, GiGPO step
//! advantage zero on singleton anchors, buffer staleness, P50 vs brute force,
//! finite advantages.

use proptest::prelude::*;
use spear_rl::advantage::anchor_groups;
use spear_rl::config::{ReplayConfig, UpdateConfig};
use spear_rl::stats::percentile_linear;
use spear_rl::{
    gigpo_advantages, grpo_advantages, rloo_advantages, AdvNorm, Batch, GroupId, ReplayBuffer,
    StepSample, TrajId, UpdatePlan,
};

fn sample(uid: u64, traj: u64, step: u32, score: f64, ret: f64, anchor: String) -> StepSample {
    StepSample {
        uid: GroupId(uid),
        traj_uid: TrajId(traj),
        step_index: step,
        prompt_tokens: vec![1],
        response_tokens: vec![2, 3],
        response_mask: vec![1, 1],
        old_log_probs: vec![-1.0, -1.0],
        rollout_log_probs: vec![],
        policy_version: 0,
        step_reward: 0.0,
        episode_reward: score,
        episode_length: 1,
        tool_calls: 1,
        is_action_valid: true,
        anchor_obs: anchor,
        collected_at: 1,
        score,
        step_return: ret,
        advantage: 0.0,
    }
}

/// (uid, traj, score, return, anchor id) rows.
fn rows() -> impl Strategy<Value = Vec<(u64, u64, f64, f64, u8)>> {
    prop::collection::vec(
        (0u64..4, 0u64..6, -20.0f64..20.0, -20.0f64..20.0, 0u8..5),
        1..60,
    )
}

fn to_samples(rows: &[(u64, u64, f64, f64, u8)]) -> Vec<StepSample> {
    rows.iter()
        .enumerate()
        // traj ids are unique per group: traj = uid·100 + t
        .map(|(i, &(g, t, s, r, a))| sample(g, g * 100 + t, i as u32, s, r, format!("a{a}")))
        .collect()
}

proptest! {
    #[test]
    fn equal_rewards_give_zero_grpo_advantage(
        groups in prop::collection::vec((0u64..5, 1usize..10), 1..6),
        value in -50.0f64..50.0,
        step_weighted in any::<bool>(),
    ) {
        let mut samples = Vec::new();
        let mut traj = 0;
        for (g, (_, n)) in groups.iter().enumerate() {
            // every group has ≥ 2 trajectories with the same score
            for _ in 0..(*n + 1) {
                samples.push(sample(g as u64, traj, 0, value, 0.0, String::new()));
                traj += 1;
            }
        }
        for norm in [AdvNorm::MeanStd, AdvNorm::Mean] {
            for a in grpo_advantages(&samples, norm, step_weighted, 1e-6) {
                prop_assert!(a.abs() < 1e-9, "advantage {a}");
            }
        }
    }

    #[test]
    fn gigpo_singleton_anchor_groups_have_zero_step_advantage(rows in rows()) {
        let samples = to_samples(&rows);
        for norm in [AdvNorm::MeanStd, AdvNorm::Mean] {
            let a = gigpo_advantages(&samples, norm, 1.0, true, 1e-6);
            for cluster in anchor_groups(&samples) {
                if cluster.len() == 1 {
                    prop_assert_eq!(a.step[cluster[0]], 0.0);
                }
            }
        }
        // all-distinct anchors → every A^S is zero and A = A^E
        let distinct: Vec<StepSample> = samples
            .iter()
            .enumerate()
            .map(|(i, s)| StepSample { anchor_obs: format!("u{i}"), ..s.clone() })
            .collect();
        let a = gigpo_advantages(&distinct, AdvNorm::MeanStd, 1.0, true, 1e-6);
        prop_assert!(a.step.iter().all(|&x| x == 0.0));
        prop_assert_eq!(a.combined, a.episode);
    }

    #[test]
    fn advantages_are_finite(rows in rows(), step_weighted in any::<bool>()) {
        let samples = to_samples(&rows);
        for norm in [AdvNorm::MeanStd, AdvNorm::Mean] {
            prop_assert!(grpo_advantages(&samples, norm, step_weighted, 1e-6).iter().all(|a| a.is_finite()));
            let g = gigpo_advantages(&samples, norm, 1.0, step_weighted, 1e-6);
            prop_assert!(g.combined.iter().all(|a| a.is_finite()));
        }
        prop_assert!(rloo_advantages(&samples).iter().all(|a| a.is_finite()));
    }

    #[test]
    fn buffer_never_holds_stale_samples(
        steps in prop::collection::vec((1u64..4, prop::collection::vec(-2.0f64..2.0, 0..6)), 1..40),
        tolerate in 0u64..12,
    ) {
        let cfg = ReplayConfig { tolerate_steps: tolerate, ..ReplayConfig::default() };
        let tol = tolerate.min(10);
        let mut buf = ReplayBuffer::new(&cfg, 1);
        let mut t = 0u64;
        for (gap, advs) in steps {
            t += gap;
            let batch = Batch::new(
                advs.iter()
                    .enumerate()
                    .map(|(k, &a)| StepSample { advantage: a, collected_at: t, ..sample(0, k as u64, 0, a, 0.0, String::new()) })
                    .collect(),
            );
            let newest_before = buf.entries().last().map(|e| e.step);
            buf.update(&batch, t);
            // every entry other than the new one is within `tol` of the newest
            // entry at removal time (spec §2.3 `remove_old`)
            if let Some(latest) = newest_before {
                for e in buf.entries() {
                    if e.step != t {
                        prop_assert!(latest - e.step <= tol);
                    }
                    for s in &e.samples {
                        prop_assert!(s.advantage > 0.0);
                        prop_assert_eq!(s.collected_at, e.step);
                    }
                }
            }
            // and an explicit remove_old leaves only entries within `tol` of the newest
            let mut copy = buf.clone();
            copy.remove_old();
            if let Some(newest) = copy.entries().last().map(|e| e.step) {
                prop_assert!(copy.entries().iter().all(|e| newest - e.step <= tol));
            }
        }
    }

    #[test]
    fn recalibration_p50_matches_brute_force_median(
        history in prop::collection::vec(prop::collection::vec(-10.0f64..10.0, 1..5), 1..8),
        stored in prop::collection::vec(-10.0f64..10.0, 1..20),
    ) {
        let mut buf = ReplayBuffer::new(&ReplayConfig::default(), 3);
        // each history step: one-trajectory groups, so the D_R group mean is the score itself
        for (t, means) in history.iter().enumerate() {
            let batch = Batch::new(
                means.iter().enumerate()
                    .map(|(g, &m)| sample(g as u64, g as u64, 0, m, 0.0, String::new()))
                    .collect(),
            );
            buf.update(&batch, t as u64 + 1);
        }
        let last = history.len() as u64 + 1;
        let batch = Batch::new(
            stored.iter().enumerate()
                .map(|(k, &s)| StepSample { advantage: 1.0, ..sample(100 + k as u64, 1000 + k as u64, 0, s, 0.0, String::new()) })
                .collect(),
        );
        buf.update(&batch, last);
        // brute force over all D_R means (history + the stored step's groups); the buffer reads
        // scores as float32 like upstream's reward tensor (spear_rl::replay module docs)
        let f32_of = |x: f64| x as f32 as f64;
        let mut all: Vec<f64> = history.iter().flatten().copied().chain(stored.iter().copied()).map(f32_of).collect();
        all.sort_by(|a, b| a.total_cmp(b));
        let n = all.len();
        let median = if n % 2 == 1 { all[n / 2] } else { 0.5 * (all[n / 2 - 1] + all[n / 2]) };
        let draw = buf.take_replay();
        let p50 = draw.p50_mean.unwrap();
        prop_assert!((p50 - median).abs() < 1e-9, "p50 {} median {}", p50, median);
        // every replayed sample has Ã = s − P50 ≥ 0, and the eligible count is right
        let eligible = stored.iter().filter(|&&s| s as f32 - median as f32 >= 0.0).count();
        prop_assert_eq!(draw.eligible, eligible);
        for s in &draw.samples {
            prop_assert_eq!(s.advantage, (s.score as f32 - p50 as f32) as f64);
            prop_assert!(s.advantage >= 0.0);
        }
    }

    #[test]
    fn percentile_matches_brute_force_interpolation(xs in prop::collection::vec(-100.0f64..100.0, 1..50), q in 0.0f64..100.0) {
        let mut v = xs.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        let h = (v.len() - 1) as f64 * q / 100.0;
        let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
        let expect = v[lo] + (v[hi] - v[lo]) * (h - lo as f64);
        let got = percentile_linear(&xs, q).unwrap();
        prop_assert!((got - expect).abs() < 1e-9);
        prop_assert!(got >= v[0] - 1e-12 && got <= v[v.len() - 1] + 1e-12);
    }

    #[test]
    fn update_plan_covers_every_row_once_per_epoch(
        n_on in 0usize..3000, n_re in 0usize..3000, epochs in 1u64..3, micro_pow in 0u32..5, t in 1u64..400,
    ) {
        let micro = 1u64 << micro_pow;
        let update = UpdateConfig { ppo_epochs: epochs, mini_batch_size: micro * 16, micro_batch_size: micro, grad_clip: 1.0 };
        let plan = UpdatePlan::build(n_on, n_re, t, &update, &ReplayConfig::default());
        let mut seen_on = 0usize;
        let mut seen_re = 0usize;
        let mut replay_started = false;
        let mut last_epoch = 0;
        for mb in &plan.mini_batches {
            if mb.epoch != last_epoch { replay_started = false; last_epoch = mb.epoch; }
            match mb.phase {
                spear_rl::Phase::OnPolicy => { prop_assert!(!replay_started); seen_on += mb.rows.len(); }
                spear_rl::Phase::Replay => { replay_started = true; seen_re += mb.rows.len(); }
            }
            let micro_rows: usize = mb.micro_batches.iter().map(|m| m.rows.len()).sum();
            prop_assert_eq!(micro_rows, mb.rows.len());
        }
        prop_assert_eq!(seen_on, n_on * epochs as usize);
        prop_assert_eq!(seen_re, n_re * epochs as usize);
    }
}
