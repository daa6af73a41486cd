//! The learners of `spear-rl` on numpy arrays: one row per step-sample.
//!
//! Every function builds `spear_rl::StepSample`s from the columns it needs and calls
//! the Rust function the trainer calls, so results are those of the Rust crates
//! (checked by `tests/test_learners.py` against `tests/fixtures/expected.json`,
//! which `tests/expected_values.rs` holds equal to the Rust output).

use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use spear_rl::advantage::anchor_groups;
use spear_rl::config::{DrBotConfig, RewardConfig, ToolCallReward, ToolCallVariant};
use spear_rl::drbot::{self, ResponseFlags};
use spear_rl::{
    gigpo_advantages as rl_gigpo, grpo_advantages as rl_grpo, replay_weight as rl_replay_weight,
    rloo_advantages as rl_rloo, toolcall_weight as rl_toolcall_weight, AdvNorm, Batch, GroupId,
    StepSample, TrajId,
};

use crate::arrays::{bool_out, f64_out, i64_out, len, to_vec, with_slice, Bools, F64s, I64s, U32s};
use crate::errors::{check_len, value_error};

/// A step-sample carrying only what the plain-data learners read. The token vectors hold
/// one token so that `has_loss_tokens()` is true unless the caller masks the sample.
pub(crate) fn bare_sample(uid: i64, traj: i64, score: f64) -> StepSample {
    StepSample {
        uid: GroupId(uid as u64),
        traj_uid: TrajId(traj as u64),
        step_index: 0,
        prompt_tokens: Vec::new(),
        response_tokens: vec![0],
        response_mask: vec![1],
        old_log_probs: Vec::new(),
        rollout_log_probs: vec![],
        policy_version: 0,
        step_reward: 0.0,
        episode_reward: 0.0,
        episode_length: 0,
        tool_calls: 0,
        is_action_valid: true,
        anchor_obs: String::new(),
        collected_at: 0,
        score,
        step_return: 0.0,
        advantage: 0.0,
    }
}

/// Samples from `scores`, `group_ids` and optional `traj_ids` (default: one trajectory per row).
pub(crate) fn samples_from(
    scores: &F64s<'_>,
    group_ids: &I64s<'_>,
    traj_ids: Option<&I64s<'_>>,
) -> PyResult<Vec<StepSample>> {
    let n = len(scores);
    check_len("group_ids", len(group_ids), n)?;
    if let Some(t) = traj_ids {
        check_len("traj_ids", len(t), n)?;
    }
    let uids = to_vec(group_ids);
    let trajs: Vec<i64> = match traj_ids {
        Some(t) => to_vec(t),
        None => (0..n as i64).collect(),
    };
    Ok(with_slice(scores, |s| {
        s.iter()
            .zip(&uids)
            .zip(&trajs)
            .map(|((&score, &u), &t)| bare_sample(u, t, score))
            .collect()
    }))
}

fn parse_norm(norm: &str) -> PyResult<AdvNorm> {
    match norm {
        "mean_std" | "mean_std_norm" => Ok(AdvNorm::MeanStd),
        "mean" | "mean_norm" => Ok(AdvNorm::Mean),
        other => Err(value_error(format!(
            "unknown norm {other:?}: use \"mean_std\" (GRPO) or \"mean\" (Dr.GRPO)"
        ))),
    }
}

/// GRPO advantage (spec §4.1): A_i = (s_i − μ_g)/(σ_g + ε), or s_i − μ_g with `norm="mean"`.
#[pyfunction]
#[pyo3(signature = (scores, group_ids, traj_ids=None, *, norm="mean_std", step_weighted=true, epsilon=1e-6))]
fn grpo_advantages<'py>(
    py: Python<'py>,
    scores: F64s<'py>,
    group_ids: I64s<'py>,
    traj_ids: Option<I64s<'py>>,
    norm: &str,
    step_weighted: bool,
    epsilon: f64,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let norm = parse_norm(norm)?;
    let s = samples_from(&scores, &group_ids, traj_ids.as_ref())?;
    Ok(f64_out(py, rl_grpo(&s, norm, step_weighted, epsilon)))
}

