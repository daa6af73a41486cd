//! Hand-computed values of every loss formula (spec §2.5, §4.3, §4.4). The arithmetic is in
//! the comments; all tensors are f64 unless a test says otherwise.

use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use spear_rl::loss::{
    actor_loss, agg_loss, clip_cov_loss, kl_cov_loss, kl_penalty, ppo_clip_loss, ActorLossInputs,
    ActorLossParams, AggOptions, ClipCovParams, KlCovParams, KlPenalty, LossAggMode, LossError,
    PolicyInputs, PolicyLossKind, PpoClipParams,
};

fn t2(rows: &[&[f64]]) -> Tensor {
    let cols = rows[0].len();
    let flat: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_vec(flat, (rows.len(), cols), &Device::Cpu).unwrap()
}

fn val(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

fn close(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() <= tol, "{a} != {b} (tol {tol})");
}

// ---------------------------------------------------------------- agg_loss (spec §4.4)

fn agg_example() -> (Tensor, Tensor) {
    // ℓ = [[1, 2, 3], [4, 5, 6]],  M = [[1, 1, 0], [1, 0, 0]]
    (
        t2(&[&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]]),
        t2(&[&[1.0, 1.0, 0.0], &[1.0, 0.0, 0.0]]),
    )
}

#[test]
fn agg_token_mean() {
    let (l, m) = agg_example();
    // (1 + 2 + 4) / (3 + 1e-8) = 7/3
    let v = val(&agg_loss(&l, &m, LossAggMode::TokenMean, &AggOptions::default()).unwrap());
    close(v, 7.0 / (3.0 + 1e-8), 1e-12);
}

#[test]
fn agg_seq_mean_token_sum() {
    let (l, m) = agg_example();
    // rows: 1+2 = 3, 4 = 4;  (3 + 4) / B=2 = 3.5
    let v = val(&agg_loss(&l, &m, LossAggMode::SeqMeanTokenSum, &AggOptions::default()).unwrap());
    close(v, 3.5, 1e-12);
}

#[test]
fn agg_seq_mean_token_mean() {
    let (l, m) = agg_example();
    // rows: 3/2 = 1.5, 4/1 = 4;  (1.5 + 4) / 2 = 2.75
    let v = val(&agg_loss(
        &l,
        &m,
        LossAggMode::SeqMeanTokenMean,
        &AggOptions::default(),
    )
    .unwrap());
    close(v, 2.75, 1e-12);
}

#[test]
fn agg_seq_mean_token_mean_empty_row_counts_as_zero() {
    let l = t2(&[&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]]);
    let m = t2(&[&[1.0, 1.0, 0.0], &[0.0, 0.0, 0.0]]);
    // rows: 3/2 = 1.5, 0 (no valid token, verl would give NaN);  (1.5 + 0) / 2 = 0.75
    let v = val(&agg_loss(
        &l,
        &m,
        LossAggMode::SeqMeanTokenMean,
        &AggOptions::default(),
    )
    .unwrap());
    close(v, 0.75, 1e-12);
}

#[test]
fn agg_seq_mean_token_sum_norm_divides_by_t_not_b() {
    let (l, m) = agg_example();
    // Σ ℓ·M = 7; T = 3 (tensor width) → 7/3; no division by B = 2.
    let v = val(&agg_loss(
        &l,
        &m,
        LossAggMode::SeqMeanTokenSumNorm,
        &AggOptions::default(),
    )
    .unwrap());
    close(v, 7.0 / 3.0, 1e-12);
    // With the padded length given, T = 512 → 7/512 = 0.013671875.
    let v = val(&agg_loss(
        &l,
        &m,
        LossAggMode::SeqMeanTokenSumNorm,
        &AggOptions::with_norm_len(512),
    )
    .unwrap());
    close(v, 0.013671875, 1e-15);
}

