//! Gradients of the losses with respect to `log_prob`: candle's backward (through a `Var`)
//! against central finite differences in f64, and against hand-derived values.

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spear_rl::loss::{
    actor_loss, agg_loss, clip_cov_loss, kl_cov_loss, kl_penalty, ppo_clip_loss, ActorLossInputs,
    ActorLossParams, AggOptions, ClipCovParams, KlCovParams, KlPenalty, LossAggMode, PolicyInputs,
    PolicyLossKind, PpoClipParams,
};

const B: usize = 3;
const T: usize = 5;

fn tensor(v: &[f64]) -> Tensor {
    Tensor::from_vec(v.to_vec(), (B, T), &Device::Cpu).unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

/// Seeded random micro-batch: log-ratios in [−0.6, 0.6] kept 0.03 away from the kinks
/// ln 0.8, ln 1.28 (clip) and ln 1.5 (dual clip with c = 1.5), advantages in [−2, 2], a mask with some zeros.
struct Batch {
    logp: Vec<f64>,
    old: Vec<f64>,
    adv: Vec<f64>,
    mask: Vec<f64>,
    entropy: Vec<f64>,
    reference: Vec<f64>,
}

fn batch(seed: u64) -> Batch {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = B * T;
    let kinks = [0.8f64.ln(), 1.28f64.ln(), 1.5f64.ln()];
    let mut logp = Vec::with_capacity(n);
    let mut old = Vec::with_capacity(n);
    for _ in 0..n {
        let lp: f64 = rng.random_range(-3.0..-0.1);
        let mut d: f64 = rng.random_range(-0.6..0.6);
        while kinks.iter().any(|k| (d - k).abs() < 0.03) {
            d = rng.random_range(-0.6..0.6);
        }
        logp.push(lp);
        old.push(lp - d);
    }
    let adv = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
    let mask = (0..n)
        .map(|i| if i % T == T - 1 || i == 7 { 0.0 } else { 1.0 })
        .collect();
    let entropy = (0..n).map(|_| rng.random_range(0.1..2.0)).collect();
    let reference = logp
        .iter()
        .map(|l| l + rng.random_range(-0.5..0.5))
        .collect();
    Batch {
        logp,
        old,
        adv,
        mask,
        entropy,
        reference,
    }
}

/// Compares candle's gradient of `f` at `logp` with central differences (h = 1e-6).
fn check_gradient(logp: &[f64], f: impl Fn(&Tensor) -> Tensor) {
    let var = Var::from_tensor(&tensor(logp)).unwrap();
    let loss = f(var.as_tensor());
    let grads = loss.backward().unwrap();
    let g = grads
        .get(&var)
        .expect("no gradient reached log_prob")
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let h = 1e-6;
    for i in 0..logp.len() {
        let mut plus = logp.to_vec();
        plus[i] += h;
        let mut minus = logp.to_vec();
        minus[i] -= h;
        let fd = (scalar(&f(&tensor(&plus))) - scalar(&f(&tensor(&minus)))) / (2.0 * h);
        assert!(
            (fd - g[i]).abs() <= 1e-6 + 1e-5 * fd.abs(),
            "token {i}: backward {} vs finite difference {fd}",
            g[i]
        );
    }
}

fn agg_opts(mode: LossAggMode) -> AggOptions {
    AggOptions {
        norm_len: Some(8),
        group_size: (mode == LossAggMode::SeqNormTokenSum).then_some(B),
    }
}

#[test]
fn vanilla_gradient_matches_finite_differences_for_every_agg_mode() {
    for seed in 0..3 {
        let b = batch(seed);
        let (old, adv, mask) = (tensor(&b.old), tensor(&b.adv), tensor(&b.mask));
        for mode in LossAggMode::ALL {
            // c = 1.5 so the dual clip is active on some tokens (r > 1.5 with A < 0 needs
            // log r > 0.405; the batch has |log r| up to 0.6).
            let params = PpoClipParams {
                clip_ratio_low: 0.2,
                clip_ratio_high: 0.28,
                clip_ratio_c: 1.5,
            };
            check_gradient(&b.logp, |lp| {
                let inputs = PolicyInputs {
                    log_prob: lp,
                    old_log_prob: &old,
                    advantages: &adv,
                    response_mask: &mask,
                };
                ppo_clip_loss(&inputs, &params, mode, &agg_opts(mode))
                    .unwrap()
                    .loss
            });
        }
    }
}

#[test]
fn clip_cov_gradient_matches_finite_differences() {
    for seed in 0..3 {
        let b = batch(seed);
        let (old, adv, mask) = (tensor(&b.old), tensor(&b.adv), tensor(&b.mask));
        // A wide band and a large ratio so that several tokens are dropped.
        let params = ClipCovParams {
            ratio: 0.2,
            lb: 0.05,
            ub: 50.0,
        };
        for mode in [LossAggMode::TokenMean, LossAggMode::SeqMeanTokenSumNorm] {
            check_gradient(&b.logp, |lp| {
                let inputs = PolicyInputs {
                    log_prob: lp,
                    old_log_prob: &old,
                    advantages: &adv,
                    response_mask: &mask,
                };
                // Same seed at every evaluation: the same subset is drawn.
                let mut rng = ChaCha8Rng::seed_from_u64(99);
                clip_cov_loss(&inputs, 0.2, 0.28, &params, mode, &agg_opts(mode), &mut rng)
                    .unwrap()
                    .loss
            });
        }
    }
}

#[test]
fn kl_cov_gradient_matches_finite_differences() {
    for seed in 0..3 {
        let b = batch(seed);
        let (old, adv, mask) = (tensor(&b.old), tensor(&b.adv), tensor(&b.mask));
        let params = KlCovParams {
            ratio: 0.3,
            ppo_kl_coef: 0.1,
        };
        check_gradient(&b.logp, |lp| {
            let inputs = PolicyInputs {
                log_prob: lp,
                old_log_prob: &old,
                advantages: &adv,
                response_mask: &mask,
            };
            kl_cov_loss(
                &inputs,
                &params,
                LossAggMode::TokenMean,
                &AggOptions::default(),
            )
            .unwrap()
            .loss
        });
    }
}

#[test]
fn kl_penalty_gradients_match_finite_differences() {
    let b = batch(5);
    let (reference, mask) = (tensor(&b.reference), tensor(&b.mask));
    for kind in [
        KlPenalty::Kl,
        KlPenalty::Abs,
        KlPenalty::Mse,
        KlPenalty::LowVarKl,
    ] {
        check_gradient(&b.logp, |lp| {
            let kl = kl_penalty(lp, &reference, kind).unwrap();
            agg_loss(&kl, &mask, LossAggMode::TokenMean, &AggOptions::default()).unwrap()
        });
    }
}

#[test]
fn actor_loss_gradient_matches_finite_differences() {
    let b = batch(11);
    let (old, adv, mask) = (tensor(&b.old), tensor(&b.adv), tensor(&b.mask));
    let (entropy, reference) = (tensor(&b.entropy), tensor(&b.reference));
    let params = ActorLossParams {
        policy: PolicyLossKind::Vanilla(PpoClipParams::default()),
        agg_mode: LossAggMode::SeqMeanTokenSumNorm,
        entropy_coeff: 0.01,
        kl: Some((KlPenalty::LowVarKl, 0.1)),
        tis_cap: None,
    };
    check_gradient(&b.logp, |lp| {
        let inputs = ActorLossInputs {
            policy: PolicyInputs {
                log_prob: lp,
                old_log_prob: &old,
                advantages: &adv,
                response_mask: &mask,
            },
            entropy: Some(&entropy),
            ref_log_prob: Some(&reference),
            rollout_log_prob: None,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        actor_loss(&inputs, &params, &AggOptions::with_norm_len(8), &mut rng)
            .unwrap()
            .loss
    });
}

// ---------------------------------------------------------------- hand-derived gradients

fn grad_of(logp: &[f64], cols: usize, f: impl Fn(&Tensor) -> Tensor) -> Vec<f64> {
    let var = Var::from_tensor(&Tensor::from_vec(logp.to_vec(), (1, cols), &Device::Cpu).unwrap())
        .unwrap();
    let loss = f(var.as_tensor());
    loss.backward()
        .unwrap()
        .get(&var)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

fn row(v: &[f64]) -> Tensor {
    Tensor::from_vec(v.to_vec(), (1, v.len()), &Device::Cpu).unwrap()
}

#[test]
fn vanilla_hand_derived_gradient() {
    // The six tokens of loss_formulas::ppo_example (old = 0, logp = ln r), token-mean over 5:
    // tok 0 high-clipped → 0; tok 1 unclipped (A = 1, r = 0.5) → −A·r/5 = −0.1;
    // tok 2 low-clipped → 0; tok 3 dual-clipped → 0; tok 4 (A = −2, r = 1.1) → 2.2/5 = 0.44;
    // tok 5 masked → 0.
    let r: [f64; 6] = [1.5, 0.5, 0.5, 4.0, 1.1, 1.0];
    let logp = r.map(f64::ln);
    let (old, adv, mask) = (
        row(&[0.0; 6]),
        row(&[1.0, 1.0, -1.0, -1.0, -2.0, 5.0]),
        row(&[1.0, 1.0, 1.0, 1.0, 1.0, 0.0]),
    );
    let g = grad_of(&logp, 6, |lp| {
        let inputs = PolicyInputs {
            log_prob: lp,
            old_log_prob: &old,
            advantages: &adv,
            response_mask: &mask,
        };
        ppo_clip_loss(
            &inputs,
            &PpoClipParams::default(),
            LossAggMode::TokenMean,
            &AggOptions::default(),
        )
        .unwrap()
        .loss
    });
    // (token-mean divides by 5 + 1e-8, not exactly 5)
    let want = [0.0, -0.5, 0.0, 0.0, 2.2, 0.0].map(|x| x / (5.0 + 1e-8));
    for (a, b) in g.iter().zip(want) {
        assert!((a - b).abs() < 1e-12, "{g:?} vs {want:?}");
    }
}

#[test]
fn clip_cov_dropped_token_has_zero_gradient() {
    // loss_formulas::cov_example: token 0 is the only candidate and is dropped.
    // r = 1, token-mean over 4: d/dlogp(−A·r)/4 = −A/4 → [0 (dropped), −0.25, 0, 1].
    let logp = [-0.5, -1.0, -1.5, -3.0];
    let (old, adv, mask) = (row(&logp), row(&[3.0, 1.0, 0.0, -4.0]), row(&[1.0; 4]));
    let g = grad_of(&logp, 4, |lp| {
        let inputs = PolicyInputs {
            log_prob: lp,
            old_log_prob: &old,
            advantages: &adv,
            response_mask: &mask,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        clip_cov_loss(
            &inputs,
            0.2,
            0.28,
            &ClipCovParams::on_policy(),
            LossAggMode::TokenMean,
            &AggOptions::default(),
            &mut rng,
        )
        .unwrap()
        .loss
    });
    // (token-mean divides by 4 + 1e-8, not exactly 4)
    let want = [0.0, -1.0, 0.0, 4.0].map(|x| x / (4.0 + 1e-8));
    for (a, b) in g.iter().zip(want) {
        assert!((a - b).abs() < 1e-12, "{g:?} vs {want:?}");
    }
}

#[test]
fn kl_cov_penalised_token_gradient_and_zero_log_ratio() {
    // cov_example with old = logp except token 3 (old −3.2, log r = 0.2), k = 1 → token 3.
    // seq-mean-token-sum: d/dlogp = −A·r (+ 0.1·sign(log r) on token 3):
    // [−3, −1, 0, 4e^0.2 + 0.1].
    let logp = [-0.5, -1.0, -1.5, -3.0];
    let (old, adv, mask) = (
        row(&[-0.5, -1.0, -1.5, -3.2]),
        row(&[3.0, 1.0, 0.0, -4.0]),
        row(&[1.0; 4]),
    );
    let params = KlCovParams {
        ratio: 0.25,
        ppo_kl_coef: 0.1,
    };
    let run = |old: &Tensor| {
        grad_of(&logp, 4, |lp| {
            let inputs = PolicyInputs {
                log_prob: lp,
                old_log_prob: old,
                advantages: &adv,
                response_mask: &mask,
            };
            kl_cov_loss(
                &inputs,
                &params,
                LossAggMode::SeqMeanTokenSum,
                &AggOptions::default(),
            )
            .unwrap()
            .loss
        })
    };
    let g = run(&old);
    let want = [-3.0, -1.0, 0.0, 4.0 * 0.2f64.exp() + 0.1];
    for (a, b) in g.iter().zip(want) {
        assert!((a - b).abs() < 1e-9, "{g:?} vs {want:?}");
    }
    // With old = logp (log r = 0 everywhere) the |log r| term has gradient 0, as in torch:
    // [−3, −1, 0, 4].
    let g = run(&row(&logp));
    let want = [-3.0, -1.0, 0.0, 4.0];
    for (a, b) in g.iter().zip(want) {
        assert!((a - b).abs() < 1e-9, "{g:?} vs {want:?}");
    }
}

#[test]
fn low_var_kl_hand_derived_gradient() {
    // k3 = e^(ref−logp) − (ref − logp) − 1; d/dlogp = 1 − e^(ref−logp).
    // logp = −1, ref = −1.5 → 1 − e^−0.5 = 0.3934693403. Clamped token (ref − logp = 20) → 0.
    let logp = [-1.0, -20.0];
    let reference = row(&[-1.5, 0.0]);
    let g = grad_of(&logp, 2, |lp| {
        kl_penalty(lp, &reference, KlPenalty::LowVarKl)
            .unwrap()
            .sum_all()
            .unwrap()
    });
    assert!((g[0] - (1.0 - (-0.5f64).exp())).abs() < 1e-12, "{g:?}");
    assert!((g[0] - 0.393_469_340_3).abs() < 1e-9);
    assert_eq!(g[1], 0.0);
}

#[test]
fn entropy_bonus_gradient_is_minus_coeff_over_valid_tokens() {
    // d/dH of −0.01·token-mean(H) with 2 valid tokens = −0.01/(2 + 1e-8) ≈ −0.005 on valid
    // tokens, 0 on the masked one.
    let logp = row(&[-1.0, -1.0, -1.0]);
    let adv = row(&[1.0, 1.0, 1.0]);
    let mask = row(&[1.0, 1.0, 0.0]);
    let h = Var::from_tensor(&row(&[0.5, 0.7, 0.9])).unwrap();
    let params = ActorLossParams {
        policy: PolicyLossKind::Vanilla(PpoClipParams::default()),
        agg_mode: LossAggMode::TokenMean,
        entropy_coeff: 0.01,
        kl: None,
        tis_cap: None,
    };
    let inputs = ActorLossInputs {
        policy: PolicyInputs {
            log_prob: &logp,
            old_log_prob: &logp,
            advantages: &adv,
            response_mask: &mask,
        },
        entropy: Some(h.as_tensor()),
        ref_log_prob: None,
        rollout_log_prob: None,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let out = actor_loss(&inputs, &params, &AggOptions::default(), &mut rng).unwrap();
    let g = out
        .loss
        .backward()
        .unwrap()
        .get(&h)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let want = [-0.01 / (2.0 + 1e-8), -0.01 / (2.0 + 1e-8), 0.0];
    for (a, b) in g.iter().zip(want) {
        assert!((a - b).abs() < 1e-15, "{g:?}");
    }
}

#[test]
fn f32_gradient_reaches_log_prob() {
    // The trainer works in f32: the gradient must exist and match f64 to f32 precision.
    let b = batch(3);
    let f32t = |v: &[f64]| tensor(v).to_dtype(DType::F32).unwrap();
    let (old, adv, mask) = (f32t(&b.old), f32t(&b.adv), f32t(&b.mask));
    let var = Var::from_tensor(&f32t(&b.logp)).unwrap();
    let inputs = PolicyInputs {
        log_prob: var.as_tensor(),
        old_log_prob: &old,
        advantages: &adv,
        response_mask: &mask,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let loss = clip_cov_loss(
        &inputs,
        0.2,
        0.28,
        &ClipCovParams::on_policy(),
        LossAggMode::TokenMean,
        &AggOptions::default(),
        &mut rng,
    )
    .unwrap()
    .loss;
    let g32 = loss
        .backward()
        .unwrap()
        .get(&var)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let var64 = Var::from_tensor(&tensor(&b.logp)).unwrap();
    let (old, adv, mask) = (tensor(&b.old), tensor(&b.adv), tensor(&b.mask));
    let inputs = PolicyInputs {
        log_prob: var64.as_tensor(),
        old_log_prob: &old,
        advantages: &adv,
        response_mask: &mask,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let loss = clip_cov_loss(
        &inputs,
        0.2,
        0.28,
        &ClipCovParams::on_policy(),
        LossAggMode::TokenMean,
        &AggOptions::default(),
        &mut rng,
    )
    .unwrap()
    .loss;
    let g64 = loss
        .backward()
        .unwrap()
        .get(&var64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    assert!(g64.iter().any(|g| g.abs() > 1e-3));
    for (a, b) in g32.iter().zip(&g64) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}
