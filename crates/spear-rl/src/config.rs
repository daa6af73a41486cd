//! Typed configuration of the learners. Every field's default is the value the
//! official SPEAR scripts run with (spec §2.9, §3, §5.2); out-of-range values are
//! rejected with an error naming the key.
//!
//! The defaults describe the released `*_spear.sh` agent runs: SPEAR on top of
//! Dr.BoT(GRPO) (spec §8 item 8), i.e. the Dr.GRPO estimator (no std), the four
//! Dr.BoT response filters, the 75 % std group filter, the cosine tool-call
//! reward and the SIL replay buffer. The policy-loss settings live in
//! [`crate::loss`] and are joined with these by the trainer's config.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A configuration value that is missing, unknown or out of range.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("invalid config value for `{key}`: {message}")]
pub struct ConfigError {
    /// Dotted path of the key, e.g. `loss.clip_ratio_high`.
    pub key: String,
    /// What is wrong and which values are allowed.
    pub message: String,
}

impl ConfigError {
    /// Builds an error for `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Checks `lo <= value <= hi` (closed range) and names `key` otherwise.
pub fn check_range(key: &str, value: f64, lo: f64, hi: f64) -> Result<(), ConfigError> {
    if value.is_finite() && value >= lo && value <= hi {
        Ok(())
    } else {
        Err(ConfigError::new(
            key,
            format!("{value} is outside the allowed range [{lo}, {hi}]"),
        ))
    }
}

/// Checks `value >= lo` for an integer key.
fn check_min(key: &str, value: u64, lo: u64) -> Result<(), ConfigError> {
    if value >= lo {
        Ok(())
    } else {
        Err(ConfigError::new(
            key,
            format!("{value} must be at least {lo}"),
        ))
    }
}

/// Advantage estimator of the on-policy learner (spec §4.1, §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Estimator {
    /// GRPO: (s − μ_g)/(σ_g + ε) (spec §4.1, `norm_adv_by_std_in_grpo = True`).
    Grpo,
    /// Dr.GRPO: s − μ_g, no std (spec §3, §4.1; Dr.BoT and SPEAR scripts).
    DrGrpo,
    /// GiGPO: episode A^E + ω·step A^S over anchor groups (spec §4.2).
    Gigpo,
    /// RLOO: leave-one-out baseline over the other trajectories of the group
    /// (a cheap extra baseline, see [`crate::advantage::rloo_advantages`]).
    Rloo,
}

/// GiGPO normalisation mode (`gigpo.mode`, spec §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GigpoMode {
    /// (x − μ)/(σ + ε): every released script, Dr.BoT included (spec §8 item 11).
    MeanStdNorm,
    /// x − μ.
    MeanNorm,
}

/// `[advantage]`: the estimator and its group statistics (spec §4.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdvantageConfig {
    /// Estimator (spec §4). Default `dr_grpo` (Dr.BoT(GRPO) + SPEAR scripts, spec §3).
    pub estimator: Estimator,
    /// `compute_mean_std_cross_all_data` (spec §4.1, §8 item 12): every
    /// step-sample of the group enters μ/σ (longer trajectories weigh more).
    /// `false`: one score per trajectory. Default `true`.
    pub step_weighted: bool,
    /// ε in (s − μ)/(σ + ε), in score units (spec §4.1). Default 1e-6.
    pub epsilon: f64,
}

impl Default for AdvantageConfig {
    fn default() -> Self {
        Self {
            estimator: Estimator::DrGrpo,
            step_weighted: true,
            epsilon: 1e-6,
        }
    }
}

/// `[gigpo]`: GiGPO parameters (spec §4.2, §5.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GigpoConfig {
    /// Discount γ of the step returns, per environment step (`algorithm.gamma`, spec §4.2).
    /// Default 0.95.
    pub gamma: f64,
    /// Step-advantage weight ω (`gigpo.step_advantage_w`, spec §4.2). Default 1.0.
    pub step_advantage_weight: f64,
    /// Normalisation of A^E and A^S (`gigpo.mode`, spec §4.2). Default `mean_std_norm`.
    pub mode: GigpoMode,
}

impl Default for GigpoConfig {
    fn default() -> Self {
        Self {
            gamma: 0.95,
            step_advantage_weight: 1.0,
            mode: GigpoMode::MeanStdNorm,
        }
    }
}

/// `use_toolcall_reward` (spec §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolCallReward {
    /// No intrinsic reward (Dr.BoT, GRPO, GiGPO).
    None,
    /// r_tc added at every step.
    Constant,
    /// r_tc·μ(t), the SPEAR cosine decay (spec §2.6).
    Cosine,
}

