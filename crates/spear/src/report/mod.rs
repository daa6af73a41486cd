//! `spear report`: one self-contained HTML file comparing training runs (issue #5, "Reports").
//!
//! The page has no network dependency: charts are inline SVG drawn here, styles and scripts
//! are inline, data is embedded as JSON. It shows, per run, a summary card; the curves of
//! every numeric field of `metrics.jsonl` (runs overlaid); evaluation success with its 95 %
//! Wilson interval; the config diff; and a trajectory viewer.
//!
//! # Brief overview
//!
//! * [`load_run`] reads one run directory into a [`RunData`] ([`ReportError`] on bad input).
//! * [`flatten`]: JSON metrics and TOML configs → dotted keys.
//! * [`metrics`]: which metric goes in which chart group, in which order.
//! * [`svg`]: line charts (scales, ticks, paths).
//! * [`config_diff`]: the config table.
//! * [`viewer`]: the trajectory data embedded for the viewer, and its caps.
//! * [`html`]: escaping and the page itself ([`html::render_page`]).
//! * [`write_report`] / [`default_output`]: the command's entry points.

pub mod config_diff;
pub mod flatten;
pub mod html;
pub mod metrics;
pub mod svg;
pub mod viewer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::run_dir::{read_jsonl, wilson_interval, EvalRecord, RunDir};

pub use viewer::ViewerLimits;

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// `spear report` got no run directory.
    #[error("no run directories given: pass one or more, e.g. `spear report runs/household-tiny`")]
    NoRuns,
    /// The run directory does not exist.
    #[error("run directory {} does not exist: run `spear train` first (or pass the directory of an existing run)", path.display())]
    MissingRunDir {
        /// The path given.
        path: PathBuf,
    },
    /// The run directory has no `metrics.jsonl`.
    #[error("{} not found: {} has no finished training iteration yet; run `spear train` first (metrics.jsonl is written after each iteration)", path.display(), dir.display())]
    MissingMetrics {
        /// The missing file.
        path: PathBuf,
        /// The run directory.
        dir: PathBuf,
    },
    /// A JSON-lines file could not be read or has a malformed line (the message names the
    /// file and line).
    #[error("{0:#}")]
    Records(anyhow::Error),
    /// A `metrics.jsonl` line is valid JSON but not an object.
    #[error("{}: record {record}: expected a JSON object with one iteration's metrics", path.display())]
    NotAnObject {
        /// The file.
        path: PathBuf,
        /// 1-based record number (blank lines not counted).
        record: usize,
    },
    /// `config.toml` is not valid TOML.
    #[error("{}: invalid TOML: {source}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// The parser's error (with line and column).
        source: toml::de::Error,
    },
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// One line of `metrics.jsonl`, flattened.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    /// The `iteration` field (the record's 1-based position when absent).
    pub iteration: f64,
    /// Every numeric field under its dotted key (`time.generate`), `iteration` included.
    pub values: BTreeMap<String, f64>,
}

/// Everything the report shows about one run.
#[derive(Debug, Clone)]
pub struct RunData {
    /// The run directory.
    pub dir: RunDir,
    /// Display name (the directory name; disambiguated when two runs share it).
    pub name: String,
    /// `metrics.jsonl`, one row per iteration.
    pub metrics: Vec<MetricRow>,
    /// `eval.jsonl` (`None` when the run has none).
    pub eval: Option<Vec<EvalRecord>>,
    /// Flattened `config.toml` (`None` when the run has none).
    pub config: Option<BTreeMap<String, String>>,
    /// Trajectories for the viewer (`None` when the run has no `trajectories/`).
    pub trajectories: Option<viewer::ViewerRun>,
    /// Records replaced by a later record of the same iteration (metrics) or the same
    /// iteration and split (eval), as after a resume that repeats iterations.
    pub replaced_records: usize,
}

impl RunData {
    /// The last row's value of `key`.
    pub fn last(&self, key: &str) -> Option<f64> {
        self.metrics
            .iter()
            .rev()
            .find_map(|r| r.values.get(key).copied())
    }

