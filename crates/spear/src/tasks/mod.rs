//! The environment door: a [`TaskSuite`] is everything the trainer needs from an environment
//! — built from its own config section, it holds the training tasks, collects a group of
//! episodes per task through a [`ChatSampler`], evaluates its named splits, gives the
//! demonstrations of the warm start and adds its own metrics to the iteration's line.
//!
//! Household ([`household`]), WebShop ([`webshop`]) and math ([`math`]) each implement it in
//! their own module; [`build`] is the one place that picks a suite by `env.kind`. The trainer,
//! the update and the CLI name no environment: adding one is a new module here, its config
//! section and its presets.
//!
//! Two shapes of interaction go through the same door: one action per environment step
//! (household, WebShop: the agent loop [`crate::rollout::agent`], one sample per step) and a
//! multi-turn tool conversation per sample (math: [`crate::rollout::math`]); [`SampleTurns`]
//! tells the trainer which, for the trajectory records.

pub mod agent;
pub mod household;
pub mod math;
pub mod webshop;

use std::collections::BTreeMap;

use spear_model::{Policy, SamplingParams};
use spear_rl::config::DrBotConfig;
use spear_rl::drbot::ResponseFlags;

use crate::rollout::{ChatSampler, RolloutOutput};
use crate::run_dir::EvalRecord;
use crate::train::config::{EnvKind, TrainConfig};
use crate::train::setup::SftExample;
use crate::train::sft::SftTokens;

/// How the rollout of one training iteration is run (the same for every environment).
#[derive(Debug, Clone)]
pub struct CollectSettings {
    /// G: episodes (conversations) per task.
    pub group_size: usize,
    /// Turn cap of an episode (`env.max_turns`).
    pub max_turns: usize,
    /// (observation, action) pairs in the prompt (`env.history_length`).
    pub history_length: usize,
    /// Rollout sampling.
    pub sampling: SamplingParams,
    /// Seed of the rollout (environment resets, per-sequence sampling seeds).
    pub seed: u64,
    /// Training step t.
    pub iteration: u64,
    /// Keep each turn's prompt text in the episode records.
    pub keep_prompts: bool,
    /// Dr.BoT's response filters (the flags are computed per sample by the suite).
    pub drbot: DrBotConfig,
    /// `rollout.mode = "async"`: every episode runs on its own thread and advances as soon
    /// as its own generation returns (single requests, issued concurrently), instead of one
    /// batched generation per turn for all environments. Not bit-reproducible.
    pub concurrent_episodes: bool,
    /// Policy version (completed updates) of the weights the sampler holds when collection
    /// starts; stamped on every sample unless the engine reports its own per generation.
    pub policy_version: u64,
}

/// How an evaluation is run.
#[derive(Debug, Clone)]
pub struct EvalSettings {
    /// Episodes per split (agent environments; math uses its own problems × k).
    pub episodes: usize,
    /// Turn cap.
    pub max_turns: usize,
    /// (observation, action) pairs in the prompt.
    pub history_length: usize,
    /// Sampling (the evaluation temperature).
    pub sampling: SamplingParams,
    /// Seed.
    pub seed: u64,
    /// Training iteration the evaluation belongs to (0 = before RL).
    pub iteration: u64,
    /// Environments per batched rollout.
    pub batch: usize,
}

impl EvalSettings {
    /// The evaluation settings of a run at `iteration` (what the trainer and `spear eval` use).
    pub fn from_config(cfg: &TrainConfig, seed: u64, iteration: u64) -> Self {
        EvalSettings {
            episodes: cfg.eval.episodes as usize,
            max_turns: cfg.env.max_turns as usize,
            history_length: cfg.env.history_length as usize,
            sampling: SamplingParams {
                temperature: cfg.eval.temperature,
                top_p: cfg.eval.top_p,
                ..train_sampling(cfg)
            },
            seed,
            iteration,
            batch: 128,
        }
    }
}

