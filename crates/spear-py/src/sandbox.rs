//! The `code_interpreter` tool as a Python object, with the CLI's isolation rules:
//! bubblewrap by default (an error when it is missing or broken, never a silent
//! fallback), rlimits only when the caller names `isolation="rlimits"`.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use spear_envs::math::sandbox::{
    Executor, HttpExecutor, Isolation, Limits, LocalExecutor, PythonEnv, RunResult, SandboxPool,
};
use spear_envs::math::tool::{program_for, tool_reply, truncate_middle, MAX_TOOL_RESPONSE_CHARS};

use crate::errors::{runtime_error, value_error};

/// Runs model-written code as the recipe's `code_interpreter` tool.
#[pyclass(module = "spear_rs._native")]
pub struct CodeInterpreter {
    pub(crate) pool: SandboxPool,
    isolation: String,
}

/// A sandbox pool as the constructor's arguments describe it (shared with `envs.math`).
pub(crate) fn build_pool(
    py: Python<'_>,
    isolation: &str,
    timeout: f64,
    memory_mb: u64,
    max_concurrency: usize,
    python: Option<String>,
    url: Option<String>,
) -> PyResult<SandboxPool> {
    if !(timeout > 0.0 && timeout.is_finite()) {
        return Err(value_error(format!(
            "timeout {timeout} must be a positive number of seconds"
        )));
    }
    let limits = Limits {
        timeout: Duration::from_secs_f64(timeout),
        memory_mb,
        ..Limits::default()
    };
    let exec: Arc<dyn Executor> = match url {
        Some(u) => Arc::new(HttpExecutor::new(&u).map_err(value_error)?),
        None => {
            let isolation = match isolation {
                "bwrap" => Isolation::Bwrap,
                "rlimits" => Isolation::RlimitsOnly,
                o => {
                    return Err(value_error(format!(
                    "unknown isolation {o:?}: use \"bwrap\" (the default, bubblewrap + rlimits) \
                         or \"rlimits\" (rlimits only: NOT an isolation boundary)"
                )))
                }
            };
            // Creating the cached venv (first use) and bubblewrap's self-test take time:
            // let other Python threads run meanwhile.
            let built: Result<LocalExecutor, String> = py.detach(move || {
                let env = match python {
                    Some(p) => PythonEnv::probe(std::path::Path::new(&p)),
                    None => PythonEnv::ensure_default(),
                }
                .map_err(|e| e.to_string())?;
                match isolation {
                    Isolation::Bwrap => {
                        LocalExecutor::new(env, Isolation::Bwrap).map_err(|e| e.to_string())
                    }
                    Isolation::RlimitsOnly => Ok(LocalExecutor::rlimits_only(env)),
                }
            });
            Arc::new(built.map_err(runtime_error)?)
        }
    };
    Ok(SandboxPool::new(exec, max_concurrency.max(1), limits))
}

fn run_result_dict<'py>(py: Python<'py>, r: &RunResult) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("status", format!("{:?}", r.status))?;
    d.set_item("return_code", r.return_code)?;
    d.set_item("stdout", &r.stdout)?;
    d.set_item("stderr", &r.stderr)?;
    d.set_item("execution_time", r.execution_time)?;
    Ok(d)
}

#[pymethods]
impl CodeInterpreter {
    #[new]
    #[pyo3(signature = (*, isolation="bwrap", timeout=30.0, memory_mb=1024, max_concurrency=128, python=None, url=None))]
    fn new(
        py: Python<'_>,
        isolation: &str,
        timeout: f64,
        memory_mb: u64,
        max_concurrency: usize,
        python: Option<String>,
        url: Option<String>,
    ) -> PyResult<Self> {
        let label = if url.is_some() { "http" } else { isolation };
        let pool = build_pool(
            py,
            isolation,
            timeout,
            memory_mb,
            max_concurrency,
            python,
            url,
        )?;
        Ok(CodeInterpreter {
            pool,
            isolation: label.to_string(),
        })
    }

    /// The reply the model sees for a `code` argument: python fence extracted, the
    /// recipe's wrapper imports prepended, run, reply strings and middle truncation.
    fn run(&self, py: Python<'_>, code: &str) -> String {
        let program = program_for(code);
        let pool = self.pool.clone();
        py.detach(move || {
            truncate_middle(&tool_reply(&pool.run(&program)), MAX_TOOL_RESPONSE_CHARS)
        })
    }

    /// `run` for many code arguments at once (at most `max_concurrency` in flight).
    fn run_many(&self, py: Python<'_>, codes: Vec<String>) -> Vec<String> {
        let programs: Vec<String> = codes.iter().map(|c| program_for(c)).collect();
        let pool = self.pool.clone();
        py.detach(move || {
            pool.run_many(&programs)
                .iter()
                .map(|r| truncate_middle(&tool_reply(r), MAX_TOOL_RESPONSE_CHARS))
                .collect()
        })
    }

    /// The raw run result of a code argument: `status` (`Finished`, `TimeLimitExceeded`,
    /// `Error`), `return_code`, `stdout`, `stderr`, `execution_time`.
    fn run_raw<'py>(&self, py: Python<'py>, code: &str) -> PyResult<Bound<'py, PyDict>> {
        let program = program_for(code);
        let pool = self.pool.clone();
        let r = py.detach(move || pool.run(&program));
        run_result_dict(py, &r)
    }

    /// `"bwrap"`, `"rlimits"` or `"http"`.
    #[getter]
    fn isolation(&self) -> &str {
        &self.isolation
    }

    /// The backend's name.
    #[getter]
    fn executor(&self) -> String {
        self.pool.executor_name()
    }

    fn __repr__(&self) -> String {
        format!("CodeInterpreter(executor={:?})", self.pool.executor_name())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<CodeInterpreter>()?;
    Ok(())
}