/// Dr.GRPO advantage (spec §3, §4.1): A_i = s_i − μ_g.
#[pyfunction]
#[pyo3(signature = (scores, group_ids, traj_ids=None, *, step_weighted=true))]
fn dr_grpo_advantages<'py>(
    py: Python<'py>,
    scores: F64s<'py>,
    group_ids: I64s<'py>,
    traj_ids: Option<I64s<'py>>,
    step_weighted: bool,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let s = samples_from(&scores, &group_ids, traj_ids.as_ref())?;
    Ok(f64_out(py, rl_grpo(&s, AdvNorm::Mean, step_weighted, 1e-6)))
}

/// Anchors as strings: a sequence of `str`, or integer ids.
fn anchors_from(anchors: &Bound<'_, PyAny>, n: usize) -> PyResult<Vec<String>> {
    let v: Vec<String> = if let Ok(v) = anchors.extract::<Vec<String>>() {
        v
    } else {
        let ids: I64s<'_> = anchors.extract().map_err(|_| {
            value_error("`anchors` must be a sequence of str (anchor observations) or of int ids")
        })?;
        to_vec(&ids).iter().map(|i| i.to_string()).collect()
    };
    check_len("anchors", v.len(), n)?;
    Ok(v)
}

/// GiGPO advantage (spec §4.2): returns `(combined, episode, step)`, A = A^E + ω·A^S.
#[pyfunction]
#[pyo3(signature = (scores, group_ids, anchors, step_returns, traj_ids=None, *, mode="mean_std_norm", step_advantage_weight=1.0, step_weighted=true, epsilon=1e-6))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn gigpo_advantages<'py>(
    py: Python<'py>,
    scores: F64s<'py>,
    group_ids: I64s<'py>,
    anchors: &Bound<'py, PyAny>,
    step_returns: F64s<'py>,
    traj_ids: Option<I64s<'py>>,
    mode: &str,
    step_advantage_weight: f64,
    step_weighted: bool,
    epsilon: f64,
) -> PyResult<(
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
)> {
    let norm = parse_norm(mode)?;
    let mut s = samples_from(&scores, &group_ids, traj_ids.as_ref())?;
    check_len("step_returns", len(&step_returns), s.len())?;
    let anchors = anchors_from(anchors, s.len())?;
    with_slice(&step_returns, |r| {
        for ((x, a), &ret) in s.iter_mut().zip(anchors).zip(r) {
            x.anchor_obs = a;
            x.step_return = ret;
        }
    });
    let a = rl_gigpo(&s, norm, step_advantage_weight, step_weighted, epsilon);
    Ok((
        f64_out(py, a.combined),
        f64_out(py, a.episode),
        f64_out(py, a.step),
    ))
}

/// GiGPO's anchor-state groups: the cluster number of every row (exact anchor
/// equality within a task group, clusters numbered in first-appearance order).
#[pyfunction]
fn anchor_group_ids<'py>(
    py: Python<'py>,
    group_ids: I64s<'py>,
    anchors: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    let n = len(&group_ids);
    let anchors = anchors_from(anchors, n)?;
    let uids = to_vec(&group_ids);
    let s: Vec<StepSample> = uids
        .iter()
        .zip(anchors)
        .enumerate()
        .map(|(i, (&u, a))| {
            let mut x = bare_sample(u, i as i64, 0.0);
            x.anchor_obs = a;
            x
        })
        .collect();
    let mut out = vec![0i64; n];
    for (c, cluster) in anchor_groups(&s).iter().enumerate() {
        for &i in cluster {
            out[i] = c as i64;
        }
    }
    Ok(i64_out(py, out))
}

/// RLOO advantage: s_i minus the mean score of the other trajectories of the group.
#[pyfunction]
fn rloo_advantages<'py>(
    py: Python<'py>,
    scores: F64s<'py>,
    group_ids: I64s<'py>,
    traj_ids: I64s<'py>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let s = samples_from(&scores, &group_ids, Some(&traj_ids))?;
    Ok(f64_out(py, rl_rloo(&s)))
}

