//! Bad command-line input gets a clear error, never a panic or a silently wrong result
//! (issue 13): zero counts, an index range that overflows, zero evaluation episodes.

use std::process::{Command, Output};

fn spear(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spear"))
        .args(args)
        .output()
        .expect("spear runs")
}

/// Fails with exit code 1 or 2 (an error, not a panic's 101) and says `says`.
fn assert_refused(args: &[&str], says: &str) {
    let o = spear(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{args:?} was accepted: {err}");
    assert!(
        matches!(o.status.code(), Some(1) | Some(2)),
        "{args:?}: exit {:?} (a panic?): {err}",
        o.status.code()
    );
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert!(err.contains(says), "{args:?}: {err}");
}

#[test]
fn zero_counts_are_errors() {
    assert_refused(&["bench", "model", "--seq-len", "0"], "at least 1");
    assert_refused(&["bench", "model", "--reps", "0"], "at least 1");
    assert_refused(&["bench", "model", "--batch", "0"], "at least 1");
    assert_refused(
        &["bench", "model", "--dtype", "fp16"],
        "use \"f32\" or \"bf16\"",
    );
    // A misspelt workload is refused before the model loads, not skipped silently.
    assert_refused(
        &["bench", "model", "--model", "tiny", "--only", "gen1,gen64"],
        "unknown workload `gen64`",
    );
    assert_refused(
        &["env", "play", "household", "--max-steps", "0"],
        "at least 1",
    );
    assert_refused(&["bench", "env", "household", "--steps", "0"], "at least 1");
}

#[test]
fn generating_past_the_last_index_is_an_error() {
    let dir = std::env::temp_dir().join(format!("spear-bad-gen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let start = (usize::MAX - 1).to_string();
    let o = spear(&[
        "env",
        "generate",
        "household",
        "--split",
        "valid_seen",
        "--start",
        &start,
        "--count",
        "2",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "accepted: {err}");
    assert!(err.contains("overflow") && err.contains("--start"), "{err}");
    assert!(!err.contains("wrote"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn zero_evaluation_episodes_are_an_error() {
    assert_refused(
        &[
            "eval",
            "--checkpoint",
            "/nonexistent-run",
            "--episodes",
            "0",
        ],
        "--episodes must be at least 1",
    );
    assert_refused(
        &["train", "--print-config", "--set", "eval.episodes=0"],
        "eval.episodes",
    );
}
