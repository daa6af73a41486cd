//! Math with a code interpreter (`env.kind = "math"`; spec §2.1 "verl math recipe", §2.2,
//! §5.3) as a [`TaskSuite`]: the problem sets, the sandbox, the policy (the tiny model gets a
//! character-level tokenizer so code and numbers survive decoding), the warm-start
//! demonstrations, the rollout part of an iteration and the avg@k / pass@k evaluation.
//!
//! One training sample is one whole conversation (spec §2.1): `uid` = the problem, so GRPO
//! advantages compare the G conversations of a problem.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use spear_envs::math::conversation::{LoopConfig, Message};
use spear_envs::math::data::aime::{aime_problems, AimeYear};
use spear_envs::math::data::dapo::load_dapo_jsonl;
use spear_envs::math::data::generator::{
    demonstration, direct_demonstration, generate_families, Generated,
};
use spear_envs::math::data::MathProblem;
use spear_envs::math::reward::IncompleteRule;
use spear_envs::math::sandbox::{
    Executor, HttpExecutor, Isolation, Limits, LocalExecutor, PythonEnv, SandboxPool,
};
use spear_envs::math::tool::ToolFormat;
use spear_envs::math::SpearRewardConfig;
use spear_model::tokenizer::CHATML_TEMPLATE;
use spear_model::{Policy, SamplingParams, TextTokenizer};
use spear_rl::config::DrBotConfig;
use spear_rl::drbot::ResponseFlags;

use super::{CollectSettings, Collected, EvalSettings, SampleTurns, TaskSuite, WarmStart};
use crate::rollout::math::{
    demonstration_tokens, evaluate_math, rollout_math, MathEvalReport, MathEvalSettings,
    MathRolloutConfig,
};
use crate::rollout::{ChatSampler, RolloutOutput};
use crate::run_dir::{wilson_interval, EvalRecord, MathEvalStats, MathIterationStats};
use crate::seed::mix_seed;
use crate::train::config::math::{
    IncompleteRuleArg, MathConfig, MathSource, SandboxBackend, ToolFormatArg,
};
use crate::train::config::{EvalSplit, ModelSource, TrainConfig};
use crate::train::setup::{apply_compute_options, build_policy, tiny_policy_with};
use crate::train::sft::SftTokens;

/// The problem sets of a math run.
#[derive(Debug, Clone)]
pub struct MathTasks {
    /// Training problems.
    pub train: Vec<MathProblem>,
    /// Evaluation splits (`held_out`, `aime24`, `aime25`), by name.
    pub evals: Vec<(String, Vec<MathProblem>)>,
    /// Warm-start demonstrations (problem → code → output → boxed answer), generated
    /// problems only.
    pub demos: Vec<Vec<Message>>,
}

/// Everything a math run builds once: problems, sandbox, rollout settings, demonstrations.
pub struct MathRun {
    /// The problem sets.
    pub tasks: MathTasks,
    /// Where tool calls run.
    pub pool: SandboxPool,
    /// The tool loop, budget, reward rule and prompt of every rollout.
    pub rollout: MathRolloutConfig,
    /// The demonstrations as token samples in the rollout's layout (empty unless
    /// `sft.enabled`).
    pub sft: Vec<SftTokens>,
}

/// The seed of the held-out generated problems (differs from the training seed).
fn held_out_seed(generator_seed: u64) -> u64 {
    mix_seed(&[generator_seed, 0x4E1D0])
}

fn levels(m: &MathConfig) -> Vec<u8> {
    m.levels.iter().map(|&l| l as u8).collect()
}

/// `n` generated problems of the configured levels and families (all six of the default
/// mix when `env.math.families` is empty, else the named ones in turn).
fn generate(n: usize, seed: u64, m: &MathConfig) -> Vec<Generated> {
    generate_families(n, seed, &levels(m), &m.families)
}

