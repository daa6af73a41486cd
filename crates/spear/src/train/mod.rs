//! The trainer (spec §2.8): configuration, presets, the iteration loop, the learner's
//! plain-data steps and metrics (`learn`), the update, the supervised warm start and
//! checkpoints. Environments come in through `crate::tasks`.

pub mod config;
pub mod learn;
pub mod presets;
pub mod setup;
pub mod sft;
pub mod state;
pub mod trainer;
pub mod update;
