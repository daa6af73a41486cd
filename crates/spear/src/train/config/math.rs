//! `[env.math]`: the maths environment of the trainer (`env.kind = "math"`): where problems
//! come from, the code-interpreter tool loop, the response budget and the sandbox
//! (spec §2.2, §5.3; docs/math.md "What a math-spear / math-grpo preset needs").

use serde::{Deserialize, Serialize};
use spear_envs::math::data::generator::Family;
use spear_rl::config::ConfigError;

use super::check::check_pos;

/// Where training problems come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MathSource {
    /// The offline generator (`spear_envs::math::data::generator`): integer-answer problems
    /// in six families, levels 1–3, each with a demonstration for the warm start.
    Generated,
    /// DAPO-Math-17k in verl's layout (the paper's training set, spec §5.3), a JSONL file at
    /// `dapo_path` (convert the parquet with pandas: the loader's error gives the command).
    Dapo,
}

/// How Dr.BoT's incomplete filter decides for a conversation (spec §3, §8 item 18;
/// `spear_envs::math::reward` traces `reward.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncompleteRuleArg {
    /// `reward.py` as it runs: incomplete only when the boxed answer is literally
    /// `[INVALID]`; an answer without a box is not flagged.
    Upstream,
    /// The CPU presets' rule (the intent stated in `reward.py`'s comment): no boxed
    /// answer and no tool call.
    NoAnswerNoToolCall,
}

/// How a tool call is written by the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolFormatArg {
    /// Hermes `<tool_call>` if present, else a fenced ```` ```python ```` block.
    Auto,
    /// Qwen hermes `<tool_call>{"name": "code_interpreter", …}</tool_call>` only.
    Hermes,
    /// Fenced ```` ```python ```` blocks only.
    PythonFence,
}

/// Which executor runs the model's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxBackend {
    /// Same as `bwrap` (kept so that older configs load): bubblewrap, or an error. It never
    /// falls back to running model code without isolation.
    Auto,
    /// Bubblewrap, or an error telling to install it (the default).
    Bwrap,
    /// Resource limits only: **not an isolation boundary** (trusted code only). Used only
    /// when chosen by name; the run header and `config.toml` then say so.
    Rlimits,
    /// A SandboxFusion `/run_code` service at `url`.
    Http,
}

/// `[env.math.sandbox]`: the code interpreter (recipe tool config: 30 s, 1024 MB).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxSection {
    /// Executor: `bwrap` (refuses to run without bubblewrap), `rlimits` (NO isolation,
    /// trusted code only) or `http` (a SandboxFusion service). Default `bwrap`.
    pub backend: SandboxBackend,
    /// SandboxFusion URL (`backend = "http"`), e.g. `http://10.0.0.1:8080/run_code`.
    /// Default empty.
    pub url: String,
    /// Wall-clock limit per call, in seconds. Default 30 (the recipe).
    pub timeout_s: f64,
    /// Address-space limit per call, in MiB (at least 64). Default 1024 (the recipe).
    pub memory_mb: u64,
    /// Tool calls run at once, in processes (or concurrent requests). Default 4.
    pub concurrency: u64,
}

impl Default for SandboxSection {
    fn default() -> Self {
        Self {
            backend: SandboxBackend::Bwrap,
            url: String::new(),
            timeout_s: 30.0,
            memory_mb: 1024,
            concurrency: 4,
        }
    }
}