/// The warm-start conversations of `gens`: a `demo_tool_rate` share call the interpreter
/// (drawn per problem from a stream of the generator seed), the rest answer directly.
fn demonstrations(gens: &[Generated], m: &MathConfig) -> Vec<Vec<Message>> {
    let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(&[m.generator_seed, 0xD3D0]));
    gens.iter()
        .map(|g| {
            // Draw for every problem, so a rate of 1 or 0 changes nothing else.
            let tool = rng.random::<f64>() < m.demo_tool_rate;
            if tool {
                demonstration(g)
            } else {
                direct_demonstration(g)
            }
        })
        .collect()
}

/// Loads (or generates) the training problems, the evaluation splits and the demonstrations.
pub fn load_math(cfg: &TrainConfig) -> anyhow::Result<MathTasks> {
    let m = &cfg.env.math;
    let (train, demos) = match m.source {
        MathSource::Generated => {
            let gens = generate(m.train_problems as usize, m.generator_seed, m);
            let n_demo = if cfg.sft.games == 0 {
                gens.len()
            } else {
                (cfg.sft.games as usize).min(gens.len())
            };
            let demos = if cfg.sft.enabled {
                demonstrations(&gens[..n_demo], m)
            } else {
                vec![]
            };
            (
                gens.into_iter().map(|g| g.problem).collect::<Vec<_>>(),
                demos,
            )
        }
        MathSource::Dapo => {
            let mut p = load_dapo_jsonl(Path::new(&m.dapo_path))
                .with_context(|| format!("env.math.dapo_path = {:?}", m.dapo_path))?;
            if m.train_problems > 0 {
                p.truncate(m.train_problems as usize);
            }
            anyhow::ensure!(
                !cfg.sft.enabled,
                "sft.enabled: DAPO-Math-17k has no demonstrations; warm-start from a checkpoint \
                 (model.init_checkpoint) or use env.math.source = \"generated\""
            );
            (p, vec![])
        }
    };
    anyhow::ensure!(
        !train.is_empty(),
        "env.math: no training problems ({:?} source)",
        m.source
    );
    let mut evals = vec![];
    for &name in &cfg.eval.splits {
        let take = |mut v: Vec<MathProblem>| {
            if m.eval_problems > 0 {
                v.truncate(m.eval_problems as usize);
            }
            v
        };
        let set = match name {
            EvalSplit::HeldOut => held_out(&train, m),
            EvalSplit::Aime24 => take(aime_problems(AimeYear::Y2024)),
            EvalSplit::Aime25 => take(aime_problems(AimeYear::Y2025)),
            EvalSplit::ValidSeen | EvalSplit::ValidUnseen | EvalSplit::Train | EvalSplit::Test => {
                anyhow::bail!("eval.splits: {name} is not a math split")
            }
        };
        anyhow::ensure!(!set.is_empty(), "the math split {name} has no problems");
        evals.push((name.to_string(), set));
    }
    Ok(MathTasks {
        train,
        evals,
        demos,
    })
}

/// `eval_problems` generated problems from another seed, none of whose text is a training
/// problem's.
fn held_out(train: &[MathProblem], m: &MathConfig) -> Vec<MathProblem> {
    let seen: HashSet<&str> = train.iter().map(|p| p.problem.as_str()).collect();
    let n = m.eval_problems as usize;
    let mut out: Vec<MathProblem> = generate(2 * n + 12, held_out_seed(m.generator_seed), m)
        .into_iter()
        .map(|g| g.problem)
        .filter(|p| !seen.contains(p.problem.as_str()))
        .collect();
    out.truncate(n);
    for p in &mut out {
        p.id = format!("held-out-{}", p.id);
    }
    out
}

