//! `spear score math` and `spear sandbox run` end to end.

use std::io::Write;
use std::process::{Command, Stdio};

fn score(args: &[&str], stdin: &str) -> serde_json::Value {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spear"))
        .args(["score", "math"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn spear");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[test]
fn score_strict_and_minerva() {
    let v = score(&["--answer=42", "--strict"], "so \\boxed{42}");
    assert_eq!(v, serde_json::json!({"score": 1.0, "pred": "42"}));
    let v = score(&["--answer=42", "--strict"], "no box here");
    assert_eq!(v, serde_json::json!({"score": -1.0, "pred": null}));
    // stdin is not trimmed: the trailing space is part of the box
    let v = score(&["--answer=42", "--strict"], "\\boxed{42 }\n");
    assert_eq!(v["pred"], "42 ");
    let v = score(&["--answer=-3", "--strict"], "\\boxed{-3}");
    assert_eq!(v["score"], 1.0);
    let v = score(&["--answer="], "\\boxed{}");
    assert_eq!(v["score"], -1.0); // Minerva mode needs an Answer: line
    let v = score(&["--answer=", "--strict"], "\\boxed{}");
    assert_eq!(v, serde_json::json!({"score": 1.0, "pred": ""}));
    let v = score(&["--answer=1000"], "Answer: $1,000$");
    assert_eq!(v, serde_json::json!({"score": 1.0, "pred": "1000"}));
}

/// `math_dapo`'s preds: strict mode's `None` prints as `null` and never matches (not even a
/// ground truth `[INVALID]`); Minerva mode without an `Answer:` line returns the string
/// `"[INVALID]"`, printed as such (upstream normalises and compares it like any answer).
#[test]
fn score_prints_upstream_preds() {
    let v = score(&["--answer=42"], "no answer line");
    assert_eq!(v, serde_json::json!({"score": -1.0, "pred": "[INVALID]"}));
    let v = score(&["--answer=[INVALID]"], "no answer line");
    assert_eq!(v, serde_json::json!({"score": 1.0, "pred": "[INVALID]"}));
    let v = score(&["--answer=[INVALID]", "--strict"], "no box");
    assert_eq!(v, serde_json::json!({"score": -1.0, "pred": null}));
    let v = score(&["--answer=[INVALID]", "--strict"], "\\boxed{[INVALID]}");
    assert_eq!(v, serde_json::json!({"score": 1.0, "pred": "[INVALID]"}));
}

#[test]
fn score_spear_fields() {
    // Qwen3 variant, 2 calls, t = 100 (μ = 0.5): wrong → −1 + 0.2·0.5 = −0.9
    let v = score(
        &["--answer=5", "--spear", "--tool-calls=2", "--step=100"],
        "\\boxed{4}",
    );
    assert!((v["score"].as_f64().unwrap() + 0.9).abs() < 1e-12, "{v}");
    assert_eq!(
        (v["acc"].clone(), v["is_incomplete"].clone()),
        (false.into(), false.into())
    );
    // reward.py as it runs: no box is not incomplete, and the reported pred is ""
    let v = score(&["--answer=5", "--spear"], "no answer");
    assert_eq!(v["is_incomplete"], false);
    assert_eq!(v["pred"], "");
    // only a literal boxed [INVALID] is flagged (its pred is reported as "")
    let v = score(&["--answer=5", "--spear"], "\\boxed{[INVALID]}");
    assert_eq!(
        (v["is_incomplete"].clone(), v["pred"].clone()),
        (true.into(), "".into())
    );
    // the CPU presets' rule: no box and no tool call
    let cpu = ["--answer=5", "--spear", "--incomplete-needs-no-tool-call"];
    assert_eq!(score(&cpu, "no answer")["is_incomplete"], true);
    let v = score(&[&cpu[..], &["--tool-calls=1"]].concat(), "no answer");
    assert_eq!(v["is_incomplete"], false);
}

#[test]
fn sandbox_run_prints_the_reply() {
    let dir = std::env::temp_dir().join(format!("spear-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("t.py");
    std::fs::write(&f, "```python\nprint(np.array([1, 2, 3]).sum())\n```").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_spear"))
        .args(["sandbox", "run"])
        .arg(&f)
        .args(["--isolation", "bwrap", "--timeout", "60"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "spear sandbox run failed (is bubblewrap installed? `apt-get install bubblewrap`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "6\n");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Without bubblewrap, model-written code is refused by default (before anything runs), with
/// the install command; rlimits-only runs only when chosen by name, and says so.
#[test]
fn sandbox_refuses_to_run_code_unisolated_by_default() {
    let dir = std::env::temp_dir().join(format!("spear-cli-unisolated-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("escaped");
    let f = dir.join("t.py");
    std::fs::write(
        &f,
        format!(
            "open({:?}, 'w').write('host file')\nprint('done')\n",
            marker.display().to_string()
        ),
    )
    .unwrap();
    // A PATH without bwrap: the sandbox refuses, naming the install command and the opt-in.
    let empty = dir.join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_spear"))
        .args(["sandbox", "run"])
        .arg(&f)
        .env("PATH", &empty)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "ran without isolation: {err}");
    assert!(err.contains("apt-get install bubblewrap"), "{err}");
    assert!(err.contains("--isolation rlimits"), "{err}");
    assert!(!marker.exists(), "the code ran and wrote a host file");
    // Training refuses the same way, before the warm start.
    let runs = dir.join("runs");
    let out = Command::new(env!("CARGO_BIN_EXE_spear"))
        .args(["train", "--preset", "math-tiny-spear", "--set"])
        .arg(format!("run.out_dir={:?}", runs.display().to_string()))
        .env("PATH", &empty)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "trained without isolation: {err}");
    assert!(
        err.contains("apt-get install bubblewrap") && err.contains("env.math.sandbox.backend"),
        "{err}"
    );
    assert!(!err.contains("warm start"), "{err}");
    // Chosen by name, rlimits-only runs and warns.
    let out = Command::new(env!("CARGO_BIN_EXE_spear"))
        .args(["sandbox", "run"])
        .arg(&f)
        .args(["--isolation", "rlimits"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("WITHOUT isolation"), "{err}");
    assert!(marker.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
