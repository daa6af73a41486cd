//! `[loss]` configuration: which policy loss, its clip and Clip-Cov parameters, aggregation,
//! entropy bonus and KL penalty. Defaults are the official SPEAR agent-task values
//! (ALFWorld/WebShop scripts and `ppo_trainer.yaml`, spec §2.5, §2.9, §3).
//!
//! ```toml
//! [loss]
//! loss_mode = "clip_cov"                 # vanilla | clip_cov | kl_cov
//! clip_ratio_low = 0.2
//! clip_ratio_high = 0.28
//! clip_ratio_c = 3.0
//! loss_agg_mode = "seq-mean-token-sum-norm"
//! entropy_coeff = 0.001
//! use_kl_loss = false
//! kl_loss_coef = 0.0
//! kl_loss_type = "low_var_kl"            # kl (k1) | abs | mse (k2) | low_var_kl (k3)
//! clip_cov_ratio = 0.0002
//! clip_cov_lb = 1.0
//! clip_cov_ub = 5.0
//! clip_cov_ratio_replay = 0.02
//! clip_cov_lb_replay = 2.0
//! clip_cov_ub_replay = 60.0
//! kl_cov_ratio = 0.0002
//! kl_cov_ratio_replay = 0.02
//! ppo_kl_coef = 0.1
//! tis_cap = false                        # or a cap > 0, e.g. 2.0 (truncated IS)
//! bypass_mode = false                    # true: the engine's log-probs are π_old
//! ```

use super::agg::LossAggMode;
use super::clip_cov::ClipCovParams;
use super::kl::KlPenalty;
use super::kl_cov::KlCovParams;
use super::ppo::PpoClipParams;
use crate::config::{check_range, ConfigError};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which policy-gradient loss (`actor.policy_loss.loss_mode`, spec §2.5, §4.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossMode {
    /// PPO clip with clip-higher and dual clip (GRPO, GiGPO, Dr.BoT; spec §4.3).
    Vanilla,
    /// PPO clip without dual clip plus Clip-Cov token dropping (every SPEAR script, on-policy
    /// and replay; spec §2.5).
    #[default]
    ClipCov,
    /// Unclipped surrogate plus a `|log r|` penalty on the top-covariance tokens (spec §2.5;
    /// not used by any released script).
    KlCov,
}

impl fmt::Display for LossMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LossMode::Vanilla => "vanilla",
            LossMode::ClipCov => "clip_cov",
            LossMode::KlCov => "kl_cov",
        })
    }
}

/// Whether a loss is for an on-policy mini-batch or a SIL replay mini-batch (spec §2.7):
/// the two use different Clip-Cov / KL-Cov parameters, and replay has no KL loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LossPass {
    /// An on-policy mini-batch.
    OnPolicy,
    /// A replay-buffer mini-batch (`is_replay=True` in `dp_actor.py`).
    Replay,
}

