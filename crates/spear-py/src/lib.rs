//! Python bindings of spear-rs, imported as `spear_rs` (the Rust part is
//! `spear_rs._native`; `python/spear_rs/` holds the typed Python front end).
//!
//! # Brief overview
//!
//! * [`envs`]: vectorised household / WebShop / math environments (`reset`, `step`);
//!   the steps of a batch run on rayon threads with the GIL released.
//! * [`agent`]: verl-agent's prompt templates, history memory and `<think>/<action>`
//!   projection, from `spear::agent`.
//! * [`rewards`]: `math_dapo`, SPEAR's math reward, WebShop's `get_reward` and
//!   `token_set_ratio`.
//! * [`sandbox`]: the code interpreter tool with the CLI's isolation rules.
//! * [`learners`], [`replay`]: advantages, Dr.BoT filters, schedules and the SIL
//!   replay buffer on numpy arrays.
//!
//! Every Rust error reaches Python as an exception carrying the Rust message
//! ([`errors`]); nothing here aborts the interpreter.

use pyo3::prelude::*;

mod agent;
mod arrays;
mod envs;
mod errors;
mod learners;
mod replay;
mod rewards;
mod sandbox;

/// The native module `spear_rs._native`.
#[pymodule]
#[pyo3(name = "_native")]
fn spear_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    envs::register(m)?;
    agent::register(m)?;
    rewards::register(m)?;
    sandbox::register(m)?;
    learners::register(m)?;
    replay::register(m)?;
    Ok(())
}
