//! The full actor loss of one micro-batch (spec §2.5, §4.3):
//!
//! ```text
//! loss = pg_loss − entropy_coeff·agg_loss(entropy) + [use_kl_loss] kl_loss_coef·agg_loss(KL)
//! ```
//!
//! The trainer then divides by `grad_accum` and, for replay mini-batches, multiplies by γ(t)
//! (spec §2.5 "Scaling and stepping") before `backward`.

use super::agg::{agg_loss, AggOptions, LossAggMode};
use super::clip_cov::{clip_cov_loss, ClipCovParams};
use super::config::{LossConfig, LossMode, LossPass};
use super::error::LossError;
use super::kl::{kl_penalty, KlPenalty};
use super::kl_cov::{kl_cov_loss, KlCovParams};
use super::metrics::LossMetrics;
use super::ppo::{ppo_clip_loss, scalar, PolicyInputs, PolicyLoss, PpoClipParams};
use super::util::{check_like, host_f64, masked_mean};
use candle_core::Tensor;
use rand::Rng;

/// The policy-gradient part of the actor loss, with its parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PolicyLossKind {
    /// PPO clip with dual clip (spec §4.3).
    Vanilla(PpoClipParams),
    /// PPO clip (no dual clip) plus Clip-Cov (spec §2.5).
    ClipCov {
        /// `ε_low`.
        clip_ratio_low: f64,
        /// `ε_high`.
        clip_ratio_high: f64,
        /// Ratio and covariance band.
        params: ClipCovParams,
    },
    /// KL-Cov (spec §2.5).
    KlCov(KlCovParams),
}

/// Everything `actor_loss` needs besides the tensors, resolved for one pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActorLossParams {
    /// The policy-gradient loss.
    pub policy: PolicyLossKind,
    /// Aggregation of the policy, entropy and KL token matrices (spec §4.4).
    pub agg_mode: LossAggMode,
    /// Entropy bonus weight (0 turns the term off; then no entropy tensor is needed).
    pub entropy_coeff: f64,
    /// KL loss to the reference policy: estimator and weight; `None` when off.
    pub kl: Option<(KlPenalty, f64)>,
    /// Truncated importance sampling cap (`loss.tis_cap`); `None` when off.
    pub tis_cap: Option<f64>,
}

impl LossConfig {
    /// Resolves the parameters of one pass. Replay mini-batches use the replay Clip-Cov /
    /// KL-Cov values and never a KL loss (the KL block is commented out for replay, spec §2.5).
    /// Call [`LossConfig::validate`] first (done when the config is loaded); `actor_loss`
    /// validates again and fails with the key of a bad value.
    pub fn actor_params(&self, pass: LossPass) -> ActorLossParams {
        let policy = match self.loss_mode {
            LossMode::Vanilla => PolicyLossKind::Vanilla(self.ppo_clip()),
            LossMode::ClipCov => PolicyLossKind::ClipCov {
                clip_ratio_low: self.clip_ratio_low,
                clip_ratio_high: self.clip_ratio_high,
                params: self.clip_cov(pass),
            },
            LossMode::KlCov => PolicyLossKind::KlCov(self.kl_cov(pass)),
        };
        let kl = (self.use_kl_loss && pass == LossPass::OnPolicy)
            .then_some((self.kl_loss_type, self.kl_loss_coef));
        ActorLossParams {
            policy,
            agg_mode: self.loss_agg_mode,
            entropy_coeff: self.entropy_coeff,
            kl,
            tis_cap: self.tis_cap.0,
        }
    }
}

/// The tensors of one micro-batch, all `[B, T]` with `log_prob`'s dtype.
#[derive(Clone, Copy, Debug)]
pub struct ActorLossInputs<'a> {
    /// Log-probs, behaviour log-probs, advantages, response mask.
    pub policy: PolicyInputs<'a>,
    /// Token entropies of the current policy (differentiable if the bonus should push
    /// entropy up). Required when `entropy_coeff != 0`; used for the metrics when given.
    pub entropy: Option<&'a Tensor>,
    /// Reference-policy log-probs. Required when the KL loss is on.
    pub ref_log_prob: Option<&'a Tensor>,
    /// The rollout engine's log-probs of the sampled tokens (verl's `rollout_log_probs`).
    /// Required when truncated importance sampling is on (`tis_cap`); ignored otherwise.
    pub rollout_log_prob: Option<&'a Tensor>,
}

/// The actor loss of one micro-batch.
#[derive(Clone, Debug)]
pub struct ActorLoss {
    /// Scalar loss to back-propagate (differentiable in `log_prob` and `entropy`).
    pub loss: Tensor,
    /// Its policy-gradient part.
    pub pg_loss: Tensor,
    /// Statistics for logging.
    pub metrics: LossMetrics,
}

/// The truncated importance weight of each token, `min(exp(old_log_prob − rollout_log_prob),
/// cap)` (verl PR #2953, `compute_policy_loss_vanilla`: `tis_imp_ratio`), a constant (no
/// gradient flows through either log-prob).
pub fn tis_weights(
    old_log_prob: &Tensor,
    rollout_log_prob: &Tensor,
    cap: f64,
) -> Result<Tensor, LossError> {
    check_like("rollout_log_prob", rollout_log_prob, old_log_prob)?;
    let w = (old_log_prob.detach() - rollout_log_prob.detach())?.exp()?;
    Ok(w.clamp(f64::NEG_INFINITY, cap)?)
}

