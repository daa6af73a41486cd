//! `spear eval` through the binary: `--preset aime24|aime25` (a model on AIME) and
//! `--checkpoint RUN` are one clap command; clap checks which options go with which.
//! (`--checkpoint` on real runs: `math_train_e2e.rs`, `bad_input.rs`.)

mod common;
use common::{spear, tmp};

use spear_envs::math::data::aime::{aime_problems, AimeYear};
use spear_model::checkpoint::export_hf;
use spear_model::{Arch, Policy};

fn refused(args: &[&str]) -> String {
    let o = spear().arg("eval").args(args).output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success(), "{args:?} was accepted: {e}");
    e
}

#[test]
fn eval_options_belong_to_preset_or_checkpoint() {
    // One of the two is needed, not both.
    let e = refused(&[]);
    assert!(e.contains("--preset") && e.contains("--checkpoint"), "{e}");
    let e = refused(&["--preset", "aime24", "--checkpoint", "runs/x"]);
    assert!(e.contains("cannot be used with"), "{e}");
    // Unknown AIME sets: clap lists the valid ones.
    let e = refused(&["--preset", "aime23"]);
    assert!(e.contains("aime24") && e.contains("aime25"), "{e}");
    // AIME options do not go with --checkpoint, nor checkpoint options with --preset.
    let e = refused(&["--checkpoint", "runs/x", "--k", "4"]);
    assert!(
        e.contains("--k") && e.contains("cannot be used with"),
        "{e}"
    );
    let e = refused(&["--preset", "aime24", "--split", "held_out"]);
    assert!(
        e.contains("--split") && e.contains("cannot be used with"),
        "{e}"
    );
    let e = refused(&["--preset", "aime24", "--episodes", "3"]);
    assert!(
        e.contains("--episodes") && e.contains("cannot be used with"),
        "{e}"
    );
    let e = refused(&["--checkpoint", "runs/x", "--split", "valid_sen"]);
    assert!(e.contains("valid_seen"), "{e}");
}

/// `spear eval --preset aime24 --model DIR …` end to end on a tiny from-scratch model exported
/// as an HF directory: two AIME 2024 problems, k = 2, through the real sandbox; the shared
/// `--temperature` / `--seed` reach the evaluation and the JSON report is consistent.
#[test]
fn eval_preset_aime24_on_a_tiny_hf_model() {
    let dir = tmp("aime-eval");
    let corpus = ["find the remainder when \\boxed{ 7 } ```python print ( 1 ) ```"];
    let policy = Policy::from_scratch(
        Arch::Qwen2,
        &corpus,
        |c| c.max_position_embeddings = 2048,
        3,
    )
    .unwrap();
    let model_dir = dir.join("model");
    export_hf(&model_dir, &policy.model, Some(&policy.tokenizer)).unwrap();
    let out = dir.join("report.json");
    let o = spear()
        .args(["eval", "--preset", "aime24", "--model"])
        .arg(&model_dir)
        .args([
            "--k",
            "2",
            "--temperature",
            "0.9",
            "--top-p",
            "0.6",
            "--max-new-tokens",
            "12",
            "--max-response-tokens",
            "24",
            "--problems",
            "2",
            "--seed",
            "1",
            "--batch",
            "4",
            "--sandbox-concurrency",
            "2",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout.contains("aime_2024: 2 problems x 2 samples, T = 0.9"),
        "{stdout}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(v["preset"], "aime_2024");
    assert_eq!(v["k"], 2);
    assert_eq!(v["temperature"], 0.9);
    assert_eq!(v["seed"], 1);
    let probs = v["problems"].as_array().unwrap();
    let aime = aime_problems(AimeYear::Y2024);
    assert_eq!(probs.len(), 2);
    let mut correct = 0;
    let mut any = 0;
    for (p, a) in probs.iter().zip(&aime) {
        assert_eq!(p["id"], a.id.as_str());
        assert_eq!(p["answer"], a.answer.as_str());
        let c = p["correct"].as_array().unwrap();
        assert_eq!(c.len(), 2);
        let n = c.iter().filter(|x| x.as_bool().unwrap()).count();
        correct += n;
        any += (n > 0) as usize;
        for t in p["response_tokens"].as_array().unwrap() {
            let t = t.as_u64().unwrap();
            assert!((1..=24).contains(&t), "{t}");
        }
    }
    let avg = v["avg_at_k"].as_f64().unwrap();
    assert!((avg - correct as f64 / 4.0).abs() < 1e-12);
    assert!((v["pass_at"]["pass@2"].as_f64().unwrap() - any as f64 / 2.0).abs() < 1e-12);
    assert!(v["pass_at"]["pass@1"].as_f64().is_some());
    std::fs::remove_dir_all(&dir).ok();
}
