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
    /// The policy's vocabulary ([`spear_model::TextTokenizer::fingerprint`]) when the
    /// checkpoint was written; absent in checkpoints of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab: Option<String>,
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
    let mut dirs: Vec<PathBuf> = checkpoint_dirs(root).into_iter().map(|(_, d)| d).collect();
    dirs.reverse();
    if dirs.len() > KEEP_CHECKPOINTS {
        for d in &dirs[..dirs.len() - KEEP_CHECKPOINTS] {
            if d != &dir {
                let _ = std::fs::remove_dir_all(d);
            }
        }
    }
    Ok(dir)
}

/// `iter_NNNNNN` → N.
pub fn parse_checkpoint_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("iter_")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Checks that a safetensors file is whole without loading it: the 8-byte header length, the
/// JSON header, and a file length equal to the end of the last tensor's data.
fn verify_safetensors(path: &Path) -> anyhow::Result<()> {
    use std::io::Read;
    let mut f =
        std::fs::File::open(path).with_context(|| format!("{} is missing", path.display()))?;
    let len = f.metadata()?.len();
    let mut n = [0u8; 8];
    f.read_exact(&mut n)
        .map_err(|_| anyhow::anyhow!("{} is truncated (no header)", path.display()))?;
    let header_len = u64::from_le_bytes(n);
    anyhow::ensure!(
        header_len <= len.saturating_sub(8) && header_len <= 100 << 20,
        "{} is truncated or corrupt (header of {header_len} bytes in a file of {len})",
        path.display()
    );
    let mut header = vec![0u8; header_len as usize];
    f.read_exact(&mut header)?;
    let v: serde_json::Value = serde_json::from_slice(&header)
        .with_context(|| format!("{} has a corrupt header", path.display()))?;
    let end = v
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| k.as_str() != "__metadata__")
                .filter_map(|(_, t)| t.get("data_offsets")?.get(1)?.as_u64())
                .max()
                .unwrap_or(0)
        })
        .with_context(|| format!("{} has a corrupt header", path.display()))?;
    let want = 8u64
        .checked_add(header_len)
        .and_then(|x| x.checked_add(end))
        .with_context(|| format!("{} has a corrupt header", path.display()))?;
    anyhow::ensure!(
        len == want,
        "{} is truncated or corrupt ({len} bytes, its header describes {want})",
        path.display()
    );
    Ok(())
}

/// Checks a checkpoint directory without loading it: its name is `iter_N`, `state.json`
/// parses and holds iteration N, and `model.safetensors` is whole. Returns the state.
pub fn verify(dir: &Path) -> anyhow::Result<TrainerState> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let n = parse_checkpoint_name(&name).with_context(|| {
        format!(
            "{}: not a checkpoint directory (iter_NNNNNN)",
            dir.display()
        )
    })?;
    anyhow::ensure!(dir.is_dir(), "{} does not exist", dir.display());
    let path = dir.join("state.json");
    let text = std::fs::read(&path).with_context(|| format!("{} is missing", path.display()))?;
    let state: TrainerState = serde_json::from_slice(&text)
        .with_context(|| format!("{}: malformed trainer state", path.display()))?;
    anyhow::ensure!(
        state.iteration == n,
        "{} says iteration {}, but its directory is {name} (iteration {n}): the file was \
         edited or copied from another checkpoint, so it is not trusted",
        path.display(),
        state.iteration
    );
    verify_safetensors(&dir.join("model.safetensors"))?;
    Ok(state)
}

