//! Building what a run needs from its config: the task splits, the policy (a tiny
//! from-scratch decoder whose word-level vocabulary comes from the environment's text, or a
//! pretrained model), and the expert demonstrations of the supervised warm start.

use std::sync::Arc;

use anyhow::Context;
use candle_core::{DType, Device};
use spear_envs::household::{
    expert_demo, GameSet, GameSource, GeneratorConfig, HouseholdEnv, Split, TaskType,
};
use spear_envs::Environment;
use spear_model::config::Arch;
use spear_model::decoder::Decoder;
use spear_model::{ChatMessage, ModelConfig, Policy, TextTokenizer};

use super::config::{HouseholdSource, ModelSection, TinyArch, TrainConfig};
use crate::agent::memory::Memory;
use crate::agent::prompts::{household_prompt, household_task};

/// Tokens a tiny word-level policy must treat as single tokens: the response tags (so the
/// projection finds them after decoding) and `in/on` (the household `put` command, which the
/// word splitter would otherwise cut into `in / on`).
pub const TINY_SPECIAL_TOKENS: &[&str] = &["<think>", "</think>", "<action>", "</action>", "in/on"];

/// The household splits of a run.
#[derive(Debug, Clone)]
pub struct HouseholdTasks {
    /// Training games.
    pub train: GameSet,
    /// Evaluation splits, by name.
    pub evals: Vec<(String, GameSet)>,
}

fn generator_config(cfg: &TrainConfig) -> GeneratorConfig {
    let h = &cfg.env.household;
    let opt = |v: u64| (v > 0).then_some(v as usize);
    GeneratorConfig {
        seed: h.generator_seed,
        task_types: if h.task_types.is_empty() {
            TaskType::ALL.to_vec()
        } else {
            // Names are validated by `TrainConfig::validate`; none is dropped silently.
            h.task_types
                .iter()
                .map(|t| TaskType::parse(t).expect("task type validated by the config"))
                .collect()
        },
        max_receptacles: opt(h.max_receptacles),
        max_distractor_classes: opt(h.max_distractor_classes),
        max_instances: h.max_instances as usize,
    }
}

fn source(cfg: &TrainConfig, split: Split, count: u64) -> GameSource {
    let h = &cfg.env.household;
    match h.source {
        HouseholdSource::Generated => GameSource::Generated {
            config: generator_config(cfg),
            split,
            count: (count > 0).then_some(count as usize),
        },
        HouseholdSource::Alfworld => GameSource::Alfworld {
            root: (!h.alfworld_root.is_empty()).then(|| h.alfworld_root.clone().into()),
            split,
            task_types: generator_config(cfg).task_types,
        },
    }
}

/// Generates (or loads) the training split and every evaluation split of the config.
pub fn load_household(cfg: &TrainConfig) -> anyhow::Result<HouseholdTasks> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let h = &cfg.env.household;
    let train = source(cfg, Split::Train, h.train_games)
        .load(threads)
        .context("loading the household training split")?;
    let mut evals = vec![];
    for name in &cfg.eval.splits {
        let split = Split::parse(name)
            .with_context(|| format!("eval.splits: unknown household split {name:?}"))?;
        let set = source(cfg, split, h.eval_games)
            .load(threads)
            .with_context(|| format!("loading the household {name} split"))?;
        evals.push((name.clone(), set));
    }
    Ok(HouseholdTasks { train, evals })
}

/// One supervised example: prompt text (before the chat template) and the response text.
#[derive(Debug, Clone, PartialEq)]
pub struct SftExample {
    /// The RL prompt of the step (same template, same history).
    pub prompt: String,
    /// `<think>…</think><action>…</action>`.
    pub response: String,
}

/// The response the warm start teaches for one expert step. The thinking restates the goal
/// (the planner has no verbal reasoning to offer); the action is the expert's command.
pub fn demo_response(task: &str, action: &str) -> String {
    format!("<think>My task is to {task}</think><action>{action}</action>")
}

/// Expert demonstrations of `games` rendered exactly as the RL prompts of the agent loop
/// (spec §7): one example per expert step, history of `history_length` pairs.
pub fn household_sft_examples(
    games: &GameSet,
    count: usize,
    history_length: usize,
) -> anyhow::Result<Vec<SftExample>> {
    let mut out = vec![];
    for game in games.games.iter().take(count) {
        let demo = match expert_demo(game) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("no demonstration for {}: {e}", game.source);
                continue;
            }
        };
        let Some(first) = demo.first() else { continue };
        let task = household_task(&first.obs).unwrap_or_else(|| game.task_description().into());
        let mut memory = Memory::new();
        for step in &demo {
            let prompt =
                household_prompt(&task, &step.obs, &step.admissible, &memory, history_length);
            out.push(SftExample {
                prompt,
                response: demo_response(&task, &step.action),
            });
            memory.store(step.obs.clone(), step.action.clone());
        }
    }
    Ok(out)
}