/// Which official reward function adds r_tc (spec §2.2, §8 item 18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolCallVariant {
    /// verl-agent `EpisodeRewardManager`: calls = episode length, bonus ≥ 0.
    Agent,
    /// Math, Qwen2.5-32B: score += r_tc·μ for right and wrong answers.
    MathQwen25,
    /// Math, Qwen3-32B: wrong → += r_tc·μ; right → += 𝟙(calls > 0)·μ.
    MathQwen3,
}

/// `[reward]`: score shaping (spec §2.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RewardConfig {
    /// Intrinsic tool-call reward mode (spec §2.2). Default `cosine` (SPEAR).
    pub toolcall_reward: ToolCallReward,
    /// Reward-function variant (spec §2.2). Default `agent`.
    pub toolcall_variant: ToolCallVariant,
    /// T_decay = `max_toolcall_steps`, in training iterations (spec §2.6, §8 item 3).
    /// Default 200.
    pub max_toolcall_steps: u64,
    /// r_tc per tool call, in reward units (spec §2.2). Default 0.1.
    pub toolcall_per_call: f64,
    /// Cap of r_tc, in reward units (spec §2.2). Default 1.0.
    pub toolcall_cap: f64,
    /// Invalid-action penalty, in reward units per invalid step (spec §2.2, all verl-agent
    /// scripts). Default 0.1.
    pub invalid_action_penalty: f64,
}

impl Default for RewardConfig {
    fn default() -> Self {
        Self {
            toolcall_reward: ToolCallReward::Cosine,
            toolcall_variant: ToolCallVariant::Agent,
            max_toolcall_steps: 200,
            toolcall_per_call: 0.1,
            toolcall_cap: 1.0,
            invalid_action_penalty: 0.1,
        }
    }
}

/// `[drbot]`: Dr.BoT response and group filters (spec §3, §8 items 13 and 19).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DrBotConfig {
    /// Mask responses with length ≥ `max_response_length` (spec §3). Default true.
    pub filter_overlong: bool,
    /// Mask void turns: no `<action>…</action>` after the last `</think>` (spec §3). Default true.
    pub filter_incomplete: bool,
    /// Mask responses with a repeated token n-gram (spec §3). Default true.
    pub filter_repetitive: bool,
    /// Mask responses containing mojibake markers (spec §3). Default true.
    pub filter_unreadable: bool,
    /// `max_response_length`, in tokens (spec §5.2; math: `env.math.max_response_tokens`).
    /// Default 512.
    pub max_response_length: u64,
    /// n of the repetition n-gram, in tokens (spec §3). Default 20.
    pub repetition_ngram: u64,
    /// Occurrences of one n-gram that flag a response (spec §3: ≥ 10; at least 2). Default 10.
    pub repetition_threshold: u64,
    /// `rollout_filter_ratio`: fraction (in (0, 1]) of groups kept by intra-group reward std
    /// (spec §3). 1.0 turns the group filter off. Default 0.75.
    pub rollout_filter_ratio: f64,
    /// After the group filter, randomly subsample the kept step-samples to the
    /// largest power of two (spec §3, §8 item 13). Default true.
    pub power_of_two_subsample: bool,
}

impl Default for DrBotConfig {
    fn default() -> Self {
        Self {
            filter_overlong: true,
            filter_incomplete: true,
            filter_repetitive: true,
            filter_unreadable: true,
            max_response_length: 512,
            repetition_ngram: 20,
            repetition_threshold: 10,
            rollout_filter_ratio: 0.75,
            power_of_two_subsample: true,
        }
    }
}

/// How replayed advantages are obtained (`weight_decay_trajectory_replay`, spec §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayAdvantage {
    /// Recalibrate against the D_R 50th percentile (spec §2.4): every SPEAR
    /// script (`weight_decay_trajectory_replay = -1`).
    P50Baseline,
    /// Multiply the stored advantages by this factor in (0, 1], no
    /// recalibration; the fill measure is the raw sample count (spec §2.3).
    WeightDecay(f64),
}

/// Which recalibrated samples are replayed (spec §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecalibratedKeep {
    /// Ã ≥ 0 (verl-agent).
    NonNegative,
    /// Ã > 0 (verl math fork).
    Positive,
}

