//! The expected values of the Python binding's tests, computed by the Rust crates.
//!
//! This test builds fixed inputs, runs the Rust functions on them and compares the
//! result with `tests/fixtures/expected.json`, the file `tests/test_learners.py` and
//! `tests/test_agent_rewards.py` read: so the Python tests compare the binding with
//! what the Rust crates compute today, and a change of a Rust result fails here first.
//! `SPEAR_PY_WRITE_EXPECTED=1 cargo test -p spear-py --test expected_values` rewrites it.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use spear::agent::memory::Memory;
use spear::agent::projection::{project, ProjectionRules};
use spear::agent::prompts;
use spear_envs::math::reward::{IncompleteRule, RewardVariant};
use spear_envs::math::{compute_score, spear_score, SpearRewardConfig, ToolCallSchedule};
use spear_rl::config::{DrBotConfig, ReplayConfig, RewardConfig, ToolCallReward, ToolCallVariant};
use spear_rl::drbot::{apply_response_filters, filter_groups_by_std, response_flags};
use spear_rl::reward::{apply_invalid_action_penalty, compute_step_returns, episode_score};
use spear_rl::{
    gigpo_advantages, grpo_advantages, replay_weight, rloo_advantages, toolcall_weight, AdvNorm,
    Batch, GroupId, ReplayBuffer, StepSample, TrajId,
};

fn sample(uid: u64, traj: u64, step: u32, score: f64) -> StepSample {
    StepSample {
        uid: GroupId(uid),
        traj_uid: TrajId(traj),
        step_index: step,
        prompt_tokens: vec![],
        response_tokens: vec![0],
        response_mask: vec![1],
        old_log_probs: vec![],
        rollout_log_probs: vec![],
        policy_version: 0,
        step_reward: 0.0,
        episode_reward: 0.0,
        episode_length: 0,
        tool_calls: 0,
        is_action_valid: true,
        anchor_obs: String::new(),
        collected_at: 0,
        score,
        step_return: 0.0,
        advantage: 0.0,
    }
}

/// 5 groups × 4 trajectories × 1–4 steps; won trajectories score about 10.
fn batch(rng: &mut ChaCha8Rng) -> Vec<StepSample> {
    let mut out = Vec::new();
    for g in 0..5u64 {
        for k in 0..4u64 {
            let won = rng.random_bool(0.5);
            let len = rng.random_range(1..=4u32);
            let score = if won { 10.0 } else { 0.0 } + (rng.random_range(0..20) as f64) / 10.0;
            for step in 0..len {
                let mut s = sample(g, g * 4 + k, step, score);
                s.step_reward = if won && step == len - 1 { 10.0 } else { 0.0 };
                s.anchor_obs = format!("g{g}-obs{}", rng.random_range(0..3));
                s.is_action_valid = rng.random_bool(0.8);
                s.step_return = rng.random_range(0..100) as f64 / 10.0;
                s.tool_calls = len;
                out.push(s);
            }
        }
    }
    out
}

fn col<T: serde::Serialize>(s: &[StepSample], f: impl Fn(&StepSample) -> T) -> Value {
    json!(s.iter().map(f).collect::<Vec<T>>())
}

