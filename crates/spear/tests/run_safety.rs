//! Runs that cannot be corrupted (issue 13): one writer per run directory, run names that stay
//! inside `run.out_dir`, resume that finishes an interrupted evaluation, broken checkpoints
//! with a way on (`--from`), temporaries of interrupted writes removed, `--resume --set` for
//! the cadence keys only, and cross-field config errors before any work.

use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{lines, spear, tiny_sets, tmp, without_timing};

fn train(sets: &[String], extra: &[&str]) -> Output {
    let mut c = spear();
    c.arg("train").args(extra);
    for s in sets {
        c.arg("--set").arg(s);
    }
    c.output().expect("spear runs")
}

fn resume(run: &Path, extra: &[&str]) -> Output {
    spear()
        .arg("train")
        .arg("--resume")
        .arg(run)
        .args(extra)
        .output()
        .expect("spear runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Waits for `child` at most `secs`; a child still running then is killed and reported.
fn wait_at_most(mut child: Child, secs: u64, what: &str) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > Duration::from_secs(secs) {
            child.kill().ok(); // SIGKILL
            let o = child.wait_with_output().unwrap();
            panic!(
                "{what} was still running after {secs}s (it should have stopped at once): {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills the child when dropped (a failed assertion must not leave a training running).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

fn spawn_train(sets: &[String], extra: &[&str]) -> Child {
    let mut c = spear();
    c.arg("train")
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for s in sets {
        c.arg("--set").arg(s);
    }
    c.spawn().unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

fn assert_same_run(a: &Path, b: &Path) {
    let ma = lines(&a.join("metrics.jsonl"));
    let mb = lines(&b.join("metrics.jsonl"));
    assert_eq!(ma.len(), mb.len(), "metrics lines differ in number");
    for (x, y) in ma.iter().zip(&mb) {
        assert_eq!(without_timing(x.clone()), without_timing(y.clone()));
    }
    assert_eq!(lines(&a.join("eval.jsonl")), lines(&b.join("eval.jsonl")));
}

#[test]
fn a_second_writer_is_refused_while_a_run_is_training() {
    let out = tmp("lock");
    let sets = tiny_sets(&out, "busy", 500);
    let run = out.join("busy");
    let mut first = KillOnDrop(spawn_train(&sets, &[]));
    let start = Instant::now();
    while !run.join("config.toml").is_file() {
        assert!(
            first.0.try_wait().unwrap().is_none(),
            "the first run ended early"
        );
        assert!(start.elapsed() < Duration::from_secs(120), "run too slow");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = first.0.id().to_string();

    // The same run name again: refused at once, naming the run and the holder's pid.
    let again = wait_at_most(spawn_train(&sets, &[]), 60, "a second `spear train`");
    assert!(!again.status.success());
    let err = stderr(&again);
    assert!(
        err.contains("in use by process") && err.contains(&pid),
        "{err}"
    );
    assert!(err.contains("busy"), "{err}");
    // A resume while it trains: refused too.
    let mut c = spear();
    c.arg("train")
        .arg("--resume")
        .arg(&run)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let r = wait_at_most(
        c.spawn().unwrap(),
        60,
        "`spear train --resume` of a running run",
    );
    assert!(!r.status.success());
    assert!(stderr(&r).contains(&pid), "{}", stderr(&r));

    // kill -9 releases the lock: the run resumes.
    drop(first);
    let r = resume(&run, &["--set", "run.iterations=1"]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(!lines(&run.join("metrics.jsonl")).is_empty());
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn a_run_name_is_one_plain_path_component() {
    let out = tmp("names");
    let runs = out.join("runs");
    for name in ["..", ".", "a/b", "../x", ""] {
        let sets = [
            format!("run.out_dir={:?}", runs.display().to_string()),
            format!("run.name={name:?}"),
        ];
        let o = train(&sets, &["--print-config"]);
        assert!(!o.status.success(), "run.name={name:?} was accepted");
        let err = stderr(&o);
        assert!(err.contains("run.name"), "{err}");
    }
    // Training with `..` writes nothing into the parent of out_dir.
    let sets = [
        format!("run.out_dir={:?}", runs.display().to_string()),
        "run.name=..".to_string(),
        "run.iterations=1".to_string(),
    ];
    let mut c = spear();
    c.arg("train").stdout(Stdio::piped()).stderr(Stdio::piped());
    for s in &sets {
        c.arg("--set").arg(s);
    }
    let o = wait_at_most(c.spawn().unwrap(), 60, "`spear train --set run.name=..`");
    assert!(!o.status.success());
    for f in ["config.toml", "metrics.jsonl", "checkpoints"] {
        assert!(!out.join(f).exists(), "{f} was written outside out_dir");
    }
    std::fs::remove_dir_all(&out).ok();
}

/// A kill during the evaluation before RL: `spear sft` leaves exactly the state of a run
/// whose warm start and iteration-0 checkpoint are done and whose evaluation has run; cutting
/// `eval.jsonl` after its first split (plus half a line) is what a kill between the two splits
/// leaves. The resume must redo that evaluation and end equal to an uninterrupted run.
#[test]
fn resume_finishes_the_evaluation_that_a_kill_interrupted() {
    let out = tmp("evalresume");
    let a = train(&tiny_sets(&out, "a", 2), &[]);
    assert!(a.status.success(), "{}", stderr(&a));

    let mut c = spear();
    c.arg("sft");
    for s in tiny_sets(&out, "b", 2) {
        c.arg("--set").arg(s);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let b = out.join("b-sft");
    let ev = std::fs::read_to_string(b.join("eval.jsonl")).unwrap();
    let first = ev.lines().next().unwrap();
    assert_eq!(ev.lines().count(), 2, "two splits evaluated at iteration 0");
    std::fs::write(
        b.join("eval.jsonl"),
        format!("{first}\n{{\"iteration\": 0, \"spl"),
    )
    .unwrap();

    let r = resume(&b, &[]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert_same_run(&out.join("a"), &b);
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn broken_checkpoints_name_the_intact_one_and_resume_from_it() {
    let out = tmp("broken");
    let a = train(&tiny_sets(&out, "a", 2), &[]);
    assert!(a.status.success(), "{}", stderr(&a));
    let a = out.join("a");
    let ck2 = |run: &Path| run.join("checkpoints/iter_000002");

    type Breaker = fn(&Path);
    let cases: [(&str, Breaker, &str); 6] = [
        (
            "truncated weights",
            |r| {
                let p = r.join("checkpoints/iter_000002/model.safetensors");
                let n = std::fs::metadata(&p).unwrap().len();
                let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
                f.set_len(n / 2).unwrap();
            },
            "truncated",
        ),
        (
            "missing state.json",
            |r| std::fs::remove_file(r.join("checkpoints/iter_000002/state.json")).unwrap(),
            "state.json is missing",
        ),
        (
            "malformed state.json",
            |r| std::fs::write(r.join("checkpoints/iter_000002/state.json"), "{\"itera").unwrap(),
            "malformed trainer state",
        ),
        (
            "dangling latest",
            |r| std::fs::write(r.join("checkpoints/latest"), "iter_000009").unwrap(),
            "does not exist",
        ),
        (
            "missing latest",
            |r| std::fs::remove_file(r.join("checkpoints/latest")).unwrap(),
            "latest is missing",
        ),
        (
            "hand-edited iteration",
            |r| {
                let p = r.join("checkpoints/iter_000002/state.json");
                let mut v: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                v["iteration"] = 7.into();
                std::fs::write(&p, v.to_string()).unwrap();
            },
            "says iteration 7",
        ),
    ];
    for (i, (what, brk, says)) in cases.iter().enumerate() {
        let c = out.join(format!("c{i}"));
        copy_dir(&a, &c);
        brk(&c);
        let r = resume(&c, &[]);
        assert!(!r.status.success(), "{what}: the resume was not refused");
        let err = stderr(&r);
        assert!(err.contains(says), "{what}: {err}");
        if *what != "dangling latest" && *what != "missing latest" {
            assert!(err.contains("iter_000002"), "{what}: {err}");
        }
        // The newest intact checkpoint: iter_000002 when only `latest` is broken.
        let intact = if what.contains("latest") {
            "--from iter_000002"
        } else {
            "--from iter_000001"
        };
        assert!(
            err.contains(intact),
            "{what}: the error must name the intact checkpoint: {err}"
        );
    }

    // The way on: --from the intact checkpoint; temporaries of interrupted writes go.
    let c = out.join("c0");
    let tmp1 = c.join(".metrics.jsonl.tmp-4242");
    let tmp2 = c.join("checkpoints/iter_000001/.state.json.tmp-4242");
    std::fs::write(&tmp1, "half").unwrap();
    std::fs::write(&tmp2, "half").unwrap();
    let r = resume(&c, &["--from", "iter_000001"]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(!tmp1.exists() && !tmp2.exists(), "temporaries were left");
    assert!(
        c.join("checkpoints/discarded.iter_000002").is_dir(),
        "the broken checkpoint is set aside, not deleted"
    );
    assert!(ck2(&c).join("state.json").is_file());
    assert_same_run(&a, &c);
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn resume_accepts_set_for_cadence_keys_only() {
    let out = tmp("resumeset");
    let a = train(&tiny_sets(&out, "a", 1), &[]);
    assert!(a.status.success(), "{}", stderr(&a));
    let run = out.join("a");
    let r = resume(&run, &["--set", "model.hidden_size=64"]);
    assert!(!r.status.success());
    let err = stderr(&r);
    assert!(
        err.contains("model.hidden_size") && err.contains("run.iterations"),
        "{err}"
    );
    let r = resume(&run, &["--set", "run.iterations=2"]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert_eq!(lines(&run.join("metrics.jsonl")).len(), 2);
    let cfg = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(cfg.contains("iterations = 2"), "{cfg}");
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn a_config_that_cannot_run_fails_before_any_work() {
    let out = tmp("crossfield");
    let mut sets = tiny_sets(&out, "x", 2);
    sets.push("env.tasks_per_iter=1".into());
    sets.push("rl.drbot.rollout_filter_ratio=0.75".into());
    let mut c = spear();
    c.arg("train").stdout(Stdio::piped()).stderr(Stdio::piped());
    for s in &sets {
        c.arg("--set").arg(s);
    }
    let o = wait_at_most(c.spawn().unwrap(), 30, "a run whose config cannot run");
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("rl.drbot.rollout_filter_ratio") && err.contains("env.tasks_per_iter"),
        "{err}"
    );
    assert!(!out.join("x/checkpoints").exists(), "work was done first");
    std::fs::remove_dir_all(&out).ok();
}

/// `model.init_checkpoint` takes a run directory, its `checkpoints` folder or one checkpoint,
/// and all three load the same weights (the latest complete checkpoint for the first two);
/// a path with none names itself and the forms it accepts.
#[test]
fn init_checkpoint_accepts_a_run_its_checkpoints_folder_or_one_checkpoint() {
    let out = tmp("initck");
    let a = train(&tiny_sets(&out, "a", 2), &[]);
    assert!(a.status.success(), "{}", stderr(&a));
    let a = out.join("a");
    let forms = [
        ("run", a.clone()),
        ("folder", a.join("checkpoints")),
        ("one", a.join("checkpoints/iter_000002")),
    ];
    let mut first_iteration = Vec::new();
    for (name, path) in &forms {
        let mut sets = tiny_sets(&out, name, 1);
        sets.push(format!(
            "model.init_checkpoint={:?}",
            path.display().to_string()
        ));
        sets.push("sft.enabled=false".into());
        sets.push("run.eval_before=false".into());
        let o = train(&sets, &[]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let m = lines(&out.join(name).join("metrics.jsonl"));
        first_iteration.push(without_timing(m[0].clone()));
    }
    assert_eq!(first_iteration[0], first_iteration[1]);
    assert_eq!(first_iteration[0], first_iteration[2]);
    // An earlier checkpoint is other weights, so the same iteration differs.
    let mut sets = tiny_sets(&out, "older", 1);
    sets.push(format!(
        "model.init_checkpoint={:?}",
        a.join("checkpoints/iter_000001").display().to_string()
    ));
    sets.push("sft.enabled=false".into());
    sets.push("run.eval_before=false".into());
    let o = train(&sets, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let older = without_timing(lines(&out.join("older/metrics.jsonl"))[0].clone());
    assert_ne!(older, first_iteration[0]);

    // Other warm-start settings build the tiny policy's vocabulary from other text: the
    // checkpoint's weights would read other words, so it is refused with a way on.
    let state_json = a.join("checkpoints/iter_000002/state.json");
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_json).unwrap()).unwrap();
    assert!(
        recorded["vocab"].as_str().is_some_and(|v| v.contains(':')),
        "checkpoints record their vocabulary: {recorded}"
    );
    let mut sets = tiny_sets(&out, "othervocab", 1);
    sets.retain(|s| !s.starts_with("sft.games="));
    sets.push("sft.games=9".into());
    sets.push(format!(
        "model.init_checkpoint={:?}",
        a.display().to_string()
    ));
    sets.push("sft.enabled=false".into());
    let o = train(&sets, &[]);
    assert!(
        !o.status.success(),
        "a checkpoint of another vocabulary was loaded"
    );
    let e = stderr(&o);
    assert!(
        e.contains("model.init_checkpoint")
            && e.contains("another vocabulary")
            && e.contains("sft.games")
            && e.contains("iter_000002"),
        "{e}"
    );
    // `spear eval` checks it too (here: a state.json whose recorded vocabulary was changed).
    let mut edited = recorded.clone();
    edited["vocab"] = serde_json::json!("7:0000000000000000");
    std::fs::write(&state_json, serde_json::to_vec(&edited).unwrap()).unwrap();
    let o = spear()
        .arg("eval")
        .arg("--checkpoint")
        .arg(&a)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--checkpoint") && stderr(&o).contains("another vocabulary"),
        "{}",
        stderr(&o)
    );

    let mut sets = tiny_sets(&out, "none", 1);
    let missing = out.join("no-such-run");
    sets.push(format!(
        "model.init_checkpoint={:?}",
        missing.display().to_string()
    ));
    let o = train(&sets, &[]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("model.init_checkpoint") && e.contains("no-such-run") && e.contains("runs/NAME"),
        "{e}"
    );
    std::fs::remove_dir_all(&out).ok();
}