/// `[replay]`: the SPEAR SIL buffer and its loss weight (spec §2.3–§2.6, §2.9).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplayConfig {
    /// `enable_trajectory_replay` (spec §2.9). Default true.
    pub enabled: bool,
    /// `trajectory_buffer_size`: the most step-samples replayed at once (spec §2.3).
    /// Default 2048.
    pub buffer_size: u64,
    /// Replay triggers when the fill measure exceeds `trigger_factor·buffer_size` (a
    /// multiple of the buffer size, spec §2.3). Default 1.5.
    pub trigger_factor: f64,
    /// `baseline_buffer_size`: D_R capacity in group entries (spec §2.4). Default 10240.
    pub baseline_buffer_size: u64,
    /// `trajectory_tolerate_steps` (spec §2.3): entries older than this many training
    /// iterations behind the newest one are dropped. The official code caps it at 10;
    /// larger values are rejected. Default 5.
    pub tolerate_steps: u64,
    /// Replay advantage mode (spec §2.3, §2.4). Default `p50_baseline`.
    pub advantage: ReplayAdvantage,
    /// Divide the recalibrated advantage by P50_std + 1e-6
    /// (`norm_adv_by_std_in_grpo`, spec §2.4). Default false.
    pub norm_by_std: bool,
    /// Keep rule after recalibration (spec §2.4). Default `non_negative`.
    pub keep: RecalibratedKeep,
    /// Insert only samples with at least one tool call (math fork, spec §2.3). Default false.
    pub require_tool_call: bool,
    /// Skip replay when fewer step-samples are drawn (`n_gpus_per_node·nnodes`, spec §2.3).
    /// Default 1.
    pub min_replay_samples: u64,
    /// c = `replay_loss_coef`, the final weight of γ(t) (a loss multiplier, spec §2.6).
    /// Default 1.0.
    pub replay_loss_coef: f64,
    /// T_warm = `max_replay_loss_steps`, in training iterations (spec §2.6, §8 item 2; 300 for
    /// math). Default 200.
    pub max_replay_loss_steps: u64,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            buffer_size: 2048,
            trigger_factor: 1.5,
            baseline_buffer_size: 10240,
            tolerate_steps: 5,
            advantage: ReplayAdvantage::P50Baseline,
            norm_by_std: false,
            keep: RecalibratedKeep::NonNegative,
            require_tool_call: false,
            min_replay_samples: 1,
            replay_loss_coef: 1.0,
            max_replay_loss_steps: 200,
        }
    }
}

/// `[update]`: the optimizer-step plan (spec §2.7, §5.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpdateConfig {
    /// `ppo_epochs`: passes over the iteration's samples (spec §5.2). Default 1.
    pub ppo_epochs: u64,
    /// Mini-batch size in step-samples for one optimizer step, on-policy and
    /// replay alike (`ppo_mini_batch_size`, spec §2.5, §5.2: 1024 ALFWorld). Default 1024.
    pub mini_batch_size: u64,
    /// Micro-batch size in step-samples (spec §5.2: 8). Must divide `mini_batch_size`. Default 8.
    pub micro_batch_size: u64,
    /// Gradient-norm clip before each optimizer step, a global L2 norm (spec §2.7, §5.2).
    /// Default 1.0.
    pub grad_clip: f64,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        Self {
            ppo_epochs: 1,
            mini_batch_size: 1024,
            micro_batch_size: 8,
            grad_clip: 1.0,
        }
    }
}

/// All algorithm settings of `spear-rl`: estimators, rewards, filters, replay, the update
/// plan and the policy loss (`[loss]`, see [`crate::loss::LossConfig`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RlConfig {
    /// Advantage estimator (spec §4).
    pub advantage: AdvantageConfig,
    /// GiGPO parameters (spec §4.2).
    pub gigpo: GigpoConfig,
    /// Reward shaping (spec §2.2).
    pub reward: RewardConfig,
    /// Dr.BoT filters (spec §3).
    pub drbot: DrBotConfig,
    /// SPEAR replay (spec §2.3–§2.6).
    pub replay: ReplayConfig,
    /// Update plan (spec §2.7).
    pub update: UpdateConfig,
    /// Policy loss: PPO-clip / Clip-Cov / KL-Cov, aggregation, KL and entropy (spec §2.5, §4.3, §4.4).
    pub loss: crate::loss::LossConfig,
}

impl RlConfig {
    /// Parses TOML and validates it. Unknown keys, wrong types and
    /// out-of-range values give a [`ConfigError`] naming the dotted key.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let de = toml::Deserializer::new(text);
        let cfg: Self = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let message = inner.message().trim().to_string();
            // An unknown key: name it in full (`replay.tolerate_stepz`).
            let key = match unknown_field_name(&message) {
                Some(field) if path == "." || path.is_empty() => field,
                Some(field) if !path.ends_with(&field) => format!("{path}.{field}"),
                _ => path,
            };
            ConfigError::new(key, message)
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Serialises to TOML (the resolved config written next to a run).
    pub fn to_toml_string(&self) -> String {
        toml::to_string(self).expect("RlConfig always serialises to TOML")
    }