    /// The largest value of `key` and the iteration where it was first reached.
    pub fn best(&self, key: &str) -> Option<(f64, f64)> {
        self.metrics
            .iter()
            .filter_map(|r| r.values.get(key).map(|v| (*v, r.iteration)))
            .fold(None, |acc: Option<(f64, f64)>, (v, it)| match acc {
                Some((bv, _)) if bv >= v => acc,
                _ => Some((v, it)),
            })
    }

    /// Wall seconds of the run: the last `elapsed`, else the sum of `time.total`.
    pub fn wall_seconds(&self) -> Option<f64> {
        match self.last("elapsed") {
            Some(e) if e > 0.0 => Some(e),
            _ => {
                let totals: Vec<f64> = self
                    .metrics
                    .iter()
                    .filter_map(|r| r.values.get("time.total").copied())
                    .collect();
                (!totals.is_empty()).then(|| totals.iter().sum())
            }
        }
    }
}

/// Reads `metrics.jsonl` generically: each line a JSON object, flattened to numeric dotted keys.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricRow>, ReportError> {
    let lines = read_jsonl_lenient(path).map_err(ReportError::Records)?;
    lines
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if !v.is_object() {
                return Err(ReportError::NotAnObject {
                    path: path.to_path_buf(),
                    record: i + 1,
                });
            }
            let values = flatten::flatten_json_numbers(v);
            let iteration = values.get("iteration").copied().unwrap_or((i + 1) as f64);
            Ok(MetricRow { iteration, values })
        })
        .collect()
}

/// Reads a JSON-lines file as values, accepting the non-finite tokens that Python's `json`
/// writes (`NaN`, `Infinity`, `-Infinity`; read as null, so the chart leaves a gap). A line
/// that is still not JSON is an error naming the file, the line and what is wrong.
pub fn read_jsonl_lenient(path: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    use anyhow::Context;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .or_else(|e| serde_json::from_str(&nonfinite_to_null(l)).map_err(|_| e))
                .with_context(|| {
                    format!(
                        "{}:{}: not a JSON line (each line must be one JSON object, e.g. \
                         {{\"iteration\": 1, \"success_rate\": 0.5}})",
                        path.display(),
                        i + 1
                    )
                })
        })
        .collect()
}

/// Replaces the bare tokens `NaN`, `Infinity` and `-Infinity` outside JSON strings by `null`.
pub fn nonfinite_to_null(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let (mut in_str, mut esc) = (false, false);
    let mut rest = line;
    while let Some(ch) = rest.chars().next() {
        if !in_str {
            if let Some(tok) = ["-Infinity", "Infinity", "NaN"]
                .into_iter()
                .find(|t| rest.starts_with(t))
            {
                out.push_str("null");
                rest = &rest[tok.len()..];
                continue;
            }
            in_str = ch == '"';
        } else if esc {
            esc = false;
        } else if ch == '\\' {
            esc = true;
        } else if ch == '"' {
            in_str = false;
        }
        out.push(ch);
        rest = &rest[ch.len_utf8()..];
    }
    out
}

/// Reads `eval.jsonl`; a record without an interval (both ends 0 while it has episodes) gets
/// the 95 % Wilson interval of its success rate.
pub fn read_eval(path: &Path) -> Result<Vec<EvalRecord>, ReportError> {
    let mut records: Vec<EvalRecord> = read_jsonl(path).map_err(ReportError::Records)?;
    for r in &mut records {
        if r.ci_low == 0.0 && r.ci_high == 0.0 && r.episodes > 0 {
            let k = (r.success_rate * r.episodes as f64).round() as u64;
            (r.ci_low, r.ci_high) = wilson_interval(k, r.episodes);
        }
    }
    Ok(records)
}

/// Reads and flattens `config.toml`.
pub fn read_config(path: &Path) -> Result<BTreeMap<String, String>, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|source| ReportError::Config {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(flatten::flatten_toml(&table))
}

