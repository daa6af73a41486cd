//! Helpers shared by the end-to-end training tests (`train_e2e.rs`, `math_train_e2e.rs`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `spear` binary under test.
pub fn spear() -> Command {
    Command::new(env!("CARGO_BIN_EXE_spear"))
}

/// The JSON lines of a file.
pub fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Drops wall-clock fields, which legitimately differ between runs.
pub fn without_timing(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        for k in ["time", "elapsed", "gen_tokens_per_s", "train_tokens_per_s"] {
            o.remove(k);
        }
    }
    v
}

/// A fresh temporary directory for one test.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("spear-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `spear train ARGS --set S…` for run `out/name`, SIGKILLs it once its
/// `metrics.jsonl` holds `after` lines, resumes it with `spear train --resume`, and asserts
/// that its metrics (without wall-clock fields) and evaluations equal those of the
/// uninterrupted run `out/reference`.
pub fn assert_kill_and_resume_match(
    out: &Path,
    args: &[&str],
    sets: &[String],
    name: &str,
    after: usize,
    reference: &str,
) {
    let mut c = spear();
    c.arg("train")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for s in sets {
        c.arg("--set").arg(s);
    }
    let mut child = c.spawn().unwrap();
    let metrics = out.join(name).join("metrics.jsonl");
    let start = Instant::now();
    loop {
        let n = std::fs::read_to_string(&metrics)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if n >= after {
            break;
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("run {name} ended before it could be killed: {st}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "run {name} too slow"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let r = spear()
        .arg("train")
        .arg("--resume")
        .arg(out.join(name))
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let ma = lines(&out.join(reference).join("metrics.jsonl"));
    let mb = lines(&metrics);
    assert_eq!(ma.len(), mb.len());
    for (x, y) in ma.iter().zip(&mb) {
        assert_eq!(without_timing(x.clone()), without_timing(y.clone()));
    }
    assert_eq!(
        lines(&out.join(reference).join("eval.jsonl")),
        lines(&out.join(name).join("eval.jsonl"))
    );
}
