//! `[env]`: which environment, the rollout shape, and the household and WebShop sections
//! (math's is [`super::math`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use spear_envs::household::TaskType;

use super::math::MathConfig;
use super::sections::EvalSplit;

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

impl EnvKind {
    /// The evaluation splits this environment has (`eval.splits`).
    pub fn eval_splits(self) -> &'static [EvalSplit] {
        match self {
            EnvKind::Household => &[
                EvalSplit::ValidSeen,
                EvalSplit::ValidUnseen,
                EvalSplit::Train,
            ],
            EnvKind::Webshop => &[EvalSplit::Test],
            EnvKind::Math => &[EvalSplit::HeldOut, EvalSplit::Aime24, EvalSplit::Aime25],
        }
    }
}

/// `[env]`: the rollout shape (spec §5.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnvConfig {
    /// Environment: `household`, `webshop` or `math`. Default `household`.
    pub kind: EnvKind,
    /// Tasks per iteration (`train_data_size`, spec §5.2: 32). Default 32.
    pub tasks_per_iter: u64,
    /// Group size G: environments (conversations) per task, reset to the same state
    /// (spec §5.2: 8). Default 8.
    pub group_size: u64,
    /// Turn cap per episode, in environment steps (`env.max_steps`, spec §5.2: 50 household,
    /// 15 WebShop). Math uses `env.math.max_assistant_turns` instead. Default 50.
    pub max_turns: u64,
    /// (observation, action) pairs shown in the prompt (`history_length`, spec §7: 2).
    /// Household/WebShop only (a math conversation keeps its whole history). Default 2.
    pub history_length: u64,
    /// Household task source.
    pub household: HouseholdConfig,
    /// WebShop catalogue.
    pub webshop: WebshopConfig,
    /// Maths problems, tool loop and sandbox (`env.kind = "math"`).
    pub math: MathConfig,
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
            math: MathConfig::default(),
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
    /// Task source: `generated` or `alfworld`. Default `generated`.
    pub source: HouseholdSource,
    /// ALFWorld data root, a path (empty: `$ALFWORLD_DATA`). Default empty.
    pub alfworld_root: String,
    /// Task types (`pick_and_place_simple`, `look_at_obj_in_light`,
    /// `pick_clean_then_place_in_recep`, `pick_heat_then_place_in_recep`,
    /// `pick_cool_then_place_in_recep`, `pick_two_obj_and_place`). Default empty = all six.
    pub task_types: Vec<TaskType>,
    /// Generator seed (independent of `run.seed` so runs with different seeds share tasks).
    /// Default 0.
    pub generator_seed: u64,
    /// Generated games: keep at most this many receptacles per room (0 = all). Default 0.
    pub max_receptacles: u64,
    /// Generated games: at most this many distractor object classes per room (0 = all).
    /// Default 0.
    pub max_distractor_classes: u64,
    /// Generated games: at most this many instances per object class. Default 3 (ALFRED).
    pub max_instances: u64,
    /// Generated training games (0 = ALFWorld's 3553). Default 0.
    pub train_games: u64,
    /// Generated games per evaluation split (0 = ALFWorld's 140 / 134). Default 0.
    pub eval_games: u64,
    /// Warm-start demonstrations: `walkthrough` (the planner's or the file's path, straight to
    /// the object) or `searching` (the same, but before its first `go to` the expert visits
    /// other receptacles in a random order, seeded per game, until it reaches the
    /// walkthrough's one: an expert that cannot see inside receptacles). Default `walkthrough`.
    pub demonstrations: HouseholdDemos,
    /// Share of each task type's demonstration games that keep their demonstration, e.g.
    /// `{ look_at_obj_in_light = 0.1 }`: of the first `sft.games` training games, about one
    /// in ten look-at games is demonstrated and the rest are left out of the warm start (which
    /// ones: fixed by `generator_seed`). Types not listed keep all (share 1). A warm start
    /// that has seen a task type rarely leaves RL that type to learn (issue 18). Default
    /// empty.
    pub demo_share: BTreeMap<TaskType, f64>,
}

/// Which expert the household warm start imitates (`env.household.demonstrations`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum HouseholdDemos {
    /// The walkthrough, straight to the object.
    #[default]
    Walkthrough,
    /// Random detours to other receptacles before the walkthrough's first `go to`.
    Searching,
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
            demonstrations: HouseholdDemos::Walkthrough,
            demo_share: BTreeMap::new(),
        }
    }
}

impl HouseholdConfig {
    /// The share of `t`'s demonstration games that keep their demonstration (`demo_share`).
    pub fn demo_share_of(&self, t: Option<TaskType>) -> f64 {
        t.and_then(|t| self.demo_share.get(&t).copied())
            .unwrap_or(1.0)
    }

    /// The task types to generate: `task_types`, or all six when it is empty.
    pub fn task_types(&self) -> Vec<TaskType> {
        if self.task_types.is_empty() {
            TaskType::ALL.to_vec()
        } else {
            self.task_types.clone()
        }
    }
}

/// `[env.webshop]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebshopConfig {
    /// Generated catalogue size, in products (its first 500 goals are the `test` split, the
    /// rest train). Default 1000.
    pub products: u64,
    /// Catalogue generator seed. Default 0.
    pub catalog_seed: u64,
    /// Which expert the warm start imitates. Default `oracle`.
    pub demonstrations: WebshopDemos,
    /// A copy curriculum: the first step alone (the search for the instruction's key terms)
    /// of this many more training goals, after the `sft.games` whose whole episodes the warm
    /// start imitates. A tiny policy learns to copy its search from the prompt only with
    /// thousands of such examples, and a first step's prompt is short (no history, no
    /// results page). Default 0.
    pub search_demos: u64,
    /// A second copy curriculum: the results-page step alone (the expert's search in the
    /// history, its click on the first result as the response) of this many training goals
    /// after the `sft.games` ones (the same goals as `search_demos`, one step later). Clicking
    /// a result is a copy of its asin from the page; mixed into whole episodes it was not
    /// learnt. Default 0.
    pub click_demos: u64,
    /// A third copy curriculum: every option click (an item page, and a click on a goal option
    /// value that the page offers) of the checking expert's episodes on this many training
    /// goals after the `sft.games` ones. Default 0.
    pub option_demos: u64,
}

/// Which expert the WebShop warm start imitates (`env.webshop.demonstrations`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WebshopDemos {
    /// The oracle: it knows the goal's asin and goes straight to it (pages included).
    #[default]
    Oracle,
    /// Opens the results in order and buys the first product offering every goal option,
    /// leaving the others with `< prev`: nothing it does needs what the page does not show.
    Checking,
}

impl Default for WebshopConfig {
    fn default() -> Self {
        Self {
            products: 1000,
            catalog_seed: 0,
            demonstrations: WebshopDemos::Oracle,
            search_demos: 0,
            click_demos: 0,
            option_demos: 0,
        }
    }
}
