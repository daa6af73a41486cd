//! verl-agent's agent side (spec §7) from `spear::agent`: the `<think>/<action>`
//! projection, the prompt templates and the history memory, one call per batch.

use pyo3::prelude::*;
use spear::agent::memory::Memory;
use spear::agent::projection::{project as rust_project, ProjectionRules};
use spear::agent::prompts;
use spear_envs::webshop::prompt as webshop;

use crate::errors::value_error;

fn rules(env: &str) -> PyResult<ProjectionRules> {
    match env {
        "household" | "alfworld" => Ok(ProjectionRules::Household),
        "webshop" => Ok(ProjectionRules::Webshop),
        o => Err(value_error(format!(
            "no projection rules for {o:?}: use \"household\" (alias \"alfworld\") or \"webshop\""
        ))),
    }
}

/// Projects model outputs onto actions: `(actions, valids)` (verl-agent's
/// `alfworld_projection` / `webshop_projection`, without mutating the input).
#[pyfunction]
#[pyo3(signature = (texts, env="household"))]
fn project(texts: Vec<String>, env: &str) -> PyResult<(Vec<String>, Vec<bool>)> {
    let r = rules(env)?;
    Ok(texts
        .iter()
        .map(|t| {
            let p = rust_project(t, r);
            (p.action, p.valid)
        })
        .unzip())
}

/// The history of every environment of a batch (verl-agent's `SimpleMemory`).
#[pyclass(module = "spear_rs._native")]
pub struct BatchMemory {
    envs: Vec<Memory>,
}

#[pymethods]
impl BatchMemory {
    #[new]
    #[pyo3(signature = (batch_size=0))]
    fn new(batch_size: usize) -> Self {
        BatchMemory {
            envs: vec![Memory::new(); batch_size],
        }
    }

    /// Forget everything; `batch_size` empty histories.
    fn reset(&mut self, batch_size: usize) {
        self.envs = vec![Memory::new(); batch_size];
    }

    /// Append one step to every history: the observation the action was taken on and
    /// the projected action.
    fn store(&mut self, observations: Vec<String>, actions: Vec<String>) -> PyResult<()> {
        if observations.len() != self.envs.len() || actions.len() != self.envs.len() {
            return Err(value_error(format!(
                "store needs one observation and one action per environment: batch size {}, got {} and {}",
                self.envs.len(),
                observations.len(),
                actions.len()
            )));
        }
        for ((m, o), a) in self.envs.iter_mut().zip(observations).zip(actions) {
            m.store(o, a);
        }
        Ok(())
    }

    /// `(contexts, valid_lengths)`: the last `history_length` steps of each environment
    /// rendered as `[Observation k: '…', Action k: '…']` lines.
    fn fetch(&self, history_length: usize) -> (Vec<String>, Vec<usize>) {
        self.envs.iter().map(|m| m.fetch(history_length)).unzip()
    }

    /// Steps stored per environment.
    fn lengths(&self) -> Vec<usize> {
        self.envs.iter().map(Memory::len).collect()
    }

    fn __len__(&self) -> usize {
        self.envs.len()
    }
}

fn check_batch(what: &str, got: usize, n: usize) -> PyResult<()> {
    if got == n {
        Ok(())
    } else {
        Err(value_error(format!(
            "`{what}` has {got} entries for a batch of {n}"
        )))
    }
}

/// The household prompt of every environment (`AlfWorldEnvironmentManager.build_text_obs`):
/// the no-history template while a history is empty or `history_length` is 0.
#[pyfunction]
#[pyo3(signature = (tasks, observations, admissible, memory, history_length=2))]
fn household_prompts(
    tasks: Vec<String>,
    observations: Vec<String>,
    admissible: Vec<Vec<String>>,
    memory: PyRef<'_, BatchMemory>,
    history_length: usize,
) -> PyResult<Vec<String>> {
    let n = memory.envs.len();
    check_batch("tasks", tasks.len(), n)?;
    check_batch("observations", observations.len(), n)?;
    check_batch("admissible", admissible.len(), n)?;
    Ok((0..n)
        .map(|i| {
            prompts::household_prompt(
                &tasks[i],
                &observations[i],
                &admissible[i],
                &memory.envs[i],
                history_length,
            )
        })
        .collect())
}

