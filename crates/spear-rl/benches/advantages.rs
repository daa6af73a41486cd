//! Advantage computation at the paper's scale (spec §5.2): 32 task groups × 8
//! trajectories × 50 steps = 12 800 step-samples per training iteration.
//!
//! `cargo bench -p spear-rl --bench advantages -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spear_rl::config::{AdvantageConfig, DrBotConfig, Estimator, GigpoConfig, RewardConfig};
use spear_rl::drbot::{filter_groups_by_std, response_flags};
use spear_rl::reward::{apply_invalid_action_penalty, assign_episode_scores, compute_step_returns};
use spear_rl::{compute_advantages, Batch, GroupId, StepSample, TrajId};

/// 256 trajectories × 50 steps; ALFWorld-like anchors (a ~300-character
/// observation; trajectories of a group revisit the same few rooms), response
/// 256 tokens (the mask is all that the estimators read).
fn paper_batch(seed: u64) -> Batch {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let filler = "You are in the middle of a room. Looking quickly around you, you see a cabinet 1, a countertop 1, a drawer 2, a fridge 1, a garbagecan 1, a microwave 1, a shelf 3, a sinkbasin 1, a stoveburner 4, and a toaster 1. ";
    let mut samples = Vec::with_capacity(12_800);
    for g in 0..32u64 {
        for k in 0..8u64 {
            let won = rng.random_bool(0.4);
            for step in 0..50u32 {
                let room = rng.random_range(0..12u32);
                samples.push(StepSample {
                    uid: GroupId(g),
                    traj_uid: TrajId(g * 8 + k),
                    step_index: step,
                    prompt_tokens: Vec::new(),
                    response_tokens: vec![17; 256],
                    response_mask: vec![1; 256],
                    old_log_probs: Vec::new(),
                    rollout_log_probs: vec![],
                    policy_version: 0,
                    step_reward: if won && step == 49 { 10.0 } else { 0.0 },
                    episode_reward: if won { 10.0 } else { 0.0 },
                    episode_length: 50,
                    tool_calls: 50,
                    is_action_valid: rng.random_bool(0.9),
                    anchor_obs: format!("{filler}You are facing location {room}."),
                    collected_at: 1,
                    score: 0.0,
                    step_return: 0.0,
                    advantage: 0.0,
                });
            }
        }
    }
    let mut b = Batch::new(samples);
    assign_episode_scores(&mut b, 50, &RewardConfig::default());
    compute_step_returns(&mut b, 0.95);
    apply_invalid_action_penalty(&mut b, 0.1);
    b
}

fn bench(c: &mut Criterion) {
    let batch = paper_batch(0);
    let gigpo = GigpoConfig::default();
    for (name, est) in [
        ("grpo", Estimator::Grpo),
        ("dr_grpo", Estimator::DrGrpo),
        ("gigpo", Estimator::Gigpo),
        ("rloo", Estimator::Rloo),
    ] {
        let adv = AdvantageConfig {
            estimator: est,
            ..AdvantageConfig::default()
        };
        c.bench_function(&format!("advantages/{name}/12800_samples"), |b| {
            b.iter_batched_ref(
                || batch.clone(),
                |x| compute_advantages(black_box(x), &adv, &gigpo),
                BatchSize::LargeInput,
            )
        });
    }
    c.bench_function("rewards_and_returns/12800_samples", |b| {
        b.iter_batched_ref(
            || batch.clone(),
            |x| {
                assign_episode_scores(x, 50, &RewardConfig::default());
                compute_step_returns(x, 0.95);
                apply_invalid_action_penalty(x, 0.1)
            },
            BatchSize::LargeInput,
        )
    });
    let drbot = DrBotConfig::default();
    c.bench_function("drbot/std_group_filter/12800_samples", |b| {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        b.iter(|| filter_groups_by_std(black_box(&batch), &drbot, &mut rng).unwrap())
    });
    // response filters on 512-token responses (worst case for the 20-gram count)
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let responses: Vec<(Vec<u32>, String)> = (0..12_800)
        .map(|_| {
            let toks: Vec<u32> = (0..512).map(|_| rng.random_range(0..32_000u32)).collect();
            let text = "<think>".to_string()
                + &"plan the next move ".repeat(100)
                + "</think><action>go to cabinet 1</action>";
            (toks, text)
        })
        .collect();
    c.bench_function("drbot/response_flags/12800_x_512_tokens", |b| {
        b.iter(|| {
            responses
                .iter()
                .filter(|(t, s)| response_flags(t, s, &drbot).repetitive)
                .count()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
