//! Checkpoints of a run: `checkpoints/iter_NNNNNN/` holds `model.safetensors` (weights, AdamW
//! moments and step, the trainer RNG; written atomically by `spear-model`) and `state.json`
//! (iteration, elapsed time, the replay buffer with its RNG). The text file
//! `checkpoints/latest` names the last *complete* checkpoint directory and is replaced
//! atomically after both files are on disk, so a kill at any moment (kill -9 included) leaves
//! either the previous or the new checkpoint, never a half-written one.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use spear_model::checkpoint::{load_checkpoint, save_checkpoint, write_atomic};
use spear_model::{AdamW, AdamWConfig, Policy};
use spear_rl::replay::ReplayBuffer;

/// What `state.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainerState {
    /// Last completed iteration (0: after the warm start, before RL).
    pub iteration: u64,
    /// Wall seconds of training so far.
    pub elapsed: f64,
    /// The SIL replay buffer (entries, D_R, its RNG).
    pub buffer: ReplayBuffer,
}

/// Checkpoints kept on disk (the newest ones).
pub const KEEP_CHECKPOINTS: usize = 2;

/// `checkpoints/iter_NNNNNN`.
pub fn checkpoint_dir(root: &Path, iteration: u64) -> PathBuf {
    root.join(format!("iter_{iteration:06}"))
}

/// Writes a checkpoint of `iteration` under `root` (= `runs/<name>/checkpoints`) and points
/// `latest` at it; older checkpoints beyond [`KEEP_CHECKPOINTS`] are removed.
pub fn save(
    root: &Path,
    policy: &Policy,
    opt: &AdamW,
    rng: &ChaCha8Rng,
    state: &TrainerState,
) -> anyhow::Result<PathBuf> {
    let dir = checkpoint_dir(root, state.iteration);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    save_checkpoint(
        &dir.join("model.safetensors"),
        &policy.model,
        Some(opt),
        &[("trainer", rng)],
    )?;
    let json = serde_json::to_vec(state)?;
    write_atomic(&dir.join("state.json"), &json)?;
    let name = dir
        .file_name()
        .expect("checkpoint dir has a name")
        .to_string_lossy()
        .to_string();
    write_atomic(&root.join("latest"), name.as_bytes())?;
    // Prune older checkpoints.
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("iter_"))
        })
        .collect();
    dirs.sort();
    if dirs.len() > KEEP_CHECKPOINTS {
        for d in &dirs[..dirs.len() - KEEP_CHECKPOINTS] {
            if d != &dir {
                let _ = std::fs::remove_dir_all(d);
            }
        }
    }
    Ok(dir)
}

/// The directory `latest` points to, if any.
pub fn latest(root: &Path) -> anyhow::Result<Option<PathBuf>> {
    let p = root.join("latest");
    if !p.exists() {
        return Ok(None);
    }
    let name = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    let dir = root.join(name.trim());
    anyhow::ensure!(
        dir.join("model.safetensors").is_file() && dir.join("state.json").is_file(),
        "{} names {}, which is incomplete (missing model.safetensors or state.json)",
        p.display(),
        dir.display()
    );
    Ok(Some(dir))
}

/// Restores weights, optimizer and RNG into `policy` and returns them with the state.
pub fn load(
    dir: &Path,
    policy: &Policy,
    adamw: AdamWConfig,
) -> anyhow::Result<(AdamW, ChaCha8Rng, TrainerState)> {
    let extras = load_checkpoint(&dir.join("model.safetensors"), &policy.model, adamw)
        .with_context(|| format!("loading the checkpoint in {}", dir.display()))?;
    let opt = extras.optimizer.unwrap_or_else(|| AdamW::new(adamw));
    let rng = extras
        .rngs
        .into_iter()
        .find(|(n, _)| n == "trainer")
        .map(|(_, r)| r)
        .with_context(|| format!("{}: no trainer RNG in the checkpoint", dir.display()))?;
    let path = dir.join("state.json");
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let state: TrainerState = serde_json::from_slice(&text)
        .with_context(|| format!("{}: malformed trainer state", path.display()))?;
    Ok((opt, rng, state))
}