/// Reads one run directory. Missing `eval.jsonl`, `config.toml` or `trajectories/` are
/// fine; a missing directory or `metrics.jsonl` is an error telling the user to train first.
pub fn load_run(root: &Path, limits: &ViewerLimits) -> Result<RunData, ReportError> {
    if !root.is_dir() {
        return Err(ReportError::MissingRunDir {
            path: root.to_path_buf(),
        });
    }
    let dir = RunDir::new(root);
    let metrics_path = dir.metrics();
    if !metrics_path.is_file() {
        return Err(ReportError::MissingMetrics {
            path: metrics_path,
            dir: root.to_path_buf(),
        });
    }
    // iterations are non-negative, where the bit patterns of f64 sort as the numbers do
    let (metrics, mut replaced_records) =
        last_per_key(read_metrics(&metrics_path)?, |m| m.iteration.to_bits());
    let eval_path = dir.eval();
    let eval = if eval_path.is_file() {
        let (eval, replaced) =
            last_per_key(read_eval(&eval_path)?, |e| (e.iteration, e.split.clone()));
        replaced_records += replaced;
        Some(eval)
    } else {
        None
    };
    let config_path = dir.config();
    let config = if config_path.is_file() {
        Some(read_config(&config_path)?)
    } else {
        None
    };
    let trajectories = viewer::load_viewer_run(&dir, limits)?;
    Ok(RunData {
        name: dir.name(),
        dir,
        metrics,
        eval,
        config,
        trajectories,
        replaced_records,
    })
}

/// Keeps the last record per key (a resumed run may write an iteration twice: the later line
/// is the one the run continued from), sorted by key; returns the records and how many were
/// replaced.
fn last_per_key<T, K: Ord + Clone>(records: Vec<T>, key: impl Fn(&T) -> K) -> (Vec<T>, usize) {
    let n = records.len();
    let mut by_key: BTreeMap<K, T> = BTreeMap::new();
    for r in records {
        by_key.insert(key(&r), r);
    }
    let kept: Vec<T> = by_key.into_values().collect();
    let replaced = n - kept.len();
    (kept, replaced)
}

