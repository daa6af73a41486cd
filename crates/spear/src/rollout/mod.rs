//! Rollouts: from a policy and a set of tasks to step-samples for the learner (spec §2.8 step 1,
//! §7) and episode records for the trajectory viewer.
//!
//! Every environment kind produces the same [`RolloutOutput`]; the trainer does not know
//! whether a sample is a household step or a whole math conversation.

pub mod agent;
pub mod external;
pub mod http;
pub mod math;
pub mod sampler;

pub use external::{ExternalEngine, SnapshotEngine};
pub use sampler::{ChatSampler, LocalEngine};

use spear_rl::sample::StepSample;

use crate::run_dir::EpisodeRecord;

/// What one rollout produced.
#[derive(Debug, Clone, Default)]
pub struct RolloutOutput {
    /// Step-samples in rollout order. `traj_uid` = the episode's `traj`, `uid` = its `group`.
    /// `rollout_log_probs` and (until the trainer recomputes them before the update)
    /// `old_log_probs` are the sampler's log-probs at the rollout temperature (the in-process
    /// sampler's equal teacher-forced scoring at that temperature under the same weights to
    /// 1e-4, a `spear-model` test); `policy_version` is the sampler's weights' version;
    /// `score`, `step_return` and `advantage` are left at 0 for the learner to fill.
    pub samples: Vec<StepSample>,
    /// One record per episode (trajectory), in `traj` order.
    pub episodes: Vec<EpisodeRecord>,
    /// Tokens generated.
    pub generated_tokens: u64,
    /// Seconds spent generating.
    pub generate_secs: f64,
    /// Seconds spent stepping environments / running tools.
    pub env_secs: f64,
}
