//! spear-rs's top layer: the agent loop, the trainer, configuration and reports.
//! The `spear` binary (`main.rs`, `cli/`) is a thin front end over this library.
//!
//! # Brief overview
//!
//! * [`agent`]: verl-agent's prompt templates, history memory and action projection (spec §7).
//! * [`rollout`]: a sampler ([`rollout::ChatSampler`]) + tasks → step-samples and episode
//!   records (the agent loop, the math tool loop).
//! * [`tasks`]: the environment door ([`tasks::TaskSuite`]): household, WebShop and math each
//!   implement it in their own module; the trainer names none of them.
//! * [`seed`]: how every random choice derives from `run.seed`.
//! * [`train`]: configuration, presets and the training loop (spec §2.8).
//! * [`run_dir`]: the run directory layout and its records (metrics, eval, trajectories).
//! * [`serve`]: `spear serve`, the engine behind vLLM's HTTP API (continuous batching,
//!   pause/resume, weight reload).
//! * [`report`]: `spear report`, one self-contained HTML page comparing runs.

pub mod agent;
pub mod report;
pub mod rollout;
pub mod run_dir;
pub mod seed;
pub mod serve;
pub mod tasks;
pub mod train;