    /// Rejects out-of-range values, naming the dotted key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.loss.validate()?;
        let a = &self.advantage;
        check_range("advantage.epsilon", a.epsilon, 1e-12, 1.0)?;

        let g = &self.gigpo;
        check_range("gigpo.gamma", g.gamma, 0.0, 1.0)?;
        check_range(
            "gigpo.step_advantage_weight",
            g.step_advantage_weight,
            0.0,
            100.0,
        )?;

        let r = &self.reward;
        check_range("reward.toolcall_per_call", r.toolcall_per_call, 0.0, 100.0)?;
        check_range("reward.toolcall_cap", r.toolcall_cap, 0.0, 100.0)?;
        check_range(
            "reward.invalid_action_penalty",
            r.invalid_action_penalty,
            0.0,
            100.0,
        )?;
        if r.toolcall_reward == ToolCallReward::Cosine {
            check_min("reward.max_toolcall_steps", r.max_toolcall_steps, 1)?;
        }

        let d = &self.drbot;
        check_min("drbot.max_response_length", d.max_response_length, 1)?;
        check_min("drbot.repetition_ngram", d.repetition_ngram, 1)?;
        check_min("drbot.repetition_threshold", d.repetition_threshold, 2)?;
        if !(d.rollout_filter_ratio > 0.0 && d.rollout_filter_ratio <= 1.0) {
            return Err(ConfigError::new(
                "drbot.rollout_filter_ratio",
                format!(
                    "{} must be in (0, 1]; 1.0 turns the group filter off",
                    d.rollout_filter_ratio
                ),
            ));
        }

        let p = &self.replay;
        check_min("replay.buffer_size", p.buffer_size, 1)?;
        check_range("replay.trigger_factor", p.trigger_factor, 0.0, 1000.0)?;
        check_min("replay.baseline_buffer_size", p.baseline_buffer_size, 1)?;
        if p.tolerate_steps > 10 {
            return Err(ConfigError::new(
                "replay.tolerate_steps",
                format!(
                    "{} is above 10; the official buffer caps staleness at 10 steps (spec §2.3)",
                    p.tolerate_steps
                ),
            ));
        }
        if let ReplayAdvantage::WeightDecay(w) = p.advantage {
            if !(w > 0.0 && w <= 1.0) {
                return Err(ConfigError::new(
                    "replay.advantage.weight_decay",
                    format!("{w} must be in (0, 1]; use \"p50_baseline\" for recalibration"),
                ));
            }
        }
        check_min("replay.min_replay_samples", p.min_replay_samples, 1)?;
        check_range("replay.replay_loss_coef", p.replay_loss_coef, 0.0, 1000.0)?;

        let u = &self.update;
        check_min("update.ppo_epochs", u.ppo_epochs, 1)?;
        check_min("update.mini_batch_size", u.mini_batch_size, 1)?;
        check_min("update.micro_batch_size", u.micro_batch_size, 1)?;
        if u.mini_batch_size % u.micro_batch_size != 0 {
            return Err(ConfigError::new(
                "update.micro_batch_size",
                format!(
                    "{} does not divide update.mini_batch_size = {}",
                    u.micro_batch_size, u.mini_batch_size
                ),
            ));
        }
        if !(u.grad_clip > 0.0 && u.grad_clip.is_finite()) {
            return Err(ConfigError::new(
                "update.grad_clip",
                format!("{} must be a positive number", u.grad_clip),
            ));
        }
        Ok(())
    }
}

/// Extracts `x` from serde's "unknown field `x`, expected ..." message.
fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let end = rest.find('`')?;
    Some(rest[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_official_values_and_valid() {
        let c = RlConfig::default();
        c.validate().unwrap();
        assert_eq!(c.replay.buffer_size, 2048);
        assert_eq!(c.replay.baseline_buffer_size, 10240);
        assert_eq!(c.replay.tolerate_steps, 5);
        assert_eq!(c.reward.max_toolcall_steps, 200);
        assert_eq!(c.replay.max_replay_loss_steps, 200);
        assert_eq!(c.gigpo.gamma, 0.95);
        assert_eq!(c.drbot.rollout_filter_ratio, 0.75);
        assert_eq!(c.advantage.epsilon, 1e-6);
    }

    #[test]
    fn check_range_names_key() {
        let e = check_range("a.b", 2.0, 0.0, 1.0).unwrap_err();
        assert_eq!(e.key, "a.b");
        assert!(check_range("a.b", f64::NAN, 0.0, 1.0).is_err());
    }
}