/// The rollout settings of `[env.math]`.
pub fn rollout_config(cfg: &TrainConfig) -> MathRolloutConfig {
    let m = &cfg.env.math;
    MathRolloutConfig {
        loop_cfg: LoopConfig {
            max_assistant_turns: m.max_assistant_turns as usize,
            max_user_turns: m.max_user_turns as usize,
            max_tool_response_chars: m.max_tool_response_chars as usize,
            format: match m.tool_format {
                ToolFormatArg::Auto => ToolFormat::Auto,
                ToolFormatArg::Hermes => ToolFormat::Hermes,
                ToolFormatArg::PythonFence => ToolFormat::PythonFence,
            },
            max_response_chars: None,
        },
        max_response_tokens: m.max_response_tokens as usize,
        reward: SpearRewardConfig {
            incomplete: match m.incomplete_rule {
                IncompleteRuleArg::Upstream => IncompleteRule::Upstream,
                IncompleteRuleArg::NoAnswerNoToolCall => IncompleteRule::NoAnswerNoToolCall,
            },
            ..SpearRewardConfig::default()
        },
        system_prompt: (!m.system_prompt.is_empty()).then(|| m.system_prompt.clone()),
        fence_prompt_without_tools: true,
        max_batch_conversations: m.max_batch_conversations as usize,
        problem_index_offset: 0,
    }
}

/// The sandbox of `[env.math.sandbox]`.
pub fn sandbox_pool(m: &MathConfig) -> anyhow::Result<SandboxPool> {
    let s = &m.sandbox;
    let exec: Arc<dyn Executor> = match s.backend {
        SandboxBackend::Http => Arc::new(
            HttpExecutor::new(&s.url)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("env.math.sandbox.url = {:?}", s.url))?,
        ),
        SandboxBackend::Rlimits => {
            let env = PythonEnv::ensure_default()
                .context("preparing the sandbox's Python environment (env.math.sandbox)")?;
            Arc::new(LocalExecutor::rlimits_only(env))
        }
        SandboxBackend::Bwrap | SandboxBackend::Auto => {
            // Refuse before preparing the Python environment.
            LocalExecutor::check_bwrap_installed()
                .context("env.math.sandbox.backend = \"bwrap\"")?;
            let env = PythonEnv::ensure_default()
                .context("preparing the sandbox's Python environment (env.math.sandbox)")?;
            Arc::new(
                LocalExecutor::new(env, Isolation::Bwrap)
                    .context("env.math.sandbox.backend = \"bwrap\"")?,
            )
        }
    };
    let limits = Limits {
        timeout: Duration::from_secs_f64(s.timeout_s),
        memory_mb: s.memory_mb,
        ..Limits::default()
    };
    Ok(SandboxPool::new(exec, s.concurrency as usize, limits))
}

/// A character-level tokenizer for the tiny math policy: one token per printable ASCII
/// character, newline and tab, plus the ChatML specials (`<|im_end|>` is eos). Decoding fuses
/// the characters back, so code, numbers and `\boxed{…}` survive a round trip exactly
/// (a word-level vocabulary would space them out and lose unseen numbers).
pub fn char_tokenizer() -> anyhow::Result<TextTokenizer> {
    let specials = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"];
    let mut vocab: BTreeMap<String, u32> = BTreeMap::new();
    for s in specials {
        let id = vocab.len() as u32;
        vocab.insert(s.to_string(), id);
    }
    for c in ['\n', '\t'].into_iter().chain(' '..='~') {
        let id = vocab.len() as u32;
        vocab.insert(c.to_string(), id);
    }
    let added: Vec<Value> = specials
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({"id": i, "content": s, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let doc = json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": added, "normalizer": null,
        "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "[\\s\\S]"},
                          "behavior": "Isolated", "invert": false},
        "post_processor": null,
        "decoder": {"type": "Fuse"},
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    });
    let mut t = TextTokenizer::from_json_str(&doc.to_string(), "character-level tokenizer")?;
    t.eos_token = Some("<|im_end|>".into());
    t.pad_token = Some("<pad>".into());
    t.chat_template = Some(CHATML_TEMPLATE.to_string());
    t.set_stop_tokens(vec![3]);
    Ok(t)
}