/// GiGPO discounted step returns R_k = r_k + γ·R_{k+1} per trajectory, ordered by `step_index`.
#[pyfunction]
#[pyo3(signature = (step_rewards, group_ids, traj_ids, step_index, gamma=0.95))]
fn step_returns<'py>(
    py: Python<'py>,
    step_rewards: F64s<'py>,
    group_ids: I64s<'py>,
    traj_ids: I64s<'py>,
    step_index: I64s<'py>,
    gamma: f64,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let mut s = samples_from(&step_rewards, &group_ids, Some(&traj_ids))?;
    check_len("step_index", len(&step_index), s.len())?;
    let idx = to_vec(&step_index);
    for (x, &k) in s.iter_mut().zip(&idx) {
        x.step_reward = x.score;
        x.step_index = u32::try_from(k)
            .map_err(|_| value_error(format!("step_index {k} is not in 0..2^32")))?;
    }
    let mut batch = Batch::new(s);
    spear_rl::reward::compute_step_returns(&mut batch, gamma);
    Ok(f64_out(
        py,
        batch.samples.iter().map(|x| x.step_return).collect(),
    ))
}

/// The invalid-action penalty: `(scores − coef·(1 − valid), step_returns − coef·(1 − valid),
/// valid ratio)`; new arrays, the inputs are not changed.
#[pyfunction]
#[pyo3(signature = (scores, valid, coef=0.1, step_returns=None))]
#[allow(clippy::type_complexity)]
fn apply_invalid_action_penalty<'py>(
    py: Python<'py>,
    scores: F64s<'py>,
    valid: Bools<'py>,
    coef: f64,
    step_returns: Option<F64s<'py>>,
) -> PyResult<(Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>, f64)> {
    let n = len(&scores);
    check_len("valid", len(&valid), n)?;
    let v = to_vec(&valid);
    let r = match &step_returns {
        Some(r) => {
            check_len("step_returns", len(r), n)?;
            to_vec(r)
        }
        None => vec![0.0; n],
    };
    let mut s: Vec<StepSample> = with_slice(&scores, |sc| {
        sc.iter()
            .enumerate()
            .map(|(i, &x)| bare_sample(0, i as i64, x))
            .collect()
    });
    for ((x, &ok), &ret) in s.iter_mut().zip(&v).zip(&r) {
        x.is_action_valid = ok;
        x.step_return = ret;
    }
    let mut batch = Batch::new(s);
    let ratio = spear_rl::reward::apply_invalid_action_penalty(&mut batch, coef);
    Ok((
        f64_out(py, batch.scores()),
        f64_out(py, batch.samples.iter().map(|x| x.step_return).collect()),
        ratio,
    ))
}

fn parse_toolcall_reward(s: &str) -> PyResult<ToolCallReward> {
    match s {
        "none" => Ok(ToolCallReward::None),
        "constant" => Ok(ToolCallReward::Constant),
        "cosine" => Ok(ToolCallReward::Cosine),
        o => Err(value_error(format!(
            "unknown toolcall_reward {o:?}: use \"none\", \"constant\" or \"cosine\""
        ))),
    }
}

fn parse_variant(s: &str) -> PyResult<ToolCallVariant> {
    match s {
        "agent" => Ok(ToolCallVariant::Agent),
        "math_qwen25" => Ok(ToolCallVariant::MathQwen25),
        "math_qwen3" => Ok(ToolCallVariant::MathQwen3),
        o => Err(value_error(format!(
            "unknown variant {o:?}: use \"agent\", \"math_qwen25\" or \"math_qwen3\""
        ))),
    }
}

/// Episode scores with SPEAR's tool-call reward (spec §2.2): s = R + bonus(calls, t).
#[pyfunction]
#[pyo3(signature = (episode_rewards, calls, t, *, toolcall_reward="cosine", variant="agent", max_toolcall_steps=200, per_call=0.1, cap=1.0))]
#[allow(clippy::too_many_arguments)]
fn episode_scores<'py>(
    py: Python<'py>,
    episode_rewards: F64s<'py>,
    calls: I64s<'py>,
    t: u64,
    toolcall_reward: &str,
    variant: &str,
    max_toolcall_steps: u64,
    per_call: f64,
    cap: f64,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let cfg = RewardConfig {
        toolcall_reward: parse_toolcall_reward(toolcall_reward)?,
        toolcall_variant: parse_variant(variant)?,
        max_toolcall_steps,
        toolcall_per_call: per_call,
        toolcall_cap: cap,
        ..RewardConfig::default()
    };
    let n = len(&episode_rewards);
    check_len("calls", len(&calls), n)?;
    let c = to_vec(&calls);
    let out = with_slice(&episode_rewards, |r| {
        r.iter()
            .zip(&c)
            .map(|(&x, &k)| {
                let k = u32::try_from(k.max(0)).unwrap_or(u32::MAX);
                spear_rl::reward::episode_score(x, k, t, &cfg)
            })
            .collect()
    });
    Ok(f64_out(py, out))
}