/// Text for a tiny policy's vocabulary: the demonstrations plus the first observation and
/// admissible commands of every training game.
pub fn household_corpus(tasks: &HouseholdTasks, examples: &[SftExample]) -> Vec<String> {
    let mut corpus: Vec<String> = examples
        .iter()
        .flat_map(|e| [e.prompt.clone(), e.response.clone()])
        .collect();
    // The chat template's role names.
    corpus.push("system user assistant tool".into());
    let mut env = HouseholdEnv::new(tasks.train.games.clone());
    for i in 0..tasks.train.games.len() {
        if let Ok(obs) = env.reset(i, 0) {
            corpus.push(obs.text);
            corpus.push(obs.admissible_actions.join(" \n "));
        }
    }
    corpus
}

/// A tiny from-scratch policy: word-level tokenizer from `corpus` (with
/// [`TINY_SPECIAL_TOKENS`]) and a random decoder sized by `[model]`.
pub fn tiny_policy(m: &ModelSection, corpus: &[String], seed: u64) -> anyhow::Result<Policy> {
    let refs: Vec<&str> = corpus.iter().map(String::as_str).collect();
    let tok = TextTokenizer::word_level(&refs, 1, TINY_SPECIAL_TOKENS)?;
    tiny_policy_with(m, tok, seed)
}

/// A random decoder sized by `[model]` on the given tokenizer.
pub fn tiny_policy_with(m: &ModelSection, tok: TextTokenizer, seed: u64) -> anyhow::Result<Policy> {
    let arch = match m.arch {
        TinyArch::Qwen2 => Arch::Qwen2,
        TinyArch::Llama => Arch::Llama,
        TinyArch::Qwen3 => Arch::Qwen3,
    };
    let mut cfg = ModelConfig::tiny(arch, tok.vocab_size());
    cfg.hidden_size = m.hidden_size as usize;
    cfg.intermediate_size = m.intermediate_size as usize;
    cfg.num_layers = m.num_layers as usize;
    cfg.num_heads = m.num_heads as usize;
    cfg.num_kv_heads = m.num_kv_heads as usize;
    cfg.head_dim = (m.hidden_size / m.num_heads) as usize;
    cfg.max_position_embeddings = m.max_position_embeddings as usize;
    cfg.eos_token_ids = tok.stop_token_ids.clone();
    let model = Decoder::random(cfg, seed, m.init_std, DType::F32, &Device::Cpu)?;
    Ok(Policy::new(model, tok)?)
}

/// The policy of a run: tiny (needs the corpus) or loaded by name/path.
pub fn build_policy(
    cfg: &TrainConfig,
    corpus: impl FnOnce() -> Vec<String>,
) -> anyhow::Result<Policy> {
    if cfg.model.name == "tiny" {
        return tiny_policy(&cfg.model, &corpus(), cfg.run.seed);
    }
    Policy::load(&cfg.model.name, DType::F32, &Device::Cpu).with_context(|| {
        format!(
            "model.name = {:?}: loading the policy (a known name such as smollm2-135m, a .gguf \
             file, or an HF model directory)",
            cfg.model.name
        )
    })
}

/// Everything a household run builds from its config: the splits, the warm-start
/// demonstrations (also the tiny policy's vocabulary source; empty when neither needs them)
/// and the policy. `spear train` and `spear eval` share it, so a tiny policy's vocabulary is
/// rebuilt identically and its checkpoints fit.
pub fn household_run(
    cfg: &TrainConfig,
) -> anyhow::Result<(HouseholdTasks, Vec<SftExample>, Policy)> {
    let tasks = load_household(cfg)?;
    let n_demo = if cfg.sft.games == 0 {
        tasks.train.games.len()
    } else {
        cfg.sft.games as usize
    };
    let examples = if cfg.sft.enabled || cfg.model.name == "tiny" {
        household_sft_examples(&tasks.train, n_demo, cfg.env.history_length as usize)?
    } else {
        vec![]
    };
    let policy = build_policy(cfg, || household_corpus(&tasks, &examples))?;
    Ok((tasks, examples, policy))
}

/// Chat-templated token ids of a user prompt.
pub fn prompt_ids(policy: &Policy, prompt: &str) -> anyhow::Result<Vec<u32>> {
    Ok(policy.chat_prompt_ids(&[ChatMessage::user(prompt.to_string())], None)?)
}

/// Token ids of a response as the sampler would emit it: the text, then the first stop token.
pub fn response_ids(policy: &Policy, response: &str) -> anyhow::Result<Vec<u32>> {
    let mut ids = policy.tokenizer.encode(response)?;
    if let Some(&eos) = policy.tokenizer.stop_token_ids.first() {
        ids.push(eos);
    }
    Ok(ids)
}

/// Shares games between threads.
pub type Games = Arc<Vec<Arc<spear_envs::household::Game>>>;
