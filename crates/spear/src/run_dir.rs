//! The run directory `runs/<name>/` and the records written into it.
//!
//! ```text
//! runs/<name>/
//!   config.toml                    resolved config (every field, after preset and --set)
//!   metrics.jsonl                  one IterationMetrics per training iteration
//!   eval.jsonl                     one EvalRecord per evaluation
//!   trajectories/iter_000001.jsonl sampled episodes (EpisodeRecord per line) of that iteration
//!   checkpoints/iter_NNNNNN/       a checkpoint (model.safetensors + state.json); `latest`
//!                                  names the newest complete one (see `train::state`)
//!   report.html                    written by `spear report`
//!   .lock                          held (flock) by the one process writing the run
//! ```
//!
//! One writer at a time: `spear train` (new or `--resume`) and `spear sft` take an exclusive
//! OS lock on `.lock` ([`RunLock`]) before they write anything; the kernel releases it when
//! the process ends, kill -9 included, so a dead run never blocks its resume. A second
//! writer stops at once with an error naming the run and the holder's pid.
//!
//! Readers must accept unknown fields (the report plots every numeric field of
//! `metrics.jsonl`, flattening nested objects to dotted keys), so adding a metric never breaks
//! an older report.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use serde::{Deserialize, Serialize};

/// Seconds spent in each phase of one iteration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PhaseTimes {
    /// Sampling responses (all turns).
    pub generate: f64,
    /// Stepping environments / running tools.
    pub env: f64,
    /// Rewards, filters, advantages, buffer bookkeeping.
    pub advantage: f64,
    /// Teacher-forced scoring + backward + optimizer steps (on-policy and replay).
    pub update: f64,
    /// Recomputing the on-policy samples' behaviour log-probs with the trainer's weights
    /// before the update (verl's `old_log_prob` timing).
    #[serde(default)]
    pub old_log_prob: f64,
    /// Evaluation (0 in iterations without one).
    pub eval: f64,
    /// Checkpoint and log writes.
    pub save: f64,
    /// Whole iteration.
    pub total: f64,
}

/// One line of `metrics.jsonl`: everything about one training iteration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IterationMetrics {
    /// Training step t (1-based, `global_steps`).
    pub iteration: u64,
    /// Fraction of this iteration's rollout episodes that were won.
    pub success_rate: f64,
    /// Success rate per task type (`pick_and_place`, …) over the rollout episodes.
    pub success_by_type: BTreeMap<String, f64>,
    /// Mean episode reward (extrinsic, Σ step rewards).
    pub episode_reward: f64,
    /// Mean episode length (active steps).
    pub episode_length: f64,
    /// Mean episode score s_i (extrinsic + μ(t)·r_tc − invalid penalty), spec §2.2.
    pub score: f64,
    /// Mean environment task score (WebShop 0–1; household: won as 0/1).
    pub task_score: f64,
    /// Fraction of step-samples whose output parsed into a valid action.
    pub valid_action_rate: f64,
    /// Step-samples collected.
    pub samples: u64,
    /// Step-samples masked by the Dr.BoT response filters.
    pub masked_samples: u64,
    /// Step-samples trained on (after the group filter).
    pub trained_samples: u64,
    /// Mean token entropy of the on-policy update (policy at update time).
    pub entropy: f64,
    /// Approximate KL (old ‖ new), mean over on-policy tokens.
    pub approx_kl: f64,
    /// KL loss to the reference policy (`rl.loss.kl_loss_type`), mean over on-policy tokens;
    /// 0 without `rl.loss.use_kl_loss`.
    #[serde(default)]
    pub kl_loss: f64,
    /// PPO clip fraction (on-policy).
    pub clip_frac: f64,
    /// Fraction of tokens hit by the dual clip (on-policy).
    pub clip_frac_dual: f64,
    /// Clip-Cov masked-token fraction (on-policy).
    pub clip_cov_frac: f64,
    /// Clip-Cov masked-token fraction of the replay pass (0 without replay).
    pub replay_clip_cov_frac: f64,
    /// Mean policy-gradient loss (on-policy).
    pub pg_loss: f64,
    /// Gradient norm before clipping, mean over optimizer steps.
    pub grad_norm: f64,
    /// Learning rate of the last optimizer step.
    pub lr: f64,
    /// SPEAR tool-call coefficient μ(t) (spec §2.6).
    pub toolcall_coef: f64,
    /// SPEAR self-imitation weight γ(t) (spec §2.6).
    pub sil_weight: f64,
    /// Samples stored in the replay buffer after this iteration's update.
    pub buffer_samples: u64,
    /// Replay samples trained on in this iteration (0 when replay did not fire).
    pub replay_samples: u64,
    /// P50 baseline of the replay recalibration (when replay fired).
    pub replay_p50: Option<f64>,
    /// Generated tokens per second during rollout.
    pub gen_tokens_per_s: f64,
    /// Trained (scored + backpropagated) tokens per second during the update.
    pub train_tokens_per_s: f64,
    /// Mean |log π_trainer − log π_engine| over the trained response tokens of the on-policy
    /// samples: the trainer's recomputed behaviour log-probs against the rollout engine's.
    pub rollout_logprob_abs_diff_mean: f64,
    /// Largest |log π_trainer − log π_engine| over the same tokens.
    pub rollout_logprob_abs_diff_max: f64,
    /// Fraction of those tokens whose probability ratio π_trainer / π_engine is outside
    /// [0.5, 2].
    pub rollout_ratio_outside_frac: f64,
    /// Mean truncated importance weight min(π_trainer / π_engine, cap) of the on-policy
    /// tokens (`rl.loss.tis_cap`; 0 when off).
    pub tis_weight: f64,
    /// Fraction of on-policy tokens whose truncated importance weight hit the cap (0 when off).
    pub tis_capped_frac: f64,
    /// `rollout.mode = "async"`: samples dropped because the weights that generated them were
    /// more than `rollout.max_staleness` policy versions old (0 in sync mode).
    pub async_dropped_samples: u64,
    /// Wall time per phase.
    pub time: PhaseTimes,
    /// Wall seconds since the run started (excluding time between a kill and a resume).
    pub elapsed: f64,
    /// The environment's own metrics under their names (`crate::tasks::Collected::extra`),
    /// e.g. `math`: [`MathIterationStats`] of a math run. Written at the top level of the line.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Rollout statistics of a math iteration (one conversation = one episode).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MathIterationStats {
    /// Mean tool-call messages per conversation (what r_tc counts, spec §2.2).
    pub tool_calls: f64,
    /// Fraction of conversations with at least one tool call.
    pub tool_call_rate: f64,
    /// Fraction of conversations the math incomplete rule flagged (`env.math.incomplete_rule`,
    /// Dr.BoT's `is_incomplete`).
    pub incomplete_rate: f64,
    /// Mean response tokens per conversation (tool output included).
    pub response_tokens: f64,
    /// Mean assistant turns per conversation.
    pub assistant_turns: f64,
}

