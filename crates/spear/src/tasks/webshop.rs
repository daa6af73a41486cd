//! WebShop (`env.kind = "webshop"`) as a [`TaskSuite`]: a generated catalogue, training
//! goals from WebShop's `500..` split, evaluation on its first 500 (`test`), the oracle
//! expert's winning episodes as warm-start demonstrations, the agent loop for collection and
//! evaluation.

use std::sync::Arc;

use anyhow::Context;
use spear_envs::webshop::expert::Expert;
use spear_envs::webshop::generate::{generate_products, GenerateOptions};
use spear_envs::webshop::goals::GoalMode;
use spear_envs::webshop::{Catalog, Split as WebshopSplit, WebShopEnv, EVAL_GOALS};
use spear_envs::Environment;
use spear_model::Policy;

use super::agent::{collect_agent, eval_agent};
use super::{CollectSettings, Collected, EvalSettings, TaskSuite, WarmStart};
use crate::agent::memory::Memory;
use crate::agent::prompts::webshop_prompt;
use crate::rollout::ChatSampler;
use crate::run_dir::EvalRecord;
use crate::train::config::{EvalSplit, ModelSource, TrainConfig};
use crate::train::setup::{build_policy, demo_response, SftExample};

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
    for &name in &cfg.eval.splits {
        let split = match name {
            EvalSplit::Test => WebshopSplit::Eval,
            EvalSplit::ValidSeen
            | EvalSplit::ValidUnseen
            | EvalSplit::Train
            | EvalSplit::HeldOut
            | EvalSplit::Aime24
            | EvalSplit::Aime25 => anyhow::bail!(
                "eval.splits: WebShop has one evaluation split, \"test\" (goals \
                 0..{EVAL_GOALS}), not \"{name}\""
            ),
        };
        let n = WebShopEnv::new(catalog.clone(), split).num_tasks();
        evals.push((name.to_string(), n));
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
    // A tiny policy's vocabulary is built from the text, the demonstrations included.
    let examples = if cfg.sft.enabled || matches!(cfg.model.name, ModelSource::Tiny) {
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

/// The WebShop suite: the catalogue, its splits and the demonstrations.
pub struct WebshopSuite {
    tasks: WebshopTasks,
    sft: Vec<SftExample>,
    max_turns: usize,
}

impl WebshopSuite {
    /// Builds the suite and the run's policy from the config.
    pub fn build(cfg: &TrainConfig) -> anyhow::Result<(Self, Policy)> {
        let (tasks, sft, policy) = webshop_run(cfg)?;
        Ok((
            WebshopSuite {
                tasks,
                sft,
                max_turns: cfg.env.max_turns as usize,
            },
            policy,
        ))
    }
}

impl TaskSuite for WebshopSuite {
    fn describe(&self) -> String {
        format!(
            "WebShop catalogue of {} products, {} training goals, evaluation {}, {} \
             demonstrations",
            self.tasks.catalog.products.len(),
            self.tasks.train,
            self.tasks
                .evals
                .iter()
                .map(|(n, k)| format!("{n}: {k} goals"))
                .collect::<Vec<_>>()
                .join(", "),
            self.sft.len()
        )
    }

    fn num_train_tasks(&self) -> usize {
        self.tasks.train
    }

    fn eval_splits(&self) -> Vec<String> {
        self.tasks.evals.iter().map(|(n, _)| n.clone()).collect()
    }

    fn warm_start(&self) -> WarmStart<'_> {
        WarmStart::Text(&self.sft, "expert steps")
    }

    fn collect(
        &self,
        sampler: &dyn ChatSampler,
        tasks: &[usize],
        s: &CollectSettings,
    ) -> anyhow::Result<Collected> {
        let envs = webshop_group(
            &self.tasks.catalog,
            WebshopSplit::Train,
            tasks.len() * s.group_size,
            self.max_turns,
        );
        collect_agent(sampler, envs, tasks, s)
    }

    fn evaluate(
        &self,
        sampler: &dyn ChatSampler,
        split: &str,
        s: &EvalSettings,
    ) -> anyhow::Result<EvalRecord> {
        let n = self
            .tasks
            .evals
            .iter()
            .find(|(name, _)| name == split)
            .with_context(|| format!("no WebShop split {split:?} in this run"))?
            .1;
        let (rec, _) = eval_agent(
            sampler,
            split,
            n,
            |k| webshop_group(&self.tasks.catalog, WebshopSplit::Eval, k, s.max_turns),
            s,
        )?;
        Ok(rec)
    }
}