/// The rollout sampling of `[sampling]`.
pub fn train_sampling(cfg: &TrainConfig) -> SamplingParams {
    SamplingParams {
        temperature: cfg.sampling.temperature,
        top_p: cfg.sampling.top_p,
        top_k: cfg.sampling.top_k as usize,
        max_new_tokens: cfg.sampling.max_new_tokens as usize,
        ..SamplingParams::default()
    }
}

/// Which turns of its episode a sample trained on (for the trajectory records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleTurns {
    /// One sample per environment step: sample `step_index` is turn `step_index`.
    OnePerStep,
    /// One sample per episode (a whole conversation): every turn shares its advantage.
    WholeEpisode,
}

/// What the environment part of an iteration hands the learner part.
#[derive(Debug, Clone)]
pub struct Collected {
    /// Samples in rollout order (`uid` = group, `traj_uid` = episode), episodes by `traj`.
    pub out: RolloutOutput,
    /// Dr.BoT's response flags of each sample.
    pub flags: Vec<ResponseFlags>,
    /// How samples map to turns.
    pub sample_turns: SampleTurns,
    /// The environment's own metrics, added to the iteration's `metrics.jsonl` line under
    /// their names (e.g. `math` → the tool-use statistics).
    pub extra: BTreeMap<String, serde_json::Value>,
    /// A short figure for the progress line (e.g. `valid 0.98`, `calls 1.25`).
    pub headline: String,
}

/// The demonstrations of the supervised warm start.
#[derive(Debug, Clone, Copy)]
pub enum WarmStart<'a> {
    /// Prompt/response texts (rendered like the RL prompts); the noun names them.
    Text(&'a [SftExample], &'static str),
    /// Token-level examples with a loss mask (tool output masked out).
    Tokens(&'a [SftTokens], &'static str),
}

/// An environment as the trainer sees it.
pub trait TaskSuite: Send + Sync {
    /// One line for the run header (what was built: tasks, splits, demonstrations).
    fn describe(&self) -> String;
    /// Scripted policies' scores on the evaluation tasks, for the run header (a reference the
    /// trained policy's evaluations can be read against); `None` where there are none.
    fn references(&self) -> anyhow::Result<Option<String>> {
        Ok(None)
    }
    /// Number of training tasks; the trainer draws `env.tasks_per_iter` of them per
    /// iteration.
    fn num_train_tasks(&self) -> usize;
    /// Names of the evaluation splits, in the order [`TaskSuite::evaluate`] is called.
    fn eval_splits(&self) -> Vec<String>;
    /// The warm start's demonstrations.
    fn warm_start(&self) -> WarmStart<'_>;
    /// Collects `s.group_size` episodes for each of `tasks` (indices into the training
    /// tasks): group `i` plays `tasks[i]`.
    fn collect(
        &self,
        sampler: &dyn ChatSampler,
        tasks: &[usize],
        s: &CollectSettings,
    ) -> anyhow::Result<Collected>;
    /// Evaluates one split.
    fn evaluate(
        &self,
        sampler: &dyn ChatSampler,
        split: &str,
        s: &EvalSettings,
    ) -> anyhow::Result<EvalRecord>;
}

/// Builds the suite of `env.kind` and the run's policy (a tiny policy's vocabulary comes from
/// the suite's text, so the two are built together; `spear train`, `spear sft` and
/// `spear eval` share this, so a tiny policy is rebuilt identically and its checkpoints fit).
pub fn build(cfg: &TrainConfig) -> anyhow::Result<(Box<dyn TaskSuite>, Policy)> {
    Ok(match cfg.env.kind {
        EnvKind::Household => {
            let (s, p) = household::HouseholdSuite::build(cfg)?;
            (Box::new(s), p)
        }
        EnvKind::Webshop => {
            let (s, p) = webshop::WebshopSuite::build(cfg)?;
            (Box::new(s), p)
        }
        EnvKind::Math => {
            let (s, p) = math::MathSuite::build(cfg)?;
            (Box::new(s), p)
        }
    })
}
