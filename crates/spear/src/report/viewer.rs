//! The trajectory viewer's data: which `trajectories/iter_NNNNNN.jsonl` files and episodes
//! are embedded in the page, and each turn's thinking split out of the response.
//!
//! A long run writes one file per iteration, each with every sampled episode and every
//! turn's full prompt, far more than a page can hold. The report keeps at most
//! [`ViewerLimits::max_files`] files, evenly spaced over the run (first and last always
//! included), the first [`ViewerLimits::max_episodes`] episodes of each (file order keeps a
//! group's trajectories together), and then halves either until the run's embedded JSON fits
//! [`ViewerLimits::max_bytes`]. The page says what was left out.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::ReportError;
use crate::run_dir::{read_jsonl, EpisodeRecord, RunDir};

/// Caps on the trajectory data embedded per run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewerLimits {
    /// Iteration files kept (evenly spaced, first and last included).
    pub max_files: usize,
    /// Episodes kept per file (the first ones).
    pub max_episodes: usize,
    /// Bytes of embedded JSON per run (approximate; at least one episode is always kept).
    pub max_bytes: usize,
}

impl Default for ViewerLimits {
    fn default() -> Self {
        Self {
            max_files: 40,
            max_episodes: 64,
            max_bytes: 24 << 20,
        }
    }
}

/// `k` indices out of `0..n`, evenly spaced, the first and the last included, increasing and
/// distinct (all of them when `k >= n`).
///
/// Index i of k is round(i·(n−1)/(k−1)).
pub fn evenly_spaced(n: usize, k: usize) -> Vec<usize> {
    if k >= n {
        return (0..n).collect();
    }
    if k == 0 {
        return Vec::new();
    }
    if k == 1 {
        return vec![n - 1];
    }
    let mut out: Vec<usize> = (0..k)
        .map(|i| ((i * (n - 1)) as f64 / (k - 1) as f64).round() as usize)
        .collect();
    out.dedup();
    out
}

/// The iteration files in `dir`, sorted by iteration; names other than
/// `iter_<digits>.jsonl` are ignored. `None` when the directory does not exist.
pub fn trajectory_files(dir: &Path) -> Result<Option<Vec<(u64, PathBuf)>>, ReportError> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let entries = std::fs::read_dir(dir).map_err(|source| ReportError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ReportError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(digits) = name
            .strip_prefix("iter_")
            .and_then(|r| r.strip_suffix(".jsonl"))
        else {
            continue;
        };
        if let Ok(it) = digits.parse::<u64>() {
            files.push((it, entry.path()));
        }
    }
    files.sort();
    Ok(Some(files))
}

/// The model's thinking in `response`: the text between `<think>` and `</think>` (to the end
/// when the closing tag is missing), trimmed; `None` without `<think>`.
pub fn thinking(response: &str) -> Option<&str> {
    let start = response.find("<think>")? + "<think>".len();
    let rest = &response[start..];
    let end = rest.find("</think>").unwrap_or(rest.len());
    Some(rest[..end].trim())
}

/// One turn as embedded in the page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ViewerTurn {
    /// Prompt text.
    pub prompt: String,
    /// Thinking (from the response), empty when there is none.
    pub think: String,
    /// Raw response.
    pub response: String,
    /// Action sent to the environment.
    pub action: String,
    /// Parsed into a valid action.
    pub valid: bool,
    /// Masked out of the loss.
    pub masked: bool,
    /// Environment reply.
    pub observation: String,
    /// Step reward.
    pub reward: f64,
    /// Advantage (absent when none was assigned).
    pub advantage: Option<f64>,
}

/// One episode as embedded in the page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ViewerEpisode {
    /// Task index.
    pub task: u64,
    /// Task type.
    pub task_type: String,
    /// Goal text.
    pub goal: String,
    /// Group id.
    pub group: u64,
    /// Trajectory index.
    pub traj: u64,
    /// Won.
    pub won: bool,
    /// Σ step rewards.
    pub reward: f64,
    /// Episode score.
    pub score: f64,
    /// Turns.
    pub turns: Vec<ViewerTurn>,
}

