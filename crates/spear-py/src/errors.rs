//! Rust errors as Python exceptions, always with the Rust message.

use pyo3::exceptions::{PyIndexError, PyRuntimeError, PyValueError};
use pyo3::PyErr;
use spear_envs::EnvError;

/// A bad argument (`ValueError`).
pub fn value_error(msg: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(msg.to_string())
}

/// A failure of the library or the system underneath (`RuntimeError`).
pub fn runtime_error(msg: impl std::fmt::Display) -> PyErr {
    PyRuntimeError::new_err(msg.to_string())
}

/// An environment error: a task index outside the split is an `IndexError`,
/// everything else a `RuntimeError`.
pub fn env_error(e: EnvError) -> PyErr {
    match e {
        EnvError::TaskOutOfRange { .. } => PyIndexError::new_err(e.to_string()),
        _ => PyRuntimeError::new_err(e.to_string()),
    }
}

/// Checks that every named array has `n` rows.
pub fn check_len(name: &str, len: usize, n: usize) -> Result<(), PyErr> {
    if len == n {
        Ok(())
    } else {
        Err(value_error(format!(
            "`{name}` has {len} rows but `scores` has {n}; every array needs one row per step-sample"
        )))
    }
}
