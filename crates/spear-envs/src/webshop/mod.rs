//! WebShop environment (issue #6; `shared/docs/environments.md` §2).
//!
//! A native port of princeton-nlp/WebShop's text environment as verl-agent
//! drives it (spec §2.2, §7): no Flask, no Lucene, no spaCy, no downloads.
//!
//! Quick start (the trainer's view):
//! ```
//! use std::sync::Arc;
//! use spear_envs::Environment;
//! use spear_envs::webshop::{build_catalog, CatalogConfig, DataSource, GenerateOptions, Split, WebShopEnv};
//! let cfg = CatalogConfig {
//!     source: DataSource::Generated(GenerateOptions::new(300, 0)),
//!     ..Default::default()
//! };
//! let (catalog, _reports) = build_catalog(&cfg).unwrap();
//! let mut env = WebShopEnv::new(Arc::new(catalog), Split::All);
//! let obs = env.reset(0, 7).unwrap();
//! assert!(obs.text.starts_with("WebShop [SEP] Instruction: [SEP] "));
//! let out = env.step("search[shampoo]").unwrap();
//! assert_eq!(out.reward, 0.0);
//! let prompt = spear_envs::webshop::prompt::prompt_no_history(
//!     env.task_description(), &env.formatted_observation(), &env.available_actions_field());
//! assert!(prompt.contains("Your task is to: "));
//! ```
//!
//! Modules:
//! * [`fuzz`]: thefuzz 0.19.0 `token_set_ratio` over a difflib port (+ Levenshtein option).
//! * [`normalize`]: the colour set, `normalize_color` and Python's `repr(str)`.
//! * [`py_printable`]: CPython's non-printable code points (generated table).
//! * [`product`]: products, goals, goal options.
//! * [`reward`]: `get_reward` (type, attribute, option, price), exact but for spaCy nouns.
//! * [`score_case`]: the reward of a case given in WebShop's dict shapes.
//! * [`analyzer`], [`search`]: Lucene-like English analysis and BM25.
//! * [`loader`]: streamed loaders of the real data files.
//! * [`goals`]: synthetic and human goals, prices and price limits.
//! * [`catalog`], [`source`]: a built catalogue and where it comes from.
//! * [`generate`]: the offline catalogue generator.
//! * [`pages`]: page rendering in `[SEP]` text mode and clickables.
//! * [`prompt`]: verl-agent observation/action formatting and prompt templates.
//! * [`env`](mod@env): the state machine behind [`crate::Environment`].
//! * [`expert`]: a scripted expert policy.

pub mod analyzer;
pub mod catalog;
pub mod env;
pub mod expert;
pub mod fuzz;
pub mod generate;
pub mod goals;
pub mod loader;
pub mod normalize;
pub mod pages;
pub mod product;
pub mod prompt;
pub mod py_printable;
pub mod reward;
pub mod score_case;
pub mod search;
pub mod source;

pub use catalog::{Catalog, EVAL_GOALS};
pub use env::{parse_action, Split, WebShopEnv, MAX_STEPS, WIN_REWARD};
pub use expert::{run_expert, Expert};
pub use generate::GenerateOptions;
pub use goals::GoalMode;
pub use loader::{DataFiles, LoadError, LoadReport};
pub use product::{Goal, GoalOptions, Product};
pub use source::{build_catalog, CatalogConfig, DataSource};