/// `[env.math]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MathConfig {
    /// Training problems: `generated` (offline) or `dapo` (DAPO-Math-17k JSONL). Default
    /// `generated`.
    pub source: MathSource,
    /// `source = "dapo"`: path of the JSONL file (verl's layout). Default empty.
    pub dapo_path: String,
    /// Generator seed of the training problems (the held-out set uses another seed derived
    /// from it; problems whose text also occurs in the training set are dropped). Default 0.
    pub generator_seed: u64,
    /// Generator difficulty levels (1–3). Default empty = all three.
    pub levels: Vec<u64>,
    /// Generator families (`big_arithmetic`, `modular`, `combinatorics`, `number_theory`,
    /// `linear_system`, `sequence`, and `multiply`, which only this setting names: one
    /// product of two 2-, 3- or 4-digit numbers by level). Default empty = the six of the
    /// default mix. Named families are generated in turn, in the order given.
    pub families: Vec<Family>,
    /// Fraction of the warm-start demonstrations (generated source) that call the code
    /// interpreter; the rest answer directly with a boxed number and no tool call
    /// (`generator::direct_demonstration`). Which ones is fixed by `generator_seed`. A low
    /// rate gives the "warm start that rarely calls the tool" of the tool-use experiment
    /// (RESULTS.md). Default 1 (all call it).
    pub demo_tool_rate: f64,
    /// Training problems (generated: this many; dapo: the first this many, 0 = all).
    /// Default 1024.
    pub train_problems: u64,
    /// Problems per evaluation split (`held_out`: generated; `aime24`/`aime25`: the first
    /// this many of 30, 0 = all). Default 32.
    pub eval_problems: u64,
    /// Samples per evaluation problem, k of avg@k / pass@k (the paper: 32). Default 4.
    pub eval_k: u64,
    /// Assistant turns per conversation (`max_assistant_turns`, spec §5.3). Default 8.
    pub max_assistant_turns: u64,
    /// Tool turns per conversation (`max_user_turns`, spec §5.3). Default 8.
    pub max_user_turns: u64,
    /// Response budget per conversation, in tokens, tool output included (verl
    /// `response_length`, spec §5.3); equals `rl.drbot.max_response_length`.
    /// `sampling.max_new_tokens` caps each assistant turn. Default 16384.
    pub max_response_tokens: u64,
    /// Tool replies longer than this many characters keep half at each end. Default 16384
    /// (the recipe).
    pub max_tool_response_chars: u64,
    /// How tool calls are written. Default `auto`.
    pub tool_format: ToolFormatArg,
    /// System message before the problem. Default empty: none, or — for templates that do not
    /// render the tool schema (SmolLM2, the tiny model) — the built-in fenced-Python
    /// instruction (`spear::rollout::math::FENCE_SYSTEM_PROMPT`).
    pub system_prompt: String,
    /// Dr.BoT incomplete rule. Default `upstream` (only a boxed `[INVALID]`); the CPU
    /// presets set `no_answer_no_tool_call`.
    pub incomplete_rule: IncompleteRuleArg,
    /// Most conversations per `generate` call (memory bound; 0 = all). Results do not depend
    /// on it. Default 0.
    pub max_batch_conversations: u64,
    /// The code interpreter (`[env.math.sandbox]`).
    pub sandbox: SandboxSection,
}

impl Default for MathConfig {
    fn default() -> Self {
        Self {
            source: MathSource::Generated,
            dapo_path: String::new(),
            generator_seed: 0,
            levels: vec![],
            families: vec![],
            demo_tool_rate: 1.0,
            train_problems: 1024,
            eval_problems: 32,
            eval_k: 4,
            max_assistant_turns: 8,
            max_user_turns: 8,
            max_response_tokens: 16384,
            max_tool_response_chars: 16384,
            tool_format: ToolFormatArg::Auto,
            system_prompt: String::new(),
            incomplete_rule: IncompleteRuleArg::Upstream,
            max_batch_conversations: 0,
            sandbox: SandboxSection::default(),
        }
    }
}

