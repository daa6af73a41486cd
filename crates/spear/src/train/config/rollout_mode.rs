//! `[rollout]`, the collection-mode block: synchronous (one batched generation per turn,
//! bit-reproducible) or asynchronous collection, and the staleness bound of the latter.
//!
//! The keys (`rollout.mode`, `rollout.max_staleness`) live in [`super::RolloutSection`] with the
//! engine's.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How the rollout of an iteration is collected (`rollout.mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutMode {
    /// Every turn waits for every environment of the batch: one batched generation per turn.
    /// Bit-reproducible from `run.seed`.
    #[default]
    Sync,
    /// Every episode runs on its own thread and advances as soon as its own generation
    /// returns; with an engine outside the trainer's process, collection of iteration t+1 may
    /// overlap the update of iteration t (bounded by `rollout.max_staleness`). Not
    /// bit-reproducible.
    Async,
}

impl fmt::Display for RolloutMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RolloutMode::Sync => "sync",
            RolloutMode::Async => "async",
        })
    }
}
