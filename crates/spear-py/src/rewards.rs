//! Rewards and verifiers: verl's `math_dapo.compute_score`, SPEAR's math reward,
//! WebShop's `get_reward` and thefuzz's `token_set_ratio`.

use pyo3::prelude::*;
use pyo3::types::PyDict;
use spear_envs::math::reward::{IncompleteRule, RewardVariant};
use spear_envs::math::{spear_score as rust_spear_score, SpearRewardConfig, ToolCallSchedule};
use spear_envs::webshop::fuzz;
use spear_envs::webshop::score_case::score_case;

use crate::errors::value_error;

/// verl's `math_dapo.compute_score(solution_str, ground_truth, strict_box_verify)`:
/// `{"score": ±1.0, "acc": bool, "pred": str}` (pred `"[INVALID]"` when nothing was extracted).
#[pyfunction]
#[pyo3(signature = (solution_str, ground_truth, strict_box_verify=false))]
fn math_dapo_score<'py>(
    py: Python<'py>,
    solution_str: &str,
    ground_truth: &str,
    strict_box_verify: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let s = spear_envs::math::compute_score(solution_str, ground_truth, strict_box_verify);
    let d = PyDict::new(py);
    d.set_item("score", s.score)?;
    d.set_item("acc", s.acc)?;
    d.set_item("pred", s.pred)?;
    Ok(d)
}

/// SPEAR's math reward for one whole conversation (`recipe/spear/reward.py`).
#[pyfunction]
#[pyo3(signature = (response, ground_truth, n_tool_calls, global_step, *, variant="qwen3", schedule="cosine", max_toolcall_steps=200, incomplete="upstream"))]
#[allow(clippy::too_many_arguments)]
fn spear_math_score<'py>(
    py: Python<'py>,
    response: &str,
    ground_truth: &str,
    n_tool_calls: usize,
    global_step: u64,
    variant: &str,
    schedule: &str,
    max_toolcall_steps: u64,
    incomplete: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let variant = match variant {
        "qwen3" => RewardVariant::Qwen3,
        "qwen25" | "qwen2.5" => RewardVariant::Qwen25,
        o => {
            return Err(value_error(format!(
                "unknown variant {o:?}: use \"qwen3\" or \"qwen25\""
            )))
        }
    };
    let schedule = match schedule {
        "none" => ToolCallSchedule::None,
        "constant" => ToolCallSchedule::Constant,
        "cosine" => ToolCallSchedule::Cosine {
            max_steps: max_toolcall_steps,
        },
        o => {
            return Err(value_error(format!(
                "unknown schedule {o:?}: use \"none\", \"constant\" or \"cosine\""
            )))
        }
    };
    let incomplete = match incomplete {
        "upstream" => IncompleteRule::Upstream,
        "no_answer_no_tool_call" => IncompleteRule::NoAnswerNoToolCall,
        o => {
            return Err(value_error(format!(
                "unknown incomplete rule {o:?}: use \"upstream\" or \"no_answer_no_tool_call\""
            )))
        }
    };
    let cfg = SpearRewardConfig {
        variant,
        schedule,
        incomplete,
    };
    let s = rust_spear_score(response, ground_truth, n_tool_calls, global_step, &cfg);
    let d = PyDict::new(py);
    d.set_item("score", s.score)?;
    d.set_item("acc", s.acc)?;
    d.set_item("pred", s.pred)?;
    d.set_item("is_incomplete", s.is_incomplete)?;
    d.set_item("tool_call_reward", s.tool_call_reward)?;
    d.set_item("outcome", s.outcome)?;
    Ok(d)
}

/// thefuzz 0.19.0 `fuzz.token_set_ratio` (difflib, no python-Levenshtein).
#[pyfunction]
fn token_set_ratio(s1: &str, s2: &str) -> u32 {
    fuzz::token_set_ratio(s1, s2)
}

/// thefuzz 0.19.0 `fuzz.ratio`.
#[pyfunction]
fn fuzz_ratio(s1: &str, s2: &str) -> u32 {
    fuzz::ratio(s1, s2)
}

/// WebShop's `get_reward` on a case as JSON text (`{"product", "goal", "selected_options",
/// "price"}`, WebShop's own dict shapes); the Python front end builds the JSON.
/// Returns the breakdown as a dict (`total` is the reward).
#[pyfunction]
fn webshop_score_case<'py>(py: Python<'py>, case_json: &str) -> PyResult<Bound<'py, PyDict>> {
    let case: serde_json::Value = serde_json::from_str(case_json)
        .map_err(|e| value_error(format!("the WebShop case is not valid JSON: {e}")))?;
    let r = score_case(&case).map_err(value_error)?;
    let d = PyDict::new(py);
    d.set_item("total", r.total)?;
    d.set_item("r_type", r.r_type)?;
    d.set_item("r_att", r.r_att)?;
    d.set_item("r_option", r.r_option)?;
    d.set_item("r_price", r.r_price)?;
    d.set_item("num_attr_matches", r.num_attr_matches)?;
    d.set_item("num_option_matches", r.num_option_matches)?;
    d.set_item("query_match", r.query_match)?;
    d.set_item("category_match", r.category_match)?;
    d.set_item("title_score", r.title_score)?;
    Ok(d)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(math_dapo_score, m)?)?;
    m.add_function(wrap_pyfunction!(spear_math_score, m)?)?;
    m.add_function(wrap_pyfunction!(token_set_ratio, m)?)?;
    m.add_function(wrap_pyfunction!(fuzz_ratio, m)?)?;
    m.add_function(wrap_pyfunction!(webshop_score_case, m)?)?;
    Ok(())
}