impl From<EpisodeRecord> for ViewerEpisode {
    fn from(e: EpisodeRecord) -> Self {
        Self {
            task: e.task,
            task_type: e.task_type,
            goal: e.goal,
            group: e.group,
            traj: e.traj,
            won: e.won,
            reward: e.episode_reward,
            score: e.score,
            turns: e
                .turns
                .into_iter()
                .map(|t| ViewerTurn {
                    think: thinking(&t.response).unwrap_or_default().to_string(),
                    prompt: t.prompt,
                    response: t.response,
                    action: t.action,
                    valid: t.valid,
                    masked: t.masked,
                    observation: t.observation,
                    reward: t.reward,
                    advantage: t.advantage,
                })
                .collect(),
        }
    }
}

/// One iteration file as embedded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ViewerFile {
    /// Iteration.
    pub iteration: u64,
    /// Episodes in the file.
    pub total: usize,
    /// Episodes won in the file (all of them, not only the kept ones).
    pub won: usize,
    /// The kept episodes.
    pub episodes: Vec<ViewerEpisode>,
}

/// A run's embedded trajectories.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ViewerRun {
    /// Iteration files in the run.
    pub total_files: usize,
    /// The kept files.
    pub files: Vec<ViewerFile>,
    /// What the caps left out, for the page (empty when everything is shown).
    pub notes: Vec<String>,
}

fn json_len<T: Serialize>(v: &T) -> usize {
    serde_json::to_string(v).map(|s| s.len()).unwrap_or(0)
}

/// Loads and caps a run's trajectories; `None` when the run has no `trajectories/`.
pub fn load_viewer_run(
    run: &RunDir,
    limits: &ViewerLimits,
) -> Result<Option<ViewerRun>, ReportError> {
    let Some(all) = trajectory_files(&run.trajectories_dir())? else {
        return Ok(None);
    };
    let mut notes = Vec::new();
    let keep = evenly_spaced(all.len(), limits.max_files.max(1));
    if keep.len() < all.len() {
        notes.push(format!(
            "{} of {} iteration files kept (evenly spaced, first and last included)",
            keep.len(),
            all.len()
        ));
    }
    let mut files = Vec::with_capacity(keep.len());
    let mut truncated = false;
    for i in keep {
        let (iteration, path) = &all[i];
        let records: Vec<EpisodeRecord> = read_jsonl(path).map_err(ReportError::Records)?;
        let total = records.len();
        let won = records.iter().filter(|e| e.won).count();
        truncated |= total > limits.max_episodes;
        let episodes = records
            .into_iter()
            .take(limits.max_episodes)
            .map(ViewerEpisode::from)
            .collect();
        files.push(ViewerFile {
            iteration: *iteration,
            total,
            won,
            episodes,
        });
    }
    if truncated {
        notes.push(format!(
            "at most the first {} episodes of each iteration file kept",
            limits.max_episodes
        ));
    }
    fit_budget(&mut files, limits.max_bytes, &mut notes);
    Ok(Some(ViewerRun {
        total_files: all.len(),
        files,
        notes,
    }))
}