fn learners() -> Value {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let s = batch(&mut rng);
    let inputs = json!({
        "scores": col(&s, |x| x.score),
        "group_ids": col(&s, |x| x.uid.0),
        "traj_ids": col(&s, |x| x.traj_uid.0),
        "step_index": col(&s, |x| x.step_index),
        "step_rewards": col(&s, |x| x.step_reward),
        "anchors": col(&s, |x| x.anchor_obs.clone()),
        "valid": col(&s, |x| x.is_action_valid),
        "step_returns": col(&s, |x| x.step_return),
        "calls": col(&s, |x| x.tool_calls),
    });
    let g1 = gigpo_advantages(&s, AdvNorm::MeanStd, 1.0, true, 1e-6);
    let g2 = gigpo_advantages(&s, AdvNorm::Mean, 0.5, false, 1e-6);
    let mut returns = Batch::new(s.clone());
    for x in &mut returns.samples {
        x.score = x.step_reward;
    }
    compute_step_returns(&mut returns, 0.95);
    let mut pen = Batch::new(s.clone());
    let ratio = apply_invalid_action_penalty(&mut pen, 0.1);
    let mut clusters = vec![0i64; s.len()];
    for (c, cl) in spear_rl::advantage::anchor_groups(&s).iter().enumerate() {
        for &i in cl {
            clusters[i] = c as i64;
        }
    }
    let mut scores = Vec::new();
    for (variant, mode, vname, mname) in [
        (
            ToolCallVariant::Agent,
            ToolCallReward::Cosine,
            "agent",
            "cosine",
        ),
        (
            ToolCallVariant::MathQwen25,
            ToolCallReward::Cosine,
            "math_qwen25",
            "cosine",
        ),
        (
            ToolCallVariant::MathQwen3,
            ToolCallReward::Constant,
            "math_qwen3",
            "constant",
        ),
        (
            ToolCallVariant::Agent,
            ToolCallReward::None,
            "agent",
            "none",
        ),
    ] {
        let cfg = RewardConfig {
            toolcall_variant: variant,
            toolcall_reward: mode,
            ..RewardConfig::default()
        };
        for t in [1u64, 57, 200] {
            let rewards = [10.0, 0.0, -1.0, 1.0, 0.0];
            let calls = [3u32, 0, 12, 0, 7];
            let out: Vec<f64> = rewards
                .iter()
                .zip(calls)
                .map(|(&r, c)| episode_score(r, c, t, &cfg))
                .collect();
            scores.push(json!({"variant": vname, "toolcall_reward": mname, "t": t,
                               "rewards": rewards, "calls": calls, "out": out}));
        }
    }
    let ts = [0u64, 1, 37, 100, 150, 200, 201, 400];
    // Std group filter with a seeded power-of-two subsample, twice from one RNG.
    let mut frng = ChaCha8Rng::seed_from_u64(3);
    let cfg = DrBotConfig {
        rollout_filter_ratio: 0.6,
        ..DrBotConfig::default()
    };
    let mut filter_calls = Vec::new();
    for _ in 0..2 {
        let mut b = s.clone();
        for (i, x) in b.iter_mut().enumerate() {
            x.collected_at = i as u64;
        }
        let (kept, rep) = filter_groups_by_std(&Batch::new(b), &cfg, &mut frng).unwrap();
        filter_calls.push(json!({
            "rows": kept.samples.iter().map(|x| x.collected_at).collect::<Vec<_>>(),
            "kept_groups": rep.kept.iter().map(|(g, _)| g.0).collect::<Vec<_>>(),
            "kept_stds": rep.kept.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
            "mean_std_all": rep.mean_std_all,
        }));
    }
    json!({
        "inputs": inputs,
        "grpo": grpo_advantages(&s, AdvNorm::MeanStd, true, 1e-6),
        "grpo_per_trajectory": grpo_advantages(&s, AdvNorm::MeanStd, false, 1e-6),
        "dr_grpo": grpo_advantages(&s, AdvNorm::Mean, true, 1e-6),
        "gigpo_mean_std_norm": {"combined": g1.combined, "episode": g1.episode, "step": g1.step},
        "gigpo_mean_norm_w05_per_trajectory": {"combined": g2.combined, "episode": g2.episode, "step": g2.step},
        "rloo": rloo_advantages(&s),
        "step_returns_gamma_095": col(&returns.samples, |x| x.step_return),
        "penalty": {"scores": pen.scores(), "step_returns": col(&pen.samples, |x| x.step_return), "valid_ratio": ratio},
        "anchor_group_ids": clusters,
        "episode_scores": scores,
        "schedules": {
            "t": ts,
            "toolcall_weight_200": ts.iter().map(|&t| toolcall_weight(t, 200)).collect::<Vec<_>>(),
            "replay_weight_300_c2": ts.iter().map(|&t| replay_weight(t, 300, 2.0)).collect::<Vec<_>>(),
        },
        "std_group_filter": {"ratio": 0.6, "seed": 3, "calls": filter_calls},
    })
}

