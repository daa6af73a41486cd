//! Rollout/trainer log-prob mismatch, truncated importance sampling and asynchronous
//! collection on household-tiny (issue 14): the in-process engine agrees with the trainer's
//! recomputed log-probs to 1e-4, an engine that perturbs its log-probs shows up in the
//! metrics, `rollout.mode = "async"` trains, and collection overlapping the update with an
//! engine of its own respects `rollout.max_staleness`.

mod common;
use common::{lines, spear, tiny_sets, tmp};

use serde_json::Value;
use spear::rollout::{ChatSampler, ExternalEngine, SnapshotEngine};
use spear::run_dir::IterationMetrics;
use spear::train::config::TrainConfig;
use spear::train::trainer::{Quiet, Trainer};
use spear_model::{ChatMessage, GenRequest, Generation, Policy, SamplingParams, TextTokenizer};

fn config(out: &std::path::Path, name: &str, iterations: u64, extra: &[&str]) -> TrainConfig {
    let mut sets = tiny_sets(out, name, iterations);
    // No evaluation and a short warm start: these tests look at the training metrics only
    // (every sample keeps its loss tokens: tiny_sets turns the response filters off).
    sets.push("run.eval_every=0".into());
    sets.push("run.eval_before=false".into());
    sets.push("sft.games=6".into());
    sets.push("sft.epochs=1".into());
    sets.extend(extra.iter().map(|s| s.to_string()));
    spear::train::presets::preset("household-tiny")
        .unwrap()
        .with_overrides(&sets)
        .unwrap()
}

fn run(t: &mut Trainer) -> Vec<IterationMetrics> {
    let mut m = vec![];
    while t.iteration < t.cfg.run.iterations {
        m.push(t.step().unwrap());
    }
    m
}

/// The in-process engine's log-probs are the trainer's to 1e-4 (the engine samples with
/// fused kernels and a KV cache, the trainer scores teacher-forced with the training kernels).
#[test]
fn in_process_engine_matches_the_trainer_to_1e_4() {
    let out = tmp("mismatch-local");
    let mut t = Trainer::create(config(&out, "local", 2, &[]), &Quiet).unwrap();
    let m = run(&mut t);
    for x in &m {
        assert!(x.trained_samples > 0, "{x:?}");
        eprintln!(
            "iteration {}: rollout_logprob_abs_diff_mean {:e} max {:e} outside {}",
            x.iteration,
            x.rollout_logprob_abs_diff_mean,
            x.rollout_logprob_abs_diff_max,
            x.rollout_ratio_outside_frac
        );
        assert!(x.rollout_logprob_abs_diff_max <= 1e-4, "{x:?}");
        assert!(x.rollout_logprob_abs_diff_mean <= x.rollout_logprob_abs_diff_max);
        assert_eq!(x.rollout_ratio_outside_frac, 0.0);
        assert_eq!(x.async_dropped_samples, 0);
        assert_eq!(x.tis_weight, 0.0, "TIS is off by default");
        assert!(x.time.old_log_prob > 0.0);
    }
    drop(t);
    std::fs::remove_dir_all(&out).ok();
}

/// An engine with its own weights that perturbs the log-probs it reports: +`shift` on every
/// odd-indexed token of a response.
struct Noisy {
    inner: SnapshotEngine,
    shift: f32,
}

impl ExternalEngine for Noisy {
    fn sampler(&self) -> &dyn ChatSampler {
        self
    }
    fn sync_weights(&self, policy: &Policy, version: u64) -> anyhow::Result<()> {
        self.inner.sync_weights(policy, version)
    }
    fn version(&self) -> u64 {
        self.inner.version()
    }
}

impl ChatSampler for Noisy {
    fn tokenizer(&self) -> &TextTokenizer {
        self.inner.tokenizer()
    }
    fn render_chat(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[Value]>,
        add_generation_prompt: bool,
    ) -> spear_model::Result<String> {
        self.inner
            .render_chat(messages, tools, add_generation_prompt)
    }
    fn generate(
        &self,
        requests: &[GenRequest],
        params: &SamplingParams,
    ) -> spear_model::Result<Vec<Generation>> {
        let mut gens = self.inner.generate(requests, params)?;
        for g in &mut gens {
            for (k, lp) in g.logprobs.iter_mut().enumerate() {
                if k % 2 == 1 {
                    *lp += self.shift;
                }
            }
        }
        Ok(gens)
    }
    fn max_context(&self) -> usize {
        self.inner.max_context()
    }
    fn eos_token_ids(&self) -> &[u32] {
        self.inner.eos_token_ids()
    }
}

