//! The trainer's TOML configuration: every field has a default and a doc comment that states
//! it (with its unit); presets ([`super::presets`]) start from these defaults; `--set
//! key=value` edits one dotted key.
//!
//! ```toml
//! [run]      # name, seed, iterations, evaluation and checkpoint cadence
//! [env]      # which environment, tasks per iteration, group size G, turn cap, history
//! [env.household]
//! [env.webshop]
//! [env.math]  # env.kind = "math": problems, tool loop, response budget, sandbox
//! [model]    # the policy: a tiny from-scratch decoder, a pretrained name, or a path
//! [sampling] # rollout sampling (train) — evaluation has its own in [eval]
//! [optim]    # AdamW and the micro-batch token budget
//! [sft]      # supervised warm start from expert demonstrations
//! [eval]     # held-out evaluation
//! [rollout]  # the rollout engine: in-process, or inference servers over HTTP
//! [rl]       # the learner: spear_rl::RlConfig ([rl.advantage], [rl.replay], [rl.loss], …)
//! [rollout]  # collection mode (sync | async) and the async staleness bound
//! ```
//!
//! The sections live in submodules (`sections`, `env`, `math`, `model`), which import only
//! each other's types and `check`; this module puts them together, reads and writes the
//! file (`toml_io`: errors with line and column, keys earlier versions wrote), and runs the
//! checks that span sections.

mod check;
mod env;
pub mod math;
mod model;
mod rollout;
mod rollout_mode;
mod sections;
mod toml_io;

use serde::{Deserialize, Serialize};
use spear_rl::config::{ConfigError, RlConfig, ToolCallReward, ToolCallVariant};

use self::check::check_f;
pub(crate) use self::check::check_pos;
pub use self::env::{
    EnvConfig, EnvKind, HouseholdConfig, HouseholdDemos, HouseholdSource, WebshopConfig,
    WebshopDemos,
};
pub use self::math::{MathConfig, SandboxBackend};
pub use self::model::{
    DeviceSpec, MatmulSpec, ModelSection, ModelSource, TinyArch, TinyTokenizer, LORA_MODULES,
};
pub use self::rollout::{ApiKind, EngineKind, RolloutSection};
pub use self::rollout_mode::RolloutMode;
pub use self::sections::{
    EvalConfig, EvalSplit, OptimConfig, RunConfig, SamplingSection, SftConfig,
};
pub use self::toml_io::IGNORED_KEYS;

/// The whole trainer configuration (`config.toml` of a run).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Identity and cadence.
    pub run: RunConfig,
    /// Environment and rollout shape.
    pub env: EnvConfig,
    /// Policy.
    pub model: ModelSection,
    /// Rollout sampling.
    pub sampling: SamplingSection,
    /// Optimizer.
    pub optim: OptimConfig,
    /// Supervised warm start.
    pub sft: SftConfig,
    /// Evaluation.
    pub eval: EvalConfig,
    /// The rollout engine (in-process, or inference servers over HTTP).
    pub rollout: RolloutSection,
    /// The learner (`spear_rl::config::RlConfig`; its random draws are seeded from `run.seed`).
    pub rl: RlConfig,
}