fn response_filters() -> Value {
    let mut responses: Vec<Vec<u32>> = vec![
        (0..40).collect(),
        (0..600).map(|i| i % 997).collect(),
        [1u32, 2, 3].repeat(30),
        vec![5; 8],
        (0..100).map(|i| (i * 7) % 13).collect(),
    ];
    responses.push(vec![]);
    let texts = [
        "<think>ok</think><action>look</action>",
        "<think>long</think><action>look</action>",
        "<think>loop</think><action>look</action>",
        "<think>x</think> no action here",
        "<think>bad \u{FFFD} bytes</think><action>go</action>",
        "",
    ];
    let cfg = DrBotConfig {
        repetition_ngram: 3,
        repetition_threshold: 10,
        ..DrBotConfig::default()
    };
    let flags: Vec<_> = responses
        .iter()
        .zip(texts)
        .map(|(t, x)| response_flags(t, x, &cfg))
        .collect();
    let mut b = Batch::new(
        (0..responses.len())
            .map(|i| sample(0, i as u64, 0, 0.0))
            .collect(),
    );
    let st = apply_response_filters(&mut b, &flags, &cfg);
    json!({
        "responses": responses, "texts": texts, "repetition_ngram": 3, "repetition_threshold": 10,
        "keep": b.samples.iter().map(|x| x.has_loss_tokens()).collect::<Vec<_>>(),
        "stats": {"overlong": st.overlong, "incomplete": st.incomplete, "repetitive": st.repetitive,
                  "unreadable": st.unreadable, "masked": st.masked},
    })
}

fn replay() -> Value {
    let cfg = ReplayConfig {
        buffer_size: 16,
        ..ReplayConfig::default()
    };
    let mut buf = ReplayBuffer::new(&cfg, 11);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut steps = Vec::new();
    for t in 1..=12u64 {
        let mut s = batch(&mut rng);
        let adv = grpo_advantages(&s, AdvNorm::Mean, true, 1e-6);
        for (i, x) in s.iter_mut().enumerate() {
            x.advantage = adv[i];
            x.collected_at = t;
            x.step_index = i as u32;
        }
        let draw = buf.maybe_replay().map(|d| {
            json!({
                "steps": d.samples.iter().map(|x| x.collected_at).collect::<Vec<_>>(),
                "rows": d.samples.iter().map(|x| x.step_index).collect::<Vec<_>>(),
                "advantages": d.samples.iter().map(|x| x.advantage).collect::<Vec<_>>(),
                "scores": d.samples.iter().map(|x| x.score).collect::<Vec<_>>(),
                "p50_mean": d.p50_mean, "p50_std": d.p50_std, "p95_mean": d.p95_mean,
                "candidates": d.candidates, "eligible": d.eligible, "skipped": d.skipped,
            })
        });
        let rep = buf.update(&Batch::new(s.clone()), t);
        steps.push(json!({
            "step": t,
            "scores": col(&s, |x| x.score),
            "advantages": col(&s, |x| x.advantage),
            "group_ids": col(&s, |x| x.uid.0),
            "traj_ids": col(&s, |x| x.traj_uid.0),
            "draw_before_update": draw,
            "report": {"entries_removed": rep.entries_removed, "groups_recorded": rep.groups_recorded,
                       "samples_stored": rep.samples_stored},
            "stored_after": buf.stored_samples(),
            "fill_after": buf.fill_measure(),
        }));
    }
    json!({"buffer_size": 16, "seed": 11, "steps": steps})
}

fn agent() -> Value {
    let texts = [
        "<think>The mug is on the counter.</think>\n<action> Go To CounterTop 1 </action>",
        "<think>x</think> I would GO TO DRAWER 12 now",
        "<action>look</action>",
        "<think>好</think><action>look</action>",
        "<think></think></action> x <action>",
        "Look",
        "<think>buy it</think><action>click[Buy Now]</action>",
    ];
    let mut proj = Vec::new();
    for t in texts {
        for (rules, name) in [
            (ProjectionRules::Household, "household"),
            (ProjectionRules::Webshop, "webshop"),
        ] {
            let p = project(t, rules);
            proj.push(json!({"text": t, "env": name, "action": p.action, "valid": p.valid}));
        }
    }
    let history = [
        (
            "-= Welcome =-\n\nYour task is to: put a pen in desk.",
            "go to desk 1",
        ),
        (
            "You arrive at desk 1. On the desk 1, you see a pen 1.",
            "take pen 1 from desk 1",
        ),
        ("You pick up the pen 1 from the desk 1.", "inventory"),
    ];
    let mut m = Memory::new();
    for (o, a) in history {
        m.store(o, a);
    }
    let admissible: Vec<String> = [
        "go to desk 1",
        "help",
        "inventory",
        "look",
        "put {x} in {y}",
    ]
    .map(String::from)
    .to_vec();
    let hh = prompts::household_prompt(
        "put a pen in desk.",
        "You are carrying: a pen 1.",
        &admissible,
        &m,
        2,
    );
    let hh0 = prompts::household_prompt(
        "put a pen in desk.",
        history[0].0,
        &admissible,
        &Memory::new(),
        2,
    );
    let avail: Vec<String> = ["search[<your query>]", "click[next >]", "click[b07xyz]"]
        .map(String::from)
        .to_vec();
    let ws = prompts::webshop_prompt(
        "find a red shirt",
        "'Results' [SEP] 'b07xyz'",
        &avail,
        &m,
        2,
    );
    json!({
        "projection": proj,
        "household": {"task": "put a pen in desk.", "observation": "You are carrying: a pen 1.",
                       "first_observation": history[0].0,
                       "admissible": admissible, "history": history, "history_length": 2,
                       "prompt": hh, "first_prompt": hh0},
        "webshop": {"task": "find a red shirt", "observation": "'Results' [SEP] 'b07xyz'",
                    "available": avail, "history": history, "history_length": 2, "prompt": ws},
    })
}