/// The policy of a math run: `tiny` (character-level, random decoder sized by `[model]`) or
/// a pretrained model by name/path.
pub fn math_policy(cfg: &TrainConfig) -> anyhow::Result<Policy> {
    match cfg.model.name {
        ModelSource::Tiny => {
            let mut policy = tiny_policy_with(&cfg.model, char_tokenizer()?, cfg.run.seed)?;
            apply_compute_options(&mut policy, cfg)?;
            Ok(policy)
        }
        ModelSource::Pretrained(_) | ModelSource::Path(_) => build_policy(cfg, Vec::new),
    }
}

/// Everything a math run builds from its config, and its policy. `spear train`, `spear sft`
/// and `spear eval --checkpoint` share it, so a tiny policy is rebuilt identically.
pub fn math_run(cfg: &TrainConfig) -> anyhow::Result<(MathRun, Policy)> {
    let tasks = load_math(cfg)?;
    let policy = math_policy(cfg)?;
    let rollout = rollout_config(cfg);
    let sft = tasks
        .demos
        .iter()
        .map(|msgs| {
            let (prompt, response, mask) = demonstration_tokens(&policy, msgs, &rollout)?;
            Ok(SftTokens {
                prompt,
                response,
                mask,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()
        .context("rendering the warm-start demonstrations")?;
    let pool = sandbox_pool(&cfg.env.math)?;
    Ok((
        MathRun {
            tasks,
            pool,
            rollout,
            sft,
        },
        policy,
    ))
}

/// The rollout statistics of a math iteration.
pub fn iteration_stats(out: &RolloutOutput, incomplete: &[bool]) -> MathIterationStats {
    let n = out.samples.len().max(1) as f64;
    MathIterationStats {
        tool_calls: out.samples.iter().map(|s| s.tool_calls as f64).sum::<f64>() / n,
        tool_call_rate: out.samples.iter().filter(|s| s.tool_calls > 0).count() as f64 / n,
        incomplete_rate: incomplete.iter().filter(|&&b| b).count() as f64 / n,
        response_tokens: out
            .samples
            .iter()
            .map(|s| s.response_tokens.len() as f64)
            .sum::<f64>()
            / n,
        assistant_turns: out
            .samples
            .iter()
            .map(|s| s.episode_length as f64)
            .sum::<f64>()
            / n,
    }
}

/// The environment part of a math iteration (spec §2.8 step 1): G conversations for each of
/// `problems` through the tool loop. Returns the rollout (episode task types = the problems'
/// data sources, e.g. `generated/modular`), Dr.BoT's flags of every sample with the math
/// `is_incomplete`, and the iteration's tool statistics.
#[allow(clippy::too_many_arguments)]
pub fn collect_math(
    sampler: &dyn ChatSampler,
    run: &MathRun,
    problems: &[MathProblem],
    group_size: usize,
    sampling: &SamplingParams,
    seed: u64,
    iteration: u64,
    drbot: &DrBotConfig,
) -> anyhow::Result<(RolloutOutput, Vec<ResponseFlags>, MathIterationStats)> {
    let out = rollout_math(
        sampler,
        problems,
        group_size,
        sampling,
        seed,
        iteration,
        &run.pool,
        &run.rollout,
    )?;
    let mut rollout = out.rollout;
    let flags: Vec<ResponseFlags> = out
        .conversations
        .iter()
        .zip(&rollout.samples)
        .map(|(c, s)| c.response_flags(s, drbot))
        .collect();
    for (e, c) in rollout.episodes.iter_mut().zip(&out.conversations) {
        e.task_type = problems[c.problem].data_source.clone();
    }
    let incomplete: Vec<bool> = out.conversations.iter().map(|c| c.is_incomplete).collect();
    let stats = iteration_stats(&rollout, &incomplete);
    Ok((rollout, flags, stats))
}

/// An evaluation record from a math report: `episodes` = problems × k, `success_rate` =
/// avg@k with a Wilson interval over the samples, per-type rates by data source.
pub fn math_eval_record(
    split: &str,
    iteration: u64,
    temperature: f64,
    problems: &[MathProblem],
    r: &MathEvalReport,
) -> EvalRecord {
    let n: u64 = r.problems.iter().map(|p| p.correct.len() as u64).sum();
    let correct: u64 = r
        .problems
        .iter()
        .map(|p| p.correct.iter().filter(|&&c| c).count() as u64)
        .sum();
    let (lo, hi) = wilson_interval(correct, n);
    let mut by_type: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (p, o) in problems.iter().zip(&r.problems) {
        let x = by_type.entry(p.data_source.clone()).or_default();
        x.0 += o.correct.iter().filter(|&&c| c).count() as u64;
        x.1 += o.correct.len() as u64;
    }
    EvalRecord {
        iteration,
        split: split.to_string(),
        episodes: n,
        success_rate: r.avg_at_k,
        ci_low: lo,
        ci_high: hi,
        success_by_type: by_type
            .iter()
            .map(|(k, (w, c))| (k.clone(), *w as f64 / (*c).max(1) as f64))
            .collect(),
        episodes_by_type: by_type.iter().map(|(k, (_, c))| (k.clone(), *c)).collect(),
        // Turns are not in the report; `math.mean_tool_calls` says how long conversations were.
        episode_length: 0.0,
        task_score: r.avg_at_k,
        temperature,
        math: Some(MathEvalStats {
            problems: r.problems.len() as u64,
            k: r.k as u64,
            avg_at_k: r.avg_at_k,
            pass_at: r.pass_at.iter().map(|(j, v)| (j.to_string(), *v)).collect(),
            mean_tool_calls: r.mean_tool_calls,
        }),
    }
}

/// Evaluates one math split: `k` conversations per problem at the evaluation sampling
/// (`eval.temperature`, `eval.top_p`; the paper: k = 32, T = 1.0, top-p 0.6), scored by the
/// strict verifier; `batch` conversations per `generate` call (0: all).
pub fn eval_math_split(
    sampler: &dyn ChatSampler,
    run: &MathRun,
    split: &str,
    problems: &[MathProblem],
    k: usize,
    batch: usize,
    s: &EvalSettings,
) -> anyhow::Result<EvalRecord> {
    let batch = match batch {
        0 => problems.len() * k,
        b => b,
    };
    let settings = MathEvalSettings {
        k,
        sampling: s.sampling.clone(),
        rollout: run.rollout.clone(),
        seed: s.seed,
        batch_conversations: batch,
    };
    let report = evaluate_math(sampler, problems, &settings, &run.pool, &mut |_| {})?;
    Ok(math_eval_record(
        split,
        s.iteration,
        s.sampling.temperature,
        problems,
        &report,
    ))
}

/// The math suite: problems, sandbox, rollout settings, demonstrations.
pub struct MathSuite {
    run: MathRun,
    eval_k: usize,
    eval_batch: usize,
}

impl MathSuite {
    /// Builds the suite and the run's policy from the config.
    pub fn build(cfg: &TrainConfig) -> anyhow::Result<(Self, Policy)> {
        let (run, policy) = math_run(cfg)?;
        Ok((
            MathSuite {
                run,
                eval_k: cfg.env.math.eval_k as usize,
                eval_batch: cfg.env.math.max_batch_conversations as usize,
            },
            policy,
        ))
    }
}

impl TaskSuite for MathSuite {
    fn describe(&self) -> String {
        let run = &self.run;
        format!(
            "{} training problems, {} evaluation splits ({}), {} demonstrations, sandbox {}",
            run.tasks.train.len(),
            run.tasks.evals.len(),
            run.tasks
                .evals
                .iter()
                .map(|(n, p)| format!("{n}: {}", p.len()))
                .collect::<Vec<_>>()
                .join(", "),
            run.sft.len(),
            match run.pool.executor_name().as_str() {
                "rlimits" => "rlimits only: model-written code runs WITHOUT isolation \
                              (env.math.sandbox.backend = \"rlimits\", chosen explicitly)"
                    .to_string(),
                other => other.to_string(),
            }
        )
    }

    fn num_train_tasks(&self) -> usize {
        self.run.tasks.train.len()
    }

    fn eval_splits(&self) -> Vec<String> {
        self.run
            .tasks
            .evals
            .iter()
            .map(|(n, _)| n.clone())
            .collect()
    }

    fn warm_start(&self) -> WarmStart<'_> {
        WarmStart::Tokens(&self.run.sft, "demonstrations")
    }

    fn collect(
        &self,
        sampler: &dyn ChatSampler,
        tasks: &[usize],
        s: &CollectSettings,
    ) -> anyhow::Result<Collected> {
        anyhow::ensure!(
            !s.concurrent_episodes,
            "rollout.mode = \"async\" is not supported by env.kind = \"math\" (the tool loop \
             generates one batch per turn): use rollout.mode = \"sync\""
        );
        let problems: Vec<MathProblem> = tasks
            .iter()
            .map(|&i| self.run.tasks.train[i].clone())
            .collect();
        let (mut out, flags, stats) = collect_math(
            sampler,
            &self.run,
            &problems,
            s.group_size,
            &s.sampling,
            s.seed,
            s.iteration,
            &s.drbot,
        )?;
        for x in &mut out.samples {
            x.policy_version = s.policy_version;
        }
        let headline = format!("calls {:.2}", stats.tool_calls);
        let mut extra = BTreeMap::new();
        extra.insert("math".to_string(), serde_json::to_value(&stats)?);
        Ok(Collected {
            out,
            flags,
            sample_turns: SampleTurns::WholeEpisode,
            extra,
            headline,
        })
    }

    fn evaluate(
        &self,
        sampler: &dyn ChatSampler,
        split: &str,
        s: &EvalSettings,
    ) -> anyhow::Result<EvalRecord> {
        let problems = &self
            .run
            .tasks
            .evals
            .iter()
            .find(|(n, _)| n == split)
            .with_context(|| format!("no math split {split:?} in this run"))?
            .1;
        eval_math_split(
            sampler,
            &self.run,
            split,
            problems,
            self.eval_k,
            self.eval_batch,
            s,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::math::{math_eval_report, ProblemOutcome};
    use spear_envs::math::data::generator::generate_set;
    use spear_rl::sample::StepSample;

    #[test]
    fn demo_tool_rate_sets_the_share_of_demonstrations_that_call_the_tool() {
        let mut m = MathConfig::default();
        let gens = generate_set(600, 3, &[1]);
        let calls = |m: &MathConfig| {
            demonstrations(&gens, m)
                .iter()
                .map(|d| d.iter().any(|msg| !msg.tool_calls.is_empty()))
                .collect::<Vec<bool>>()
        };
        assert!(calls(&m).iter().all(|&c| c), "rate 1: every demonstration");
        m.demo_tool_rate = 0.0;
        assert!(calls(&m).iter().all(|&c| !c), "rate 0: none");
        m.demo_tool_rate = 0.25;
        let a = calls(&m);
        let n = a.iter().filter(|&&c| c).count();
        // Binomial(600, 0.25): mean 150, sd ≈ 10.6.
        assert!((110..=190).contains(&n), "{n} of 600");
        assert_eq!(a, calls(&m), "the same seed picks the same ones");
        m.generator_seed = 1;
        assert_ne!(a, calls(&m), "another seed picks others");
        // Direct demonstrations end with the boxed answer.
        let d = demonstrations(
            &gens[..1],
            &MathConfig {
                demo_tool_rate: 0.0,
                ..m
            },
        );
        assert!(d[0][1]
            .content
            .ends_with(&format!("\\boxed{{{}}}", gens[0].problem.answer)));
    }

    #[test]
    fn char_tokenizer_round_trips_code_and_boxes() {
        let t = char_tokenizer().unwrap();
        let s = "```python\nfor i in range(3):\n\tprint(i ** 2)\n```\n\\boxed{12345678901}";
        let ids = t.encode(s).unwrap();
        assert_eq!(ids.len(), s.chars().count());
        assert_eq!(t.decode(&ids, false).unwrap(), s);
        let with_eos = t.encode("ok<|im_end|>").unwrap();
        assert_eq!(
            with_eos,
            vec![t.token_id("o").unwrap(), t.token_id("k").unwrap(), 3]
        );
        assert_eq!(t.stop_token_ids, vec![3]);
    }

    #[test]
    fn held_out_problems_are_not_training_problems() {
        let mut cfg = TrainConfig::default();
        cfg.env.math.train_problems = 60;
        cfg.env.math.eval_problems = 20;
        let train: Vec<MathProblem> = generate_set(60, 0, &[])
            .into_iter()
            .map(|g| g.problem)
            .collect();
        let ho = held_out(&train, &cfg.env.math);
        assert_eq!(ho.len(), 20);
        for p in &ho {
            assert!(train.iter().all(|t| t.problem != p.problem));
            assert!(p.id.starts_with("held-out-"));
        }
        // Deterministic.
        assert_eq!(ho, held_out(&train, &cfg.env.math));
    }

    fn sample(calls: u32, len: usize, turns: u32) -> StepSample {
        StepSample {
            uid: spear_rl::sample::GroupId(0),
            traj_uid: spear_rl::sample::TrajId(0),
            step_index: 0,
            prompt_tokens: vec![1],
            response_tokens: vec![0; len],
            response_mask: vec![1; len],
            old_log_probs: vec![0.0; len],
            rollout_log_probs: vec![],
            policy_version: 0,
            step_reward: 0.0,
            episode_reward: 0.0,
            episode_length: turns,
            tool_calls: calls,
            is_action_valid: true,
            anchor_obs: String::new(),
            collected_at: 0,
            score: 0.0,
            step_return: 0.0,
            advantage: 0.0,
        }
    }

    #[test]
    fn iteration_stats_by_hand() {
        let out = RolloutOutput {
            samples: vec![
                sample(0, 10, 1),
                sample(2, 30, 3),
                sample(1, 20, 2),
                sample(0, 40, 1),
            ],
            ..Default::default()
        };
        let s = iteration_stats(&out, &[true, false, false, true]);
        assert_eq!(s.tool_calls, 0.75); // (0 + 2 + 1 + 0) / 4
        assert_eq!(s.tool_call_rate, 0.5); // 2 of 4 called the tool
        assert_eq!(s.incomplete_rate, 0.5);
        assert_eq!(s.response_tokens, 25.0); // (10 + 30 + 20 + 40) / 4
        assert_eq!(s.assistant_turns, 1.75); // (1 + 3 + 2 + 1) / 4
    }

    #[test]
    fn eval_record_by_hand() {
        let p = |id: &str, src: &str| MathProblem {
            id: id.into(),
            problem: id.into(),
            answer: "1".into(),
            data_source: src.into(),
        };
        let problems = vec![p("a", "generated/modular"), p("b", "generated/sequence")];
        let o = |correct: Vec<bool>| ProblemOutcome {
            id: "x".into(),
            answer: "1".into(),
            preds: vec![None; correct.len()],
            tool_calls: vec![1; correct.len()],
            response_tokens: vec![5; correct.len()],
            correct,
        };
        let r = math_eval_report(2, vec![o(vec![true, true]), o(vec![false, true])]);
        let rec = math_eval_record("held_out", 3, 1.0, &problems, &r);
        // 3 of 4 samples right: avg@2 = (2/2 + 1/2) / 2 = 0.75; pass@1 = 0.75; pass@2 = 1.
        assert_eq!(rec.episodes, 4);
        assert_eq!(rec.success_rate, 0.75);
        assert_eq!(rec.success_by_type["generated/modular"], 1.0);
        assert_eq!(rec.success_by_type["generated/sequence"], 0.5);
        assert_eq!(rec.episodes_by_type["generated/sequence"], 2);
        assert_eq!((rec.ci_low, rec.ci_high), wilson_interval(3, 4));
        let m = rec.math.unwrap();
        assert_eq!((m.problems, m.k), (2, 2));
        assert_eq!(m.pass_at["1"], 0.75);
        assert_eq!(m.pass_at["2"], 1.0);
        assert_eq!(m.mean_tool_calls, 1.0);
    }
}
