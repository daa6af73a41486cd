//! Math training end to end through the CLI (issue #7, presets math-grpo / math-spear): a
//! tiny character-level policy, warm-started on the generator's demonstrations, trains for a
//! few iterations with real tool calls in the sandbox (bubblewrap when installed, as in CI);
//! metrics.jsonl / eval.jsonl / trajectories hold what a math run must report; a run killed
//! with SIGKILL and resumed logs exactly the metrics of an uninterrupted one; config errors
//! name the `[env.math]` key.

use std::path::Path;

use serde_json::Value;

mod common;
use common::{lines, spear, tmp};

/// A small `math-tiny` run: 2 problems × G 3 per iteration, held-out evaluation of 2
/// problems × k 2, a 2-step warm start.
fn tiny_sets(out: &Path, name: &str, iterations: u64) -> Vec<String> {
    [
        format!("run.out_dir={:?}", out.display().to_string()),
        format!("run.name={name}"),
        format!("run.iterations={iterations}"),
        "run.eval_every=2".into(),
        "run.eval_before=true".into(),
        "run.log_episodes=3".into(),
        "env.tasks_per_iter=2".into(),
        "env.group_size=3".into(),
        "env.math.train_problems=8".into(),
        "env.math.eval_problems=2".into(),
        "env.math.eval_k=2".into(),
        "env.math.families=[\"big_arithmetic\", \"modular\"]".into(),
        "env.math.max_response_tokens=200".into(),
        "rl.drbot.max_response_length=200".into(),
        "sampling.max_new_tokens=120".into(),
        "model.hidden_size=32".into(),
        "model.intermediate_size=64".into(),
        "model.num_layers=1".into(),
        "sft.games=4".into(),
        "sft.epochs=1".into(),
        "sft.batch_size=2".into(),
        "rl.update.mini_batch_size=4".into(),
        "rl.update.micro_batch_size=2".into(),
        // An untrained policy boxes no answer: keep its conversations in the loss so the
        // update runs on real tokens.
        "rl.drbot.filter_incomplete=false".into(),
        "rl.drbot.rollout_filter_ratio=1.0".into(),
    ]
    .into_iter()
    .collect()
}