/// One line of `eval.jsonl`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EvalRecord {
    /// Training iteration after which the evaluation ran (0 = before training).
    pub iteration: u64,
    /// Split evaluated (`valid_seen`, `valid_unseen`, `test`, …).
    pub split: String,
    /// Episodes evaluated.
    pub episodes: u64,
    /// Success rate.
    pub success_rate: f64,
    /// 95 % Wilson interval of the success rate.
    pub ci_low: f64,
    /// Upper end of the interval.
    pub ci_high: f64,
    /// Success rate per task type.
    pub success_by_type: BTreeMap<String, f64>,
    /// Episodes per task type.
    pub episodes_by_type: BTreeMap<String, u64>,
    /// Mean episode length.
    pub episode_length: f64,
    /// Mean task score.
    pub task_score: f64,
    /// Sampling temperature used.
    pub temperature: f64,
    /// Math splits only: avg@k / pass@k (then `episodes` = problems × k and `success_rate` =
    /// avg@k, the mean accuracy over every sample).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub math: Option<MathEvalStats>,
}

/// avg@k / pass@k of a math evaluation (spec §5.4).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MathEvalStats {
    /// Problems evaluated.
    pub problems: u64,
    /// Samples per problem.
    pub k: u64,
    /// Mean accuracy over all samples.
    pub avg_at_k: f64,
    /// Unbiased pass@j for j = 1, 2, 4, … < k and j = k (key: j).
    pub pass_at: BTreeMap<String, f64>,
    /// Mean tool-call messages per conversation.
    pub mean_tool_calls: f64,
}

/// One turn of an episode as the trajectory viewer shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TurnRecord {
    /// The prompt text given to the model (the rendered template, before the chat template).
    pub prompt: String,
    /// The model's raw output (thinking and action).
    pub response: String,
    /// The action sent to the environment.
    pub action: String,
    /// Whether the output parsed into a valid action.
    pub valid: bool,
    /// The environment's reply.
    pub observation: String,
    /// Reward of this step.
    pub reward: f64,
    /// Advantage assigned to this step-sample (None before advantages, or when filtered out).
    pub advantage: Option<f64>,
    /// Whether the sample was masked out of the loss by a Dr.BoT filter.
    pub masked: bool,
}

