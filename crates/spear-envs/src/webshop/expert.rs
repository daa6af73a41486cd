//! A scripted expert (issue #6): search the goal's key terms, page through the
//! results to the target product (it knows the goal's asin: a privileged oracle
//! for demonstrations and solvability checks), choose the goal options, buy.
//! Falls back to the best-ranked result when the target is not in the 50 hits.

use super::env::WebShopEnv;
use super::product::GoalOptions;
use crate::env::{EnvError, Environment};

/// Key terms of an instruction: the text before the option clause (` with k: v…`)
/// and the price clause (`, and price lower than …`), lowercased.
pub fn key_terms(instruction: &str, options: &GoalOptions) -> String {
    let mut s = instruction;
    if let Some(i) = s.find(", and price lower than") {
        s = &s[..i];
    }
    if let GoalOptions::Map(m) = options {
        if let Some((k, v)) = m.first() {
            if let Some(i) = s.find(&format!(" with {k}: {v}")) {
                s = &s[..i];
            }
        }
    }
    s.to_lowercase()
}

/// The expert's per-episode state.
#[derive(Debug, Clone, Default)]
pub struct Expert {
    pages_seen: usize,
    opened: bool,
    blind: bool,
    checking: bool,
    /// Checking expert: results opened and rejected on the current results page.
    rejected: usize,
    /// Checking expert: goal options clicked on the open item page.
    options_clicked: usize,
}

impl Expert {
    /// A fresh oracle expert for a new episode (it knows the goal's asin).
    pub fn new() -> Self {
        Self::default()
    }

    /// A non-oracle expert: same search and option choice, but it buys the
    /// top-ranked search result instead of looking for the goal's asin. Its score
    /// measures how far plain search + options get on a catalogue.
    pub fn blind() -> Self {
        Expert {
            blind: true,
            ..Self::default()
        }
    }

    /// A non-oracle expert that reads item pages: it opens the search results in order and
    /// buys the first product that offers every goal option (clicking them first); a
    /// product that lacks one is left with `< prev`. It never reads the goal's asin, so a
    /// policy can learn everything it does from what it sees (the instruction, the page and
    /// the last two steps); after five rejected results it buys the next one as it is.
    pub fn checking() -> Self {
        Expert {
            checking: true,
            ..Self::default()
        }
    }

    /// The next action for `env`'s current page.
    pub fn act(&mut self, env: &WebShopEnv) -> String {
        let Some(goal) = env.goal() else {
            return "search[item]".into();
        };
        let (has_search, clickables) = env.available_actions();
        let has = |k: &str| clickables.iter().any(|c| c == k);
        if self.checking && !has_search {
            return self.act_checking(goal, &clickables);
        }
        let target = goal.asin.to_lowercase();
        if has_search {
            return format!(
                "search[{}]",
                key_terms(&goal.instruction_text, &goal.goal_options)
            );
        }
        if has("buy now") {
            // Item page: pick each goal option that is offered and not yet chosen.
            let chosen = env.selected_options();
            for v in goal.goal_options.values() {
                let v = v.to_lowercase();
                if has(&v) && !chosen.contains(&v) {
                    return format!("click[{v}]");
                }
            }
            return "click[buy now]".into();
        }
        if has("next >") {
            if self.blind {
                let first = result_links(&clickables).into_iter().next();
                return match first {
                    Some(f) => format!("click[{f}]"),
                    None => format!("search[{}]", goal.name.to_lowercase()),
                };
            }
            if has(&target) {
                self.opened = true;
                return format!("click[{target}]");
            }
            self.pages_seen += 1;
            let links = result_links(&clickables);
            if self.pages_seen < 5 && links.len() == 10 {
                return "click[next >]".into();
            }
            // Not found: the first result of the first page.
            if let Some(first) = links.first() {
                if self.pages_seen == 1 || self.opened {
                    return format!("click[{first}]");
                }
            }
            if has("< prev") {
                return "click[< prev]".into();
            }
            return format!("search[{}]", goal.name.to_lowercase());
        }
        if has("< prev") {
            return "click[< prev]".into();
        }
        "click[back to search]".into()
    }

    fn act_checking(&mut self, goal: &super::product::Goal, clickables: &[String]) -> String {
        let has = |k: &str| clickables.iter().any(|c| c == k);
        let wanted = wanted_options(goal);
        if has("buy now") {
            let last_chance = self.rejected >= MAX_REJECTED;
            if !last_chance && !wanted.iter().all(|v| has(v)) && has("< prev") {
                self.rejected += 1;
                return "click[< prev]".into();
            }
            // The options it offers are clicked in the instruction's order (the page shows
            // the chosen ones too; a click on a chosen value changes nothing, so the
            // expert's own count decides).
            if let Some(v) = wanted.iter().filter(|v| has(v)).nth(self.options_clicked) {
                self.options_clicked += 1;
                return format!("click[{v}]");
            }
            return "click[buy now]".into();
        }
        let links = result_links(clickables);
        match links.get(self.rejected).or(links.first()) {
            Some(l) => {
                self.options_clicked = 0;
                format!("click[{l}]")
            }
            None => "click[back to search]".into(),
        }
    }
}

/// The goal's option values as an item page's clickables spell them (lower case), in the
/// instruction's order.
pub fn wanted_options(goal: &super::product::Goal) -> Vec<String> {
    goal.goal_options
        .values()
        .iter()
        .map(|v| v.to_lowercase())
        .collect()
}

/// The product links of a results page (its clickables without the navigation buttons).
fn result_links(clickables: &[String]) -> Vec<&String> {
    clickables
        .iter()
        .filter(|c| !matches!(c.as_str(), "back to search" | "next >" | "< prev"))
        .collect()
}

/// Results the checking expert leaves before it buys the next one unchecked: with one search
/// step, two steps per rejected result and at most two options, the purchase fits WebShop's
/// 15 steps.
const MAX_REJECTED: usize = 5;

/// Result of running the expert on one goal.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpertEpisode {
    /// Actions taken.
    pub actions: Vec<String>,
    /// Final raw reward (task score).
    pub score: f64,
    /// Won (score 1.0).
    pub won: bool,
}

/// Runs the oracle expert on task `task` of `env`'s split.
pub fn run_expert(env: &mut WebShopEnv, task: usize, seed: u64) -> Result<ExpertEpisode, EnvError> {
    run_policy(env, task, seed, Expert::new())
}

/// Runs `expert` (oracle or [`Expert::blind`]) on task `task`.
pub fn run_policy(
    env: &mut WebShopEnv,
    task: usize,
    seed: u64,
    mut expert: Expert,
) -> Result<ExpertEpisode, EnvError> {
    env.reset(task, seed)?;
    let mut actions = Vec::new();
    loop {
        let a = expert.act(env);
        actions.push(a.clone());
        let out = env.step(&a)?;
        if out.done {
            return Ok(ExpertEpisode {
                actions,
                score: out.task_score.unwrap_or(0.0),
                won: out.won,
            });
        }
    }
}