/// μ(t) = ½(cos(π·t/T_decay) + 1) for t ≤ T_decay, else 0 (spec §2.6).
#[pyfunction]
#[pyo3(signature = (t, t_decay=200))]
fn toolcall_weight(t: u64, t_decay: u64) -> f64 {
    rl_toolcall_weight(t, t_decay)
}

/// γ(t) = c·½(1 − cos(π·t/T_warm)) for t ≤ T_warm, else c (spec §2.6).
#[pyfunction]
#[pyo3(signature = (t, t_warm=200, coef=1.0))]
fn replay_weight(t: u64, t_warm: u64, coef: f64) -> f64 {
    rl_replay_weight(t, t_warm, coef)
}

/// r_tc = min(cap, per_call·calls) (spec §2.2).
#[pyfunction]
#[pyo3(signature = (calls, per_call=0.1, cap=1.0))]
fn toolcall_reward(calls: u32, per_call: f64, cap: f64) -> f64 {
    spear_rl::reward::toolcall_reward(calls, per_call, cap)
}

/// Void turn: no `<action>…</action>` after the last `</think>` (spec §3).
#[pyfunction]
fn is_incomplete(text: &str) -> bool {
    drbot::is_incomplete(text)
}

/// Some token n-gram occurs at least `threshold` times (spec §3).
#[pyfunction]
#[pyo3(signature = (tokens, n=20, threshold=10))]
fn is_repetitive(tokens: U32s<'_>, n: usize, threshold: usize) -> bool {
    with_slice(&tokens, |t| drbot::is_repetitive(t, n, threshold))
}

/// The decoded text contains a mojibake marker (spec §3).
#[pyfunction]
fn is_unreadable(text: &str) -> bool {
    drbot::is_unreadable(text)
}

/// The Dr.BoT response filters over a batch (spec §3): `(keep, stats)` where `keep[i]` is
/// False for a response the enabled filters mask out of the loss, and `stats` counts each
/// filter (`overlong`, `incomplete`, `repetitive`, `unreadable`, `masked`). Runs on all
/// cores with the GIL released.
#[pyfunction]
#[pyo3(signature = (responses, texts, *, max_response_length=512, repetition_ngram=20, repetition_threshold=10, filter_overlong=true, filter_incomplete=true, filter_repetitive=true, filter_unreadable=true))]
#[allow(clippy::too_many_arguments)]
fn response_filters<'py>(
    py: Python<'py>,
    responses: Vec<U32s<'py>>,
    texts: Vec<String>,
    max_response_length: u64,
    repetition_ngram: u64,
    repetition_threshold: u64,
    filter_overlong: bool,
    filter_incomplete: bool,
    filter_repetitive: bool,
    filter_unreadable: bool,
) -> PyResult<(Bound<'py, PyArray1<bool>>, Bound<'py, PyDict>)> {
    if responses.len() != texts.len() {
        return Err(value_error(format!(
            "{} responses but {} texts: give one decoded text per response",
            responses.len(),
            texts.len()
        )));
    }
    let cfg = DrBotConfig {
        filter_overlong,
        filter_incomplete,
        filter_repetitive,
        filter_unreadable,
        max_response_length,
        repetition_ngram,
        repetition_threshold,
        ..DrBotConfig::default()
    };
    let tokens: Vec<Vec<u32>> = responses.iter().map(to_vec).collect();
    let (keep, st) = py.detach(|| {
        use rayon::prelude::*;
        let flags: Vec<ResponseFlags> = tokens
            .par_iter()
            .zip(texts.par_iter())
            .map(|(t, x)| drbot::response_flags(t, x, &cfg))
            .collect();
        let mut batch = Batch::new(
            (0..flags.len())
                .map(|i| bare_sample(0, i as i64, 0.0))
                .collect(),
        );
        let st = drbot::apply_response_filters(&mut batch, &flags, &cfg);
        let keep: Vec<bool> = batch.samples.iter().map(|s| s.has_loss_tokens()).collect();
        (keep, st)
    });
    let stats = PyDict::new(py);
    stats.set_item("overlong", st.overlong)?;
    stats.set_item("incomplete", st.incomplete)?;
    stats.set_item("repetitive", st.repetitive)?;
    stats.set_item("unreadable", st.unreadable)?;
    stats.set_item("masked", st.masked)?;
    Ok((bool_out(py, keep), stats))
}