/// A perturbed engine shows up in the mismatch metrics: |Δ| = 0.9 on odd tokens (max 0.9,
/// mean ≈ 0.45, ratio e^0.9 ≈ 2.46 > 2 so about half the tokens are outside [0.5, 2]); with
/// `rl.loss.tis_cap = 2` those tokens weigh e^−0.9 ≈ 0.41 and the others 1.
#[test]
fn perturbed_engine_shows_in_the_metrics_and_tis_weighs_it() {
    let out = tmp("mismatch-noisy");
    let cfg = config(&out, "noisy", 2, &["rl.loss.tis_cap=2.0"]);
    let mut t = Trainer::create(cfg, &Quiet).unwrap();
    let engine = Noisy {
        inner: SnapshotEngine::new(&t.policy, 0).unwrap(),
        shift: 0.9,
    };
    t.set_rollout_engine(Box::new(engine)).unwrap();
    let m = run(&mut t);
    for x in &m {
        eprintln!(
            "iteration {}: mean {} max {} outside {} tis_weight {}",
            x.iteration,
            x.rollout_logprob_abs_diff_mean,
            x.rollout_logprob_abs_diff_max,
            x.rollout_ratio_outside_frac,
            x.tis_weight
        );
        assert!((x.rollout_logprob_abs_diff_max - 0.9).abs() < 1e-3, "{x:?}");
        assert!(
            (0.3..=0.46).contains(&x.rollout_logprob_abs_diff_mean),
            "{x:?}"
        );
        assert!((0.3..=0.5).contains(&x.rollout_ratio_outside_frac), "{x:?}");
        // Between e^−0.9 and 1, near their mean.
        assert!((0.6..0.8).contains(&x.tis_weight), "{x:?}");
        assert_eq!(x.tis_capped_frac, 0.0, "no weight reaches the cap 2");
    }
    drop(t);
    std::fs::remove_dir_all(&out).ok();
}

/// `rollout.mode = "async"` with the in-process engine through the CLI: concurrent episodes,
/// no overlap (nothing stale), sane metrics, mismatch still below 1e-4.
#[test]
fn async_with_the_in_process_engine_trains_two_iterations() {
    let out = tmp("async-local");
    let mut c = spear();
    c.args(["train", "--preset", "household-tiny"]);
    for s in tiny_sets(&out, "a", 2) {
        c.arg("--set").arg(s);
    }
    c.args(["--set", "rollout.mode=async"]);
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run = out.join("a");
    let m = lines(&run.join("metrics.jsonl"));
    assert_eq!(m.len(), 2);
    for x in &m {
        // 3 tasks × G 3 = 9 episodes of at most 4 turns.
        let samples = x["samples"].as_u64().unwrap();
        assert!((9..=36).contains(&samples), "{x}");
        assert!(x["trained_samples"].as_u64().unwrap() <= samples);
        assert!(x["trained_samples"].as_u64().unwrap() > 0);
        let sr = x["success_rate"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&sr));
        assert!(x["grad_norm"].as_f64().unwrap().is_finite());
        assert!(x["time"]["generate"].as_f64().unwrap() > 0.0);
        assert_eq!(x["async_dropped_samples"], 0);
        let d = x["rollout_logprob_abs_diff_max"].as_f64().unwrap();
        eprintln!("async in-process: rollout_logprob_abs_diff_max {d:e}");
        assert!(d <= 1e-4, "{x}");
    }
    let cfg = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(cfg.contains("mode = \"async\""), "{cfg}");
    let traj = lines(&run.join("trajectories/iter_000002.jsonl"));
    assert_eq!(traj.len(), 4);
    std::fs::remove_dir_all(&out).ok();
}

/// Async with an engine of its own: iteration t+1's rollout overlaps iteration t's update, so
/// its samples are one version old. `max_staleness = 1` keeps them; `max_staleness = 0`
/// drops every sample of iterations 2 and 3 (counted), which then train on nothing.
#[test]
fn overlapped_collection_respects_max_staleness() {
    let out = tmp("async-overlap");
    for (name, staleness) in [("keep", 1u64), ("drop", 0)] {
        let cfg = config(
            &out,
            name,
            3,
            &[
                "rollout.mode=async",
                &format!("rollout.max_staleness={staleness}"),
            ],
        );
        let mut t = Trainer::create(cfg, &Quiet).unwrap();
        let engine = SnapshotEngine::new(&t.policy, 0).unwrap();
        t.set_rollout_engine(Box::new(engine)).unwrap();
        let m = run(&mut t);
        assert_eq!(m.len(), 3);
        // Iteration 1 was collected with the current weights.
        assert_eq!(m[0].async_dropped_samples, 0);
        assert!(m[0].trained_samples > 0);
        assert!(m[0].rollout_logprob_abs_diff_max <= 1e-4, "{:?}", m[0]);
        for x in &m[1..] {
            assert!(x.samples > 0 || x.async_dropped_samples > 0, "{x:?}");
            if staleness == 1 {
                assert_eq!(x.async_dropped_samples, 0, "{x:?}");
                assert!(x.trained_samples > 0);
                // One update behind: the trainer's recomputed log-probs moved.
                assert!(x.rollout_logprob_abs_diff_max > 1e-4, "{x:?}");
            } else {
                assert_eq!(x.samples, 0, "{x:?}");
                assert!(x.async_dropped_samples >= 9, "{x:?}");
                assert_eq!(x.trained_samples, 0);
            }
        }
        let lines = lines(&out.join(name).join("metrics.jsonl"));
        assert_eq!(lines.len(), 3);
    }
    std::fs::remove_dir_all(&out).ok();
}
