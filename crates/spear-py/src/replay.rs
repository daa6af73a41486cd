//! The SPEAR self-imitation replay buffer (`spear_rl::ReplayBuffer`, spec §2.3–§2.4)
//! on numpy columns.
//!
//! The buffer stores step-samples; Python keeps the payload (tokens, log-probs). A
//! stored sample is named by the step of the `update` that stored it and its row in
//! the arrays passed to that call, so a draw returns `(steps, rows)` for the caller to
//! look its samples up.

use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use spear_rl::config::{RecalibratedKeep, ReplayAdvantage, ReplayConfig};
use spear_rl::{Batch, ReplayDraw};

use crate::arrays::{f64_out, i64_out, len, to_vec, Bools, F64s, I64s};
use crate::errors::{check_len, value_error};
use crate::learners::samples_from;

/// One replay draw: the rows to replay and their recalibrated advantages.
#[pyclass(module = "spear_rs._native", frozen)]
struct ReplayBatch {
    /// Step (`update`'s `step`) that stored each drawn sample.
    #[pyo3(get)]
    steps: Py<PyArray1<i64>>,
    /// Row of each drawn sample in the arrays of that `update` call.
    #[pyo3(get)]
    rows: Py<PyArray1<i64>>,
    /// Recalibrated advantage Ã = s − P50(D_R) (or the decayed stored advantage).
    #[pyo3(get)]
    advantages: Py<PyArray1<f64>>,
    /// Stored score s of each drawn sample.
    #[pyo3(get)]
    scores: Py<PyArray1<f64>>,
    /// P50 of the D_R group means (`None` in weight-decay mode).
    #[pyo3(get)]
    p50_mean: Option<f64>,
    /// P50 of the D_R group stds.
    #[pyo3(get)]
    p50_std: Option<f64>,
    /// P95 of the D_R group means (logged only).
    #[pyo3(get)]
    p95_mean: Option<f64>,
    /// Samples in the buffer before recalibration.
    #[pyo3(get)]
    candidates: usize,
    /// Samples left after the keep rule.
    #[pyo3(get)]
    eligible: usize,
    /// The draw was smaller than `min_replay_samples` and is empty.
    #[pyo3(get)]
    skipped: bool,
    len: usize,
}

#[pymethods]
impl ReplayBatch {
    fn __len__(&self) -> usize {
        self.len
    }

    fn __repr__(&self) -> String {
        format!(
            "ReplayBatch(samples={}, candidates={}, eligible={}, p50_mean={:?}, skipped={})",
            self.len, self.candidates, self.eligible, self.p50_mean, self.skipped
        )
    }
}

fn batch_from_draw(py: Python<'_>, d: ReplayDraw) -> ReplayBatch {
    let s = &d.samples;
    ReplayBatch {
        steps: i64_out(py, s.iter().map(|x| x.collected_at as i64).collect()).unbind(),
        rows: i64_out(py, s.iter().map(|x| x.step_index as i64).collect()).unbind(),
        advantages: f64_out(py, s.iter().map(|x| x.advantage).collect()).unbind(),
        scores: f64_out(py, s.iter().map(|x| x.score).collect()).unbind(),
        p50_mean: d.p50_mean,
        p50_std: d.p50_std,
        p95_mean: d.p95_mean,
        candidates: d.candidates,
        eligible: d.eligible,
        skipped: d.skipped,
        len: s.len(),
    }
}

/// `TrajectoryBufferBatch` of the SPEAR code with the official defaults.
#[pyclass(module = "spear_rs._native")]
struct ReplayBuffer {
    inner: spear_rl::ReplayBuffer,
}