impl TrainConfig {
    /// Parses a TOML config (every missing key takes its default) and validates it. A syntax
    /// error, and any error about a key the file spells out, gives its line and column and
    /// shows the line; [`IGNORED_KEYS`] are dropped with a warning.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let mut doc: toml::Table =
            toml::from_str(text).map_err(|e| toml_io::syntax_error(text, &e))?;
        toml_io::drop_ignored_keys(&mut doc);
        Self::from_value(toml::Value::Table(doc)).map_err(|e| toml_io::with_position(text, e))
    }

    /// Deserialises from a TOML value, naming the dotted key of the first error.
    pub fn from_value(value: toml::Value) -> Result<Self, ConfigError> {
        let cfg: TrainConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            // A map key that did not parse is a `?` segment (`env.household.demo_share.?`):
            // name the map.
            let path = e.path().to_string().trim_end_matches(".?").to_string();
            // The message alone: the key is named once, as the error's key.
            let msg = e.into_inner().message().trim().to_string();
            let key = match toml_io::unknown_field(&msg) {
                Some(f) if path == "." || path.is_empty() => f,
                Some(f) if !path.ends_with(&f) => format!("{path}.{f}"),
                _ => path,
            };
            ConfigError::new(toml_io::without_indices(&key), msg)
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The config as TOML (what `config.toml` of a run holds).
    pub fn to_toml_string(&self) -> String {
        toml::to_string(self).expect("TrainConfig always serialises to TOML")
    }

    /// Applies `key=value` overrides (dotted keys; values in TOML syntax, bare words taken as
    /// strings), then validates. Unknown keys are errors listing the keys that exist there.
    pub fn with_overrides(&self, sets: &[String]) -> Result<Self, ConfigError> {
        let mut value = toml::Value::try_from(self).expect("TrainConfig serialises");
        for s in sets {
            let (key, raw) = s.split_once('=').ok_or_else(|| {
                ConfigError::new(s.clone(), "expected KEY=VALUE, e.g. run.iterations=10")
            })?;
            toml_io::set_dotted(&mut value, key.trim(), raw.trim())?;
        }
        Self::from_value(value)
    }

    /// Range and consistency checks, naming the dotted key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_pos("run.iterations", self.run.iterations)?;
        check_pos("run.save_every", self.run.save_every)?;
        if self.run.name.is_empty()
            || self.run.name == "."
            || self.run.name == ".."
            || self
                .run
                .name
                .chars()
                .any(|c| c == '/' || c == '\\' || c.is_control())
        {
            return Err(ConfigError::new(
                "run.name",
                format!(
                    "{:?} is not a run name: the run directory is <run.out_dir>/<run.name>, so \
                     the name must be one plain path component (not empty, `.` or `..`, no \
                     slashes or control characters), e.g. run.name=my-run",
                    self.run.name
                ),
            ));
        }
        check_pos("env.tasks_per_iter", self.env.tasks_per_iter)?;
        check_pos("env.group_size", self.env.group_size)?;
        check_pos("env.max_turns", self.env.max_turns)?;
        check_pos(
            "env.household.max_instances",
            self.env.household.max_instances,
        )?;
        for (t, share) in &self.env.household.demo_share {
            check_f(&format!("env.household.demo_share.{t}"), *share, 0.0, 1.0)?;
        }
        self.model.validate()?;
        check_f(
            "sampling.temperature",
            self.sampling.temperature,
            1e-6,
            10.0,
        )?;
        check_f("sampling.top_p", self.sampling.top_p, 1e-6, 1.0)?;
        check_pos("sampling.max_new_tokens", self.sampling.max_new_tokens)?;
        check_f("optim.lr", self.optim.lr, 0.0, 1.0)?;
        check_f("optim.weight_decay", self.optim.weight_decay, 0.0, 1.0)?;
        check_f("optim.beta1", self.optim.beta1, 0.0, 0.999999)?;
        check_f("optim.beta2", self.optim.beta2, 0.0, 0.999999)?;
        check_pos("optim.token_budget", self.optim.token_budget)?;
        check_pos("sft.epochs", self.sft.epochs)?;
        check_pos("sft.batch_size", self.sft.batch_size)?;
        check_f("sft.lr", self.sft.lr, 0.0, 1.0)?;
        check_pos("eval.episodes", self.eval.episodes)?;
        check_f("eval.temperature", self.eval.temperature, 0.0, 10.0)?;
        check_f("eval.top_p", self.eval.top_p, 1e-6, 1.0)?;
        match self.env.kind {
            EnvKind::Math => {
                self.env.math.validate()?;
                self.validate_splits()?;
                self.validate_math_cross_section()?;
            }
            EnvKind::Webshop => {
                check_pos("env.webshop.products", self.env.webshop.products)?;
                self.validate_splits()?;
            }
            EnvKind::Household => self.validate_splits()?,
        }
        self.rollout.validate()?;
        self.rl.validate().map_err(|e| prefix_key("rl", e))?;
        self.validate_cross_field()?;
        self.validate_rollout_mode()?;
        Ok(())
    }

    /// Every `eval.splits` entry is one of the environment's splits.
    fn validate_splits(&self) -> Result<(), ConfigError> {
        let kind = self.env.kind;
        let allowed = kind.eval_splits();
        let Some(bad) = self.eval.splits.iter().find(|s| !allowed.contains(s)) else {
            return Ok(());
        };
        let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        let message = match kind {
            EnvKind::Household => {
                format!("unknown split \"{bad}\"; allowed: {}", names.join(", "))
            }
            EnvKind::Webshop => format!(
                "unknown WebShop split \"{bad}\"; allowed: test (goals 0..500, verl-agent's \
                 validation goals)"
            ),
            EnvKind::Math => {
                format!(
                    "unknown math split \"{bad}\"; allowed: {}",
                    names.join(", ")
                )
            }
        };
        Err(ConfigError::new("eval.splits", message))
    }

    /// The keys of other sections that a math run reads differently (`eval.splits`,
    /// `rl.drbot.max_response_length`, `rl.reward.toolcall_variant`).
    fn validate_math_cross_section(&self) -> Result<(), ConfigError> {
        let (m, rl) = (&self.env.math, &self.rl);
        if self.eval.splits.contains(&EvalSplit::HeldOut) {
            check_pos("env.math.eval_problems", m.eval_problems)?;
        }
        // verl's `response_length` is both the budget and Dr.BoT's overlong threshold (and the
        // `seq-mean-token-sum-norm` length): keep them one number.
        if rl.drbot.max_response_length != m.max_response_tokens {
            return Err(ConfigError::new(
                "rl.drbot.max_response_length",
                format!(
                    "{} differs from env.math.max_response_tokens = {}; for math they are one \
                     number (verl's response_length): set both",
                    rl.drbot.max_response_length, m.max_response_tokens
                ),
            ));
        }
        if rl.reward.toolcall_reward != ToolCallReward::None
            && rl.reward.toolcall_variant == ToolCallVariant::Agent
        {
            return Err(ConfigError::new(
                "rl.reward.toolcall_variant",
                "`agent` counts environment steps; math needs `math_qwen3` or `math_qwen25` \
                 (or rl.reward.toolcall_reward = \"none\")",
            ));
        }
        Ok(())
    }

    /// Conditions between keys that would otherwise fail only at run time (after the warm
    /// start), leaving a run directory that can neither start over nor resume.
    fn validate_cross_field(&self) -> Result<(), ConfigError> {
        // Dr.BoT's std group filter keeps floor(ratio × groups) groups; with none kept the
        // first iteration fails. Groups per iteration = tasks per iteration (household: at
        // most the number of training games).
        let ratio = self.rl.drbot.rollout_filter_ratio;
        if ratio < 1.0 {
            let mut groups = self.env.tasks_per_iter;
            let mut why = format!("env.tasks_per_iter = {groups}");
            let h = &self.env.household;
            if self.env.kind == EnvKind::Household
                && h.source == HouseholdSource::Generated
                && h.train_games > 0
                && h.train_games < groups
            {
                groups = h.train_games;
                why = format!("env.household.train_games = {groups}");
            }
            let kept = (ratio * groups as f64) as u64;
            if kept == 0 {
                let need = (1.0 / ratio).ceil() as u64;
                return Err(ConfigError::new(
                    "rl.drbot.rollout_filter_ratio",
                    format!(
                        "keeps floor({ratio} × {groups}) = 0 groups per iteration with {why}, \
                         so training would stop at iteration 1: set env.tasks_per_iter to at \
                         least {need}, or turn the std group filter off with \
                         rl.drbot.rollout_filter_ratio=1.0"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `rollout.mode = "async"` needs an environment whose rollout runs episodes
    /// independently (the agent loop: household, WebShop).
    fn validate_rollout_mode(&self) -> Result<(), ConfigError> {
        if self.rollout.mode == RolloutMode::Async && self.env.kind == EnvKind::Math {
            return Err(ConfigError::new(
                "rollout.mode",
                "\"async\" is not supported with env.kind = \"math\" (its tool loop generates \
                 one batch per turn): use rollout.mode = \"sync\"",
            ));
        }
        Ok(())
    }

    /// Keys that `spear train --resume RUN --set KEY=VALUE` may change: they do not change
    /// what the run already computed (how long it runs, evaluation and checkpoint cadence,
    /// logging, how the coming rollouts are collected (`rollout.mode`, `rollout.max_staleness`),
    /// and where the inference servers are and how patiently they are waited for — the servers
    /// load the run's weights at start-up, so moving them changes no result). The engine, the
    /// dialect and the served model name stay: switching engines mid-run would change the
    /// sampler's numbers.
    pub const RESUME_SETTABLE: &'static [&'static str] = &[
        "run.iterations",
        "run.eval_every",
        "run.save_every",
        "run.log_episodes",
        "rollout.mode",
        "rollout.max_staleness",
        "rollout.endpoints",
        "rollout.request_timeout_s",
        "rollout.max_retries",
        "rollout.keep_weights",
    ];

    /// `--set` overrides on `--resume`: only [`Self::RESUME_SETTABLE`] keys; any other key is
    /// an error naming it.
    pub fn with_resume_overrides(&self, sets: &[String]) -> Result<Self, ConfigError> {
        for s in sets {
            let key = s
                .split_once('=')
                .map(|(k, _)| k.trim())
                .unwrap_or(s.as_str());
            if !Self::RESUME_SETTABLE.contains(&key) {
                return Err(ConfigError::new(
                    key,
                    format!(
                        "cannot be changed when resuming: it would change what the run already \
                         computed. Keys that can: {}. To change it, start a new run (e.g. \
                         from this run's weights with --set model.init_checkpoint=RUN_DIR)",
                        Self::RESUME_SETTABLE.join(", ")
                    ),
                ));
            }
        }
        self.with_overrides(sets)
    }

    /// What `config.toml` of a run holds: the config as TOML, headed by a warning when the
    /// math sandbox runs model-written code without isolation.
    pub fn config_file_text(&self) -> String {
        let mut text = String::new();
        if self.env.kind == EnvKind::Math
            && self.env.math.sandbox.backend == SandboxBackend::Rlimits
        {
            text.push_str(RLIMITS_CONFIG_WARNING);
            text.push('\n');
        }
        text.push_str(&self.to_toml_string());
        text
    }
}

/// The first line of `config.toml` when `env.math.sandbox.backend = "rlimits"`.
pub const RLIMITS_CONFIG_WARNING: &str = "# WARNING: env.math.sandbox.backend = \"rlimits\" \
     (chosen explicitly): model-written code runs WITHOUT isolation, with resource limits only.";

fn prefix_key(prefix: &str, e: ConfigError) -> ConfigError {
    ConfigError::new(format!("{prefix}.{}", e.key), e.message)
}

#[cfg(test)]
mod tests;
