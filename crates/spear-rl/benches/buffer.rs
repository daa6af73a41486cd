//! SIL replay-buffer operations at the paper's scale (spec §2.3, §5.2): one
//! step inserts the positive-advantage samples of a 12 800-sample batch
//! (prompt 1536 tokens, response 512 tokens with behaviour log-probs, the
//! copy cost of verl's `deepcopy`), and a replay draws 2048 of ~6400 stored.
//!
//! `cargo bench -p spear-rl --bench buffer -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spear_rl::config::ReplayConfig;
use spear_rl::{Batch, GroupId, ReplayBuffer, StepSample, TrajId};

const PROMPT: usize = 1536;
const RESPONSE: usize = 512;

/// 32 groups × 8 trajectories × 50 steps; half the trajectories won, so about
/// half of the samples have A > 0 and are stored.
fn paper_batch(step: u64, rng: &mut ChaCha8Rng) -> Batch {
    let mut samples = Vec::with_capacity(12_800);
    for g in 0..32u64 {
        for k in 0..8u64 {
            let won = k % 2 == 0;
            let score = if won { 10.0 } else { 0.0 } + rng.random_range(0.0..0.5);
            for s in 0..50u32 {
                samples.push(StepSample {
                    uid: GroupId(g),
                    traj_uid: TrajId(step * 1000 + g * 8 + k),
                    step_index: s,
                    prompt_tokens: vec![11; PROMPT],
                    response_tokens: vec![13; RESPONSE],
                    response_mask: vec![1; RESPONSE],
                    old_log_probs: vec![-0.3; RESPONSE],
                    rollout_log_probs: vec![],
                    policy_version: 0,
                    step_reward: 0.0,
                    episode_reward: score,
                    episode_length: 50,
                    tool_calls: 50,
                    is_action_valid: true,
                    anchor_obs: String::new(),
                    collected_at: step,
                    score,
                    step_return: 0.0,
                    advantage: if won { 5.0 } else { -5.0 },
                });
            }
        }
    }
    Batch::new(samples)
}

fn bench(c: &mut Criterion) {
    let cfg = ReplayConfig::default();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let b1 = paper_batch(1, &mut rng);

    // remove_old + D_R update + copy of 6400 positive samples into the buffer
    c.bench_function("buffer/update/12800_samples", |b| {
        b.iter_batched_ref(
            || ReplayBuffer::new(&cfg, 0),
            |buf| buf.update(black_box(&b1), 1),
            BatchSize::LargeInput,
        )
    });

    // a buffer holding one step (6400 stored) and a D_R of 10240 group entries
    let mut full = ReplayBuffer::new(&cfg, 0);
    let small = Batch::new(
        b1.samples
            .iter()
            .filter(|s| s.step_index == 0)
            .cloned()
            .collect(),
    );
    for t in 1..=320u64 {
        full.update(&small, t); // 32 groups per step → 10240 D_R entries
    }
    full.clear();
    full.update(&b1, 321);
    assert!(full.is_full(), "6400 > 3072 stored samples beat P50");

    c.bench_function("buffer/fill_measure/6400_stored_10240_baseline", |b| {
        b.iter(|| black_box(&full).fill_measure())
    });
    c.bench_function("buffer/take_replay/2048_of_6400", |b| {
        b.iter_batched_ref(
            || full.clone(),
            |buf| buf.take_replay().samples.len(),
            BatchSize::LargeInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