#[pymethods]
impl ReplayBuffer {
    #[new]
    #[pyo3(signature = (*, buffer_size=2048, trigger_factor=1.5, baseline_buffer_size=10240, tolerate_steps=5, weight_decay=None, norm_by_std=false, keep="non_negative", require_tool_call=false, min_replay_samples=1, seed=0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        buffer_size: u64,
        trigger_factor: f64,
        baseline_buffer_size: u64,
        tolerate_steps: u64,
        weight_decay: Option<f64>,
        norm_by_std: bool,
        keep: &str,
        require_tool_call: bool,
        min_replay_samples: u64,
        seed: u64,
    ) -> PyResult<Self> {
        let keep = match keep {
            "non_negative" => RecalibratedKeep::NonNegative,
            "positive" => RecalibratedKeep::Positive,
            o => {
                return Err(value_error(format!(
                    "unknown keep {o:?}: use \"non_negative\" (Ã ≥ 0) or \"positive\" (Ã > 0)"
                )))
            }
        };
        if tolerate_steps > spear_rl::replay::MAX_TOLERATE_STEPS {
            return Err(value_error(format!(
                "tolerate_steps {tolerate_steps} is above the official cap of {}",
                spear_rl::replay::MAX_TOLERATE_STEPS
            )));
        }
        let advantage = match weight_decay {
            None => ReplayAdvantage::P50Baseline,
            Some(w) if w > 0.0 && w <= 1.0 => ReplayAdvantage::WeightDecay(w),
            Some(w) => {
                return Err(value_error(format!(
                    "weight_decay {w} is outside (0, 1]; leave it None for the P50 recalibration"
                )))
            }
        };
        let cfg = ReplayConfig {
            buffer_size,
            trigger_factor,
            baseline_buffer_size,
            tolerate_steps,
            advantage,
            norm_by_std,
            keep,
            require_tool_call,
            min_replay_samples,
            ..ReplayConfig::default()
        };
        Ok(ReplayBuffer {
            inner: spear_rl::ReplayBuffer::new(&cfg, seed),
        })
    }

    /// End-of-step update (spec §2.8 step 8): drop stale entries, append the per-group
    /// mean/std of the trajectories' mean scores to D_R, store the rows with A > 0 that
    /// have loss tokens (`loss_mask`, default all) [and tool calls, with
    /// `require_tool_call`]. Returns `entries_removed`, `groups_recorded`, `samples_stored`.
    #[pyo3(signature = (step, scores, advantages, group_ids, traj_ids, *, loss_mask=None, tool_calls=None))]
    #[allow(clippy::too_many_arguments)]
    fn update<'py>(
        &mut self,
        py: Python<'py>,
        step: u64,
        scores: F64s<'py>,
        advantages: F64s<'py>,
        group_ids: I64s<'py>,
        traj_ids: I64s<'py>,
        loss_mask: Option<Bools<'py>>,
        tool_calls: Option<I64s<'py>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let mut s = samples_from(&scores, &group_ids, Some(&traj_ids))?;
        let n = s.len();
        check_len("advantages", len(&advantages), n)?;
        let adv = to_vec(&advantages);
        let mask = match &loss_mask {
            Some(m) => {
                check_len("loss_mask", len(m), n)?;
                to_vec(m)
            }
            None => vec![true; n],
        };
        let calls = match &tool_calls {
            Some(c) => {
                check_len("tool_calls", len(c), n)?;
                to_vec(c)
            }
            None => vec![0; n],
        };
        for (i, x) in s.iter_mut().enumerate() {
            x.advantage = adv[i];
            if !mask[i] {
                x.mask_out();
            }
            x.tool_calls = u32::try_from(calls[i].max(0)).unwrap_or(u32::MAX);
            x.collected_at = step;
            // The buffer never reads `step_index`; it carries the row so a draw can name it.
            x.step_index =
                u32::try_from(i).map_err(|_| value_error("more than 2^32 rows in one update"))?;
        }
        let rep = self.inner.update(&Batch::new(s), step);
        let d = PyDict::new(py);
        d.set_item("entries_removed", rep.entries_removed)?;
        d.set_item("groups_recorded", rep.groups_recorded)?;
        d.set_item("samples_stored", rep.samples_stored)?;
        Ok(d)
    }

    /// The pre-update check (spec §2.8 step 6): a [`ReplayBatch`] (and the buffer
    /// cleared) when the fill measure exceeds `trigger_factor·buffer_size`, else None.
    fn maybe_replay(&mut self, py: Python<'_>) -> Option<ReplayBatch> {
        self.inner.maybe_replay().map(|d| batch_from_draw(py, d))
    }

    /// Draw now, full or not (recalibrate, keep, power-of-two subsample, clear).
    fn take_replay(&mut self, py: Python<'_>) -> ReplayBatch {
        batch_from_draw(py, self.inner.take_replay())
    }

    /// The fill measure: stored samples whose score beats P50 of the D_R means.
    fn fill_measure(&self) -> usize {
        self.inner.fill_measure()
    }

    /// Whether the next `maybe_replay` fires.
    fn is_full(&self) -> bool {
        self.inner.is_full()
    }

    /// Drop every stored sample (D_R is kept).
    fn clear(&mut self) {
        self.inner.clear()
    }

    /// Number of stored samples.
    #[getter]
    fn stored_samples(&self) -> usize {
        self.inner.stored_samples()
    }

    /// Number of group entries in D_R.
    #[getter]
    fn baseline_len(&self) -> usize {
        self.inner.baseline_len()
    }

    /// `np.percentile` of the D_R group means (None while D_R is empty).
    fn baseline_percentile(&self, q: f64) -> Option<f64> {
        self.inner.baseline_mean_percentile(q)
    }

    /// Recalibrated advantage of a stored score: s − P50_mean, or over P50_std + 1e-6.
    #[staticmethod]
    #[pyo3(signature = (score, p50_mean, p50_std=0.0, norm_by_std=false))]
    fn recalibrate(score: f64, p50_mean: f64, p50_std: f64, norm_by_std: bool) -> f64 {
        spear_rl::ReplayBuffer::recalibrate(score, p50_mean, p50_std, norm_by_std)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ReplayBuffer>()?;
    m.add_class::<ReplayBatch>()?;
    Ok(())
}
