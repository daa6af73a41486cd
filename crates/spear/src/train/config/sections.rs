//! The sections every environment shares: `[run]`, `[sampling]`, `[optim]`, `[sft]`, `[eval]`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// `[run]`: identity and cadence of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Run name: the run directory is `<out_dir>/<name>` (one plain path component). Default:
    /// the preset's name (`household-tiny` without a preset).
    pub name: String,
    /// Parent directory of run directories (a path). Default `runs`.
    pub out_dir: String,
    /// Seed of every random choice (model init, task order, sampling, filters, replay draws).
    /// Default 0 (`env.seed`, spec §5.2).
    pub seed: u64,
    /// Training iterations (steps `t = 1..=iterations`). Default 200.
    pub iterations: u64,
    /// Evaluate every this many iterations (and after the last); 0 turns evaluation off.
    /// Default 5 (the paper, spec §5.2).
    pub eval_every: u64,
    /// Also evaluate before the first iteration (iteration 0). SPEAR/Dr.BoT scripts do not
    /// (spec §5.2); handy to see what the warm start gives. Default false.
    pub eval_before: bool,
    /// Write a checkpoint every this many iterations (and after the last). Default 1.
    pub save_every: u64,
    /// Episodes of each iteration written to `trajectories/` for the viewer (0: none).
    /// Default 16.
    pub log_episodes: u64,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            name: "household-tiny".into(),
            out_dir: "runs".into(),
            seed: 0,
            iterations: 200,
            eval_every: 5,
            eval_before: false,
            save_every: 1,
            log_episodes: 16,
        }
    }
}

/// `[sampling]`: rollout sampling during training (spec §2.8: T = 1, top-p 1, 512 tokens).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingSection {
    /// Temperature T (in (0, 10]). Default 1.0.
    pub temperature: f64,
    /// Nucleus mass top-p, a fraction in (0, 1]; 1 = off. Default 1.0.
    pub top_p: f64,
    /// Top-k, in tokens (0 = off). Default 0.
    pub top_k: u64,
    /// Most new tokens per turn (`max_response_length`, spec §5.2: 512). Default 512.
    pub max_new_tokens: u64,
}

impl Default for SamplingSection {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            max_new_tokens: 512,
        }
    }
}

/// `[optim]`: AdamW (spec §5.2: lr 1e-6 constant, weight decay 0.01, clip 1.0 in `[rl.update]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Peak learning rate (AdamW step size). Default 1e-6 (spec §5.2).
    pub lr: f64,
    /// Linear warmup, in optimizer steps. Default 0.
    pub warmup_steps: u64,
    /// Decoupled weight decay, a fraction of the weight per step (× lr). Default 0.01.
    pub weight_decay: f64,
    /// Adam β1. Default 0.9.
    pub beta1: f64,
    /// Adam β2. Default 0.999.
    pub beta2: f64,
    /// Padded tokens per forward/backward pass when scoring (memory bound; does not change
    /// the loss: micro-batches are `[rl.update] micro_batch_size` samples). Default 16384.
    pub token_budget: u64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            lr: 1e-6,
            warmup_steps: 0,
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            token_budget: 16384,
        }
    }
}

/// `[sft]`: supervised warm start on expert demonstrations (household planner walkthroughs
/// rendered in the RL prompt/response format), run once before RL when enabled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SftConfig {
    /// Run SFT before RL (only when the run starts, not on resume). Default false.
    pub enabled: bool,
    /// Training games (math: problems) whose demonstrations are used (0 = all). Default 0.
    pub games: u64,
    /// Passes over the demonstrations. Default 1.
    pub epochs: u64,
    /// Step-samples per optimizer step. Default 32.
    pub batch_size: u64,
    /// Peak learning rate (cosine decay to 10 %, 5 % warmup). Default 1e-4.
    pub lr: f64,
    /// With `model.init_checkpoint`: run the warm start on top of those weights (a second
    /// SFT stage) instead of skipping it. `spear sft` sets it, so `spear sft --set
    /// model.init_checkpoint=…` continues SFT from a checkpoint; `spear train` keeps the
    /// default false (RL starts from the checkpoint as it is). Default false.
    pub after_init_checkpoint: bool,
    /// Batch demonstrations of similar length (like transformers' `group_by_length`): each
    /// epoch is shuffled, cut into windows of 50 batches, each window sorted by length and cut
    /// into batches, and the batches shuffled. A batch is padded to its longest example, so
    /// mixing 300-token and 1100-token prompts (`webshop-tiny`'s first steps and whole
    /// episodes) pads most batches to 1100. Default false (plain shuffled batches).
    pub group_by_length: bool,
}

impl Default for SftConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            games: 0,
            epochs: 1,
            batch_size: 32,
            lr: 1e-4,
            after_init_checkpoint: false,
            group_by_length: false,
        }
    }
}

/// An evaluation split (`eval.splits`, `spear eval --split`). Which ones an environment has:
/// [`super::EnvKind::eval_splits`].
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum EvalSplit {
    /// Household: ALFWorld's `eval_in_distribution` (new tasks on the training floor plans).
    ValidSeen,
    /// Household: held-out floor plans (`eval_out_of_distribution`).
    ValidUnseen,
    /// Household: the training games.
    Train,
    /// WebShop: goals 0..500 (verl-agent's validation goals).
    Test,
    /// Math: generated problems not in the training set.
    HeldOut,
    /// Math: AIME 2024 (30 problems).
    Aime24,
    /// Math: AIME 2025 (30 problems).
    Aime25,
}

impl EvalSplit {
    /// The TOML / record name (`valid_seen`, `aime24`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            EvalSplit::ValidSeen => "valid_seen",
            EvalSplit::ValidUnseen => "valid_unseen",
            EvalSplit::Train => "train",
            EvalSplit::Test => "test",
            EvalSplit::HeldOut => "held_out",
            EvalSplit::Aime24 => "aime24",
            EvalSplit::Aime25 => "aime25",
        }
    }
}

impl fmt::Display for EvalSplit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[eval]`: held-out evaluation (spec §5.2, §5.4: 128 episodes, T = 0.4, sampling on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Episodes per split and evaluation (the paper: 128, one batch). Math: problems per
    /// split are `env.math.eval_problems`, samples per problem `env.math.eval_k`. Default 128.
    pub episodes: u64,
    /// Splits evaluated. Household: `valid_seen` (ALFWorld's `eval_in_distribution`),
    /// `valid_unseen`, `train`; WebShop: `test`; math: `held_out` (generated problems not in
    /// the training set), `aime24`, `aime25`. Default `["valid_seen"]`.
    pub splits: Vec<EvalSplit>,
    /// Temperature T (in [0, 10]). Default 0.4.
    pub temperature: f64,
    /// Nucleus mass top-p, a fraction in (0, 1]. Default 1.0.
    pub top_p: f64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            episodes: 128,
            splits: vec![EvalSplit::ValidSeen],
            temperature: 0.4,
            top_p: 1.0,
        }
    }
}
