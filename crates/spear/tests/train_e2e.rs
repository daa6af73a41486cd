//! End-to-end training on a tiny policy: two iterations through the CLI, resume equality
//! after a clean stop and after `kill -9`, config errors.

mod common;
use common::{lines, spear, tiny_sets, tmp};

fn run_train(sets: &[String], extra: &[&str]) -> std::process::Output {
    let mut c = spear();
    c.arg("train").args(extra);
    for s in sets {
        c.arg("--set").arg(s);
    }
    c.output().expect("spear runs")
}

#[test]
fn two_iterations_end_to_end() {
    let out = tmp("two");
    let o = run_train(&tiny_sets(&out, "e2e", 2), &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "spear train failed:\n{stderr}");
    let run = out.join("e2e");
    let m = lines(&run.join("metrics.jsonl"));
    assert_eq!(m.len(), 2, "{m:?}");
    assert_eq!(m[0]["iteration"], 1);
    assert_eq!(m[1]["iteration"], 2);
    for x in &m {
        // 3 tasks × G 3 = 9 episodes, at most 4 turns each.
        let samples = x["samples"].as_u64().unwrap();
        assert!((9..=36).contains(&samples), "{x}");
        let sr = x["success_rate"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&sr));
        assert!(x["time"]["generate"].as_f64().unwrap() > 0.0);
        assert!(x["trained_samples"].as_u64().unwrap() <= samples);
    }
    // SIL weight ramps on a cosine over T_warm, which follows `--set run.iterations=2` on the
    // preset (its own is 50): γ(1) = (1 − cos(π/2))/2 = 0.5, γ(2) = 1; the run says so.
    assert!(
        (m[0]["sil_weight"].as_f64().unwrap() - 0.5).abs() < 1e-9,
        "{:?}",
        m[0]
    );
    assert!(
        (m[1]["sil_weight"].as_f64().unwrap() - 1.0).abs() < 1e-9,
        "{:?}",
        m[1]
    );
    assert!(
        stderr.contains("note: rl.replay.max_replay_loss_steps = 2: it follows run.iterations"),
        "{stderr}"
    );
    let ev = lines(&run.join("eval.jsonl"));
    // Before training and after iteration 2, two splits each.
    assert_eq!(ev.len(), 4, "{ev:?}");
    assert_eq!(ev[0]["iteration"], 0);
    assert_eq!(ev[3]["iteration"], 2);
    assert_eq!(ev[0]["episodes"], 6);
    let traj = lines(&run.join("trajectories/iter_000002.jsonl"));
    assert_eq!(traj.len(), 4);
    assert!(!traj[0]["turns"][0]["prompt"].as_str().unwrap().is_empty());
    let cfg = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(cfg.contains("iterations = 2"));
    let latest = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap();
    assert_eq!(latest.trim(), "iter_000002");
    // The same run name again is refused, pointing at --resume.
    let again = run_train(&tiny_sets(&out, "e2e", 2), &[]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
    std::fs::remove_dir_all(&out).ok();
}

