//! Per-micro-batch statistics every loss returns (plain `f64`s, ready to log).
//!
//! Fractions and means are over the valid tokens (`mask > 0`) with verl's `masked_mean`
//! (`Σ x·M / (Σ M + 1e-8)`), so a batch with no valid token reports 0 everywhere.

use super::util::{masked_fraction, masked_mean};
use serde::Serialize;

/// Statistics of one loss evaluation (spec §2.5, §4.3; verl `actor/*` metrics).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LossMetrics {
    /// The aggregated policy-gradient loss (before entropy and KL terms).
    pub pg_loss: f64,
    /// Fraction of valid tokens where the PPO clip is active, `L2 > L1` (verl `pg_clipfrac` of
    /// the vanilla loss). For Clip-Cov this is still the PPO clip (`clipped_by_ppo`); the tokens
    /// Clip-Cov removed are in [`LossMetrics::clip_cov_frac`].
    pub pg_clipfrac: f64,
    /// Part of `pg_clipfrac` with `A < 0`: the ratio fell below `1 − ε_low`.
    pub pg_clipfrac_low: f64,
    /// Part of `pg_clipfrac` with `A > 0`: the ratio rose above `1 + ε_high`.
    pub pg_clipfrac_high: f64,
    /// Fraction of valid tokens where the dual clip bound `−A·c` is active (`A < 0` and
    /// `max(L1, L2) > −A·c`; verl's `pg_clipfrac_lower`). Always 0 for Clip-Cov and KL-Cov.
    pub dual_clipfrac: f64,
    /// Approximate KL of the update, `masked_mean(−log r)` (verl `ppo_kl`).
    pub ppo_kl: f64,
    /// `masked_mean(|log r|)` (what verl's KL-Cov reports as `ppo_kl`).
    pub ppo_kl_abs: f64,
    /// Mean importance ratio over valid tokens (the ratio the loss used: clamped log-ratio for
    /// vanilla, unclamped for Clip-Cov/KL-Cov).
    pub ratio_mean: f64,
    /// Largest ratio over valid tokens.
    pub ratio_max: f64,
    /// Smallest ratio over valid tokens.
    pub ratio_min: f64,
    /// Fraction of valid tokens whose gradient Clip-Cov removed (`corr = 0`; verl reports this
    /// as `pg_clipfrac` of `clip_cov`).
    pub clip_cov_frac: f64,
    /// Number of Clip-Cov candidates (`lb < cov < ub`, valid, not PPO-clipped).
    pub clip_cov_candidates: f64,
    /// Fraction of valid tokens KL-Cov gave the `|log r|` penalty.
    pub kl_cov_frac: f64,
    /// Mean token entropy over valid tokens (0 when no entropy was given).
    pub entropy: f64,
    /// `agg_loss(entropy)` (0 when no entropy was given).
    pub entropy_loss: f64,
    /// `agg_loss(kl)` to the reference policy (0 when the KL loss is off).
    pub kl_loss: f64,
    /// The full actor loss value.
    pub total_loss: f64,
    /// Number of valid tokens (`Σ mask`).
    pub valid_tokens: f64,
    /// Mean truncated importance weight over valid tokens (0 when `tis_cap` is off).
    pub tis_weight: f64,
    /// Fraction of valid tokens whose truncated importance weight the cap cut (0 when off).
    pub tis_capped_frac: f64,
}

/// Host copies of one micro-batch, flat and row-major, used for the metrics and selections.
pub(crate) struct HostView {
    pub adv: Vec<f64>,
    pub mask: Vec<f64>,
    pub log_ratio: Vec<f64>,
    pub ratio: Vec<f64>,
    pub l1: Vec<f64>,
    pub l2: Vec<f64>,
}

impl HostView {
    /// Whether token `i` is PPO-clipped, `L2 > L1` (verl compares the two loss tensors).
    pub fn ppo_clipped(&self, i: usize) -> bool {
        self.l2[i] > self.l1[i]
    }

    /// Fills the ratio, clip and KL statistics shared by every loss mode.
    pub fn base_metrics(&self) -> LossMetrics {
        let mask = &self.mask;
        let valid_tokens: f64 = mask.iter().filter(|m| **m != 0.0).sum();
        let neg_log_ratio: Vec<f64> = self.log_ratio.iter().map(|d| -d).collect();
        let abs_log_ratio: Vec<f64> = self.log_ratio.iter().map(|d| d.abs()).collect();
        let (mut rmax, mut rmin) = (f64::NEG_INFINITY, f64::INFINITY);
        for (r, m) in self.ratio.iter().zip(mask) {
            if *m != 0.0 {
                rmax = rmax.max(*r);
                rmin = rmin.min(*r);
            }
        }
        if valid_tokens == 0.0 {
            rmax = 0.0;
            rmin = 0.0;
        }
        LossMetrics {
            pg_clipfrac: masked_fraction(mask, |i| self.ppo_clipped(i)),
            pg_clipfrac_low: masked_fraction(mask, |i| self.ppo_clipped(i) && self.adv[i] < 0.0),
            pg_clipfrac_high: masked_fraction(mask, |i| self.ppo_clipped(i) && self.adv[i] > 0.0),
            ppo_kl: masked_mean(&neg_log_ratio, mask),
            ppo_kl_abs: masked_mean(&abs_log_ratio, mask),
            ratio_mean: masked_mean(&self.ratio, mask),
            ratio_max: rmax,
            ratio_min: rmin,
            valid_tokens,
            ..LossMetrics::default()
        }
    }
}
