//! Policy-loss forward + backward on a micro-batch-sized input (spec §2.5, §4.3):
//! `[1024, 512]` tokens in f32, the gradient taken with respect to `log_prob` (a `Var`).
//!
//! Run: `cargo bench -p spear-rl --bench losses -- --warm-up-time 1 --measurement-time 3`

use candle_core::{DType, Device, Tensor, Var};
use criterion::{criterion_group, criterion_main, Criterion};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spear_rl::loss::{actor_loss, ActorLossInputs, AggOptions, LossConfig, LossMode, LossPass};

const B: usize = 1024;
const T: usize = 512;

struct Inputs {
    logp: Var,
    old: Tensor,
    adv: Tensor,
    mask: Tensor,
    entropy: Tensor,
}

fn inputs() -> Inputs {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let n = B * T;
    let logp: Vec<f32> = (0..n).map(|_| rng.random_range(-4.0f32..-0.01)).collect();
    let old: Vec<f32> = logp
        .iter()
        .map(|l| l - rng.random_range(-0.3f32..0.3))
        .collect();
    // One advantage per row, as GRPO broadcasts it; responses of random length.
    let mut adv = Vec::with_capacity(n);
    let mut mask = Vec::with_capacity(n);
    for _ in 0..B {
        let a = rng.random_range(-2.0f32..2.0);
        let len = rng.random_range(16..=T);
        for t in 0..T {
            let m = if t < len { 1.0 } else { 0.0 };
            adv.push(a * m);
            mask.push(m);
        }
    }
    let entropy: Vec<f32> = (0..n).map(|_| rng.random_range(0.0f32..3.0)).collect();
    let dev = Device::Cpu;
    let t = |v: Vec<f32>| Tensor::from_vec(v, (B, T), &dev).unwrap();
    Inputs {
        logp: Var::from_tensor(&t(logp)).unwrap(),
        old: t(old),
        adv: t(adv),
        mask: t(mask),
        entropy: t(entropy),
    }
}

fn bench(c: &mut Criterion) {
    let x = inputs();
    assert_eq!(x.logp.dtype(), DType::F32);
    let agg = AggOptions::with_norm_len(T);
    let mut group = c.benchmark_group("actor_loss_fwd_bwd_1024x512_f32");
    group.sample_size(10);
    for (name, mode, pass) in [
        ("vanilla", LossMode::Vanilla, LossPass::OnPolicy),
        ("clip_cov_on_policy", LossMode::ClipCov, LossPass::OnPolicy),
        ("clip_cov_replay", LossMode::ClipCov, LossPass::Replay),
        ("kl_cov", LossMode::KlCov, LossPass::OnPolicy),
    ] {
        let cfg = LossConfig {
            loss_mode: mode,
            ..LossConfig::default()
        };
        let params = cfg.actor_params(pass);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        group.bench_function(name, |b| {
            b.iter(|| {
                let inputs = ActorLossInputs {
                    policy: spear_rl::loss::PolicyInputs {
                        log_prob: x.logp.as_tensor(),
                        old_log_prob: &x.old,
                        advantages: &x.adv,
                        response_mask: &x.mask,
                    },
                    entropy: Some(&x.entropy),
                    ref_log_prob: None,
                    rollout_log_prob: None,
                };
                let out = actor_loss(&inputs, &params, &agg, &mut rng).unwrap();
                out.loss.backward().unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