#[test]
fn agg_seq_norm_token_sum() {
    let (l, m) = agg_example();
    // group_size 2: one group, Σ M = 3;  (3/3 + 4/3) / 2 = 7/6
    let opts = AggOptions {
        norm_len: None,
        group_size: Some(2),
    };
    let v = val(&agg_loss(&l, &m, LossAggMode::SeqNormTokenSum, &opts).unwrap());
    close(v, 7.0 / 6.0, 1e-12);
    // group_size 1: each row its own group: (3/2 + 4/1) / 2 = 2.75
    let opts = AggOptions {
        norm_len: None,
        group_size: Some(1),
    };
    let v = val(&agg_loss(&l, &m, LossAggMode::SeqNormTokenSum, &opts).unwrap());
    close(v, 2.75, 1e-12);
    // Without a group size, or with one that does not divide B: a clear error.
    let err = agg_loss(&l, &m, LossAggMode::SeqNormTokenSum, &AggOptions::default()).unwrap_err();
    assert!(err.to_string().contains("group size"), "{err}");
    let opts = AggOptions {
        norm_len: None,
        group_size: Some(3),
    };
    assert!(agg_loss(&l, &m, LossAggMode::SeqNormTokenSum, &opts).is_err());
}

#[test]
fn agg_token_mean_of_empty_mask_is_zero() {
    let l = t2(&[&[1.0, 2.0]]);
    let m = t2(&[&[0.0, 0.0]]);
    // 0 / (0 + 1e-8) = 0
    let v = val(&agg_loss(&l, &m, LossAggMode::TokenMean, &AggOptions::default()).unwrap());
    assert_eq!(v, 0.0);
}

#[test]
fn agg_modes_parse_from_verl_names() {
    for mode in LossAggMode::ALL {
        assert_eq!(mode.as_str().parse::<LossAggMode>().unwrap(), mode);
    }
    assert!("token_mean".parse::<LossAggMode>().is_err());
}

#[test]
fn agg_rejects_shape_and_dtype_mismatch() {
    let l = t2(&[&[1.0, 2.0, 3.0]]);
    let m = t2(&[&[1.0, 1.0]]);
    match agg_loss(&l, &m, LossAggMode::TokenMean, &AggOptions::default()) {
        Err(LossError::Shape { name, .. }) => assert_eq!(name, "response_mask"),
        other => panic!("expected a shape error, got {other:?}"),
    }
    let m32 = t2(&[&[1.0, 1.0, 1.0]]).to_dtype(DType::F32).unwrap();
    match agg_loss(&l, &m32, LossAggMode::TokenMean, &AggOptions::default()) {
        Err(LossError::DType { name, .. }) => assert_eq!(name, "response_mask"),
        other => panic!("expected a dtype error, got {other:?}"),
    }
}

// ---------------------------------------------------------------- vanilla PPO (spec §4.3)

/// Six tokens in one row; old_logp = 0, so logp = δ = ln r.
///
/// | tok | A  | r   | L1   | L2 = −A·clip(r,0.8,1.28) | Lc    | A<0: min(3·|A|, Lc) | loss |
/// |-----|----|-----|------|---------------------------|-------|---------------------|------|
/// | 0   | +1 | 1.5 | −1.5 | −1.28                     | −1.28 (high clip) | –        | −1.28 |
/// | 1   | +1 | 0.5 | −0.5 | −0.8                      | −0.5  | –                   | −0.5 |
/// | 2   | −1 | 0.5 | 0.5  | 0.8                       | 0.8 (low clip) | min(3, 0.8) | 0.8 |
/// | 3   | −1 | 4.0 | 4.0  | 1.28                      | 4.0   | min(3, 4) = 3 (dual)| 3.0 |
/// | 4   | −2 | 1.1 | 2.2  | 2.2                       | 2.2   | min(6, 2.2)         | 2.2 |
/// | 5   | +5 | 1.0 | masked out                                                        |
fn ppo_example() -> (Tensor, Tensor, Tensor, Tensor) {
    let r: [f64; 6] = [1.5, 0.5, 0.5, 4.0, 1.1, 1.0];
    let logp = t2(&[&r.map(f64::ln)]);
    let old = t2(&[&[0.0; 6]]);
    let adv = t2(&[&[1.0, 1.0, -1.0, -1.0, -2.0, 5.0]]);
    let mask = t2(&[&[1.0, 1.0, 1.0, 1.0, 1.0, 0.0]]);
    (logp, old, adv, mask)
}