impl MathConfig {
    /// Checks `[env.math]`, naming the dotted key (what it asks of other sections is checked
    /// by `TrainConfig::validate`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.source == MathSource::Dapo && self.dapo_path.is_empty() {
            return Err(ConfigError::new(
                "env.math.dapo_path",
                "empty; source = \"dapo\" needs the DAPO-Math-17k JSONL file",
            ));
        }
        if let Some(l) = self.levels.iter().find(|l| !(1..=3).contains(*l)) {
            return Err(ConfigError::new(
                "env.math.levels",
                format!("level {l} does not exist; levels are 1, 2 and 3"),
            ));
        }
        if self.source == MathSource::Generated {
            check_pos("env.math.train_problems", self.train_problems)?;
        }
        spear_rl::config::check_range("env.math.demo_tool_rate", self.demo_tool_rate, 0.0, 1.0)?;
        check_pos("env.math.eval_k", self.eval_k)?;
        check_pos("env.math.max_assistant_turns", self.max_assistant_turns)?;
        check_pos("env.math.max_response_tokens", self.max_response_tokens)?;
        check_pos(
            "env.math.max_tool_response_chars",
            self.max_tool_response_chars,
        )?;
        let s = &self.sandbox;
        spear_rl::config::check_range("env.math.sandbox.timeout_s", s.timeout_s, 0.1, 3600.0)?;
        if s.memory_mb < 64 {
            return Err(ConfigError::new(
                "env.math.sandbox.memory_mb",
                format!(
                    "{} MiB is too little for Python; use at least 64",
                    s.memory_mb
                ),
            ));
        }
        check_pos("env.math.sandbox.concurrency", s.concurrency)?;
        if s.backend == SandboxBackend::Http && s.url.is_empty() {
            return Err(ConfigError::new(
                "env.math.sandbox.url",
                "empty; backend = \"http\" needs the SandboxFusion /run_code URL",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::train::config::TrainConfig;
    use crate::train::presets::preset;

    fn key_of(sets: &[&str]) -> String {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        preset("math-tiny")
            .unwrap()
            .with_overrides(&sets)
            .unwrap_err()
            .key
    }

    #[test]
    fn every_math_error_names_its_key() {
        assert_eq!(key_of(&["env.math.levels=[0]"]), "env.math.levels");
        assert_eq!(key_of(&["env.math.families=[\"x\"]"]), "env.math.families");
        assert_eq!(key_of(&["env.math.source=dapo"]), "env.math.dapo_path");
        assert_eq!(key_of(&["env.math.source=parquet"]), "env.math.source");
        assert_eq!(
            key_of(&["env.math.demo_tool_rate=1.5"]),
            "env.math.demo_tool_rate"
        );
        assert_eq!(
            key_of(&["env.math.train_problems=0"]),
            "env.math.train_problems"
        );
        assert_eq!(key_of(&["env.math.eval_k=0"]), "env.math.eval_k");
        assert_eq!(
            key_of(&["env.math.eval_problems=0"]),
            "env.math.eval_problems"
        );
        assert_eq!(
            key_of(&["env.math.max_assistant_turns=0"]),
            "env.math.max_assistant_turns"
        );
        assert_eq!(
            key_of(&["env.math.sandbox.backend=http"]),
            "env.math.sandbox.url"
        );
        assert_eq!(
            key_of(&["env.math.sandbox.timeout_s=0"]),
            "env.math.sandbox.timeout_s"
        );
        assert_eq!(
            key_of(&["env.math.sandbox.memory_mb=10"]),
            "env.math.sandbox.memory_mb"
        );
        assert_eq!(
            key_of(&["env.math.sandbox.nope=1"]),
            "env.math.sandbox.nope"
        );
        assert_eq!(key_of(&["eval.splits=[\"valid_seen\"]"]), "eval.splits");
        assert_eq!(
            key_of(&["env.math.max_response_tokens=100"]),
            "rl.drbot.max_response_length"
        );
        assert_eq!(
            key_of(&["rl.reward.toolcall_variant=agent"]),
            "rl.reward.toolcall_variant"
        );
        // Without a tool-call reward the variant does not matter.
        preset("math-tiny-grpo")
            .unwrap()
            .with_overrides(&["rl.reward.toolcall_variant=agent".into()])
            .unwrap();
    }

    #[test]
    fn math_section_round_trips_and_household_ignores_it() {
        let c = preset("math-spear").unwrap();
        assert_eq!(TrainConfig::from_toml_str(&c.to_toml_string()).unwrap(), c);
        // A household config does not validate [env.math] splits.
        let h = TrainConfig::default()
            .with_overrides(&["env.math.levels=[2, 3]".into()])
            .unwrap();
        assert_eq!(h.env.math.levels, vec![2, 3]);
    }
}
