//! ALFWorld-compatible household environment (issue #3; `shared/docs/environments.md` §1,
//! `shared/docs/alfworld-engine-notes.md`).
//!
//! * Reading games: [`sexpr`] → [`pddl`] → [`world`] + [`formula`] → [`game::Game`]
//!   (`game.tw-pddl` files), [`dataset`] for the `json_2.1.1` tree.
//! * Rules and text: [`engine`] (admissible commands, effects, feedback strings),
//!   [`names`] (display names, lists), [`dialect`] (`move` vs `put … in/on`).
//! * Playing: [`play::Playthrough`] (TextWorld step semantics), [`env::HouseholdEnv`]
//!   (the [`crate::Environment`] the trainer drives).
//! * Making games: [`scene`] (ALFRED tables), [`generator`], [`planner`] (expert walkthroughs).
//! * The trainer's entry points: [`split::GameSource`] (a split of games) → [`HouseholdEnv`]
//!   (G copies per task), [`split::expert_demo`] (demonstrations for a warm start).

pub mod dataset;
pub mod dialect;
pub mod engine;
pub mod env;
pub mod error;
pub mod formula;
pub mod game;
pub mod generator;
pub mod names;
pub mod pddl;
pub mod planner;
pub mod play;
pub mod scene;
pub mod sexpr;
pub mod split;
pub mod task;
pub mod world;

pub use env::{HouseholdEnv, DEFAULT_MAX_STEPS, WIN_REWARD};
pub use error::HouseholdError;
pub use game::{Game, TwPddl};
pub use generator::{GeneratorConfig, Split};
pub use play::{Feedback, Playthrough};
pub use split::{
    expert_demo, generate_split, searching_expert_demo, ExpertStep, GameSet, GameSource,
};
pub use task::TaskType;
