//! The trainer (spec §2.8): configuration, presets, the iteration loop, the update, the
//! supervised warm start, evaluation and checkpoints.

pub mod config;
pub mod eval;
pub mod math;
pub mod math_config;
pub mod math_presets;
pub mod presets;
pub mod setup;
pub mod sft;
pub mod state;
pub mod trainer;
pub mod update;
