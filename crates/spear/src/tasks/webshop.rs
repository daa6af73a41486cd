//! WebShop (`env.kind = "webshop"`) as a [`TaskSuite`]: a generated catalogue, training
//! goals from WebShop's `500..` split, evaluation on its first 500 (`test`), the oracle
//! expert's winning episodes as warm-start demonstrations, the agent loop for collection and
//! evaluation.

use std::sync::Arc;

use anyhow::Context;
use spear_envs::webshop::expert::{run_policy, Expert};
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
use crate::train::config::{EvalSplit, ModelSource, TrainConfig, WebshopDemos};
use crate::train::setup::{build_policy, think_action, SftExample};

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

/// Plays `expert` on training goal `task` of `env` and renders, as the agent loop renders
/// them (history of `history_length` pairs, each action paired with the page it was taken
/// on), the steps `keep(step, action, admissible actions)` picks. Stops after step `last`
/// when given. Returns those examples and whether the episode was won.
fn expert_steps(
    env: &mut WebShopEnv,
    task: usize,
    mut expert: Expert,
    history_length: usize,
    last: Option<usize>,
    mut keep: impl FnMut(usize, &str, &[String]) -> bool,
) -> anyhow::Result<(Vec<SftExample>, bool)> {
    env.reset(task, 0)?;
    let mut memory = Memory::new();
    let mut out = vec![];
    for k in 0.. {
        let action = expert.act(env);
        let page = env.formatted_observation();
        let actions = env.formatted_actions();
        if keep(k, &action, &actions) {
            let prompt = webshop_prompt(
                env.task_description(),
                &page,
                &actions,
                &memory,
                history_length,
            );
            out.push(SftExample {
                prompt,
                response: webshop_demo_response(&action),
            });
        }
        if last == Some(k) {
            break;
        }
        memory.store(page, action.clone());
        let o = env.step(&action)?;
        if o.done {
            return Ok((out, o.won));
        }
    }
    Ok((out, false))
}

/// The winning episodes of the expert `demos` names (the oracle, or the checking expert that
/// reads item pages) on the first `count` training goals, rendered exactly as the RL prompts
/// of the agent loop (spec §7; history of `history_length` pairs, each action paired with the
/// page it was taken on).
pub fn webshop_sft_examples(
    tasks: &WebshopTasks,
    count: usize,
    history_length: usize,
    max_turns: usize,
    demos: WebshopDemos,
) -> anyhow::Result<Vec<SftExample>> {
    let mut out = vec![];
    let mut env =
        WebShopEnv::new(tasks.catalog.clone(), WebshopSplit::Train).with_max_steps(max_turns);
    for task in 0..count.min(tasks.train) {
        let expert = match demos {
            WebshopDemos::Oracle => Expert::new(),
            WebshopDemos::Checking => Expert::checking(),
        };
        let (steps, won) =
            expert_steps(&mut env, task, expert, history_length, None, |_, _, _| true)?;
        if won {
            out.extend(steps);
        }
    }
    Ok(out)
}

/// Step `step` alone (0: the expert's search for the key terms on the search page; 1: its
/// click on the first result, on the results page of that search) of the training goals in
/// `goals`, rendered as the agent loop renders that step (history of `history_length`
/// pairs): the copy curricula of `env.webshop.search_demos` and `env.webshop.click_demos`.
/// A goal whose episode ends before `step` gives no example.
pub fn webshop_step_examples(
    tasks: &WebshopTasks,
    goals: std::ops::Range<usize>,
    step: usize,
    history_length: usize,
) -> anyhow::Result<Vec<SftExample>> {
    let mut env = WebShopEnv::new(tasks.catalog.clone(), WebshopSplit::Train);
    let mut out = vec![];
    for task in goals.start.min(tasks.train)..goals.end.min(tasks.train) {
        let checking = Expert::checking();
        let keep = |k: usize, _: &str, _: &[String]| k == step;
        out.extend(expert_steps(&mut env, task, checking, history_length, Some(step), keep)?.0);
    }
    Ok(out)
}