/// Where the report goes by default: `<run>/report.html` for one run; for several,
/// `report-<A>-vs-<B>….html` next to the first run (`report-<A>-vs-<n>-runs.html` when the
/// joined names would be too long for a file name).
pub fn default_output(runs: &[PathBuf]) -> PathBuf {
    let first = &runs[0];
    if runs.len() == 1 {
        return RunDir::new(first).report();
    }
    let names: Vec<String> = runs
        .iter()
        .map(|r| {
            RunDir::new(r)
                .name()
                .chars()
                .map(|c| {
                    if c.is_alphanumeric() || "-_.".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        })
        .collect();
    let joined = names.join("-vs-");
    let file = if joined.len() <= 120 {
        format!("report-{joined}.html")
    } else {
        format!("report-{}-vs-{}-runs.html", names[0], runs.len() - 1)
    };
    let parent = match first.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    parent.join(file)
}

/// Reads `runs` and writes the report to `out`; returns the bytes written.
pub fn write_report(
    runs: &[PathBuf],
    out: &Path,
    limits: &ViewerLimits,
) -> Result<usize, ReportError> {
    if runs.is_empty() {
        return Err(ReportError::NoRuns);
    }
    let per_run = ViewerLimits {
        max_bytes: limits.max_bytes / runs.len(),
        ..*limits
    };
    let mut data = runs
        .iter()
        .map(|r| load_run(r, &per_run))
        .collect::<Result<Vec<_>, _>>()?;
    disambiguate_names(&mut data);
    let page = html::render_page(&data);
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| ReportError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(out, &page).map_err(|source| ReportError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(page.len())
}

/// Two runs with the same directory name are shown by their full paths.
fn disambiguate_names(runs: &mut [RunData]) {
    let names: Vec<String> = runs.iter().map(|r| r.name.clone()).collect();
    for r in runs.iter_mut() {
        if names.iter().filter(|n| **n == r.name).count() > 1 {
            r.name = r.dir.root.display().to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_output_names() {
        assert_eq!(
            default_output(&[PathBuf::from("runs/a")]),
            PathBuf::from("runs/a/report.html")
        );
        assert_eq!(
            default_output(&[PathBuf::from("runs/grpo"), PathBuf::from("other/spear x")]),
            PathBuf::from("runs/report-grpo-vs-spear_x.html")
        );
        assert_eq!(
            default_output(&[PathBuf::from("a"), PathBuf::from("b")]),
            PathBuf::from("./report-a-vs-b.html")
        );
        let long: Vec<PathBuf> = (0..10)
            .map(|i| PathBuf::from(format!("runs/a-very-long-run-name-{i}")))
            .collect();
        assert_eq!(
            default_output(&long),
            PathBuf::from("runs/report-a-very-long-run-name-0-vs-9-runs.html")
        );
    }

    #[test]
    fn metrics_rows_and_summaries() {
        let dir = std::env::temp_dir().join(format!("spear-report-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("metrics.jsonl");
        std::fs::write(
            &p,
            "{\"iteration\": 1, \"success_rate\": 0.5, \"time\": {\"total\": 2.0}}\n\n\
             {\"success_rate\": 0.75, \"time\": {\"total\": 3.5}}\n\
             {\"iteration\": 3, \"success_rate\": 0.75, \"time\": {\"total\": 1.0}}\n",
        )
        .unwrap();
        let rows = read_metrics(&p).unwrap();
        // the second record has no iteration: its position (2) stands in
        assert_eq!(
            rows.iter().map(|r| r.iteration).collect::<Vec<_>>(),
            [1.0, 2.0, 3.0]
        );
        let run = RunData {
            dir: RunDir::new(&dir),
            name: "x".into(),
            metrics: rows,
            eval: None,
            config: None,
            trajectories: None,
            replaced_records: 0,
        };
        assert_eq!(run.last("success_rate"), Some(0.75));
        // the best value is first reached at iteration 2
        assert_eq!(run.best("success_rate"), Some((0.75, 2.0)));
        // no elapsed: 2 + 3.5 + 1 = 6.5 s
        assert_eq!(run.wall_seconds(), Some(6.5));
        std::fs::write(&p, "{\"iteration\": 1}\n[1, 2]\n").unwrap();
        let err = read_metrics(&p).unwrap_err().to_string();
        assert!(err.contains("metrics.jsonl: record 2"), "{err}");
        std::fs::write(&p, "{\"iteration\": 1}\n{oops\n").unwrap();
        let err = read_metrics(&p).unwrap_err().to_string();
        assert!(err.contains("metrics.jsonl:2: not a JSON line"), "{err}");
        // Python's non-finite tokens are read as missing values.
        std::fs::write(
            &p,
            "{\"iteration\": 1, \"a\": NaN, \"b\": -Infinity, \"c\": 2}\n",
        )
        .unwrap();
        let rows = read_metrics(&p).unwrap();
        assert_eq!(rows[0].values.get("a"), None);
        assert_eq!(rows[0].values.get("b"), None);
        assert_eq!(rows[0].values.get("c"), Some(&2.0));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nonfinite_tokens_outside_strings_become_null() {
        assert_eq!(
            nonfinite_to_null(
                r#"{"a": NaN, "b": [Infinity, -Infinity], "s": "NaN \"Infinity\" é"}"#
            ),
            r#"{"a": null, "b": [null, null], "s": "NaN \"Infinity\" é"}"#
        );
    }

    #[test]
    fn repeated_iterations_keep_the_last_record() {
        // iteration 2 written twice (a resume): the later value 0.9 wins, order by iteration
        let recs = vec![(1u64, 0.1), (2, 0.2), (3, 0.3), (2, 0.9)];
        let (kept, replaced) = last_per_key(recs, |r| r.0);
        assert_eq!(kept, [(1, 0.1), (2, 0.9), (3, 0.3)]);
        assert_eq!(replaced, 1);
    }

    #[test]
    fn eval_without_interval_gets_wilson() {
        let dir = std::env::temp_dir().join(format!("spear-report-eval-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("eval.jsonl");
        std::fs::write(
            &p,
            r#"{"iteration": 0, "split": "valid_seen", "episodes": 10, "success_rate": 0.5}"#,
        )
        .unwrap();
        let r = read_eval(&p).unwrap();
        // k = 5 of 10: [0.236589, 0.763411] (run_dir's hand-computed case)
        assert!((r[0].ci_low - 0.236589).abs() < 1e-5);
        assert!((r[0].ci_high - 0.763411).abs() < 1e-5);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