/// Multiplies the per-token policy-gradient loss by the truncated importance weight (after the
/// PPO clip, dual clip, Clip-Cov correction or KL-Cov penalty, where verl applies
/// `tis_imp_ratio`) and aggregates again. `metrics.tis_weight` is the weight's mean and
/// `metrics.tis_capped_frac` the fraction of valid tokens whose weight the cap cut.
fn truncated_importance_sampling(
    pg: PolicyLoss,
    p: &PolicyInputs<'_>,
    rollout_log_prob: Option<&Tensor>,
    cap: f64,
    params: &ActorLossParams,
    agg: &AggOptions,
) -> Result<PolicyLoss, LossError> {
    if !(cap.is_finite() && cap > 0.0) {
        return Err(LossError::Input(format!(
            "loss.tis_cap is {cap}; it must be a finite number > 0"
        )));
    }
    let rollout = rollout_log_prob.ok_or_else(|| {
        LossError::Input(
            "loss.tis_cap is set but no rollout log-probs were given; pass rollout_log_prob or \
             turn tis_cap off"
                .to_string(),
        )
    })?;
    let w = tis_weights(p.old_log_prob, rollout, cap)?;
    let token_loss = (&pg.token_loss * &w)?;
    let loss = agg_loss(&token_loss, p.response_mask, params.agg_mode, agg)?;
    let mut metrics = pg.metrics;
    let mask = host_f64(p.response_mask)?;
    let host_w = host_f64(&w)?;
    metrics.tis_weight = masked_mean(&host_w, &mask);
    metrics.tis_capped_frac = super::util::masked_fraction(&mask, |i| host_w[i] >= cap);
    metrics.pg_loss = scalar(&loss)?;
    Ok(PolicyLoss {
        loss,
        token_loss,
        metrics,
    })
}

/// Computes `pg_loss − entropy_coeff·agg(entropy) + kl_coef·agg(kl)` (spec §2.5, §4.3).
/// `rng` drives the Clip-Cov selection only (spec §2.5); pass the trainer's seeded
/// `ChaCha8Rng` so one seed fixes the run.
pub fn actor_loss<R: Rng + ?Sized>(
    inputs: &ActorLossInputs<'_>,
    params: &ActorLossParams,
    agg: &AggOptions,
    rng: &mut R,
) -> Result<ActorLoss, LossError> {
    let p = &inputs.policy;
    p.validate()?;
    crate::config::check_range("loss.entropy_coeff", params.entropy_coeff, 0.0, 1.0)?;
    let pg = match params.policy {
        PolicyLossKind::Vanilla(clip) => ppo_clip_loss(p, &clip, params.agg_mode, agg)?,
        PolicyLossKind::ClipCov {
            clip_ratio_low,
            clip_ratio_high,
            params: cov,
        } => clip_cov_loss(
            p,
            clip_ratio_low,
            clip_ratio_high,
            &cov,
            params.agg_mode,
            agg,
            rng,
        )?,
        PolicyLossKind::KlCov(kc) => kl_cov_loss(p, &kc, params.agg_mode, agg)?,
    };
    let pg = match params.tis_cap {
        None => pg,
        Some(cap) => {
            truncated_importance_sampling(pg, p, inputs.rollout_log_prob, cap, params, agg)?
        }
    };
    let mut metrics = pg.metrics;
    let mut loss = pg.loss.clone();

    if let Some(entropy) = inputs.entropy {
        check_like("entropy", entropy, p.log_prob)?;
        let mask = host_f64(p.response_mask)?;
        metrics.entropy = masked_mean(&host_f64(entropy)?, &mask);
        let entropy_loss = agg_loss(entropy, p.response_mask, params.agg_mode, agg)?;
        metrics.entropy_loss = scalar(&entropy_loss)?;
        if params.entropy_coeff != 0.0 {
            loss = (loss - entropy_loss.affine(params.entropy_coeff, 0.0)?)?;
        }
    } else if params.entropy_coeff != 0.0 {
        return Err(LossError::Input(format!(
            "loss.entropy_coeff is {} but no entropy tensor was given; pass the token entropies or set entropy_coeff = 0",
            params.entropy_coeff
        )));
    }

    if let Some((kind, coef)) = params.kl {
        crate::config::check_range("loss.kl_loss_coef", coef, 0.0, 100.0)?;
        let reference = inputs.ref_log_prob.ok_or_else(|| {
            LossError::Input(
                "loss.use_kl_loss is on but no reference log-probs were given; pass ref_log_prob or set use_kl_loss = false"
                    .to_string(),
            )
        })?;
        let kl = kl_penalty(p.log_prob, reference, kind)?;
        let kl_loss = agg_loss(&kl, p.response_mask, params.agg_mode, agg)?;
        metrics.kl_loss = scalar(&kl_loss)?;
        loss = (loss + kl_loss.affine(coef, 0.0)?)?;
    }

    metrics.total_loss = scalar(&loss)?;
    Ok(ActorLoss {
        loss,
        pg_loss: pg.loss,
        metrics,
    })
}