/// Every step of the checking expert's episodes on the training goals in `goals` at which it
/// clicks one of the goal's options on an item page (a copy of an option value from the
/// instruction that the page offers), rendered as the agent loop renders it (history of
/// `history_length` pairs): the copy curriculum of `env.webshop.option_demos`. Episodes the
/// expert does not win give their option steps too: the click is right whatever follows.
pub fn webshop_option_examples(
    tasks: &WebshopTasks,
    goals: std::ops::Range<usize>,
    history_length: usize,
    max_turns: usize,
) -> anyhow::Result<Vec<SftExample>> {
    let mut env =
        WebShopEnv::new(tasks.catalog.clone(), WebshopSplit::Train).with_max_steps(max_turns);
    let navigation = ["click[buy now]", "click[< prev]", "click[back to search]"];
    let option_click = |_: usize, action: &str, actions: &[String]| {
        actions.iter().any(|a| a == "click[buy now]") && !navigation.contains(&action)
    };
    let mut out = vec![];
    for task in goals.start.min(tasks.train)..goals.end.min(tasks.train) {
        let checking = Expert::checking();
        out.extend(expert_steps(&mut env, task, checking, history_length, None, option_click)?.0);
    }
    Ok(out)
}

/// The response the WebShop warm start teaches for one expert step: a short reason for the
/// kind of step, then the action. (The household's demonstrations restate the task in the
/// thinking; a WebShop instruction is 30–70 tokens, so restating it left a 48-token response
/// no room for the action: a warm start on such responses never bought anything.)
pub fn webshop_demo_response(action: &str) -> String {
    let reason = if action.starts_with("search[") {
        "I search for the product."
    } else if action == "click[< prev]" {
        "It lacks an option I need; back to the results."
    } else if action == "click[buy now]" {
        "It has what I need; I buy it."
    } else if action == "click[next >]" || action == "click[back to search]" {
        "I look elsewhere."
    } else {
        "I click what I need next."
    };
    think_action(reason, action)
}

/// Text for a tiny policy's vocabulary on WebShop: the demonstrations, the first page of
/// every training goal (its instruction) and every product's asin and title as a results page
/// shows them (so a product the demonstrations never opened is not `<unk>` to the policy).
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
    for p in &tasks.catalog.products {
        corpus.push(format!(
            "'{}' [SEP] '{}' click[{}]",
            p.asin,
            p.title,
            p.asin.to_lowercase()
        ));
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
        let mut x = webshop_sft_examples(
            &tasks,
            n_demo,
            cfg.env.history_length as usize,
            cfg.env.max_turns as usize,
            cfg.env.webshop.demonstrations,
        )?;
        let history = cfg.env.history_length as usize;
        let searches = cfg.env.webshop.search_demos as usize;
        x.extend(webshop_step_examples(
            &tasks,
            n_demo..n_demo + searches,
            0,
            history,
        )?);
        let clicks = cfg.env.webshop.click_demos as usize;
        x.extend(webshop_step_examples(
            &tasks,
            n_demo..n_demo + clicks,
            1,
            history,
        )?);
        let options = cfg.env.webshop.option_demos as usize;
        x.extend(webshop_option_examples(
            &tasks,
            n_demo..n_demo + options,
            history,
            cfg.env.max_turns as usize,
        )?);
        x
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
    eval_episodes: usize,
}