/// The `[loss]` table. Unknown keys are rejected; missing keys take the SPEAR defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossConfig {
    /// Policy loss (spec §2.5, §4.3): `vanilla`, `clip_cov` or `kl_cov`. SPEAR: `clip_cov`;
    /// Dr.BoT/GRPO/GiGPO: `vanilla`. Default `clip_cov`.
    pub loss_mode: LossMode,
    /// `ε_low` of the PPO clip, `r ≥ 1 − ε_low`, a ratio offset (spec §3, §4.3). Default 0.2.
    pub clip_ratio_low: f64,
    /// `ε_high` of the PPO clip, `r ≤ 1 + ε_high` (clip-higher, spec §3); plain GRPO/GiGPO
    /// scripts use 0.2. Default 0.28.
    pub clip_ratio_high: f64,
    /// Dual-clip constant `c > 1` of the vanilla loss, a ratio (spec §4.3). Default 3.0
    /// (verl's yaml default, the value issue #2 asks for); **all SPEAR-repo scripts pass 10.0**
    /// (spec §3). Clip-Cov and KL-Cov ignore it.
    pub clip_ratio_c: f64,
    /// Loss aggregation (spec §4.4): `seq-mean-token-sum-norm` in Dr.BoT/SPEAR; plain GRPO
    /// `token-mean`. Default `seq-mean-token-sum-norm`.
    pub loss_agg_mode: LossAggMode,
    /// Entropy bonus weight: `loss = pg_loss − entropy_coeff·agg(entropy)` (spec §2.5, §3);
    /// 0 in the math recipe. Default 0.001 (verl-agent's yaml).
    pub entropy_coeff: f64,
    /// Add `kl_loss_coef·agg(KL(π_θ‖π_ref))` to the on-policy loss (spec §3, §4.3). Off in every
    /// SPEAR-repo script; upstream GRPO/GiGPO use it with 0.01 `low_var_kl` (spec §8 item 10).
    /// Never applied to replay mini-batches (spec §2.5). Default false.
    pub use_kl_loss: bool,
    /// KL loss weight (spec §3: 0.0 in the SPEAR-repo scripts; 0.01 upstream GRPO/GiGPO).
    /// Default 0.0.
    pub kl_loss_coef: f64,
    /// KL estimator (spec §4.3): `kl` (k1), `abs`, `mse` (k2) or `low_var_kl` (k3). Default
    /// `low_var_kl`.
    pub kl_loss_type: KlPenalty,
    /// On-policy Clip-Cov fraction of valid tokens dropped (spec §2.5, §2.9). Default 0.0002.
    pub clip_cov_ratio: f64,
    /// On-policy Clip-Cov lower covariance bound (spec §2.9). Default 1.0.
    pub clip_cov_lb: f64,
    /// On-policy Clip-Cov upper covariance bound (spec §2.9). Default 5.0.
    pub clip_cov_ub: f64,
    /// Replay Clip-Cov fraction of valid tokens dropped (spec §2.5; agent and math scripts).
    /// Default 0.02.
    pub clip_cov_ratio_replay: f64,
    /// Replay Clip-Cov lower bound (spec §2.5): 2.0 for ALFWorld/WebShop, 1.0 for math.
    /// Default 2.0.
    pub clip_cov_lb_replay: f64,
    /// Replay Clip-Cov upper bound (spec §2.5): 60.0 for ALFWorld/WebShop, 40.0 for math.
    /// Default 60.0.
    pub clip_cov_ub_replay: f64,
    /// On-policy KL-Cov fraction of valid tokens penalised (spec §2.5). Default 0.0002 (verl).
    pub kl_cov_ratio: f64,
    /// Replay KL-Cov fraction of valid tokens penalised (spec §2.5, §2.9). Default 0.02.
    pub kl_cov_ratio_replay: f64,
    /// KL-Cov `|log r|` weight (spec §2.5). Default 0.1.
    pub ppo_kl_coef: f64,
    /// Truncated importance sampling for rollout engines whose log-probs differ from the
    /// trainer's (verl PR #2953 `tis_imp_ratio_cap`, TRL PR #3867): each token's
    /// policy-gradient loss is multiplied by `min(exp(old_log_prob − rollout_log_prob), cap)`,
    /// the trainer's recomputed behaviour probability over the engine's, capped; entropy and KL
    /// terms are not weighted. `false` turns it off; a number must be > 0 (verl uses 2.0).
    /// Default false.
    pub tis_cap: TisCap,
    /// verl's `algorithm.rollout_correction.bypass_mode`: the rollout engine's log-probs (at
    /// the sampling temperature) are the PPO ratio's `old_log_prob`, and the trainer's forward
    /// pass that recomputes them before the update is skipped (one forward pass over every
    /// kept sample per iteration). Sound when the engine samples with the trainer's weights in
    /// the same precision (the in-process engine: |Δ log p| ≈ 1e-7 on average); with a server
    /// engine in another precision the ratio then also carries the engine/trainer mismatch.
    /// The mismatch metrics read 0 (nothing is recomputed) and `tis_cap` must stay off (its
    /// weight would be 1). Default false.
    pub bypass_mode: bool,
}

/// `loss.tis_cap`: off (`false` in TOML) or the cap C > 0 of the truncated importance weight.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TisCap(pub Option<f64>);

impl Serialize for TisCap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None => s.serialize_bool(false),
            Some(c) => s.serialize_f64(c),
        }
    }
}

impl<'de> Deserialize<'de> for TisCap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            Int(i64),
            Float(f64),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected `false` (off) or a number > 0, the cap of the truncated importance \
                 weight (e.g. 2.0)",
            )
        })? {
            Raw::Flag(false) => Ok(TisCap(None)),
            Raw::Flag(true) => Err(serde::de::Error::custom(
                "`true` is not a cap: give the cap itself, a number > 0 (e.g. 2.0), or `false`",
            )),
            Raw::Int(n) => Ok(TisCap(Some(n as f64))),
            Raw::Float(x) => Ok(TisCap(Some(x))),
        }
    }
}

impl TisCap {
    /// Checks that a cap, when set, is a finite number > 0 (`loss.tis_cap`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.0 {
            Some(c) if !(c.is_finite() && c > 0.0) => Err(ConfigError::new(
                "loss.tis_cap",
                format!(
                    "{c} is not a cap: the truncated importance weight min(ratio, cap) needs a \
                     finite cap > 0 (verl uses 2.0); set `false` to turn it off"
                ),
            )),
            _ => Ok(()),
        }
    }
}

impl Default for LossConfig {
    fn default() -> Self {
        Self::spear()
    }
}