fn math() -> Value {
    let cases = [
        ("The answer is \\boxed{42}.", "42"),
        ("so \\boxed{ 42 }", "42"),
        ("Answer: 3/4", "\\frac{3}{4}"),
        ("Answer: $10^\\circ$", "10"),
        ("no answer at all", "7"),
        (
            "\\boxed{\\frac{1}{2}} and later Answer: 0.5",
            "\\frac{1}{2}",
        ),
    ];
    let mut dapo = Vec::new();
    for (sol, gt) in cases {
        for strict in [true, false] {
            let s = compute_score(sol, gt, strict);
            dapo.push(
                json!({"solution": sol, "ground_truth": gt, "strict": strict,
                             "score": s.score, "acc": s.acc, "pred": s.pred}),
            );
        }
    }
    let mut spear = Vec::new();
    for (variant, vname) in [
        (RewardVariant::Qwen3, "qwen3"),
        (RewardVariant::Qwen25, "qwen25"),
    ] {
        for (sol, gt) in cases {
            for (calls, t) in [(0usize, 1u64), (3, 50), (12, 250)] {
                let cfg = SpearRewardConfig {
                    variant,
                    schedule: ToolCallSchedule::SPEAR,
                    incomplete: IncompleteRule::Upstream,
                };
                let s = spear_score(sol, gt, calls, t, &cfg);
                spear.push(json!({"response": sol, "ground_truth": gt, "n_tool_calls": calls,
                                  "global_step": t, "variant": vname, "score": s.score, "acc": s.acc,
                                  "pred": s.pred, "is_incomplete": s.is_incomplete,
                                  "tool_call_reward": s.tool_call_reward, "outcome": s.outcome}));
            }
        }
    }
    json!({"math_dapo": dapo, "spear_math": spear})
}

#[test]
fn fixture_matches_the_rust_crates() {
    let expected = json!({
        "generator": "crates/spear-py/tests/expected_values.rs",
        "learners": learners(),
        "response_filters": response_filters(),
        "replay": replay(),
        "agent": agent(),
        "math": math(),
    });
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/expected.json");
    if std::env::var_os("SPEAR_PY_WRITE_EXPECTED").is_some() {
        let text = serde_json::to_string_pretty(&expected).unwrap();
        std::fs::write(path, text + "\n").unwrap();
    }
    let on_disk: Value = serde_json::from_str(
        &std::fs::read_to_string(path)
            .expect("tests/fixtures/expected.json (write it with SPEAR_PY_WRITE_EXPECTED=1)"),
    )
    .unwrap();
    assert!(
        on_disk == expected,
        "tests/fixtures/expected.json differs from what the Rust crates compute now; \
         if the change is intended, rewrite it with SPEAR_PY_WRITE_EXPECTED=1"
    );
    // The fixture exercises what it claims to (not all-zero or trivial outputs).
    let l = &expected["learners"];
    assert!(l["grpo"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v.as_f64().unwrap() != 0.0));
    let draws = expected["replay"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| !s["draw_before_update"].is_null())
        .count();
    assert!(draws >= 2, "the replay scenario fires at least twice");
    let kept = expected["response_filters"]["keep"].as_array().unwrap();
    assert!(kept.iter().any(|k| k == true) && kept.iter().any(|k| k == false));
}
