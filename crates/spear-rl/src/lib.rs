//! Agentic RL algorithms on plain data (spec §2–§4), and the policy losses on
//! candle tensors.
//!
//! # Brief overview
//!
//! One training iteration (spec §2.8) reads, with this crate's calls:
//!
//! 1. rollout → a [`Batch`] of step-level [`StepSample`]s (spec §2.1);
//! 2. [`reward::assign_episode_scores`] (extrinsic + μ(t)·r_tc, spec §2.2),
//!    [`reward::compute_step_returns`] (GiGPO), [`drbot::apply_response_filters`]
//!    and [`drbot::filter_groups_by_std`] (Dr.BoT, spec §3);
//! 3. [`reward::apply_invalid_action_penalty`], then [`compute_advantages`]
//!    (GRPO / Dr.GRPO / GiGPO / RLOO, spec §4);
//! 4. [`ReplayBuffer::maybe_replay`] (SIL draw, spec §2.3–§2.4);
//! 5. [`UpdatePlan::build`]: on-policy then γ(t)-scaled replay optimizer steps (spec §2.7);
//! 6. [`ReplayBuffer::update`] (staleness, D_R, insertion).
//!
//! ```
//! use spear_rl::{compute_advantages, Batch, GroupId, ReplayBuffer, RlConfig, StepSample, TrajId};
//!
//! let cfg = RlConfig::default(); // Dr.BoT(GRPO) + SPEAR, official values
//! let step = |traj: u64, score: f64| StepSample {
//!     uid: GroupId(0), traj_uid: TrajId(traj), step_index: 0,
//!     prompt_tokens: vec![1, 2], response_tokens: vec![3, 4], response_mask: vec![1, 1],
//!     old_log_probs: vec![-0.1, -0.2], rollout_log_probs: vec![], policy_version: 0,
//!     step_reward: score, episode_reward: score,
//!     episode_length: 1, tool_calls: 1, is_action_valid: true, anchor_obs: String::new(),
//!     collected_at: 1, score, step_return: 0.0, advantage: 0.0,
//! };
//! let mut batch = Batch::new(vec![step(0, 10.0), step(1, 0.0)]);
//! compute_advantages(&mut batch, &cfg.advantage, &cfg.gigpo);
//! assert_eq!(batch.advantages(), vec![5.0, -5.0]); // Dr.GRPO: s − mean(10, 0)
//!
//! let mut buffer = ReplayBuffer::new(&cfg.replay, 0); // seed of the replay draws
//! assert!(buffer.maybe_replay().is_none()); // far below the 3072-sample trigger
//! buffer.update(&batch, 1); // stores the A > 0 sample, records D_R
//! assert_eq!(buffer.stored_samples(), 1);
//! ```
//!
//! Modules:
//! * [`config`]: typed, validated configuration with the official SPEAR defaults.
//! * [`sample`]: the step-level data model and grouping helpers.
//! * [`advantage`]: GRPO, Dr.GRPO, GiGPO, RLOO.
//! * [`reward`]: tool-call reward, invalid-action penalty, discounted step returns.
//! * [`schedule`]: μ(t) and γ(t).
//! * [`drbot`]: response filters and the std group filter.
//! * [`replay`]: the SIL replay buffer with the D_R baseline.
//! * [`update_plan`]: the optimizer-step plan.
//! * [`stats`]: numpy/torch-compatible statistics.
//! * [`loss`]: PPO-clip (vanilla, Clip-Cov, KL-Cov), loss aggregation, KL and entropy terms.

#[deny(missing_docs)]
pub mod advantage;
#[deny(missing_docs)]
pub mod config;
#[deny(missing_docs)]
pub mod drbot;
pub mod loss;
#[deny(missing_docs)]
pub mod replay;
#[deny(missing_docs)]
pub mod reward;
#[deny(missing_docs)]
pub mod sample;
#[deny(missing_docs)]
pub mod schedule;
#[deny(missing_docs)]
pub mod stats;
#[deny(missing_docs)]
pub mod update_plan;

pub use advantage::{
    compute_advantages, gigpo_advantages, grpo_advantages, rloo_advantages, AdvNorm,
};
pub use config::{
    AdvantageConfig, ConfigError, DrBotConfig, Estimator, GigpoConfig, GigpoMode, RecalibratedKeep,
    ReplayAdvantage, ReplayConfig, RewardConfig, RlConfig, ToolCallReward, ToolCallVariant,
    UpdateConfig,
};
pub use drbot::{FilterStats, ResponseFlags};
pub use replay::{ReplayBuffer, ReplayDraw};
pub use sample::{Batch, GroupId, StepSample, TrajId};
pub use schedule::{replay_weight, toolcall_weight};
pub use update_plan::{Phase, PlanOp, UpdatePlan};
