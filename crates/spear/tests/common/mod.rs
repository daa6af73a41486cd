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

/// A small but complete household-tiny run: SFT, replay that fires, evaluation every
/// iteration, one checkpoint per iteration.
pub fn tiny_sets(out: &Path, name: &str, iterations: u64) -> Vec<String> {
    [
        format!("run.out_dir={:?}", out.display().to_string()),
        format!("run.name={name}"),
        format!("run.iterations={iterations}"),
        "run.eval_every=2".into(),
        "run.eval_before=true".into(),
        "run.log_episodes=4".into(),
        "env.tasks_per_iter=3".into(),
        "env.group_size=3".into(),
        "env.max_turns=4".into(),
        "env.household.train_games=24".into(),
        "env.household.eval_games=6".into(),
        "eval.episodes=6".into(),
        "model.hidden_size=32".into(),
        "model.intermediate_size=48".into(),
        "model.num_layers=1".into(),
        "model.num_heads=2".into(),
        "model.num_kv_heads=1".into(),
        // Enough warm start for a few well-formed actions, so scores differ inside groups
        // (advantages ≠ 0) and the replay buffer fills.
        "sft.games=24".into(),
        "sft.epochs=3".into(),
        "sft.batch_size=4".into(),
        "sampling.max_new_tokens=24".into(),
        "rl.drbot.max_response_length=24".into(),
        "rl.update.mini_batch_size=16".into(),
        "rl.update.micro_batch_size=8".into(),
        // Replay fires after a couple of iterations.
        "rl.replay.buffer_size=2".into(),
        "rl.drbot.rollout_filter_ratio=1.0".into(),
        // An untrained policy writes no <action> tags: keep its samples in the loss.
        "rl.drbot.filter_incomplete=false".into(),
        "rl.drbot.filter_overlong=false".into(),
    ]
    .into_iter()
    .collect()
}

/// Starts `spear serve --port 0 ARGS` and returns the process and its base URL, read from the
/// `spear serve: listening on URL` line it prints (shared by `serve.rs` and `scale_out.rs`).
pub fn spawn_serve(args: &[&str], stderr: Stdio) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = spear()
        .args(["serve", "--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(a) = line.strip_prefix("spear serve: listening on ") {
                let _ = tx.send(a.to_string());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("spear serve printed its address");
    (child, base)
}