/// One line of `trajectories/iter_NNNNNN.jsonl`: one episode.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EpisodeRecord {
    /// Iteration that collected it.
    pub iteration: u64,
    /// Task index within the environment's split.
    pub task: u64,
    /// Task type (`pick_and_place`, `math`, …).
    pub task_type: String,
    /// Task description (goal).
    pub goal: String,
    /// Group (task) id within the iteration.
    pub group: u64,
    /// Trajectory index within the iteration.
    pub traj: u64,
    /// Won.
    pub won: bool,
    /// Σ step rewards.
    pub episode_reward: f64,
    /// Episode score s_i (filled after reward shaping).
    pub score: f64,
    /// The environment's raw task score at the end of the episode where it has one
    /// (WebShop's reward in [0, 1], reported as "Score"); absent for household episodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_score: Option<f64>,
    /// The policy version (weight updates applied) that generated the episode — the oldest
    /// of its turns — where the engine reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<u64>,
    /// The turns.
    pub turns: Vec<TurnRecord>,
}

impl EpisodeRecord {
    /// The task score: the environment's where it has one, else 1 for a won episode.
    pub fn task_score_or_won(&self) -> f64 {
        self.task_score.unwrap_or(if self.won { 1.0 } else { 0.0 })
    }
}

/// Paths inside a run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// The directory itself.
    pub root: PathBuf,
}

impl RunDir {
    /// A run directory at `root` (not created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    /// `config.toml`.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    /// `metrics.jsonl`.
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }
    /// `eval.jsonl`.
    pub fn eval(&self) -> PathBuf {
        self.root.join("eval.jsonl")
    }
    /// `trajectories/`.
    pub fn trajectories_dir(&self) -> PathBuf {
        self.root.join("trajectories")
    }
    /// `trajectories/iter_NNNNNN.jsonl`.
    pub fn trajectories(&self, iteration: u64) -> PathBuf {
        self.trajectories_dir()
            .join(format!("iter_{iteration:06}.jsonl"))
    }
    /// `checkpoints/`.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
    /// `report.html`.
    pub fn report(&self) -> PathBuf {
        self.root.join("report.html")
    }
    /// The run's name (last path component).
    pub fn name(&self) -> String {
        self.root
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| self.root.display().to_string())
    }
}

/// An exclusive lock on a run directory, held until dropped or until the process ends.
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl RunLock {
    /// Creates `root` if needed and takes the lock on `root/.lock` without waiting; if another
    /// process holds it, the error names the run and that process's pid.
    pub fn acquire(root: &Path) -> anyhow::Result<RunLock> {
        use std::io::{Read, Seek};
        use std::os::unix::io::AsRawFd;
        std::fs::create_dir_all(root)
            .with_context(|| format!("creating the run directory {}", root.display()))?;
        let path = root.join(".lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening the run lock {}", path.display()))?;
        // SAFETY: flock on a file descriptor we own; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another process".to_string()
                } else {
                    format!("process {holder}")
                };
                anyhow::bail!(
                    "the run {} is in use by {who} (it holds {}): only one `spear train` or \
                     `spear sft` may write a run at a time. Wait for it to finish or stop it \
                     (Ctrl-C), then `spear train --resume {}`; or start another run with \
                     `--set run.name=...`",
                    root.display(),
                    path.display(),
                    root.display()
                );
            }
            return Err(err).with_context(|| format!("locking {}", path.display()));
        }
        file.set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .and_then(|_| file.flush())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(RunLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Removes the temporary files that an interrupted atomic write (`.NAME.tmp-PID`, see
/// `spear_model::checkpoint::write_atomic`) left in the run directory, its `checkpoints/`
/// (and each checkpoint directory) and `trajectories/`. Call it only while holding the
/// [`RunLock`]: then no other process is writing there. Returns the files removed.
pub fn remove_stale_temporaries(root: &Path) -> Vec<PathBuf> {
    fn is_tmp(name: &str) -> bool {
        name.starts_with('.') && name.contains(".tmp-")
    }
    let mut dirs = vec![
        root.to_path_buf(),
        root.join("checkpoints"),
        root.join("trajectories"),
    ];
    if let Ok(rd) = std::fs::read_dir(root.join("checkpoints")) {
        dirs.extend(
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir()),
        );
    }
    let mut removed = vec![];
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.filter_map(|e| e.ok()) {
            let p = e.path();
            if p.is_file()
                && is_tmp(&e.file_name().to_string_lossy())
                && std::fs::remove_file(&p).is_ok()
            {
                removed.push(p);
            }
        }
    }
    removed
}