/// Success of the scripted references on the evaluation goals an evaluation of `episodes`
/// episodes plays (the first `episodes` goals of the `test` split, as `eval_agent` takes
/// them): the top-hit policy (search the key terms, buy the first result with the goal
/// options), the checking expert and the oracle. Returns `(top_hit, checking, oracle, goals)`.
pub fn webshop_references(
    catalog: &Arc<Catalog>,
    episodes: usize,
    max_turns: usize,
) -> anyhow::Result<(f64, f64, f64, usize)> {
    let mut env = WebShopEnv::new(catalog.clone(), WebshopSplit::Eval).with_max_steps(max_turns);
    let n = episodes.min(env.num_tasks());
    let (mut top, mut checking, mut oracle) = (0usize, 0usize, 0usize);
    for t in 0..n {
        top += usize::from(run_policy(&mut env, t, 0, Expert::blind())?.won);
        checking += usize::from(run_policy(&mut env, t, 0, Expert::checking())?.won);
        oracle += usize::from(run_policy(&mut env, t, 0, Expert::new())?.won);
    }
    let f = |k: usize| k as f64 / n.max(1) as f64;
    Ok((f(top), f(checking), f(oracle), n))
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
                eval_episodes: cfg.eval.episodes as usize,
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

    fn references(&self) -> anyhow::Result<Option<String>> {
        if self.tasks.evals.is_empty() {
            return Ok(None);
        }
        let (top, checking, oracle, n) =
            webshop_references(&self.tasks.catalog, self.eval_episodes, self.max_turns)?;
        Ok(Some(format!(
            "scripted policies on the {n} test goals an evaluation plays: top hit {top:.2}, \
             checking expert {checking:.2}, oracle {oracle:.2}"
        )))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::presets::Preset;
    use crate::train::setup::{prompt_ids, response_ids};

    /// Every `webshop-tiny` demonstration fits the sampler: its response (the stop token
    /// included) within `sampling.max_new_tokens`, prompt + response within the model's
    /// positions. A warm start on responses the sampler cuts off never reaches `<action>`.
    #[test]
    fn tiny_preset_demonstrations_fit_the_sampler() {
        let mut cfg = Preset::named("webshop-tiny").unwrap().config();
        cfg.sft.games = 60;
        let (tasks, examples, policy) = webshop_run(&cfg).unwrap();
        assert!(examples.len() > 100, "{} demonstrations", examples.len());
        let max_new = cfg.sampling.max_new_tokens as usize;
        let mut kinds = std::collections::BTreeSet::new();
        let unk = policy.tokenizer.encode("<unk>").unwrap()[0];
        for e in &examples {
            let r = response_ids(&policy, &e.response).unwrap();
            assert!(r.len() <= max_new, "{} tokens: {}", r.len(), e.response);
            let p = prompt_ids(&policy, &e.prompt).unwrap();
            assert!(p.len() + r.len() <= cfg.model.max_position_embeddings as usize);
            assert!(!r.contains(&unk), "unknown word in {}", e.response);
            let action = &e.response[e.response.find("<action>").unwrap()..];
            kinds.insert(action.split('[').next().unwrap().to_string());
            if action.contains("< prev") {
                kinds.insert("prev".into());
            }
        }
        // The checking expert searches, clicks, and leaves products.
        assert!(kinds.contains("prev"), "{kinds:?}");
        // Every product's asin is a word of the vocabulary (eval products included).
        for p in tasks.catalog.products.iter().take(200) {
            let ids = policy.tokenizer.encode(&p.asin.to_lowercase()).unwrap();
            assert_eq!(ids.len(), 1, "{}", p.asin);
        }
    }

    /// `env.webshop.search_demos` adds the first step of as many further training goals (the
    /// ones after `sft.games`): the search page, and the search for the goal's key terms.
    #[test]
    fn search_demos_add_the_first_step_of_further_goals() {
        let mut cfg = Preset::named("webshop-tiny").unwrap().config();
        cfg.sft.games = 4;
        cfg.env.webshop.search_demos = 0;
        cfg.env.webshop.click_demos = 0;
        cfg.env.webshop.option_demos = 0;
        let (_, base, _) = webshop_run(&cfg).unwrap();
        cfg.env.webshop.search_demos = 30;
        let (tasks, examples, _) = webshop_run(&cfg).unwrap();
        assert_eq!(examples.len(), base.len() + 30);
        assert_eq!(&examples[..base.len()], &base[..]);
        let mut env = WebShopEnv::new(tasks.catalog.clone(), WebshopSplit::Train);
        for (i, e) in examples[base.len()..].iter().enumerate() {
            env.reset(4 + i, 0).unwrap();
            let goal = env.goal().unwrap();
            let terms =
                spear_envs::webshop::expert::key_terms(&goal.instruction_text, &goal.goal_options);
            assert!(e.prompt.contains(env.task_description()), "goal {}", 4 + i);
            assert!(
                e.prompt.contains("observation is: 'Search'"),
                "{}",
                e.prompt
            );
            assert!(
                e.response
                    .ends_with(&format!("<action>search[{terms}]</action>")),
                "{}",
                e.response
            );
        }
        // No goal is shown twice: the extra goals follow the whole-episode ones.
        let first = |e: &SftExample| {
            let rest = e.prompt.split("Your task is to: ").nth(1)?;
            rest.lines().next().map(str::to_owned)
        };
        let whole: std::collections::BTreeSet<_> = base.iter().filter_map(first).collect();
        assert!(examples[base.len()..]
            .iter()
            .filter_map(first)
            .all(|t| !whole.contains(&t)));
    }

    /// `env.webshop.click_demos` adds the second step of further training goals: the results
    /// page of the expert's search (which the history shows), and a click on the first result.
    #[test]
    fn click_demos_add_the_results_page_step_of_further_goals() {
        let mut cfg = Preset::named("webshop-tiny").unwrap().config();
        cfg.sft.games = 4;
        cfg.env.webshop.search_demos = 3;
        cfg.env.webshop.click_demos = 0;
        let (_, base, _) = webshop_run(&cfg).unwrap();
        cfg.env.webshop.click_demos = 25;
        let (tasks, examples, _) = webshop_run(&cfg).unwrap();
        assert_eq!(examples.len(), base.len() + 25);
        assert_eq!(&examples[..base.len()], &base[..]);
        let mut env = WebShopEnv::new(tasks.catalog.clone(), WebshopSplit::Train);
        for (i, e) in examples[base.len()..].iter().enumerate() {
            // The same goals as the search demonstrations: the ones after `sft.games`.
            env.reset(4 + i, 0).unwrap();
            let goal = env.goal().unwrap().clone();
            let terms =
                spear_envs::webshop::expert::key_terms(&goal.instruction_text, &goal.goal_options);
            assert!(e.prompt.contains(env.task_description()), "goal {}", 4 + i);
            let search = format!("search[{terms}]");
            // The search is in the history, and the page is its results page.
            assert!(e.prompt.contains(&search), "{}", e.prompt);
            env.step(&search).unwrap();
            assert!(
                e.prompt.contains(&env.formatted_observation()),
                "{}",
                e.prompt
            );
            let first = env
                .formatted_actions()
                .into_iter()
                .find(|a| {
                    a.starts_with("click[")
                        && !["click[back to search]", "click[next >]", "click[< prev]"]
                            .contains(&a.as_str())
                })
                .unwrap();
            assert!(first.starts_with("click[b"), "{first}");
            assert!(
                e.response.ends_with(&format!("<action>{first}</action>")),
                "{} {first}",
                e.response
            );
        }
    }

    /// `env.webshop.option_demos` adds the option clicks of further goals' expert episodes:
    /// item pages, each response a click on a goal option value the page offers.
    #[test]
    fn option_demos_add_the_option_clicks_of_further_goals() {
        let mut cfg = Preset::named("webshop-tiny").unwrap().config();
        cfg.sft.games = 4;
        cfg.env.webshop.search_demos = 2;
        cfg.env.webshop.click_demos = 2;
        cfg.env.webshop.option_demos = 0;
        let (_, base, _) = webshop_run(&cfg).unwrap();
        cfg.env.webshop.option_demos = 20;
        let (tasks, examples, _) = webshop_run(&cfg).unwrap();
        assert_eq!(&examples[..base.len()], &base[..]);
        let extra = &examples[base.len()..];
        // Goals offer one to three options; the expert clicks each on the product it buys.
        assert!(extra.len() >= 20, "{}", extra.len());
        let mut env = WebShopEnv::new(tasks.catalog.clone(), WebshopSplit::Train);
        let mut seen_goals = 0;
        for task in 4..24 {
            env.reset(task, 0).unwrap();
            let wanted = spear_envs::webshop::expert::wanted_options(env.goal().unwrap());
            let mine: Vec<&SftExample> = extra
                .iter()
                .filter(|e| e.prompt.contains(env.task_description()))
                .collect();
            seen_goals += usize::from(!mine.is_empty());
            for e in mine {
                let v = e
                    .response
                    .split("<action>click[")
                    .nth(1)
                    .and_then(|r| r.strip_suffix("]</action>"))
                    .unwrap_or_else(|| panic!("{}", e.response));
                assert!(wanted.contains(&v.to_string()), "{v} not in {wanted:?}");
                // An item page that offers it.
                assert!(e.prompt.contains("'click[buy now]'"), "{}", e.prompt);
                assert!(e.prompt.contains(&format!("'click[{v}]'")), "{}", e.prompt);
            }
        }
        assert!(
            seen_goals >= 15,
            "{seen_goals} of 20 goals gave option clicks"
        );
    }

    #[test]
    fn demo_response_gives_a_short_reason_per_step_kind() {
        let r = webshop_demo_response("search[red shoes]");
        assert_eq!(
            r,
            "<think>I search for the product.</think><action>search[red shoes]</action>"
        );
        assert!(webshop_demo_response("click[< prev]").contains("lacks an option"));
        assert!(webshop_demo_response("click[buy now]").contains("I buy it"));
    }
}
