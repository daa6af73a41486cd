//! Building what a run needs from its config: the task splits, the policy (a tiny
//! from-scratch decoder whose word-level vocabulary comes from the environment's text, or a
//! pretrained model), and the expert demonstrations of the supervised warm start.

use std::sync::Arc;

use anyhow::Context;
use candle_core::{DType, Device};
use spear_envs::household::{
    expert_demo, GameSet, GameSource, GeneratorConfig, HouseholdEnv, Split, TaskType,
};
use spear_envs::webshop::expert::Expert;
use spear_envs::webshop::generate::{generate_products, GenerateOptions};
use spear_envs::webshop::goals::GoalMode;
use spear_envs::webshop::{Catalog, Split as WebshopSplit, WebShopEnv, EVAL_GOALS};
use spear_envs::Environment;
use spear_model::config::Arch;
use spear_model::decoder::Decoder;
use spear_model::{ChatMessage, ModelConfig, Policy, TextTokenizer};

use super::config::{HouseholdSource, ModelSection, TinyArch, TinyTokenizer, TrainConfig};
use crate::agent::memory::Memory;
use crate::agent::prompts::{household_prompt, household_task, webshop_prompt};

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
    let tok = match m.tokenizer {
        TinyTokenizer::Words => TextTokenizer::word_level(&refs, 1, TINY_SPECIAL_TOKENS)?,
        TinyTokenizer::Exact => TextTokenizer::word_level_exact(&refs, 1, TINY_SPECIAL_TOKENS)?,
    };
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

/// The WebShop side of a run: one generated catalogue; training goals are WebShop's
/// `500..` split, evaluation goals its first 500 (`test`, verl-agent's validation goals).
#[derive(Debug, Clone)]
pub struct WebshopTasks {
    /// The catalogue (products, goals, search index), shared by every environment.
    pub catalog: Arc<Catalog>,
    /// Training goals.
    pub train: usize,
    /// Evaluation splits, by name, with their goal counts.
    pub evals: Vec<(String, usize)>,
}

/// WebShop's evaluation split name (goals `0..500`).
pub const WEBSHOP_EVAL_SPLIT: &str = "test";

/// `n` WebShop environments on `split`, capped at `max_turns` steps.
pub fn webshop_group(
    catalog: &Arc<Catalog>,
    split: WebshopSplit,
    n: usize,
    max_turns: usize,
) -> Vec<WebShopEnv> {
    let env = WebShopEnv::new(catalog.clone(), split).with_max_steps(max_turns);
    vec![env; n]
}

/// Generates the catalogue of `[env.webshop]` and its splits.
pub fn load_webshop(cfg: &TrainConfig) -> anyhow::Result<WebshopTasks> {
    let w = &cfg.env.webshop;
    anyhow::ensure!(
        w.products > 0,
        "env.webshop.products = 0: the catalogue needs products"
    );
    let products = generate_products(GenerateOptions::new(w.products as usize, w.catalog_seed));
    let catalog = Arc::new(Catalog::new(products, GoalMode::Synthetic, w.catalog_seed));
    let train = WebShopEnv::new(catalog.clone(), WebshopSplit::Train).num_tasks();
    anyhow::ensure!(
        train > 0,
        "env.webshop.products = {}: the catalogue has {} goals, all in the evaluation split \
         (the first {EVAL_GOALS}); raise env.webshop.products",
        w.products,
        catalog.goals.len()
    );
    let mut evals = vec![];
    for name in &cfg.eval.splits {
        anyhow::ensure!(
            name == WEBSHOP_EVAL_SPLIT,
            "eval.splits: WebShop has one evaluation split, {WEBSHOP_EVAL_SPLIT:?} (goals \
             0..{EVAL_GOALS}), not {name:?}"
        );
        let n = WebShopEnv::new(catalog.clone(), WebshopSplit::Eval).num_tasks();
        evals.push((name.clone(), n));
    }
    Ok(WebshopTasks {
        catalog,
        train,
        evals,
    })
}

/// The oracle expert's winning episodes on the first `count` training goals, rendered exactly
/// as the RL prompts of the agent loop (spec §7; history of `history_length` pairs, each action
/// paired with the page it was taken on).
pub fn webshop_sft_examples(
    tasks: &WebshopTasks,
    count: usize,
    history_length: usize,
    max_turns: usize,
) -> anyhow::Result<Vec<SftExample>> {
    let mut out = vec![];
    let mut env =
        WebShopEnv::new(tasks.catalog.clone(), WebshopSplit::Train).with_max_steps(max_turns);
    for task in 0..count.min(tasks.train) {
        env.reset(task, 0)?;
        let goal = env.task_description().to_string();
        let mut memory = Memory::new();
        let mut expert = Expert::new();
        let mut steps = vec![];
        let won = loop {
            let action = expert.act(&env);
            let page = env.formatted_observation();
            let prompt = webshop_prompt(
                &goal,
                &page,
                &env.formatted_actions(),
                &memory,
                history_length,
            );
            steps.push(SftExample {
                prompt,
                response: demo_response(&goal, &action),
            });
            memory.store(page, action.clone());
            let o = env.step(&action)?;
            if o.done {
                break o.won;
            }
        };
        if won {
            out.extend(steps);
        }
    }
    Ok(out)
}

/// Text for a tiny policy's vocabulary on WebShop: the demonstrations plus the first page of
/// every training goal (its instruction).
pub fn webshop_corpus(tasks: &WebshopTasks, examples: &[SftExample]) -> Vec<String> {
    let mut corpus: Vec<String> = examples
        .iter()
        .flat_map(|e| [e.prompt.clone(), e.response.clone()])
        .collect();
    corpus.push("system user assistant tool".into());
    let mut env = WebShopEnv::new(tasks.catalog.clone(), WebshopSplit::Train);
    for i in 0..tasks.train {
        if env.reset(i, 0).is_ok() {
            corpus.push(env.formatted_observation());
        }
    }
    corpus
}

/// Catalogue, demonstrations and policy of a WebShop run.
pub fn webshop_run(cfg: &TrainConfig) -> anyhow::Result<(WebshopTasks, Vec<SftExample>, Policy)> {
    let tasks = load_webshop(cfg)?;
    let n_demo = if cfg.sft.games == 0 {
        tasks.train
    } else {
        cfg.sft.games as usize
    };
    let examples = if cfg.sft.enabled || cfg.model.name == "tiny" {
        webshop_sft_examples(
            &tasks,
            n_demo,
            cfg.env.history_length as usize,
            cfg.env.max_turns as usize,
        )?
    } else {
        vec![]
    };
    let policy = build_policy(cfg, || webshop_corpus(&tasks, &examples))?;
    Ok((tasks, examples, policy))
}