/// The checkpoint directories under `root` (intact or not), newest first.
pub fn checkpoint_dirs(root: &Path) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(root)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let n = parse_checkpoint_name(&e.file_name().to_string_lossy())?;
                    e.path().is_dir().then(|| (n, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by_key(|x| std::cmp::Reverse(x.0));
    out
}

/// The newest checkpoint under `root` that passes [`verify`], other than `except`.
pub fn newest_intact(root: &Path, except: Option<&Path>) -> Option<(u64, PathBuf)> {
    checkpoint_dirs(root)
        .into_iter()
        .filter(|(_, d)| Some(d.as_path()) != except)
        .find(|(_, d)| verify(d).is_ok())
}

/// What to say when the checkpoint to resume from is broken: the intact one to go back to.
fn way_on(root: &Path, broken: Option<&Path>) -> String {
    let run = root.parent().unwrap_or(root);
    match newest_intact(root, broken) {
        Some((n, d)) => format!(
            "The newest intact checkpoint is {} (iteration {n}): continue from it with \
             `spear train --resume {} --from {}` (log lines after iteration {n} are dropped and \
             newer checkpoint directories are set aside as `discarded.iter_…`, not deleted).",
            d.display(),
            run.display(),
            d.file_name().unwrap_or_default().to_string_lossy()
        ),
        None => format!(
            "No intact checkpoint is left under {}: start a new run (e.g. `--set \
             run.name=...`).",
            root.display()
        ),
    }
}

/// The directory `latest` points to, if any, after checking it with [`verify`]. A missing
/// `latest` with checkpoint directories present, a dangling `latest`, or a broken checkpoint
/// is an error that names the newest intact checkpoint and the `--from` option.
pub fn latest(root: &Path) -> anyhow::Result<Option<PathBuf>> {
    let p = root.join("latest");
    if !p.exists() {
        if checkpoint_dirs(root).is_empty() {
            return Ok(None);
        }
        anyhow::bail!("{} is missing. {}", p.display(), way_on(root, None));
    }
    let name = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    let name = name.trim();
    anyhow::ensure!(
        parse_checkpoint_name(name).is_some(),
        "{} is malformed ({name:?} is not a checkpoint name). {}",
        p.display(),
        way_on(root, None)
    );
    let dir = root.join(name);
    if !dir.is_dir() {
        anyhow::bail!(
            "{} names {}, which does not exist. {}",
            p.display(),
            dir.display(),
            way_on(root, Some(&dir))
        );
    }
    if let Err(e) = verify(&dir) {
        anyhow::bail!(
            "the latest checkpoint {} is broken: {e:#}. {}",
            dir.display(),
            way_on(root, Some(&dir))
        );
    }
    Ok(Some(dir))
}

/// `--from NAME` (`iter_N` or `N`): checks that checkpoint, sets every newer checkpoint
/// directory aside as `discarded.iter_N` (nothing is deleted) and points `latest` at it.
/// Returns the checkpoint directory and the directories set aside.
pub fn rewind_to(root: &Path, from: &str) -> anyhow::Result<(PathBuf, Vec<PathBuf>)> {
    let n = parse_checkpoint_name(from)
        .or_else(|| from.parse::<u64>().ok())
        .with_context(|| format!("--from {from:?}: give a checkpoint name such as iter_000004"))?;
    let dir = checkpoint_dir(root, n);
    verify(&dir).with_context(|| {
        format!(
            "--from {from}: {} cannot be used. {}",
            dir.display(),
            way_on(root, Some(&dir))
        )
    })?;
    let mut moved = vec![];
    for (m, d) in checkpoint_dirs(root) {
        if m <= n {
            continue;
        }
        let base = format!(
            "discarded.{}",
            d.file_name().unwrap_or_default().to_string_lossy()
        );
        let mut to = root.join(&base);
        let mut k = 1;
        while to.exists() {
            to = root.join(format!("{base}.{k}"));
            k += 1;
        }
        std::fs::rename(&d, &to)
            .with_context(|| format!("setting {} aside as {}", d.display(), to.display()))?;
        moved.push(to);
    }
    write_atomic(&root.join("latest"), format!("iter_{n:06}").as_bytes())?;
    Ok((dir, moved))
}

/// Checks that the checkpoint in `dir` was written by a policy with `policy`'s vocabulary: the
/// weights of a tiny policy only mean something with the word ids they were trained on, and
/// its vocabulary is built from the run's text (the environment and warm-start settings), so
/// other settings can give a vocabulary of the same size with other ids. `what` names the
/// setting that pointed at `dir`. A checkpoint without a recorded vocabulary (earlier versions,
/// or a bare `model.safetensors`) passes.
pub fn check_vocabulary(dir: &Path, policy: &Policy, what: &str) -> anyhow::Result<()> {
    let Ok(text) = std::fs::read(dir.join("state.json")) else {
        return Ok(());
    };
    // Only the one field: the replay buffer beside it can be large.
    #[derive(Deserialize)]
    struct Recorded {
        #[serde(default)]
        vocab: Option<String>,
    }
    let recorded = serde_json::from_slice::<Recorded>(&text)
        .ok()
        .and_then(|s| s.vocab);
    vocabulary_matches(recorded.as_deref(), dir, policy, what)
}

/// The comparison behind [`check_vocabulary`], for a state already read.
fn vocabulary_matches(
    recorded: Option<&str>,
    dir: &Path,
    policy: &Policy,
    what: &str,
) -> anyhow::Result<()> {
    let Some(recorded) = recorded else {
        return Ok(());
    };
    let ours = policy.tokenizer.fingerprint();
    anyhow::ensure!(
        recorded == ours,
        "{what}: {} was trained with another vocabulary (tokens:fingerprint {recorded}; this \
         run's policy has {ours}), so its weights would read other words. A tiny policy's \
         vocabulary is built from the run's text: use the [env] and [sft] settings of the run \
         that wrote the checkpoint (e.g. the same sft.games, env.household.*; see its \
         config.toml)",
        dir.display()
    );
    Ok(())
}

/// Restores weights, optimizer and RNG into `policy` and returns them with the state.
pub fn load(
    dir: &Path,
    policy: &Policy,
    adamw: AdamWConfig,
) -> anyhow::Result<(AdamW, ChaCha8Rng, TrainerState)> {
    // The state first: a checkpoint of another vocabulary is refused before its weights load.
    let path = dir.join("state.json");
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let state: TrainerState = serde_json::from_slice(&text)
        .with_context(|| format!("{}: malformed trainer state", path.display()))?;
    vocabulary_matches(state.vocab.as_deref(), dir, policy, "resume")?;
    let extras = load_checkpoint(&dir.join("model.safetensors"), &policy.model, adamw)
        .with_context(|| format!("loading the checkpoint in {}", dir.display()))?;
    let opt = extras.optimizer.unwrap_or_else(|| AdamW::new(adamw));
    let rng = extras
        .rngs
        .into_iter()
        .find(|(n, _)| n == "trainer")
        .map(|(_, r)| r)
        .with_context(|| format!("{}: no trainer RNG in the checkpoint", dir.display()))?;
    Ok((opt, rng, state))
}