impl LossConfig {
    /// SPEAR on ALFWorld/WebShop (`*_spear.sh` + `ppo_trainer.yaml`, spec §2.9): Clip-Cov,
    /// clip-higher, `seq-mean-token-sum-norm`, entropy 0.001, no KL.
    pub fn spear() -> Self {
        let on = ClipCovParams::on_policy();
        let replay = ClipCovParams::replay_agent();
        Self {
            loss_mode: LossMode::ClipCov,
            clip_ratio_low: 0.2,
            clip_ratio_high: 0.28,
            clip_ratio_c: 3.0,
            loss_agg_mode: LossAggMode::SeqMeanTokenSumNorm,
            entropy_coeff: 0.001,
            use_kl_loss: false,
            kl_loss_coef: 0.0,
            kl_loss_type: KlPenalty::LowVarKl,
            clip_cov_ratio: on.ratio,
            clip_cov_lb: on.lb,
            clip_cov_ub: on.ub,
            clip_cov_ratio_replay: replay.ratio,
            clip_cov_lb_replay: replay.lb,
            clip_cov_ub_replay: replay.ub,
            kl_cov_ratio: 0.0002,
            kl_cov_ratio_replay: 0.02,
            ppo_kl_coef: 0.1,
            tis_cap: TisCap(None),
            bypass_mode: false,
        }
    }

    /// SPEAR math recipe (spec §2.5, §5.3): replay Clip-Cov 0.02 / 1 / 40, entropy 0.
    pub fn spear_math() -> Self {
        let replay = ClipCovParams::replay_math();
        Self {
            entropy_coeff: 0.0,
            clip_cov_ratio_replay: replay.ratio,
            clip_cov_lb_replay: replay.lb,
            clip_cov_ub_replay: replay.ub,
            ..Self::spear()
        }
    }

    /// Dr.BoT (spec §3): vanilla PPO with clip-higher and dual clip, `seq-mean-token-sum-norm`,
    /// entropy 0.001, no KL. `clip_ratio_c` stays 3.0 here; the repo scripts pass 10.0.
    pub fn dr_bot() -> Self {
        Self {
            loss_mode: LossMode::Vanilla,
            ..Self::spear()
        }
    }

    /// Upstream verl-agent GRPO/GiGPO baseline (spec §8 item 10): vanilla, ε = 0.2/0.2,
    /// `token-mean`, `low_var_kl` KL loss with weight 0.01, entropy 0.001.
    pub fn grpo() -> Self {
        Self {
            loss_mode: LossMode::Vanilla,
            clip_ratio_high: 0.2,
            loss_agg_mode: LossAggMode::TokenMean,
            use_kl_loss: true,
            kl_loss_coef: 0.01,
            ..Self::spear()
        }
    }

    /// The PPO clip parameters.
    pub fn ppo_clip(&self) -> PpoClipParams {
        PpoClipParams {
            clip_ratio_low: self.clip_ratio_low,
            clip_ratio_high: self.clip_ratio_high,
            clip_ratio_c: self.clip_ratio_c,
        }
    }

    /// The Clip-Cov parameters of a pass.
    pub fn clip_cov(&self, pass: LossPass) -> ClipCovParams {
        match pass {
            LossPass::OnPolicy => ClipCovParams {
                ratio: self.clip_cov_ratio,
                lb: self.clip_cov_lb,
                ub: self.clip_cov_ub,
            },
            LossPass::Replay => ClipCovParams {
                ratio: self.clip_cov_ratio_replay,
                lb: self.clip_cov_lb_replay,
                ub: self.clip_cov_ub_replay,
            },
        }
    }

    /// The KL-Cov parameters of a pass.
    pub fn kl_cov(&self, pass: LossPass) -> KlCovParams {
        KlCovParams {
            ratio: match pass {
                LossPass::OnPolicy => self.kl_cov_ratio,
                LossPass::Replay => self.kl_cov_ratio_replay,
            },
            ppo_kl_coef: self.ppo_kl_coef,
        }
    }

    /// Checks every value; the error names the dotted key (e.g. `loss.clip_ratio_c`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.ppo_clip().validate()?;
        check_range("loss.entropy_coeff", self.entropy_coeff, 0.0, 1.0)?;
        check_range("loss.kl_loss_coef", self.kl_loss_coef, 0.0, 100.0)?;
        self.clip_cov(LossPass::OnPolicy).validate([
            "loss.clip_cov_ratio",
            "loss.clip_cov_lb",
            "loss.clip_cov_ub",
        ])?;
        self.clip_cov(LossPass::Replay).validate([
            "loss.clip_cov_ratio_replay",
            "loss.clip_cov_lb_replay",
            "loss.clip_cov_ub_replay",
        ])?;
        self.kl_cov(LossPass::OnPolicy)
            .validate("loss.kl_cov_ratio")?;
        self.kl_cov(LossPass::Replay)
            .validate("loss.kl_cov_ratio_replay")?;
        self.tis_cap.validate()?;
        if self.bypass_mode && self.tis_cap.0.is_some() {
            return Err(ConfigError::new(
                "loss.bypass_mode",
                "bypass_mode = true makes the engine's log-probs the old log-probs, so the \
                 truncated importance weight min(exp(old − rollout), cap) is always 1: set \
                 tis_cap = false, or bypass_mode = false to recompute them",
            ));
        }
        Ok(())
    }
}