/// Dr.BoT's low-variance group filter (spec §3): keeps the ⌊ratio·#groups⌋ task groups
/// with the highest population std of their trajectories' mean scores, then (optionally)
/// a seeded power-of-two subsample of their rows. The RNG lives in the object, so a run
/// of calls draws as the Rust trainer does.
#[pyclass(module = "spear_rs._native")]
struct StdGroupFilter {
    cfg: DrBotConfig,
    rng: ChaCha8Rng,
}

#[pymethods]
impl StdGroupFilter {
    #[new]
    #[pyo3(signature = (ratio=0.75, *, power_of_two_subsample=true, seed=0))]
    fn new(ratio: f64, power_of_two_subsample: bool, seed: u64) -> PyResult<Self> {
        if !(ratio > 0.0 && ratio <= 1.0) {
            return Err(value_error(format!(
                "ratio {ratio} is outside (0, 1]; 1 turns the filter off"
            )));
        }
        Ok(StdGroupFilter {
            cfg: DrBotConfig {
                rollout_filter_ratio: ratio,
                power_of_two_subsample,
                ..DrBotConfig::default()
            },
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    /// `(kept_rows, report)`: the row indices kept (ascending) and a dict with
    /// `kept_groups`, `kept_stds` (highest first), `mean_std_all`, `samples_before`,
    /// `samples_after`.
    fn __call__<'py>(
        &mut self,
        py: Python<'py>,
        scores: F64s<'py>,
        group_ids: I64s<'py>,
        traj_ids: I64s<'py>,
    ) -> PyResult<(Bound<'py, PyArray1<i64>>, Bound<'py, PyDict>)> {
        let mut s = samples_from(&scores, &group_ids, Some(&traj_ids))?;
        // The row index rides in `collected_at`, which the filter never reads.
        for (i, x) in s.iter_mut().enumerate() {
            x.collected_at = i as u64;
        }
        let (kept, rep) = drbot::filter_groups_by_std(&Batch::new(s), &self.cfg, &mut self.rng)
            .map_err(value_error)?;
        let rows: Vec<i64> = kept.samples.iter().map(|x| x.collected_at as i64).collect();
        let d = PyDict::new(py);
        d.set_item(
            "kept_groups",
            i64_out(py, rep.kept.iter().map(|(g, _)| g.0 as i64).collect()),
        )?;
        d.set_item(
            "kept_stds",
            f64_out(py, rep.kept.iter().map(|(_, s)| *s).collect()),
        )?;
        d.set_item("mean_std_all", rep.mean_std_all)?;
        d.set_item("samples_before", rep.samples_before)?;
        d.set_item("samples_after", rep.samples_after)?;
        Ok((i64_out(py, rows), d))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(grpo_advantages, m)?)?;
    m.add_function(wrap_pyfunction!(dr_grpo_advantages, m)?)?;
    m.add_function(wrap_pyfunction!(gigpo_advantages, m)?)?;
    m.add_function(wrap_pyfunction!(anchor_group_ids, m)?)?;
    m.add_function(wrap_pyfunction!(rloo_advantages, m)?)?;
    m.add_function(wrap_pyfunction!(step_returns, m)?)?;
    m.add_function(wrap_pyfunction!(apply_invalid_action_penalty, m)?)?;
    m.add_function(wrap_pyfunction!(episode_scores, m)?)?;
    m.add_function(wrap_pyfunction!(toolcall_weight, m)?)?;
    m.add_function(wrap_pyfunction!(replay_weight, m)?)?;
    m.add_function(wrap_pyfunction!(toolcall_reward, m)?)?;
    m.add_function(wrap_pyfunction!(is_incomplete, m)?)?;
    m.add_function(wrap_pyfunction!(is_repetitive, m)?)?;
    m.add_function(wrap_pyfunction!(is_unreadable, m)?)?;
    m.add_function(wrap_pyfunction!(response_filters, m)?)?;
    m.add_class::<StdGroupFilter>()?;
    Ok(())
}