#[test]
fn ppo_vanilla_hand_computed() {
    let (logp, old, adv, mask) = ppo_example();
    let inputs = PolicyInputs {
        log_prob: &logp,
        old_log_prob: &old,
        advantages: &adv,
        response_mask: &mask,
    };
    let params = PpoClipParams {
        clip_ratio_low: 0.2,
        clip_ratio_high: 0.28,
        clip_ratio_c: 3.0,
    };
    let out = ppo_clip_loss(
        &inputs,
        &params,
        LossAggMode::TokenMean,
        &AggOptions::default(),
    )
    .unwrap();
    let tok = out
        .token_loss
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    for (got, want) in tok[..5].iter().zip([-1.28, -0.5, 0.8, 3.0, 2.2]) {
        close(*got, want, 1e-12);
    }
    // token-mean: (−1.28 − 0.5 + 0.8 + 3 + 2.2) / (5 + 1e-8) = 4.22 / 5 ≈ 0.844
    close(val(&out.loss), 4.22 / (5.0 + 1e-8), 1e-12);
    let m = &out.metrics;
    close(m.pg_loss, 4.22 / (5.0 + 1e-8), 1e-12);
    // L2 > L1 for tokens 0 (A>0, high) and 2 (A<0, low): 2/5; low 1/5; high 1/5.
    close(m.pg_clipfrac, 0.4, 1e-9);
    close(m.pg_clipfrac_low, 0.2, 1e-9);
    close(m.pg_clipfrac_high, 0.2, 1e-9);
    // dual clip active on token 3 only: 1/5.
    close(m.dual_clipfrac, 0.2, 1e-9);
    // ppo_kl = mean(−ln r) = −ln(1.5·0.5·0.5·4·1.1)/5 = −ln(1.65)/5
    close(m.ppo_kl, -(1.65f64).ln() / 5.0, 1e-9);
    // ratio stats over valid tokens: mean 7.6/(5 + 1e-8) ≈ 1.52, max 4, min 0.5
    close(m.ratio_mean, 7.6 / (5.0 + 1e-8), 1e-12);
    close(m.ratio_max, 4.0, 1e-12);
    close(m.ratio_min, 0.5, 1e-12);
    assert_eq!(m.valid_tokens, 5.0);
    assert_eq!(m.clip_cov_frac, 0.0);
}

#[test]
fn ppo_vanilla_symmetric_clip_and_c10() {
    let (logp, old, adv, mask) = ppo_example();
    let inputs = PolicyInputs {
        log_prob: &logp,
        old_log_prob: &old,
        advantages: &adv,
        response_mask: &mask,
    };
    let params = PpoClipParams {
        clip_ratio_low: 0.2,
        clip_ratio_high: 0.2,
        clip_ratio_c: 10.0,
    };
    // ε_high = 0.2: token 0 → −1.2. c = 10: token 3 → min(10, 4) = 4 (no dual clip).
    // seq-mean-token-sum (B = 1): −1.2 − 0.5 + 0.8 + 4 + 2.2 = 5.3
    let out = ppo_clip_loss(
        &inputs,
        &params,
        LossAggMode::SeqMeanTokenSum,
        &AggOptions::default(),
    )
    .unwrap();
    close(val(&out.loss), 5.3, 1e-9);
    assert_eq!(out.metrics.dual_clipfrac, 0.0);
}