/// Shrinks `files` until their JSON fits `max_bytes`: halves the episodes per file down to 8,
/// then halves the files (evenly spaced), down to one file with one episode.
pub fn fit_budget(files: &mut Vec<ViewerFile>, max_bytes: usize, notes: &mut Vec<String>) {
    let mut per_file = files.iter().map(|f| f.episodes.len()).max().unwrap_or(0);
    let start_per_file = per_file;
    let before = files.len();
    while json_len(files) > max_bytes {
        if per_file > 8 {
            per_file /= 2;
        } else if files.len() > 1 {
            let keep = evenly_spaced(files.len(), files.len() / 2);
            let mut i = 0;
            files.retain(|_| {
                i += 1;
                keep.contains(&(i - 1))
            });
        } else if per_file > 1 {
            per_file /= 2;
        } else {
            break;
        }
        for f in files.iter_mut() {
            f.episodes.truncate(per_file);
        }
    }
    if per_file < start_per_file {
        notes.push(format!(
            "at most {per_file} episodes per iteration file kept to fit the page size limit of {} MB",
            max_bytes >> 20
        ));
    }
    if files.len() < before {
        notes.push(format!(
            "only {} iteration files kept to fit the page size limit of {} MB",
            files.len(),
            max_bytes >> 20
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(iteration: u64, episodes: usize) -> ViewerFile {
        let ep = ViewerEpisode {
            task: 0,
            task_type: "t".into(),
            goal: "g".repeat(100),
            group: 0,
            traj: 0,
            won: false,
            reward: 0.0,
            score: 0.0,
            turns: vec![],
        };
        ViewerFile {
            iteration,
            total: episodes,
            won: 0,
            episodes: vec![ep; episodes],
        }
    }

    #[test]
    fn budget_halves_episodes_then_files() {
        // one episode ≈ 190 bytes of JSON; 10 files × 64 episodes ≈ 122 kB
        let mut files: Vec<ViewerFile> = (1..=10).map(|i| file(i, 64)).collect();
        let one = json_len(&files[0].episodes[0]);
        let mut notes = vec![];
        // room for ~5 files × 8 episodes: episodes go 64 → 32 → 16 → 8, then files 10 → 5
        fit_budget(&mut files, one * 8 * 5 + 5 * 80 + 200, &mut notes);
        assert_eq!(files.len(), 5, "{notes:?}");
        assert!(files.iter().all(|f| f.episodes.len() == 8));
        // evenly_spaced(10, 5) = round(i·9/4) = 0, 2.25→2, 4.5→5 (round half away), 6.75→7, 9
        let its: Vec<u64> = files.iter().map(|f| f.iteration).collect();
        assert_eq!(its, [1, 3, 6, 8, 10]);
        assert_eq!(notes.len(), 2, "{notes:?}");
        // a budget that fits changes nothing
        let mut files: Vec<ViewerFile> = (1..=3).map(|i| file(i, 4)).collect();
        let mut notes = vec![];
        fit_budget(&mut files, 1 << 20, &mut notes);
        assert_eq!(files.len(), 3);
        assert!(notes.is_empty());
        // an impossible budget keeps one file with one episode
        fit_budget(&mut files, 10, &mut notes);
        assert_eq!((files.len(), files[0].episodes.len()), (1, 1));
    }

    #[test]
    fn evenly_spaced_keeps_first_and_last() {
        // n = 100, k = 5: round(i·99/4) = 0, 24.75→25, 49.5→50, 74.25→74, 99
        assert_eq!(evenly_spaced(100, 5), [0, 25, 50, 74, 99]);
        assert_eq!(evenly_spaced(3, 40), [0, 1, 2]);
        assert_eq!(evenly_spaced(10, 2), [0, 9]);
        assert_eq!(evenly_spaced(10, 1), [9]);
        assert!(evenly_spaced(0, 3).is_empty());
        let k40 = evenly_spaced(1000, 40);
        assert_eq!(k40.len(), 40);
        assert_eq!((k40[0], k40[39]), (0, 999));
        assert!(k40.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn thinking_is_between_the_tags() {
        assert_eq!(
            thinking("<think> look in the drawer </think><action>go to drawer 1</action>"),
            Some("look in the drawer")
        );
        assert_eq!(thinking("pre<think>unclosed"), Some("unclosed"));
        assert_eq!(thinking("<action>x</action>"), None);
        assert_eq!(thinking("</think><think>"), Some(""));
    }
}