/// Appends one record as a JSON line (and syncs it).
pub fn append_jsonl<T: serde::Serialize>(path: &Path, rec: &T) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut line = serde_json::to_string(rec)?;
    line.push('\n');
    f.write_all(line.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    f.sync_data().ok();
    Ok(())
}

/// Keeps only the lines of a JSONL file whose `iteration` is at most `max_iter` (a run killed
/// after logging but before its checkpoint resumes without duplicates).
pub fn truncate_jsonl(path: &Path, max_iter: u64) -> anyhow::Result<()> {
    keep_lines_by_iteration(path, |i| i <= max_iter)
}

/// Removes the lines of a JSONL file whose `iteration` is `iteration` (and unparsable lines).
pub fn drop_iteration_lines(path: &Path, iteration: u64) -> anyhow::Result<()> {
    keep_lines_by_iteration(path, |i| i != iteration)
}

/// Rewrites a JSONL file (atomically) with the lines whose `iteration` passes `keep`; lines
/// without one (a half-written line) are dropped. A missing file is left missing.
fn keep_lines_by_iteration(path: &Path, keep: impl Fn(u64) -> bool) -> anyhow::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path)?;
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("iteration").and_then(|i| i.as_u64()))
                .is_some_and(&keep)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    spear_model::checkpoint::write_atomic(path, kept.as_bytes())?;
    Ok(())
}

/// Reads a JSON-lines file into records; a malformed line is an error naming file and line.
pub fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<Vec<T>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}:{}: malformed JSON line", path.display(), i + 1))
        })
        .collect()
}

/// 95 % Wilson score interval for `k` successes out of `n` (z = 1.96); `(0, 1)` when n = 0.
pub fn wilson_interval(k: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.96f64;
    let n_f = n as f64;
    let p = k as f64 / n_f;
    let denom = 1.0 + z * z / n_f;
    let centre = (p + z * z / (2.0 * n_f)) / denom;
    let half = z * (p * (1.0 - p) / n_f + z * z / (4.0 * n_f * n_f)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_by_hand() {
        // k = 5, n = 10: p = 0.5, z²/n = 0.38416, denom = 1.38416,
        // centre = (0.5 + 0.19208)/1.38416 = 0.5,
        // half = 1.96·sqrt(0.025 + 3.8416/400)/1.38416 = 1.96·0.186022/1.38416 = 0.263411.
        let (lo, hi) = wilson_interval(5, 10);
        assert!((lo - 0.236589).abs() < 1e-5, "{lo}");
        assert!((hi - 0.763411).abs() < 1e-5, "{hi}");
        // k = 0: lower bound 0, upper = z²/n / denom = 0.38416/1.38416 = 0.277540.
        let (lo, hi) = wilson_interval(0, 10);
        assert_eq!(lo, 0.0);
        assert!((hi - 0.277540).abs() < 1e-5, "{hi}");
        assert_eq!(wilson_interval(0, 0), (0.0, 1.0));
    }

    #[test]
    fn a_run_lock_admits_one_holder() {
        let dir = std::env::temp_dir().join(format!("spear-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = RunLock::acquire(&dir).unwrap();
        let pid = std::process::id().to_string();
        assert_eq!(std::fs::read_to_string(a.path()).unwrap().trim(), pid);
        // flock locks belong to the open file: a second open, even in this process, waits.
        let e = RunLock::acquire(&dir).unwrap_err().to_string();
        assert!(e.contains(&format!("in use by process {pid}")), "{e}");
        drop(a);
        let _b = RunLock::acquire(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn stale_temporaries_are_removed_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("spear-tmpfiles-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("checkpoints/iter_000001")).unwrap();
        for f in [
            ".metrics.jsonl.tmp-12",
            "checkpoints/.latest.tmp-3",
            "checkpoints/iter_000001/.model.safetensors.tmp-9",
            "metrics.jsonl",
            "checkpoints/latest",
            ".lock",
        ] {
            std::fs::write(dir.join(f), "x").unwrap();
        }
        let mut removed = remove_stale_temporaries(&dir);
        removed.sort();
        assert_eq!(removed.len(), 3, "{removed:?}");
        assert!(dir.join("metrics.jsonl").is_file() && dir.join(".lock").is_file());
        assert!(dir.join("checkpoints/latest").is_file());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn records_tolerate_unknown_and_missing_fields() {
        let m: IterationMetrics =
            serde_json::from_str(r#"{"iteration": 3, "new_metric": 1.5}"#).unwrap();
        assert_eq!(m.iteration, 3);
        assert_eq!(m.success_rate, 0.0);
    }
}