#[test]
fn ppo_log_ratio_is_clamped_at_20() {
    // δ = 25 → clamped to 20, r = e^20; A = −1: L1 = e^20, L2 = 1.28, Lc = e^20, L3 = 3 → 3.
    let logp = t2(&[&[25.0]]);
    let old = t2(&[&[0.0]]);
    let adv = t2(&[&[-1.0]]);
    let mask = t2(&[&[1.0]]);
    let inputs = PolicyInputs {
        log_prob: &logp,
        old_log_prob: &old,
        advantages: &adv,
        response_mask: &mask,
    };
    let out = ppo_clip_loss(
        &inputs,
        &PpoClipParams::default(),
        LossAggMode::TokenMean,
        &AggOptions::default(),
    )
    .unwrap();
    close(val(&out.loss), 3.0, 1e-6);
    close(out.metrics.ratio_max, 20f64.exp(), 1e-3);
    close(out.metrics.ppo_kl, -20.0, 1e-6);
}

#[test]
fn ppo_rejects_c_not_above_one() {
    let (logp, old, adv, mask) = ppo_example();
    let inputs = PolicyInputs {
        log_prob: &logp,
        old_log_prob: &old,
        advantages: &adv,
        response_mask: &mask,
    };
    let params = PpoClipParams {
        clip_ratio_c: 1.0,
        ..PpoClipParams::default()
    };
    match ppo_clip_loss(
        &inputs,
        &params,
        LossAggMode::TokenMean,
        &AggOptions::default(),
    ) {
        Err(LossError::Config(e)) => assert_eq!(e.key, "loss.clip_ratio_c"),
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn ppo_f32_matches_f64() {
    let (logp, old, adv, mask) = ppo_example();
    let f = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
    let (l32, o32, a32, m32) = (f(&logp), f(&old), f(&adv), f(&mask));
    let inputs = PolicyInputs {
        log_prob: &l32,
        old_log_prob: &o32,
        advantages: &a32,
        response_mask: &m32,
    };
    let out = ppo_clip_loss(
        &inputs,
        &PpoClipParams::default(),
        LossAggMode::TokenMean,
        &AggOptions::default(),
    )
    .unwrap();
    assert_eq!(out.loss.dtype(), DType::F32);
    close(val(&out.loss), 0.844, 1e-5);
}

// ---------------------------------------------------------------- Clip-Cov (spec §2.5)

/// One row of 4 valid tokens, r = 1 everywhere (old = logp), so nothing is PPO-clipped.
/// logp = [−0.5, −1, −1.5, −3], mean −1.5;  A = [3, 1, 0, −4], mean 0.
/// cov = (A − 0)(logp + 1.5) = [3·1, 1·0.5, 0·0, −4·−1.5] = [3, 0.5, 0, 6].
/// Band (1, 5): candidates = {0}; n_clip = max(floor(0.0002·4), 1) = 1 → token 0 dropped.
fn cov_example() -> (Tensor, Tensor, Tensor, Tensor) {
    let logp = t2(&[&[-0.5, -1.0, -1.5, -3.0]]);
    let adv = t2(&[&[3.0, 1.0, 0.0, -4.0]]);
    let mask = t2(&[&[1.0; 4]]);
    (logp.clone(), logp, adv, mask)
}

#[test]
fn clip_cov_hand_computed() {
    let (logp, old, adv, mask) = cov_example();
    let inputs = PolicyInputs {
        log_prob: &logp,
        old_log_prob: &old,
        advantages: &adv,
        response_mask: &mask,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let out = clip_cov_loss(
        &inputs,
        0.2,
        0.28,
        &ClipCovParams::on_policy(),
        LossAggMode::SeqMeanTokenSum,
        &AggOptions::default(),
        &mut rng,
    )
    .unwrap();
    // loss_tok = max(L1, L2)·corr = [−3, −1, 0, 4]·[0, 1, 1, 1] = [0, −1, 0, 4]; sum = 3
    let tok = out
        .token_loss
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    assert_eq!(tok, vec![0.0, -1.0, 0.0, 4.0]);
    close(val(&out.loss), 3.0, 1e-12);
    // 1 of 4 valid tokens dropped; 1 candidate; no PPO clip; no dual clip in Clip-Cov.
    close(out.metrics.clip_cov_frac, 0.25, 1e-9);
    assert_eq!(out.metrics.clip_cov_candidates, 1.0);
    assert_eq!(out.metrics.pg_clipfrac, 0.0);
    assert_eq!(out.metrics.dual_clipfrac, 0.0);
}

#[test]
fn clip_cov_has_no_log_ratio_clamp_and_no_dual_clip() {
    // δ = 25, A = −1: r = e^25 (no clamp); Lc = max(e^25, 1.28) = e^25; no dual clip → e^25.
    let logp = t2(&[&[25.0]]);
    let old = t2(&[&[0.0]]);
    let adv = t2(&[&[-1.0]]);
    let mask = t2(&[&[1.0]]);
    let inputs = PolicyInputs {
        log_prob: &logp,
        old_log_prob: &old,
        advantages: &adv,
        response_mask: &mask,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let out = clip_cov_loss(
        &inputs,
        0.2,
        0.28,
        &ClipCovParams::on_policy(),
        LossAggMode::TokenMean,
        &AggOptions::default(),
        &mut rng,
    )
    .unwrap();
    // token-mean over 1 token: e^25 / (1 + 1e-8)
    close(val(&out.loss) / 25f64.exp(), 1.0 / (1.0 + 1e-8), 1e-12);
}

// ---------------------------------------------------------------- KL-Cov (spec §2.5)

#[test]
fn kl_cov_hand_computed() {
    // logp as in cov_example; old differs on token 3: old = −3.2 → log r = 0.2, r = e^0.2.
    // cov over valid tokens (plain means) = [3, 0.5, 0, 6]; k = max(1, floor(4·0.25)) = 1 → token 3.
    // loss_tok = [−3, −1, 0, 4·e^0.2 + 0.1·|0.2|];  seq-mean-token-sum = −4 + 4e^0.2 + 0.02
    let logp = t2(&[&[-0.5, -1.0, -1.5, -3.0]]);
    let old = t2(&[&[-0.5, -1.0, -1.5, -3.2]]);
    let adv = t2(&[&[3.0, 1.0, 0.0, -4.0]]);
    let mask = t2(&[&[1.0; 4]]);
    let inputs = PolicyInputs {
        log_prob: &logp,
        old_log_prob: &old,
        advantages: &adv,
        response_mask: &mask,
    };
    let params = KlCovParams {
        ratio: 0.25,
        ppo_kl_coef: 0.1,
    };
    let out = kl_cov_loss(
        &inputs,
        &params,
        LossAggMode::SeqMeanTokenSum,
        &AggOptions::default(),
    )
    .unwrap();
    close(val(&out.loss), -4.0 + 4.0 * 0.2f64.exp() + 0.02, 1e-9);
    close(out.metrics.kl_cov_frac, 0.25, 1e-9);
    // |log r| mean = 0.2/4 = 0.05
    close(out.metrics.ppo_kl_abs, 0.05, 1e-9);
}

// ---------------------------------------------------------------- KL penalty (spec §4.3)

#[test]
fn kl_estimators_hand_computed() {
    let logp = t2(&[&[-1.0, -2.0]]);
    let reference = t2(&[&[-1.5, -1.0]]);
    let get = |k| {
        kl_penalty(&logp, &reference, k)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()
    };
    // k1: logp − ref = [0.5, −1]
    assert_eq!(get(KlPenalty::Kl), vec![0.5, -1.0]);
    // abs: [0.5, 1]
    assert_eq!(get(KlPenalty::Abs), vec![0.5, 1.0]);
    // k2: ½(logp − ref)² = [0.125, 0.5]
    assert_eq!(get(KlPenalty::Mse), vec![0.125, 0.5]);
    // k3: kl = ref − logp = [−0.5, 1]; e^−0.5 + 0.5 − 1 = 0.1065306597, e − 2 = 0.7182818285
    let k3 = get(KlPenalty::LowVarKl);
    close(k3[0], (-0.5f64).exp() - 0.5, 1e-12);
    close(k3[0], 0.106_530_659_7, 1e-9);
    close(k3[1], 1f64.exp() - 2.0, 1e-12);
}

#[test]
fn low_var_kl_is_clamped_to_ten() {
    // kl = 0 − (−20) = 20: e^20 − 21 ≫ 10 → 10;  kl = −20 − 0: e^−20 + 19 ≈ 19 → 10.
    let logp = t2(&[&[-20.0, 0.0]]);
    let reference = t2(&[&[0.0, -20.0]]);
    let v = kl_penalty(&logp, &reference, KlPenalty::LowVarKl)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    assert_eq!(v, vec![10.0, 10.0]);
}

// ---------------------------------------------------------------- full actor loss

#[test]
fn actor_loss_combines_pg_entropy_and_kl() {
    // r = 1 (old = logp), A = [1, −1]: token losses [−1, 1], token-mean pg = 0.
    // entropy [0.5, 1.5] → agg 1.0, × 0.001 → −0.001.
    // k1 KL: logp − ref = [0.2, 0.4] → agg 0.3, × 0.01 → +0.003.  total = 0.002.
    // (token-mean divides by Σ M + 1e-8 = 2 + 1e-8, hence the exact expressions below.)
    let n = 2.0 + 1e-8;
    let logp = t2(&[&[-1.0, -2.0]]);
    let reference = t2(&[&[-1.2, -2.4]]);
    let adv = t2(&[&[1.0, -1.0]]);
    let mask = t2(&[&[1.0, 1.0]]);
    let entropy = t2(&[&[0.5, 1.5]]);
    let inputs = ActorLossInputs {
        policy: PolicyInputs {
            log_prob: &logp,
            old_log_prob: &logp,
            advantages: &adv,
            response_mask: &mask,
        },
        entropy: Some(&entropy),
        ref_log_prob: Some(&reference),
        rollout_log_prob: None,
    };
    let params = ActorLossParams {
        policy: PolicyLossKind::Vanilla(PpoClipParams::default()),
        agg_mode: LossAggMode::TokenMean,
        entropy_coeff: 0.001,
        kl: Some((KlPenalty::Kl, 0.01)),
        tis_cap: None,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let out = actor_loss(&inputs, &params, &AggOptions::default(), &mut rng).unwrap();
    let total = -0.001 * 2.0 / n + 0.01 * 0.6 / n;
    close(total, 0.002, 1e-10);
    close(val(&out.loss), total, 1e-12);
    close(val(&out.pg_loss), 0.0, 1e-12);
    close(out.metrics.entropy, 2.0 / n, 1e-12);
    close(out.metrics.entropy_loss, 2.0 / n, 1e-12);
    close(out.metrics.kl_loss, 0.6 / n, 1e-12);
    close(out.metrics.total_loss, total, 1e-12);
    close(out.metrics.ratio_mean, 2.0 / n, 1e-12);
    close(out.metrics.ppo_kl, 0.0, 1e-12);
}

#[test]
fn actor_loss_requires_entropy_and_reference_when_configured() {
    let logp = t2(&[&[-1.0]]);
    let adv = t2(&[&[1.0]]);
    let mask = t2(&[&[1.0]]);
    let inputs = ActorLossInputs {
        policy: PolicyInputs {
            log_prob: &logp,
            old_log_prob: &logp,
            advantages: &adv,
            response_mask: &mask,
        },
        entropy: None,
        ref_log_prob: None,
        rollout_log_prob: None,
    };
    let mut params = ActorLossParams {
        policy: PolicyLossKind::Vanilla(PpoClipParams::default()),
        agg_mode: LossAggMode::TokenMean,
        entropy_coeff: 0.001,
        kl: None,
        tis_cap: None,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let err = actor_loss(&inputs, &params, &AggOptions::default(), &mut rng).unwrap_err();
    assert!(err.to_string().contains("entropy"), "{err}");
    params.entropy_coeff = 0.0;
    params.kl = Some((KlPenalty::LowVarKl, 0.01));
    let err = actor_loss(&inputs, &params, &AggOptions::default(), &mut rng).unwrap_err();
    assert!(err.to_string().contains("ref_log_prob"), "{err}");
    params.kl = None;
    // With neither term the loss is the pg loss: −A·1 / (1 + 1e-8) ≈ −1.
    let out = actor_loss(&inputs, &params, &AggOptions::default(), &mut rng).unwrap();
    close(val(&out.loss), -1.0 / (1.0 + 1e-8), 1e-12);
}

#[test]
fn inputs_must_be_rank_two_float() {
    let logp = Tensor::new(&[-1.0f64, -2.0], &Device::Cpu).unwrap();
    let inputs = PolicyInputs {
        log_prob: &logp,
        old_log_prob: &logp,
        advantages: &logp,
        response_mask: &logp,
    };
    let err = ppo_clip_loss(
        &inputs,
        &PpoClipParams::default(),
        LossAggMode::TokenMean,
        &AggOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("rank 2"), "{err}");
    let ints = Tensor::new(&[[1u32, 2]], &Device::Cpu).unwrap();
    let inputs = PolicyInputs {
        log_prob: &ints,
        old_log_prob: &ints,
        advantages: &ints,
        response_mask: &ints,
    };
    assert!(matches!(
        ppo_clip_loss(
            &inputs,
            &PpoClipParams::default(),
            LossAggMode::TokenMean,
            &AggOptions::default()
        ),
        Err(LossError::DType { .. })
    ));
}

// ---------------------------------------------------------------- truncated importance sampling

/// `loss.tis_cap` (verl PR #2953 `compute_policy_loss_vanilla`; TRL PR #3867): every token's
/// clipped PPO loss × min(exp(old − rollout), cap); entropy/KL untouched. Vanilla PPO,
/// ε = 0.2/0.28, c = 3, token-mean, cap 1.5:
///
/// | tok | logp | old | rollout | A | r | token loss | w |
/// |---|---|---|---|---|---|---|---|
/// | 0 | −1 | −1 | −1.5 | 1 | 1 | −1 | min(e^0.5, 1.5) = 1.5 |
/// | 1 | −2 | −2 | −1 | −1 | 1 | min(3, 1) = 1 | e^−1 |
/// | 2 | −0.5 | −1 | −1 | 1 | e^0.5 > 1.28 | max(−e^0.5, −1.28) = −1.28 | 1 |
/// | 3 (masked) | −3 | −3 | −9 | 5 | 1 | — | 1.5 (not counted) |
///
/// pg = (−1.5 + e^−1 − 1.28) / (3 + 1e-8); without TIS (−1 + 1 − 1.28) / (3 + 1e-8).
/// ∂pg/∂logp = −A·r·w / n inside the clip: [−1.5, e^−1, 0 (clipped), 0 (masked)] / n.
#[test]
fn truncated_importance_sampling_by_hand() {
    use candle_core::Var;
    let n = 3.0 + 1e-8;
    let e1 = (-1.0f64).exp();
    let logp = Var::from_tensor(&t2(&[&[-1.0, -2.0, -0.5, -3.0]])).unwrap();
    let old = t2(&[&[-1.0, -2.0, -1.0, -3.0]]);
    let rollout = t2(&[&[-1.5, -1.0, -1.0, -9.0]]);
    let adv = t2(&[&[1.0, -1.0, 1.0, 5.0]]);
    let mask = t2(&[&[1.0, 1.0, 1.0, 0.0]]);
    let run = |tis_cap: Option<f64>, rollout: Option<&Tensor>| {
        let inputs = ActorLossInputs {
            policy: PolicyInputs {
                log_prob: logp.as_tensor(),
                old_log_prob: &old,
                advantages: &adv,
                response_mask: &mask,
            },
            entropy: None,
            ref_log_prob: None,
            rollout_log_prob: rollout,
        };
        let params = ActorLossParams {
            policy: PolicyLossKind::Vanilla(PpoClipParams::default()),
            agg_mode: LossAggMode::TokenMean,
            entropy_coeff: 0.0,
            kl: None,
            tis_cap,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        actor_loss(&inputs, &params, &AggOptions::default(), &mut rng)
    };
    let on = run(Some(1.5), Some(&rollout)).unwrap();
    let expect = (-1.5 + e1 - 1.28) / n;
    close(val(&on.loss), expect, 1e-12);
    close(on.metrics.pg_loss, expect, 1e-12);
    close(on.metrics.total_loss, expect, 1e-12);
    close(on.metrics.tis_weight, (1.5 + e1 + 1.0) / n, 1e-12);
    close(on.metrics.tis_capped_frac, 1.0 / n, 1e-12);
    let grads = on.loss.backward().unwrap();
    let g = grads
        .get(logp.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let want = [-1.5 / n, e1 / n, 0.0, 0.0];
    for (a, b) in g.iter().zip(want) {
        close(*a, b, 1e-12);
    }
    // Off: the plain clipped loss, and no weight metrics.
    let off = run(None, Some(&rollout)).unwrap();
    close(val(&off.loss), -1.28 / n, 1e-12);
    assert_eq!(off.metrics.tis_weight, 0.0);
    // Off is bitwise the loss without rollout log-probs at all; on with engine = trainer
    // (weight 1 everywhere) is bitwise the off loss.
    let none = run(None, None).unwrap();
    assert_eq!(val(&off.loss).to_bits(), val(&none.loss).to_bits());
    let same = run(Some(2.0), Some(&old)).unwrap();
    assert_eq!(val(&same.loss).to_bits(), val(&none.loss).to_bits());
    assert_eq!(same.metrics.tis_capped_frac, 0.0);
    // On without rollout log-probs, or with a bad cap: errors naming the key.
    let err = run(Some(1.5), None).unwrap_err().to_string();
    assert!(err.contains("tis_cap") && err.contains("rollout"), "{err}");
    let err = run(Some(0.0), Some(&rollout)).unwrap_err().to_string();
    assert!(err.contains("tis_cap"), "{err}");
}

/// TIS multiplies the Clip-Cov token loss too (after the Clip-Cov correction): with a cap
/// high enough never to bind, weights e^{old − rollout} on a constant-ratio batch scale each
/// token's loss by its weight.
#[test]
fn truncated_importance_sampling_weights_clip_cov_tokens() {
    let logp = t2(&[&[-1.0, -2.0]]);
    let rollout = t2(&[&[-1.25, -1.5]]);
    let adv = t2(&[&[1.0, 2.0]]);
    let mask = t2(&[&[1.0, 1.0]]);
    let inputs = ActorLossInputs {
        policy: PolicyInputs {
            log_prob: &logp,
            old_log_prob: &logp,
            advantages: &adv,
            response_mask: &mask,
        },
        entropy: None,
        ref_log_prob: None,
        rollout_log_prob: Some(&rollout),
    };
    let params = ActorLossParams {
        policy: PolicyLossKind::ClipCov {
            clip_ratio_low: 0.2,
            clip_ratio_high: 0.28,
            // A band no token's covariance falls in: nothing is dropped.
            params: ClipCovParams {
                ratio: 0.5,
                lb: 1e6,
                ub: 2e6,
            },
        },
        agg_mode: LossAggMode::SeqMeanTokenSum,
        entropy_coeff: 0.0,
        kl: None,
        tis_cap: Some(100.0),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let out = actor_loss(&inputs, &params, &AggOptions::default(), &mut rng).unwrap();
    // seq-mean-token-sum, B = 1: −1·e^0.25 − 2·e^−0.5.
    let expect = -(0.25f64).exp() - 2.0 * (-0.5f64).exp();
    close(val(&out.loss), expect, 1e-12);
}