/// `rl.loss.bypass_mode`: the in-process sampler's log-probs serve as the old log-probs, the
/// recomputing forward pass is skipped, and the update is the recomputing run's to rounding
/// (the sampler and the trainer score the same weights at the same temperature).
#[test]
fn bypass_mode_skips_the_recompute_and_trains_as_recomputing_does() {
    let out = tmp("bypass");
    let mut sets = tiny_sets(&out, "recompute", 1);
    sets.push("run.eval_before=false".into());
    let o = run_train(&sets, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut sets = tiny_sets(&out, "bypass", 1);
    sets.push("run.eval_before=false".into());
    sets.push("rl.loss.bypass_mode=true".into());
    let o = run_train(&sets, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a = &lines(&out.join("recompute/metrics.jsonl"))[0];
    let b = &lines(&out.join("bypass/metrics.jsonl"))[0];
    // The same rollout (nothing was updated before it).
    for k in [
        "success_rate",
        "samples",
        "trained_samples",
        "episode_reward",
    ] {
        assert_eq!(a[k], b[k], "{k}");
    }
    // Recomputing measured a tiny mismatch; bypassing measured none and spent no time on it.
    let diff = a["rollout_logprob_abs_diff_max"].as_f64().unwrap();
    assert!(diff > 0.0 && diff < 1e-3, "{a}");
    assert_eq!(b["rollout_logprob_abs_diff_max"].as_f64().unwrap(), 0.0);
    assert!(b["time"]["old_log_prob"].as_f64().unwrap() < 1e-3, "{b}");
    assert!(a["time"]["old_log_prob"].as_f64().unwrap() > 0.0);
    // The update saw old log-probs within 1e-3 of each other.
    for k in ["pg_loss", "approx_kl", "entropy", "grad_norm"] {
        let (x, y) = (a[k].as_f64().unwrap(), b[k].as_f64().unwrap());
        assert!(
            (x - y).abs() <= 1e-3 * (1.0 + x.abs()),
            "{k}: recompute {x}, bypass {y}"
        );
    }
    // With the truncated importance weight it would be a no-op: refused by name.
    let mut sets = tiny_sets(&out, "bypass-tis", 1);
    sets.push("rl.loss.bypass_mode=true".into());
    sets.push("rl.loss.tis_cap=2.0".into());
    let o = run_train(&sets, &[]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("rl.loss.bypass_mode") && e.contains("tis_cap"),
        "{e}"
    );
    std::fs::remove_dir_all(&out).ok();
}

/// `model.activation_checkpointing`: the same run with and without checkpointing gives the
/// same metrics and evaluations (the blocks' gradients are the plain graph's), through the warm
/// start, the RL update and its split path (a token budget smaller than a micro-batch).
#[test]
fn activation_checkpointing_trains_as_the_plain_graph_does() {
    let out = tmp("ckpt");
    for (name, on) in [("plain", false), ("checkpointed", true)] {
        let mut sets = tiny_sets(&out, name, 2);
        sets.push("model.num_layers=2".into());
        sets.push("optim.token_budget=256".into());
        sets.push(format!("model.activation_checkpointing={on}"));
        let o = run_train(&sets, &[]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let (a, b) = (out.join("plain"), out.join("checkpointed"));
    let (ma, mb) = (
        lines(&a.join("metrics.jsonl")),
        lines(&b.join("metrics.jsonl")),
    );
    assert_eq!(ma.len(), 2);
    assert!(
        ma.iter()
            .any(|m| m["grad_norm"].as_f64().unwrap_or(0.0) > 0.0),
        "no update had a gradient: {ma:?}"
    );
    for (x, y) in ma.iter().zip(&mb) {
        assert_eq!(
            common::without_timing(x.clone()),
            common::without_timing(y.clone())
        );
    }
    assert_eq!(lines(&a.join("eval.jsonl")), lines(&b.join("eval.jsonl")));
    let cfg = std::fs::read_to_string(b.join("config.toml")).unwrap();
    assert!(cfg.contains("activation_checkpointing = true"), "{cfg}");
    std::fs::remove_dir_all(&out).ok();
}

/// `rl.loss.use_kl_loss`: the weights after the warm start are kept as the reference, the KL
/// loss is logged (0 until the policy moves, > 0 after), and a resume reloads the reference
/// (or says clearly that it is missing).
#[test]
fn kl_loss_to_the_reference_end_to_end() {
    let out = tmp("kl");
    let mut sets = tiny_sets(&out, "kl", 2);
    sets.extend([
        "rl.loss.use_kl_loss=true".to_string(),
        "rl.loss.kl_loss_coef=0.1".to_string(),
        "rl.update.mini_batch_size=8".to_string(),
    ]);
    let o = run_train(&sets, &[]);
    assert!(
        o.status.success(),
        "spear train failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let run = out.join("kl");
    let reference = run.join("checkpoints/reference.safetensors");
    assert!(reference.is_file());
    let m = lines(&run.join("metrics.jsonl"));
    let kl: Vec<f64> = m.iter().map(|x| x["kl_loss"].as_f64().unwrap()).collect();
    assert!(kl.iter().all(|k| k.is_finite() && *k >= 0.0), "{kl:?}");
    assert!(
        kl[1] > 0.0,
        "the policy moved away from the reference: {kl:?}"
    );
    // Resume of the finished run reloads the reference...
    let r = spear()
        .arg("train")
        .arg("--resume")
        .arg(&run)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    // ...and fails clearly without it.
    std::fs::remove_file(&reference).unwrap();
    let r = spear()
        .arg("train")
        .arg("--resume")
        .arg(&run)
        .output()
        .unwrap();
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("reference.safetensors is missing"), "{err}");
    std::fs::remove_dir_all(&out).ok();
}

/// WebShop through the same trainer: a generated catalogue, the expert's warm start, two
/// iterations, evaluation on the `test` goals, WebShop pages in the logged prompts.
/// Same seed, same machine, same metrics: the WebShop path run twice (the household and math
/// paths are covered by their kill -9 / resume equality tests).
#[test]
fn the_same_webshop_run_twice_gives_identical_metrics() {
    let out = tmp("webshop-twice");
    let sets = |name: &str| -> Vec<String> {
        [
            format!("run.out_dir={:?}", out.display().to_string()),
            format!("run.name={name}"),
            "run.iterations=2".to_string(),
            "run.eval_every=2".into(),
            "env.tasks_per_iter=2".into(),
            "env.group_size=2".into(),
            "env.max_turns=6".into(),
            "env.webshop.products=200".into(),
            "eval.episodes=2".into(),
            "model.hidden_size=32".into(),
            "model.intermediate_size=48".into(),
            "model.num_layers=1".into(),
            "sft.games=8".into(),
            "env.webshop.search_demos=16".into(),
            "env.webshop.click_demos=8".into(),
            "sft.epochs=1".into(),
            "sampling.max_new_tokens=12".into(),
            "rl.drbot.max_response_length=12".into(),
            "rl.drbot.filter_incomplete=false".into(),
            "rl.drbot.rollout_filter_ratio=1.0".into(),
        ]
        .into_iter()
        .collect()
    };
    for name in ["a", "b"] {
        let o = run_train(&sets(name), &["--preset", "webshop-tiny"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let (a, b) = (out.join("a"), out.join("b"));
    let (ma, mb) = (
        lines(&a.join("metrics.jsonl")),
        lines(&b.join("metrics.jsonl")),
    );
    assert_eq!(ma.len(), 2);
    for (x, y) in ma.iter().zip(&mb) {
        assert_eq!(
            common::without_timing(x.clone()),
            common::without_timing(y.clone())
        );
    }
    assert_eq!(lines(&a.join("eval.jsonl")), lines(&b.join("eval.jsonl")));
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn webshop_two_iterations_end_to_end() {
    let out = tmp("webshop");
    let sets: Vec<String> = [
        format!("run.out_dir={:?}", out.display().to_string()),
        "run.name=ws".to_string(),
        "run.iterations=2".into(),
        "run.eval_every=2".into(),
        "run.log_episodes=2".into(),
        "env.tasks_per_iter=2".into(),
        "env.group_size=2".into(),
        "env.max_turns=8".into(),
        "env.webshop.products=200".into(),
        "eval.episodes=4".into(),
        "model.hidden_size=32".into(),
        "model.intermediate_size=48".into(),
        "model.num_layers=1".into(),
        "sft.games=12".into(),
        "env.webshop.search_demos=16".into(),
        "env.webshop.click_demos=8".into(),
        "sft.epochs=1".into(),
        "sampling.max_new_tokens=16".into(),
        "rl.drbot.max_response_length=16".into(),
        "rl.update.mini_batch_size=16".into(),
        "rl.update.micro_batch_size=8".into(),
        "rl.drbot.filter_incomplete=false".into(),
        "rl.drbot.filter_overlong=false".into(),
    ]
    .into_iter()
    .collect();
    let o = run_train(&sets, &["--preset", "webshop-tiny"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "spear train failed:\n{stderr}");
    assert!(
        stderr.contains("WebShop catalogue of 200 products"),
        "{stderr}"
    );
    // Without a terminal the warm start logs its progress as lines.
    assert!(stderr.contains("warm start: step 1/"), "{stderr}");
    // The scripted references on the goals the evaluation plays.
    assert!(
        stderr.contains("scripted policies on the 4 test goals an evaluation plays: top hit"),
        "{stderr}"
    );
    let run = out.join("ws");
    let m = lines(&run.join("metrics.jsonl"));
    assert_eq!(m.len(), 2);
    for x in &m {
        // 2 goals × G 2 = 4 episodes of at most 8 steps.
        let samples = x["samples"].as_u64().unwrap();
        assert!((4..=32).contains(&samples), "{x}");
        let score = x["task_score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score), "{x}");
    }
    let ev = lines(&run.join("eval.jsonl"));
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(ev[0]["split"], "test");
    assert_eq!(ev[1]["iteration"], 2);
    assert_eq!(ev[1]["episodes"], 4);
    let traj = lines(&run.join("trajectories/iter_000001.jsonl"));
    let prompt = traj[0]["turns"][0]["prompt"].as_str().unwrap();
    assert!(
        prompt.contains("WebShop") && prompt.contains("search"),
        "{prompt}"
    );
    // A household split name is refused for WebShop, naming the key.
    let mut bad = sets.clone();
    bad.push("eval.splits=[\"valid_seen\"]".into());
    bad.push("run.name=ws2".into());
    let o = run_train(&bad, &["--preset", "webshop-tiny"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("eval.splits") && err.contains("test"), "{err}");
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn resume_after_kill_matches_an_uninterrupted_run() {
    let out = tmp("resume");
    let iters = 4;
    let a = run_train(&tiny_sets(&out, "a", iters), &[]);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let ma = lines(&out.join("a/metrics.jsonl"));
    assert_eq!(ma.len(), iters as usize);
    assert!(
        ma.iter().any(|x| x["replay_samples"].as_u64().unwrap() > 0),
        "replay never fired, the test would not cover the buffer state: {ma:?}"
    );

    // Run b: kill -9 once the second iteration has been logged (mid-iteration 3 or its
    // checkpoint), then resume.
    common::assert_kill_and_resume_match(&out, &[], &tiny_sets(&out, "b", iters), "b", 2, "a");
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn bad_config_names_the_key() {
    let o = spear()
        .args(["train", "--set", "rl.replay.tolerate_stepz=3"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("rl.replay.tolerate_stepz"), "{e}");
    assert!(e.contains("tolerate_steps"), "{e}");
    let o = spear()
        .args(["train", "--preset", "household-huge"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("household-tiny-gigpo"));
    let o = spear()
        .args(["train", "--print-config", "--set", "run.iterations=3"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("iterations = 3"));
}

/// A malformed `--config` file: the error gives the line and column and shows the line; an
/// error about a key the file spells out gives its line too (issue 12).
#[test]
fn bad_config_file_keeps_line_and_column() {
    let dir = tmp("bad-config-file");
    let file = dir.join("c.toml");
    std::fs::write(&file, "[run]\niterations = 3\n[env\ngroup_size = 2\n").unwrap();
    let o = spear()
        .args(["train", "--print-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains(&file.display().to_string()), "{e}");
    assert!(e.contains("line 3, column 5"), "{e}");
    assert!(e.contains("3 | [env"), "{e}");

    std::fs::write(
        &file,
        "[run]\nname = \"x\"\n\n[env]\ngroup_size = \"eight\"\n",
    )
    .unwrap();
    let o = spear()
        .args(["train", "--print-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("env.group_size"), "{e}");
    assert!(e.contains("line 5, column 14"), "{e}");
    assert!(e.contains("5 | group_size = \"eight\""), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A corrupted `config.toml` of a run: `--resume` names the file, the line and the column.
#[test]
fn bad_config_toml_on_resume_keeps_line_and_column() {
    let run = tmp("bad-config-resume");
    std::fs::write(
        run.join("config.toml"),
        "[run]\nname = \"r\"\niterations = = 4\n",
    )
    .unwrap();
    let o = spear()
        .arg("train")
        .arg("--resume")
        .arg(&run)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("config.toml"), "{e}");
    assert!(e.contains("line 3, column 14"), "{e}");
    assert!(e.contains("3 | iterations = = 4"), "{e}");
    std::fs::remove_dir_all(&run).ok();
}

/// `config.toml` files of earlier versions hold `rl.seed`, which nothing read: they still load,
/// with a warning that names `run.seed`, and the key is no longer written.
#[test]
fn bad_config_old_rl_seed_is_ignored_with_a_warning() {
    let dir = tmp("old-rl-seed");
    let file = dir.join("old.toml");
    std::fs::write(&file, "[run]\nseed = 3\n\n[rl]\nseed = 3\n").unwrap();
    let o = spear()
        .args(["train", "--print-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{e}");
    assert!(
        e.contains("rl.seed") && e.contains("ignored") && e.contains("run.seed"),
        "{e}"
    );
    let text = String::from_utf8_lossy(&o.stdout);
    let written: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(written["run"]["seed"].as_integer(), Some(3));
    assert!(
        !written["rl"].as_table().unwrap().contains_key("seed"),
        "{text}"
    );
    // The same on --resume (from a checkpoint the run does not have: it stops right after
    // reading its config).
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::copy(&file, run.join("config.toml")).unwrap();
    let o = spear()
        .arg("train")
        .arg("--resume")
        .arg(&run)
        .args(["--from", "iter_000001"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("rl.seed") && e.contains("ignored"), "{e}");
    assert!(!e.contains("invalid config value"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `model.lora_rank > 0`: only the adapters move (every base weight of the last checkpoint
/// equals the one RL started from), the adapters do move, and resume after `kill -9` continues
/// the adapters exactly. (Folding adapters into a plain model on load and on export is tested
/// in spear-model's lora tests.)
#[test]
fn lora_trains_only_adapters_and_resumes_exactly() {
    let out = tmp("lora");
    let lora = |name: &str| {
        let mut s = tiny_sets(&out, name, 3);
        s.push("model.lora_rank=2".into());
        s.push("model.lora_alpha=4".into());
        s.push("model.lora_target_modules=[\"q_proj\", \"v_proj\", \"down_proj\"]".into());
        s.push("optim.lr=0.01".into());
        s
    };
    let a = run_train(&lora("a"), &[]);
    let stderr = String::from_utf8_lossy(&a.stderr);
    assert!(a.status.success(), "{stderr}");
    assert!(
        stderr.contains("LoRA r = 2, alpha = 4 on 3 weights"),
        "{stderr}"
    );
    // The oldest and the newest checkpoint kept (older ones are pruned).
    let mut iters: Vec<_> = std::fs::read_dir(out.join("a/checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("iter_"))
        .collect();
    iters.sort();
    assert!(iters.len() >= 2, "{iters:?}");
    let ck = |name: &str| {
        let p = out
            .join("a/checkpoints")
            .join(name)
            .join("model.safetensors");
        candle_core::safetensors::load(&p, &candle_core::Device::Cpu)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let (first, last) = (ck(&iters[0]), ck(iters.last().unwrap()));
    let mut adapters_moved = 0;
    for (k, t0) in &first {
        let Some(name) = k.strip_prefix("param/") else {
            continue;
        };
        let t3 = &last[k];
        let d = (t0 - t3)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        if name.contains(".lora_") {
            adapters_moved += usize::from(d > 0.0);
        } else {
            assert_eq!(d, 0.0, "frozen base weight {name} changed");
        }
    }
    // 1 layer x 3 modules x (A, B); the optimizer holds moments for the adapters only.
    assert!(first
        .keys()
        .filter(|k| k.starts_with("adam_m/"))
        .all(|k| k.contains(".lora_")));
    assert_eq!(
        first
            .keys()
            .filter(|k| k.starts_with("param/") && k.contains(".lora_"))
            .count(),
        6,
        "{:?}",
        first.keys().collect::<Vec<_>>()
    );
    assert!(
        adapters_moved >= 3,
        "only {adapters_moved} adapter tensors moved"
    );
    assert_eq!(
        first
            .keys()
            .filter(|k| k.starts_with("lora_scale/"))
            .count(),
        3
    );

    common::assert_kill_and_resume_match(&out, &[], &lora("b"), "b", 1, "a");
    std::fs::remove_dir_all(&out).ok();
}

/// `model.lora_base_dtype = "bf16"`: the frozen base is checkpointed in bf16 and never changes,
/// the adapters (f32) train, and a run killed with `kill -9` resumes to the same metrics. Without
/// LoRA, or without `model.dtype = "bf16"`, the setting is refused by name.
#[test]
fn lora_with_a_bf16_base_trains_and_resumes_exactly() {
    let out = tmp("lora-bf16");
    let lora = |name: &str| {
        let mut s = tiny_sets(&out, name, 3);
        s.push("model.lora_rank=2".into());
        s.push("model.lora_alpha=4".into());
        s.push("model.lora_target_modules=[\"q_proj\", \"down_proj\"]".into());
        s.push("model.dtype=\"bf16\"".into());
        s.push("model.lora_base_dtype=\"bf16\"".into());
        s.push("optim.lr=0.01".into());
        s
    };
    let a = run_train(&lora("a"), &[]);
    let stderr = String::from_utf8_lossy(&a.stderr);
    assert!(a.status.success(), "{stderr}");
    assert!(stderr.contains("held in bf16"), "{stderr}");
    let latest = std::fs::read_to_string(out.join("a/checkpoints/latest")).unwrap();
    let p = out
        .join("a/checkpoints")
        .join(latest.trim())
        .join("model.safetensors");
    let ck = candle_core::safetensors::load(&p, &candle_core::Device::Cpu).unwrap();
    let mut held = 0;
    for (k, t) in &ck {
        let Some(name) = k.strip_prefix("param/") else {
            continue;
        };
        let want = if name.contains(".lora_") || t.rank() == 1 {
            candle_core::DType::F32
        } else {
            held += 1;
            candle_core::DType::BF16
        };
        assert_eq!(t.dtype(), want, "{name}");
    }
    // Embeddings + 1 layer x 7 linear weights.
    assert_eq!(held, 8);
    common::assert_kill_and_resume_match(&out, &[], &lora("b"), "b", 1, "a");
    for (bad, why) in [
        (vec!["model.lora_base_dtype=\"bf16\""], "model.lora_rank"),
        (
            vec!["model.lora_base_dtype=\"bf16\"", "model.lora_rank=2"],
            "model.dtype",
        ),
    ] {
        let mut s = tiny_sets(&out, "bad", 1);
        s.extend(bad.iter().map(|x| x.to_string()));
        let o = run_train(&s, &[]);
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(
            e.contains("model.lora_base_dtype") && e.contains(why),
            "{e}"
        );
    }
    std::fs::remove_dir_all(&out).ok();
}