fn run_train(preset: &str, sets: &[String]) -> std::process::Output {
    let mut c = spear();
    c.args(["train", "--preset", preset]);
    for s in sets {
        c.arg("--set").arg(s);
    }
    c.output().expect("spear runs")
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn math_spear_two_iterations_end_to_end() {
    let out = tmp("two");
    let o = run_train("math-tiny-spear", &tiny_sets(&out, "m", 2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "spear train failed:\n{stderr}");
    assert!(stderr.contains("4 demonstrations"), "{stderr}");
    assert!(
        stderr.contains("note: rl.reward.max_toolcall_steps = 2: it follows run.iterations"),
        "{stderr}"
    );
    let run = out.join("m");
    let m = lines(&run.join("metrics.jsonl"));
    assert_eq!(m.len(), 2, "{m:?}");
    for (i, x) in m.iter().enumerate() {
        let t = i as u64 + 1;
        assert_eq!(x["iteration"], t);
        // One sample per conversation: 2 problems × G 3.
        assert_eq!(x["samples"], 6, "{x}");
        assert_eq!(x["valid_action_rate"], 1.0);
        assert!(x["trained_samples"].as_u64().unwrap() <= 6);
        let reward = f(&x["episode_reward"]);
        assert!((-1.0..=1.0).contains(&reward), "{x}");
        let sr = f(&x["success_rate"]);
        // Success = verifier accuracy; episode reward = ±1 = 2·acc − 1.
        assert!((reward - (2.0 * sr - 1.0)).abs() < 1e-9, "{x}");
        // μ(t) of the cosine decay with T_decay = 2 (it follows `run.iterations=2` on the
        // preset, whose own is 10): μ(1) = (cos(π/2)+1)/2 = 0.5, μ(2) = (cos(π)+1)/2 = 0.
        let mu = [0.5, 0.0][i];
        assert!((f(&x["toolcall_coef"]) - mu).abs() < 1e-12, "{x}");
        let stats = &x["math"];
        let calls = f(&stats["tool_calls"]);
        let rate = f(&stats["tool_call_rate"]);
        assert!(calls >= rate && (0.0..=1.0).contains(&rate), "{x}");
        assert!(f(&stats["response_tokens"]) > 0.0 && f(&stats["response_tokens"]) <= 200.0);
        assert!(f(&stats["assistant_turns"]) >= 1.0);
        // Score = reward + the Qwen3 tool bonus: never below the reward, at most μ above.
        let score = f(&x["score"]);
        assert!(
            score >= reward - 1e-12 && score <= reward + mu + 1e-12,
            "{x}"
        );
        assert!(f(&x["time"]["generate"]) > 0.0);
        assert!(
            f(&x["train_tokens_per_s"]) > 0.0,
            "the update trained no token: {x}"
        );
    }
    // Task types are the generator families.
    let types: Vec<&String> = m[0]["success_by_type"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert!(
        types.iter().all(|t| t.starts_with("generated/")),
        "{types:?}"
    );
    // Evaluation before training and after iteration 2: avg@2 / pass@k on 2 held-out problems.
    let ev = lines(&run.join("eval.jsonl"));
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(ev[0]["iteration"], 0);
    assert_eq!(ev[1]["iteration"], 2);
    for e in &ev {
        assert_eq!(e["split"], "held_out");
        assert_eq!(e["episodes"], 4);
        assert_eq!(e["math"]["problems"], 2);
        assert_eq!(e["math"]["k"], 2);
        assert_eq!(f(&e["success_rate"]), f(&e["math"]["avg_at_k"]));
        let p1 = f(&e["math"]["pass_at"]["1"]);
        let p2 = f(&e["math"]["pass_at"]["2"]);
        assert!(
            p1 <= p2 + 1e-12 && (p1 - f(&e["success_rate"])).abs() < 1e-12,
            "{e}"
        );
    }
    // Trajectories: whole conversations with the problem as the first prompt.
    let traj = lines(&run.join("trajectories/iter_000002.jsonl"));
    assert_eq!(traj.len(), 3);
    for e in &traj {
        let goal = e["goal"].as_str().unwrap();
        assert!(e["turns"][0]["prompt"].as_str().unwrap().starts_with(goal));
        assert_eq!(e["episode_reward"].as_f64().unwrap().abs(), 1.0);
    }
    let cfg = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(cfg.contains("kind = \"math\""), "{cfg}");
    assert!(cfg.contains("[env.math.sandbox]"), "{cfg}");
    let latest = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap();
    assert_eq!(latest.trim(), "iter_000002");

    // `spear eval --checkpoint` on the math run.
    let e = spear()
        .args(["eval", "--checkpoint"])
        .arg(&run)
        .args(["--episodes", "1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&e.stdout);
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    assert!(text.contains("held_out: avg@2"), "{text}");
    assert!(text.contains("1 problems"), "{text}");
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn math_resume_after_kill_matches_an_uninterrupted_run() {
    let out = tmp("resume");
    let iters = 3;
    let a = run_train("math-tiny-spear", &tiny_sets(&out, "a", iters));
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let ma = lines(&out.join("a/metrics.jsonl"));
    assert_eq!(ma.len(), iters as usize);

    // Run b: kill -9 once the first iteration is logged, then resume.
    common::assert_kill_and_resume_match(
        &out,
        &["--preset", "math-tiny-spear"],
        &tiny_sets(&out, "b", iters),
        "b",
        1,
        "a",
    );
    std::fs::remove_dir_all(&out).ok();
}

/// Training problems from a DAPO-Math-17k file (the loader's exact JSONL layout, the
/// spear-envs fixture): the run trains on its prompts and grades against its ground truths.
#[test]
fn math_trains_on_a_dapo_file() {
    let out = tmp("dapo");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../spear-envs/tests/fixtures/math/dapo_sample.jsonl")
        .canonicalize()
        .unwrap();
    let mut sets = tiny_sets(&out, "d", 1);
    sets.extend([
        "env.math.source=\"dapo\"".to_string(),
        format!("env.math.dapo_path={:?}", fixture.display().to_string()),
        "sft.enabled=false".into(),
        "run.eval_before=false".into(),
    ]);
    let o = run_train("math-tiny-spear", &sets);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "spear train failed:\n{stderr}");
    let m = lines(&out.join("d/metrics.jsonl"));
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["samples"], 6, "{:?}", m[0]);
    let traj = lines(&out.join("d/trajectories/iter_000001.jsonl"));
    let goals: Vec<&str> = traj.iter().map(|e| e["goal"].as_str().unwrap()).collect();
    let fixture_text = std::fs::read_to_string(&fixture).unwrap();
    for g in &goals {
        // Each training goal is one of the file's problems: its opening, JSON-escaped as in
        // the file, occurs there.
        let head: String = g.chars().take(40).collect();
        let escaped = serde_json::to_string(&head).unwrap();
        assert!(fixture_text.contains(escaped.trim_matches('"')), "{g}");
    }
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn math_config_errors_name_the_key() {
    // `--print-config` resolves and validates without starting a run (should a case pass).
    let err = |args: &[&str]| {
        let o = spear().args(args).arg("--print-config").output().unwrap();
        assert!(!o.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let e = err(&[
        "train",
        "--preset",
        "math-tiny",
        "--set",
        "env.math.levels=[4]",
    ]);
    assert!(e.contains("env.math.levels"), "{e}");
    let e = err(&[
        "train",
        "--preset",
        "math-tiny",
        "--set",
        "env.math.familiez=[]",
    ]);
    assert!(
        e.contains("env.math.familiez") && e.contains("families"),
        "{e}"
    );
    let e = err(&[
        "train",
        "--preset",
        "math-tiny",
        "--set",
        "env.math.families=[\"algebra\"]",
    ]);
    assert!(
        e.contains("env.math.families") && e.contains("big_arithmetic"),
        "{e}"
    );
    let e = err(&[
        "train",
        "--preset",
        "math-tiny",
        "--set",
        "env.math.source=dapo",
    ]);
    assert!(e.contains("env.math.dapo_path"), "{e}");
    let e = err(&[
        "train",
        "--preset",
        "math-tiny",
        "--set",
        "env.math.sandbox.backend=docker",
    ]);
    assert!(
        e.contains("env.math.sandbox.backend") && e.contains("bwrap"),
        "{e}"
    );
    let e = err(&[
        "train",
        "--preset",
        "math-tiny",
        "--set",
        "eval.splits=[\"valid_seen\"]",
    ]);
    assert!(e.contains("eval.splits") && e.contains("aime24"), "{e}");
    let e = err(&[
        "train",
        "--preset",
        "math-tiny",
        "--set",
        "rl.reward.toolcall_variant=agent",
    ]);
    assert!(e.contains("rl.reward.toolcall_variant"), "{e}");
    let e = err(&[
        "train",
        "--preset",
        "math-tiny",
        "--set",
        "env.math.max_response_tokens=64",
    ]);
    assert!(
        e.contains("rl.drbot.max_response_length") && e.contains("64"),
        "{e}"
    );
    let e = err(&["train", "--preset", "math-gigpo"]);
    assert!(e.contains("math-grpo"), "{e}");
    // A DAPO file that does not exist: the error names the key and the file.
    let out = tmp("config");
    let o = spear()
        .args([
            "train",
            "--preset",
            "math-tiny",
            "--set",
            "env.math.source=dapo",
            "--set",
            "env.math.dapo_path=/nonexistent/dapo.jsonl",
            "--set",
            "sft.enabled=false",
            "--set",
        ])
        .arg(format!("run.out_dir={:?}", out.display().to_string()))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("/nonexistent/dapo.jsonl"), "{e}");
    std::fs::remove_dir_all(&out).ok();
    // --print-config shows the whole [env.math] section, with overrides.
    let o = spear()
        .args([
            "train",
            "--preset",
            "math-spear",
            "--print-config",
            "--set",
            "env.math.eval_k=8",
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("[env.math]") && text.contains("eval_k = 8"),
        "{text}"
    );
    assert!(text.contains("name = \"smollm2-135m\""), "{text}");
    assert!(text.contains("toolcall_variant = \"math_qwen3\""), "{text}");
}

/// rlimits-only (no isolation) runs only when chosen by name, and then the run header and
/// `config.toml` say so.
#[test]
fn math_rlimits_chosen_by_name_is_stated_in_the_header_and_config() {
    let out = tmp("rlimits");
    let mut sets = tiny_sets(&out, "r", 1);
    sets.push("env.math.sandbox.backend=rlimits".into());
    sets.push("run.eval_before=false".into());
    let o = run_train("math-tiny-spear", &sets);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "spear train failed:\n{stderr}");
    assert!(
        stderr.contains("rlimits only: model-written code runs WITHOUT isolation"),
        "{stderr}"
    );
    let cfg = std::fs::read_to_string(out.join("r/config.toml")).unwrap();
    assert!(
        cfg.starts_with("# WARNING: env.math.sandbox.backend = \"rlimits\""),
        "{cfg}"
    );
    assert!(cfg.contains("backend = \"rlimits\""), "{cfg}");
    std::fs::remove_dir_all(&out).ok();
}

/// The tool-use experiment's two-stage warm start (RESULTS.md): `spear sft` on top of
/// `model.init_checkpoint` trains further (`sft.after_init_checkpoint`, which `spear sft`
/// sets), while `spear train` from a checkpoint skips its own warm start and says so. The
/// problems are the `multiply` family's, named by `env.math.families`.
#[test]
fn sft_continues_from_an_init_checkpoint_and_train_says_it_skips_its_warm_start() {
    let out = tmp("sft2");
    let sets = |name: &str| {
        let mut s = tiny_sets(&out, name, 1);
        s.retain(|x| !x.starts_with("env.math.families="));
        s.push("env.math.families=[\"multiply\"]".into());
        s
    };
    let sft = |sets: &[String]| {
        let mut c = spear();
        c.args(["sft", "--preset", "math-tiny-grpo"]);
        for s in sets {
            c.arg("--set").arg(s);
        }
        c.output().expect("spear runs")
    };
    let a = sft(&sets("a"));
    let ea = String::from_utf8_lossy(&a.stderr).to_string();
    assert!(a.status.success(), "{ea}");
    assert!(ea.contains("warm start done"), "{ea}");
    let a_dir = out.join("a-sft");
    let problems = std::fs::read_to_string(a_dir.join("config.toml")).unwrap();
    assert!(problems.contains("families = [\"multiply\"]"), "{problems}");

    // Stage two: the same problems, direct answers only, from a's weights.
    let mut s = sets("b");
    s.push("env.math.demo_tool_rate=0.0".into());
    s.push(format!(
        "model.init_checkpoint={:?}",
        a_dir.display().to_string()
    ));
    let b = sft(&s);
    let eb = String::from_utf8_lossy(&b.stderr).to_string();
    assert!(b.status.success(), "{eb}");
    assert!(
        eb.contains("initial weights from") && eb.contains("warm start done"),
        "{eb}"
    );
    let weights = |run: &str| {
        std::fs::read(
            out.join(run)
                .join("checkpoints/iter_000000/model.safetensors"),
        )
        .unwrap()
    };
    assert_ne!(
        weights("a-sft"),
        weights("b-sft"),
        "stage two did not train"
    );

    // `spear train` from a checkpoint with the preset's warm start on: skipped, and said.
    let mut s = sets("c");
    s.push(format!(
        "model.init_checkpoint={:?}",
        a_dir.display().to_string()
    ));
    s.push("run.eval_before=false".into());
    let c = run_train("math-tiny-grpo", &s);
    let ec = String::from_utf8_lossy(&c.stderr).to_string();
    assert!(c.status.success(), "{ec}");
    assert!(
        ec.contains("warm start skipped") && !ec.contains("warm start done"),
        "{ec}"
    );
    std::fs::remove_dir_all(&out).ok();
}