/// The WebShop prompt of every environment (`WebshopEnvironmentManager.build_text_obs`):
/// `observations` already formatted ([`webshop_format_obs`]), `available` the action
/// lists (`search[<your query>]`, `click[…]`); over 13,000 characters the no-history
/// template is used.
#[pyfunction]
#[pyo3(signature = (tasks, observations, available, memory, history_length=2))]
fn webshop_prompts(
    tasks: Vec<String>,
    observations: Vec<String>,
    available: Vec<Vec<String>>,
    memory: PyRef<'_, BatchMemory>,
    history_length: usize,
) -> PyResult<Vec<String>> {
    let n = memory.envs.len();
    check_batch("tasks", tasks.len(), n)?;
    check_batch("observations", observations.len(), n)?;
    check_batch("available", available.len(), n)?;
    Ok((0..n)
        .map(|i| {
            prompts::webshop_prompt(
                &tasks[i],
                &observations[i],
                &available[i],
                &memory.envs[i],
                history_length,
            )
        })
        .collect())
}

/// One household prompt from an explicit history of `(observation, action)` pairs.
#[pyfunction]
#[pyo3(signature = (task, observation, admissible, history=Vec::new(), history_length=2))]
fn household_prompt(
    task: &str,
    observation: &str,
    admissible: Vec<String>,
    history: Vec<(String, String)>,
    history_length: usize,
) -> String {
    let mut m = Memory::new();
    for (o, a) in history {
        m.store(o, a);
    }
    prompts::household_prompt(task, observation, &admissible, &m, history_length)
}

/// One WebShop prompt from an explicit history of `(observation, action)` pairs.
#[pyfunction]
#[pyo3(signature = (task, observation, available, history=Vec::new(), history_length=2))]
fn webshop_prompt(
    task: &str,
    observation: &str,
    available: Vec<String>,
    history: Vec<(String, String)>,
    history_length: usize,
) -> String {
    let mut m = Memory::new();
    for (o, a) in history {
        m.store(o, a);
    }
    prompts::webshop_prompt(task, observation, &available, &m, history_length)
}

/// The task after `"Your task is to: "` in a household reset observation.
#[pyfunction]
fn household_task(first_observation: &str) -> PyResult<String> {
    prompts::household_task(first_observation).ok_or_else(|| {
        value_error("no \"Your task is to: \" in the observation (is it a reset observation?)")
    })
}

/// The instruction of a WebShop observation (`parts[2]` after `Instruction:`).
#[pyfunction]
fn webshop_task(first_observation: &str) -> PyResult<String> {
    webshop::extract_task(first_observation).ok_or_else(|| {
        value_error(
            "not a WebShop page with an instruction (expected `WebShop [SEP] Instruction: [SEP] <task> …`)",
        )
    })
}

/// verl-agent's `format_obs`: the parts after the task, quoted and joined by ` [SEP] `.
#[pyfunction]
fn webshop_format_obs(raw: &str, task: &str) -> String {
    webshop::format_obs(raw, task)
}

/// verl-agent's `format_avail_actions`: `search[<your query>]` then `click[x]` per clickable.
#[pyfunction]
fn webshop_available_actions(has_search_bar: bool, clickables: Vec<String>) -> Vec<String> {
    webshop::format_available_actions(has_search_bar, &clickables)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(project, m)?)?;
    m.add_class::<BatchMemory>()?;
    m.add_function(wrap_pyfunction!(household_prompts, m)?)?;
    m.add_function(wrap_pyfunction!(webshop_prompts, m)?)?;
    m.add_function(wrap_pyfunction!(household_prompt, m)?)?;
    m.add_function(wrap_pyfunction!(webshop_prompt, m)?)?;
    m.add_function(wrap_pyfunction!(household_task, m)?)?;
    m.add_function(wrap_pyfunction!(webshop_task, m)?)?;
    m.add_function(wrap_pyfunction!(webshop_format_obs, m)?)?;
    m.add_function(wrap_pyfunction!(webshop_available_actions, m)?)?;
    Ok(())
}
