//! Weight sync v1, the trainer's half: the policy written as an HF directory into the sync
//! directory, atomically — `step_N.tmp-PID/` (config, tokenizer, safetensors, each file
//! fsynced), renamed to `step_N/`, then a `STABLE` marker inside it (prime-rl's layout) —
//! and only the newest `keep` directories kept.

use std::path::{Path, PathBuf};

use anyhow::Context;
use spear_model::Policy;

/// The marker written last into a complete `step_N/`.
pub const STABLE: &str = "STABLE";

/// `<sync_dir>/step_<version>`.
pub fn step_dir(sync_dir: &Path, version: u64) -> PathBuf {
    sync_dir.join(format!("step_{version}"))
}

/// Writes `policy` as `<sync_dir>/step_<version>/` (replacing one a previous attempt left),
/// marks it `STABLE`, removes older `step_*` beyond the newest `keep` and any temporary
/// directories; returns the directory.
pub fn write_weights(
    sync_dir: &Path,
    version: u64,
    policy: &Policy,
    keep: usize,
    untie: bool,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(sync_dir)
        .with_context(|| format!("creating rollout.sync_dir {}", sync_dir.display()))?;
    let dir = step_dir(sync_dir, version);
    let tmp = sync_dir.join(format!("step_{version}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    spear_model::checkpoint::export_hf_with(&tmp, &policy.model, Some(&policy.tokenizer), untie)
        .with_context(|| format!("exporting the policy to {}", tmp.display()))?;
    for entry in std::fs::read_dir(&tmp)? {
        let p = entry?.path();
        if p.is_file() {
            std::fs::File::open(&p)
                .and_then(|f| f.sync_all())
                .with_context(|| format!("syncing {}", p.display()))?;
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("replacing {}", dir.display()))?;
    }
    std::fs::rename(&tmp, &dir)
        .with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
    spear_model::checkpoint::write_atomic(&dir.join(STABLE), version.to_string().as_bytes())?;
    if let Ok(d) = std::fs::File::open(sync_dir) {
        let _ = d.sync_all();
    }
    prune(sync_dir, keep.max(1))?;
    Ok(dir)
}

/// Versions of the `step_N` directories in `sync_dir`, ascending.
pub fn versions(sync_dir: &Path) -> anyhow::Result<Vec<u64>> {
    let mut v = vec![];
    if !sync_dir.exists() {
        return Ok(v);
    }
    for entry in std::fs::read_dir(sync_dir)? {
        let name = entry?.file_name().to_string_lossy().to_string();
        if let Some(n) = name
            .strip_prefix("step_")
            .and_then(|n| n.parse::<u64>().ok())
        {
            v.push(n);
        }
    }
    v.sort_unstable();
    Ok(v)
}

fn prune(sync_dir: &Path, keep: usize) -> anyhow::Result<()> {
    let v = versions(sync_dir)?;
    for n in &v[..v.len().saturating_sub(keep)] {
        let d = step_dir(sync_dir, *n);
        std::fs::remove_dir_all(&d).with_context(|| format!("removing {}", d.display()))?;
    }
    for entry in std::fs::read_dir(sync_dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with("step_") && name.contains(".tmp-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}
