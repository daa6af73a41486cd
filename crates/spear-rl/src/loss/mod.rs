//! Policy losses on candle tensors (spec §2.5, §4.3, §4.4).
//!
//! Inputs are `[B, T]` tensors (f32 or f64): the current log-probs (differentiable), the
//! behaviour log-probs, the advantages, the 0/1 response mask and optionally the entropies and
//! reference log-probs. Only composed candle ops are used, so gradients reach `log_prob`
//! (shared/docs/ml-backend.md: candle's fused ops drop gradients).
//!
//! * [`agg`]: `agg_loss` and its five modes (spec §4.4).
//! * [`ppo`]: PPO "vanilla" clipped surrogate with clip-higher and dual clip (spec §4.3).
//! * [`clip_cov`]: Clip-Cov, the loss of every SPEAR update (spec §2.5).
//! * [`kl_cov`]: KL-Cov, the alternative (spec §2.5).
//! * [`kl`]: KL penalty estimators k1 / abs / k2 / k3 (spec §4.3).
//! * [`actor`]: the full actor loss `pg − entropy_coeff·H + kl_coef·KL` of a micro-batch, with
//!   optional truncated importance sampling of the pg tokens (`tis_cap`, verl PR #2953).
//! * [`config`]: the `[loss]` TOML table with the official SPEAR defaults.
//! * [`metrics`]: the statistics every loss returns.
//!
//! The trainer's entry point:
//!
//! ```text
//! let params = cfg.loss.actor_params(LossPass::OnPolicy);        // or LossPass::Replay
//! let out = actor_loss(&inputs, &params, &AggOptions::with_norm_len(512), &mut rng)?;
//! (out.loss / grad_accum * gamma_t)?.backward()?;
//! ```

pub mod actor;
pub mod agg;
pub mod clip_cov;
pub mod config;
pub mod error;
pub mod kl;
pub mod kl_cov;
pub mod metrics;
pub mod ppo;
mod util;

pub use actor::{
    actor_loss, tis_weights, ActorLoss, ActorLossInputs, ActorLossParams, PolicyLossKind,
};
pub use agg::{agg_loss, AggOptions, LossAggMode};
pub use clip_cov::{clip_cov_loss, clip_cov_selection, ClipCovParams, ClipCovSelection};
pub use config::{LossConfig, LossMode, LossPass, TisCap};
pub use error::LossError;
pub use kl::{kl_penalty, KlPenalty};
pub use kl_cov::{kl_cov_loss, kl_cov_selection, KlCovParams};
pub use metrics::LossMetrics;
pub use ppo::{ppo_clip_loss, PolicyInputs, PolicyLoss, PpoClipParams};
