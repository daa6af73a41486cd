//! One training run (spec §2.8): rollout → rewards (extrinsic + SPEAR's decaying tool-call
//! reward) → Dr.BoT filters → invalid-action penalty → advantages → SIL replay draw →
//! on-policy then replay updates → buffer update → evaluation → checkpoint.
//!
//! Only the rollout depends on the environment (`collect_household`, `collect_math`: samples,
//! episode records, Dr.BoT's response flags); every later step is shared. Math samples are
//! whole conversations (spec §2.1), so `uid` = the problem and GRPO compares conversations.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;
use rand::seq::index::sample as sample_indices;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use spear_envs::household::HouseholdEnv;
use spear_envs::webshop::Split as WebshopSplit;
use spear_model::{AdamW, AdamWConfig, Decoder, LrSchedule, Policy, SamplingParams};
use spear_rl::advantage::compute_advantages;
use spear_rl::drbot::{
    apply_response_filters, filter_groups_by_std, response_flags, ResponseFlags,
};
use spear_rl::replay::ReplayBuffer;
use spear_rl::reward::{
    apply_invalid_action_penalty, assign_episode_scores, compute_step_returns, toolcall_mode_weight,
};
use spear_rl::sample::Batch;
use spear_rl::schedule::replay_weight;
use spear_rl::update_plan::UpdatePlan;

use super::config::{EnvKind, TrainConfig};
use super::eval::{eval_household, eval_webshop, EvalSettings};
use super::math::{collect_math, eval_math_split, math_run, MathRun};
use super::setup::{self, HouseholdTasks};
use super::sft::{run_sft, run_sft_tokens, SftSettings};
use super::state::{self, TrainerState};
use super::update::run_update;
use crate::rollout::agent::{mix_seed, rollout_agent, AgentEnv, AgentRolloutParams};
use crate::rollout::RolloutOutput;
use crate::run_dir::{
    remove_stale_temporaries, EpisodeRecord, EvalRecord, IterationMetrics, MathIterationStats,
    PhaseTimes, RunDir, RunLock,
};

/// Set by Ctrl-C: finish the current iteration's writes, then stop.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// Where progress goes: an indicatif bar on a terminal, plain lines otherwise.
pub trait Progress {
    /// A one-line message.
    fn line(&self, msg: &str);
    /// Iteration `t` of `n` finished.
    fn iteration(&self, t: u64, n: u64, summary: &str);
    /// A bar for the warm start (None: no bar).
    fn sft_bar(&self) -> Option<indicatif::ProgressBar>;
}

/// No output (tests).
pub struct Quiet;

impl Progress for Quiet {
    fn line(&self, _msg: &str) {}
    fn iteration(&self, _t: u64, _n: u64, _summary: &str) {}
    fn sft_bar(&self) -> Option<indicatif::ProgressBar> {
        None
    }
}

/// A training run in memory.
pub struct Trainer {
    /// The resolved config.
    pub cfg: TrainConfig,
    /// The run directory.
    pub run: RunDir,
    /// The policy being trained.
    pub policy: Policy,
    opt: AdamW,
    buffer: ReplayBuffer,
    rng: ChaCha8Rng,
    /// Last completed iteration.
    pub iteration: u64,
    elapsed: f64,
    env: EnvRun,
    /// Frozen weights RL started from, for the KL loss (`rl.loss.use_kl_loss`).
    reference: Option<Policy>,
    /// The exclusive lock on the run directory, held while the trainer lives.
    _lock: RunLock,
}

/// How `spear train --resume` continues a run.
#[derive(Debug, Clone, Default)]
pub struct ResumeOptions {
    /// `--from iter_N`: continue from this checkpoint instead of `latest` (newer ones are set
    /// aside, log lines after it dropped).
    pub from: Option<String>,
    /// `--set KEY=VALUE` overrides; only [`TrainConfig::RESUME_SETTABLE`] keys.
    pub sets: Vec<String>,
}

/// What an environment kind builds once per run.
enum EnvRun {
    /// Household splits and the planner's demonstrations.
    Household {
        tasks: HouseholdTasks,
        sft_examples: Vec<setup::SftExample>,
    },
    /// Math problems, sandbox, rollout settings and demonstrations.
    Math(Box<MathRun>),
    /// The WebShop catalogue and the oracle expert's demonstrations.
    Webshop {
        tasks: setup::WebshopTasks,
        sft_examples: Vec<setup::SftExample>,
    },
}

/// What the environment part of an iteration hands the shared learner part: the rollout
/// (samples in order, episodes by `traj`), Dr.BoT's response flags of each sample, and math
/// statistics.
struct Collected {
    out: RolloutOutput,
    flags: Vec<ResponseFlags>,
    math: Option<MathIterationStats>,
}

/// The temperature the sampler reported log-probs at: T, or 1 for greedy decoding (T = 0).
fn sampling_temperature(t: f64) -> f64 {
    if t > 0.0 {
        t
    } else {
        1.0
    }
}

fn adamw_config(cfg: &TrainConfig) -> AdamWConfig {
    AdamWConfig {
        beta1: cfg.optim.beta1,
        beta2: cfg.optim.beta2,
        weight_decay: cfg.optim.weight_decay,
        ..AdamWConfig::default()
    }
}

fn append_jsonl<T: serde::Serialize>(path: &Path, rec: &T) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut line = serde_json::to_string(rec)?;
    line.push('\n');
    f.write_all(line.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    f.sync_data().ok();
    Ok(())
}

/// Keeps only the lines of a JSONL file whose `iteration` is at most `max_iter` (a run killed
/// after logging but before its checkpoint resumes without duplicates).
fn truncate_jsonl(path: &Path, max_iter: u64) -> anyhow::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path)?;
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("iteration").and_then(|i| i.as_u64()))
                .is_some_and(|i| i <= max_iter)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    spear_model::checkpoint::write_atomic(path, kept.as_bytes())?;
    Ok(())
}

/// Removes the lines of a JSONL file whose `iteration` is `iteration` (and unparsable lines).
fn drop_iteration_lines(path: &Path, iteration: u64) -> anyhow::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path)?;
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("iteration").and_then(|i| i.as_u64()))
                .is_some_and(|i| i != iteration)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    spear_model::checkpoint::write_atomic(path, kept.as_bytes())?;
    Ok(())
}

impl Trainer {
    /// Starts a new run in `<out_dir>/<name>` (which must not hold a run yet).
    pub fn create(cfg: TrainConfig, progress: &dyn Progress) -> anyhow::Result<Self> {
        let run = RunDir::new(Path::new(&cfg.run.out_dir).join(&cfg.run.name));
        let lock = RunLock::acquire(&run.root)?;
        anyhow::ensure!(
            !run.metrics().exists() && !run.checkpoints().join("latest").exists(),
            "{} already holds a run: continue it with `spear train --resume {}`, or pick another \
             name with `--set run.name=...`",
            run.root.display(),
            run.root.display()
        );
        for p in remove_stale_temporaries(&run.root) {
            progress.line(&format!(
                "removed {} (left by an interrupted write)",
                p.display()
            ));
        }
        std::fs::create_dir_all(run.trajectories_dir())
            .with_context(|| format!("creating {}", run.root.display()))?;
        spear_model::checkpoint::write_atomic(&run.config(), cfg.config_file_text().as_bytes())?;
        let mut t = Self::build(cfg, run, lock, progress)?;
        if t.cfg.model.init_checkpoint.is_empty() {
            t.warm_start(progress)?;
        } else {
            t.load_init(progress)?;
        }
        t.freeze_reference()?;
        t.checkpoint()?;
        Ok(t)
    }

    /// `checkpoints/reference.safetensors`: the weights RL starts from, the KL loss's
    /// reference (verl's `ref` worker holds the initial actor weights).
    fn reference_path(&self) -> std::path::PathBuf {
        self.run.checkpoints().join("reference.safetensors")
    }

    /// With the KL loss on: writes the current weights (after the warm start) as the reference
    /// (atomically) and loads them into a frozen copy of the policy.
    fn freeze_reference(&mut self) -> anyhow::Result<()> {
        if !self.cfg.rl.loss.use_kl_loss {
            return Ok(());
        }
        let path = self.reference_path();
        std::fs::create_dir_all(self.run.checkpoints())?;
        spear_model::checkpoint::save_checkpoint(&path, &self.policy.model, None, &[])
            .with_context(|| format!("writing the KL reference {}", path.display()))?;
        self.load_reference()
    }

    /// Loads `checkpoints/reference.safetensors` into a second, frozen policy.
    fn load_reference(&mut self) -> anyhow::Result<()> {
        let path = self.reference_path();
        anyhow::ensure!(
            path.is_file(),
            "rl.loss.use_kl_loss = true but {} is missing: the run was started without the KL \
             loss, so its reference weights were not kept; start a new run",
            path.display()
        );
        let m = &self.policy.model;
        let model = Decoder::random(m.config().clone(), 0, 0.02, m.dtype(), &m.device())?;
        spear_model::checkpoint::load_checkpoint(&path, &model, adamw_config(&self.cfg))
            .with_context(|| format!("loading the KL reference {}", path.display()))?;
        self.reference = Some(Policy::new(model, self.policy.tokenizer.clone())?);
        Ok(())
    }

    /// Loads `model.init_checkpoint`'s weights (not its optimizer).
    fn load_init(&mut self, progress: &dyn Progress) -> anyhow::Result<()> {
        let path = Path::new(&self.cfg.model.init_checkpoint);
        let dir = if path.join("model.safetensors").is_file() {
            path.to_path_buf()
        } else {
            state::latest(&path.join("checkpoints"))?.with_context(|| {
                format!(
                    "model.init_checkpoint = {}: neither a checkpoint directory nor a run \
                     directory with a complete checkpoint",
                    path.display()
                )
            })?
        };
        spear_model::checkpoint::load_checkpoint(
            &dir.join("model.safetensors"),
            &self.policy.model,
            adamw_config(&self.cfg),
        )
        .with_context(|| {
            format!(
                "model.init_checkpoint: {} does not fit this policy (same [model] and \
                 environment settings are needed for a tiny policy's vocabulary)",
                dir.display()
            )
        })?;
        progress.line(&format!("initial weights from {}", dir.display()));
        Ok(())
    }

    /// Continues the run in `dir` from its last complete checkpoint (or `opts.from`), after
    /// taking the run's lock, removing temporaries of interrupted writes and checking the
    /// checkpoint; `opts.sets` may change only [`TrainConfig::RESUME_SETTABLE`] keys.
    pub fn resume(
        dir: &Path,
        opts: &ResumeOptions,
        progress: &dyn Progress,
    ) -> anyhow::Result<Self> {
        let run = RunDir::new(dir);
        anyhow::ensure!(
            run.config().is_file(),
            "{} has no config.toml: is it a run directory made by `spear train`?",
            dir.display()
        );
        let lock = RunLock::acquire(&run.root)?;
        for p in remove_stale_temporaries(&run.root) {
            progress.line(&format!(
                "removed {} (left by an interrupted write)",
                p.display()
            ));
        }
        let text = std::fs::read_to_string(run.config())
            .with_context(|| format!("reading {}", run.config().display()))?;
        let mut cfg = TrainConfig::from_toml_str(&text)
            .with_context(|| format!("{}", run.config().display()))?;
        if !opts.sets.is_empty() {
            cfg = cfg
                .with_resume_overrides(&opts.sets)
                .with_context(|| format!("--resume {} --set", dir.display()))?;
            spear_model::checkpoint::write_atomic(
                &run.config(),
                cfg.config_file_text().as_bytes(),
            )?;
            progress.line(&format!("config.toml updated: {}", opts.sets.join(", ")));
        }
        // Check the checkpoint before the (slow) set-up.
        let ck = match &opts.from {
            Some(from) => {
                let (ck, moved) = state::rewind_to(&run.checkpoints(), from)?;
                for m in moved {
                    progress.line(&format!("set aside {}", m.display()));
                }
                Some(ck)
            }
            None => state::latest(&run.checkpoints())?,
        };
        let mut t = Self::build(cfg, run, lock, progress)?;
        match ck {
            Some(ck) => {
                let (opt, rng, st) = state::load(&ck, &t.policy, adamw_config(&t.cfg))?;
                t.opt = opt;
                t.rng = rng;
                t.iteration = st.iteration;
                t.elapsed = st.elapsed;
                t.buffer = st.buffer;
                if t.cfg.rl.loss.use_kl_loss {
                    t.load_reference()?;
                }
                progress.line(&format!(
                    "resuming {} after iteration {} ({})",
                    t.run.name(),
                    t.iteration,
                    ck.display()
                ));
            }
            None => {
                progress.line("no complete checkpoint yet: starting the run over");
                if t.cfg.model.init_checkpoint.is_empty() {
                    t.warm_start(progress)?;
                } else {
                    t.load_init(progress)?;
                }
                t.freeze_reference()?;
                t.checkpoint()?;
            }
        }
        truncate_jsonl(&t.run.metrics(), t.iteration)?;
        truncate_jsonl(&t.run.eval(), t.iteration)?;
        Ok(t)
    }

    fn build(
        cfg: TrainConfig,
        run: RunDir,
        lock: RunLock,
        progress: &dyn Progress,
    ) -> anyhow::Result<Self> {
        let t0 = Instant::now();
        let (env, policy, what) = match cfg.env.kind {
            EnvKind::Math => {
                let (run, policy) = math_run(&cfg)?;
                let what = format!(
                    "{} training problems, {} evaluation splits ({}), {} demonstrations, \
                     sandbox {}",
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
                );
                (EnvRun::Math(Box::new(run)), policy, what)
            }
            EnvKind::Webshop => {
                let (tasks, sft_examples, policy) = setup::webshop_run(&cfg)?;
                let what = format!(
                    "WebShop catalogue of {} products, {} training goals, evaluation {}, {} \
                     demonstrations",
                    tasks.catalog.products.len(),
                    tasks.train,
                    tasks
                        .evals
                        .iter()
                        .map(|(n, k)| format!("{n}: {k} goals"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    sft_examples.len()
                );
                let env = EnvRun::Webshop {
                    tasks,
                    sft_examples,
                };
                (env, policy, what)
            }
            EnvKind::Household => {
                let (tasks, sft_examples, policy) = setup::household_run(&cfg)?;
                let what = format!(
                    "{} training games, {} evaluation splits, {} demonstrations",
                    tasks.train.games.len(),
                    tasks.evals.len(),
                    sft_examples.len()
                );
                let env = EnvRun::Household {
                    tasks,
                    sft_examples,
                };
                (env, policy, what)
            }
        };
        progress.line(&format!(
            "{what}; policy {} ({:.2} M parameters, vocabulary {}) in {:.1}s",
            cfg.model.name,
            policy.model.params().num_params() as f64 / 1e6,
            policy.tokenizer.vocab_size(),
            t0.elapsed().as_secs_f64()
        ));
        let seed = cfg.run.seed;
        Ok(Self {
            opt: AdamW::new(adamw_config(&cfg)),
            buffer: ReplayBuffer::new(&cfg.rl.replay, mix_seed(&[seed, 0xB0FF])),
            rng: ChaCha8Rng::seed_from_u64(mix_seed(&[seed, 0x7A1])),
            iteration: 0,
            elapsed: 0.0,
            env,
            policy,
            reference: None,
            _lock: lock,
            cfg,
            run,
        })
    }

    fn warm_start(&mut self, progress: &dyn Progress) -> anyhow::Result<()> {
        if !self.cfg.sft.enabled {
            return Ok(());
        }
        let s = SftSettings {
            epochs: self.cfg.sft.epochs as usize,
            batch_size: self.cfg.sft.batch_size as usize,
            lr: self.cfg.sft.lr,
            weight_decay: self.cfg.optim.weight_decay,
            token_budget: self.cfg.optim.token_budget as usize,
            seed: mix_seed(&[self.cfg.run.seed, 0x5F7]),
        };
        let (n, what) = match &self.env {
            EnvRun::Household { sft_examples, .. } | EnvRun::Webshop { sft_examples, .. } => {
                (sft_examples.len(), "expert steps")
            }
            EnvRun::Math(run) => (run.sft.len(), "demonstrations"),
        };
        progress.line(&format!(
            "warm start: SFT on {n} {what}, {} epoch(s)",
            s.epochs
        ));
        let bar = progress.sft_bar();
        let rep = match &self.env {
            EnvRun::Household { sft_examples, .. } | EnvRun::Webshop { sft_examples, .. } => {
                run_sft(&self.policy, sft_examples, &s, bar.as_ref())?
            }
            EnvRun::Math(run) => run_sft_tokens(&self.policy, &run.sft, &s, bar.as_ref())?,
        };
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        progress.line(&format!(
            "warm start done: {} steps, loss {:.3} → {:.3}, {:.0} tokens/s, {:.0}s",
            rep.steps, rep.first_loss, rep.last_loss, rep.tokens_per_s, rep.secs
        ));
        self.elapsed += rep.secs;
        Ok(())
    }

    fn checkpoint(&self) -> anyhow::Result<()> {
        let st = TrainerState {
            iteration: self.iteration,
            elapsed: self.elapsed,
            buffer: self.buffer.clone(),
        };
        state::save(
            &self.run.checkpoints(),
            &self.policy,
            &self.opt,
            &self.rng,
            &st,
        )?;
        Ok(())
    }

    fn train_sampling(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.cfg.sampling.temperature,
            top_p: self.cfg.sampling.top_p,
            top_k: self.cfg.sampling.top_k as usize,
            max_new_tokens: self.cfg.sampling.max_new_tokens as usize,
            ..SamplingParams::default()
        }
    }

    /// Evaluates every configured split at the current iteration and appends `eval.jsonl`.
    fn eval_settings(&self) -> EvalSettings {
        EvalSettings {
            episodes: self.cfg.eval.episodes as usize,
            max_turns: self.cfg.env.max_turns as usize,
            history_length: self.cfg.env.history_length as usize,
            sampling: SamplingParams {
                temperature: self.cfg.eval.temperature,
                top_p: self.cfg.eval.top_p,
                ..self.train_sampling()
            },
            seed: mix_seed(&[self.cfg.run.seed, self.iteration, 0xE]),
            iteration: self.iteration,
            batch: 128,
        }
    }

    pub fn evaluate(&self) -> anyhow::Result<(Vec<EvalRecord>, f64)> {
        let mut recs = vec![];
        let mut secs = 0.0;
        let tasks = match &self.env {
            EnvRun::Household { tasks, .. } => tasks,
            EnvRun::Webshop { tasks, .. } => {
                for (name, _) in &tasks.evals {
                    let (rec, _eps, t) =
                        eval_webshop(&self.policy, name, tasks, &self.eval_settings())?;
                    secs += t;
                    append_jsonl(&self.run.eval(), &rec)?;
                    recs.push(rec);
                }
                return Ok((recs, secs));
            }
            EnvRun::Math(run) => {
                for (name, problems) in &run.tasks.evals {
                    let seed = mix_seed(&[self.cfg.run.seed, self.iteration, 0xE]);
                    let (rec, t) = eval_math_split(
                        &self.policy,
                        run,
                        &self.cfg,
                        name,
                        problems,
                        seed,
                        self.iteration,
                    )?;
                    secs += t;
                    append_jsonl(&self.run.eval(), &rec)?;
                    recs.push(rec);
                }
                return Ok((recs, secs));
            }
        };
        for (name, games) in &tasks.evals {
            let (rec, _eps, t) = eval_household(&self.policy, name, games, &self.eval_settings())?;
            secs += t;
            append_jsonl(&self.run.eval(), &rec)?;
            recs.push(rec);
        }
        Ok((recs, secs))
    }

    /// Whether the schedule evaluates at iteration `t` (0 = before RL).
    fn eval_due(&self, t: u64) -> bool {
        let r = &self.cfg.run;
        if t == 0 {
            r.eval_before
        } else {
            r.eval_every > 0 && (t % r.eval_every == 0 || t == r.iterations)
        }
    }

    /// Whether `eval.jsonl` holds a record of every evaluation split at iteration `t`.
    fn eval_complete(&self, t: u64) -> anyhow::Result<bool> {
        if !self.run.eval().exists() {
            return Ok(false);
        }
        let recs: Vec<serde_json::Value> = std::fs::read_to_string(self.run.eval())
            .with_context(|| format!("reading {}", self.run.eval().display()))?
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let done: std::collections::BTreeSet<&str> = recs
            .iter()
            .filter(|v| v.get("iteration").and_then(|i| i.as_u64()) == Some(t))
            .filter_map(|v| v.get("split").and_then(|s| s.as_str()))
            .collect();
        Ok(self
            .eval_split_names()
            .iter()
            .all(|n| done.contains(n.as_str())))
    }

    /// The names of the splits [`Self::evaluate`] writes.
    fn eval_split_names(&self) -> Vec<String> {
        match &self.env {
            EnvRun::Household { tasks, .. } => tasks.evals.iter().map(|(n, _)| n.clone()).collect(),
            EnvRun::Webshop { tasks, .. } => tasks.evals.iter().map(|(n, _)| n.clone()).collect(),
            EnvRun::Math(run) => run.tasks.evals.iter().map(|(n, _)| n.clone()).collect(),
        }
    }

    /// Runs iterations until `run.iterations` (or Ctrl-C), evaluating and checkpointing.
    pub fn train(&mut self, progress: &dyn Progress) -> anyhow::Result<()> {
        // The evaluation due at the current iteration (before RL, or one a kill interrupted)
        // must be complete before training goes on, so that a resumed run's eval.jsonl equals
        // an uninterrupted run's.
        if self.eval_due(self.iteration) && !self.eval_complete(self.iteration)? {
            // A partial set (the kill came between two splits) is redone whole.
            drop_iteration_lines(&self.run.eval(), self.iteration)?;
            let (recs, _) = self.evaluate()?;
            let when = if self.iteration == 0 {
                "before RL".to_string()
            } else {
                format!("at iteration {}", self.iteration)
            };
            progress.line(&format!("{when}: {}", eval_summary(&recs)));
        }
        while self.iteration < self.cfg.run.iterations {
            if STOP.load(Ordering::SeqCst) {
                progress.line(&format!(
                    "stopped after iteration {}; continue with `spear train --resume {}`",
                    self.iteration,
                    self.run.root.display()
                ));
                return Ok(());
            }
            let m = self.step()?;
            let third = match &m.math {
                Some(x) => format!("calls {:.2}", x.tool_calls),
                None => format!("valid {:.2}", m.valid_action_rate),
            };
            let summary = format!(
                "success {:.2} reward {:.2} {third} replay {} | gen {:.1}s upd {:.1}s",
                m.success_rate, m.episode_reward, m.replay_samples, m.time.generate, m.time.update
            );
            progress.iteration(self.iteration, self.cfg.run.iterations, &summary);
        }
        Ok(())
    }

    /// The household part of iteration `t` (spec §2.8 step 1): `env.tasks_per_iter` games
    /// drawn with the run's RNG, G environments each, the agent loop; Dr.BoT flags per step.
    fn collect_household(&mut self, t: u64) -> anyhow::Result<Collected> {
        let EnvRun::Household { tasks, .. } = &self.env else {
            unreachable!("collect_household on a household run")
        };
        let games = tasks.train.games.clone();
        let max_turns = self.cfg.env.max_turns as usize;
        self.collect_agent(t, games.len(), |n| {
            HouseholdEnv::group(games.clone(), n, max_turns)
        })
    }

    fn collect_webshop(&mut self, t: u64) -> anyhow::Result<Collected> {
        let EnvRun::Webshop { tasks, .. } = &self.env else {
            unreachable!("collect_webshop on a WebShop run")
        };
        let catalog = tasks.catalog.clone();
        let max_turns = self.cfg.env.max_turns as usize;
        self.collect_agent(t, tasks.train, |n| {
            setup::webshop_group(&catalog, WebshopSplit::Train, n, max_turns)
        })
    }

    /// The agent loop (household, WebShop): `tasks_per_iter` training tasks drawn with the
    /// run's RNG out of `n_train`, G environments each from `make_envs`.
    fn collect_agent<E: AgentEnv>(
        &mut self,
        t: u64,
        n_train: usize,
        make_envs: impl Fn(usize) -> Vec<E>,
    ) -> anyhow::Result<Collected> {
        let cfg = &self.cfg;
        let g = cfg.env.group_size as usize;
        let n_tasks = (cfg.env.tasks_per_iter as usize).min(n_train);
        let mut picked: Vec<usize> = sample_indices(&mut self.rng, n_train, n_tasks).into_vec();
        picked.sort_unstable();
        let mut envs = make_envs(n_tasks * g);
        let params = AgentRolloutParams {
            group_size: g,
            max_turns: cfg.env.max_turns as usize,
            history_length: cfg.env.history_length as usize,
            sampling: self.train_sampling(),
            seed: mix_seed(&[cfg.run.seed, 0x5A]),
            iteration: t,
            keep_prompts: cfg.run.log_episodes > 0,
        };
        let out = rollout_agent(&self.policy, &mut envs, &picked, &params)?;
        let flags = out
            .samples
            .iter()
            .map(|s| {
                let text =
                    &out.episodes[s.traj_uid.0 as usize].turns[s.step_index as usize].response;
                response_flags(&s.response_tokens, text, &cfg.rl.drbot)
            })
            .collect();
        Ok(Collected {
            out,
            flags,
            math: None,
        })
    }

    fn collect_math(&mut self, t: u64) -> anyhow::Result<Collected> {
        let EnvRun::Math(run) = &self.env else {
            unreachable!("collect_math on a math run")
        };
        let cfg = &self.cfg;
        let train = &run.tasks.train;
        let n = (cfg.env.tasks_per_iter as usize).min(train.len());
        let mut picked: Vec<usize> = sample_indices(&mut self.rng, train.len(), n).into_vec();
        picked.sort_unstable();
        let problems: Vec<_> = picked.iter().map(|&i| train[i].clone()).collect();
        let (out, flags, stats) = collect_math(
            &self.policy,
            run,
            &problems,
            cfg.env.group_size as usize,
            &self.train_sampling(),
            mix_seed(&[cfg.run.seed, 0x5A]),
            t,
            &cfg.rl.drbot,
        )?;
        Ok(Collected {
            out,
            flags,
            math: Some(stats),
        })
    }

    /// One iteration `t = iteration + 1`; logs, evaluates and checkpoints as configured.
    /// The environment part ([`Self::collect_household`], [`Self::collect_math`]) gives
    /// samples, episodes and Dr.BoT flags; the rest is shared.
    pub fn step(&mut self) -> anyhow::Result<IterationMetrics> {
        let start = Instant::now();
        let t = self.iteration + 1;
        let cfg = self.cfg.clone();
        let rl = &cfg.rl;
        let collected = match self.env {
            EnvRun::Household { .. } => self.collect_household(t)?,
            EnvRun::Webshop { .. } => self.collect_webshop(t)?,
            EnvRun::Math(_) => self.collect_math(t)?,
        };
        let is_math = collected.math.is_some();
        let out = collected.out;
        let mut episodes = out.episodes;

        // 2. Rewards and Dr.BoT filters (spec §2.8).
        let t_adv = Instant::now();
        let mut batch = Batch::new(out.samples);
        compute_step_returns(&mut batch, rl.gigpo.gamma);
        assign_episode_scores(&mut batch, t, &rl.reward);
        for e in &mut episodes {
            if let Some(s) = batch.samples.iter().find(|s| s.traj_uid.0 == e.traj) {
                e.score = s.score;
            }
        }
        let flags = collected.flags;
        let filter_stats = apply_response_filters(&mut batch, &flags, &rl.drbot);
        let valid_rate = if batch.is_empty() {
            0.0
        } else {
            batch.samples.iter().filter(|s| s.is_action_valid).count() as f64 / batch.len() as f64
        };
        let samples_total = batch.len();
        let (mut kept, _report) = filter_groups_by_std(&batch, &rl.drbot, &mut self.rng)?;
        // 4. Invalid-action penalty; 5. advantages.
        apply_invalid_action_penalty(&mut kept, rl.reward.invalid_action_penalty);
        compute_advantages(&mut kept, &rl.advantage, &rl.gigpo);
        // 6. The SIL batch.
        let draw = if rl.replay.enabled {
            self.buffer.maybe_replay()
        } else {
            None
        };
        let replay_samples = draw.as_ref().map(|d| d.samples.clone()).unwrap_or_default();
        let adv_secs = t_adv.elapsed().as_secs_f64();

        // 7. Actor update.
        let plan = UpdatePlan::build(kept.len(), replay_samples.len(), t, &rl.update, &rl.replay);
        let lr = cfg.optim.lr;
        let schedule = LrSchedule::Warmup {
            warmup: cfg.optim.warmup_steps,
        };
        let stats = run_update(
            &self.policy,
            self.reference.as_ref(),
            &mut self.opt,
            &plan,
            &kept.samples,
            &replay_samples,
            rl,
            &|step| schedule.lr_at(lr, step),
            cfg.optim.token_budget as usize,
            sampling_temperature(cfg.sampling.temperature),
            rl.drbot.max_response_length as usize,
            &mut self.rng,
        )?;

        // 8. Buffer update.
        let t_buf = Instant::now();
        if rl.replay.enabled {
            self.buffer.update(&kept, t);
        }
        let adv_secs = adv_secs + t_buf.elapsed().as_secs_f64();
        self.iteration = t;

        // Trajectory records: advantages of the trained samples.
        let adv: HashMap<(u64, u32), f64> = kept
            .samples
            .iter()
            .map(|s| ((s.traj_uid.0, s.step_index), s.advantage))
            .collect();
        for s in &batch.samples {
            let ep = &mut episodes[s.traj_uid.0 as usize];
            // A math sample is the whole conversation: every turn shares its advantage.
            let turns = if is_math {
                &mut ep.turns[..]
            } else {
                std::slice::from_mut(&mut ep.turns[s.step_index as usize])
            };
            for turn in turns {
                turn.masked = !s.has_loss_tokens();
                if let Some(&a) = adv.get(&(s.traj_uid.0, s.step_index)) {
                    turn.advantage = Some(a);
                }
            }
        }

        // 9. Evaluation.
        let mut eval_secs = 0.0;
        if cfg.run.eval_every > 0 && (t % cfg.run.eval_every == 0 || t == cfg.run.iterations) {
            let (_recs, secs) = self.evaluate()?;
            eval_secs = secs;
        }

        // Metrics.
        let on = stats.on_policy.mean();
        let rp = stats.replay.mean();
        let n_ep = episodes.len().max(1) as f64;
        let mut by_type: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for e in &episodes {
            let x = by_type.entry(e.task_type.clone()).or_default();
            x.0 += e.won as u8 as f64;
            x.1 += 1.0;
        }
        let t_save = Instant::now();
        let mut m = IterationMetrics {
            iteration: t,
            success_rate: episodes.iter().filter(|e| e.won).count() as f64 / n_ep,
            success_by_type: by_type.into_iter().map(|(k, (w, n))| (k, w / n)).collect(),
            episode_reward: episodes.iter().map(|e| e.episode_reward).sum::<f64>() / n_ep,
            episode_length: episodes.iter().map(|e| e.turns.len() as f64).sum::<f64>() / n_ep,
            score: episodes.iter().map(|e| e.score).sum::<f64>() / n_ep,
            task_score: episodes
                .iter()
                .map(EpisodeRecord::task_score_or_won)
                .sum::<f64>()
                / n_ep,
            valid_action_rate: valid_rate,
            samples: samples_total as u64,
            masked_samples: filter_stats.masked as u64,
            trained_samples: kept.len() as u64,
            entropy: on.entropy,
            approx_kl: on.ppo_kl,
            kl_loss: on.kl_loss,
            clip_frac: on.pg_clipfrac,
            clip_frac_dual: on.dual_clipfrac,
            clip_cov_frac: on.clip_cov_frac,
            replay_clip_cov_frac: rp.clip_cov_frac,
            pg_loss: on.pg_loss,
            grad_norm: if stats.grad_norms.is_empty() {
                0.0
            } else {
                stats.grad_norms.iter().sum::<f64>() / stats.grad_norms.len() as f64
            },
            lr: stats.lr,
            toolcall_coef: toolcall_mode_weight(
                rl.reward.toolcall_reward,
                t,
                rl.reward.max_toolcall_steps,
            ),
            sil_weight: if rl.replay.enabled {
                replay_weight(
                    t,
                    rl.replay.max_replay_loss_steps,
                    rl.replay.replay_loss_coef,
                )
            } else {
                0.0
            },
            buffer_samples: self.buffer.stored_samples() as u64,
            replay_samples: replay_samples.len() as u64,
            replay_p50: draw.as_ref().and_then(|d| d.p50_mean),
            gen_tokens_per_s: out.generated_tokens as f64 / out.generate_secs.max(1e-9),
            train_tokens_per_s: stats.tokens as f64 / stats.secs.max(1e-9),
            time: PhaseTimes {
                generate: out.generate_secs,
                env: out.env_secs,
                advantage: adv_secs,
                update: stats.secs,
                eval: eval_secs,
                save: 0.0,
                total: 0.0,
            },
            elapsed: 0.0,
            math: collected.math,
        };
        if cfg.run.log_episodes > 0 {
            let n = cfg.run.log_episodes as usize;
            let path = self.run.trajectories(t);
            let mut text = String::new();
            for e in episodes.iter().take(n) {
                text.push_str(&serde_json::to_string(e)?);
                text.push('\n');
            }
            spear_model::checkpoint::write_atomic(&path, text.as_bytes())?;
        }
        m.time.save = t_save.elapsed().as_secs_f64();
        m.time.total = start.elapsed().as_secs_f64();
        self.elapsed += m.time.total;
        m.elapsed = self.elapsed;
        // Log first, then checkpoint: a resume drops log lines newer than its checkpoint.
        append_jsonl(&self.run.metrics(), &m)?;
        if t % cfg.run.save_every == 0 || t == cfg.run.iterations || STOP.load(Ordering::SeqCst) {
            self.checkpoint()?;
        }
        Ok(m)
    }

    /// The run's evaluation records so far.
    pub fn eval_records(&self) -> anyhow::Result<Vec<EvalRecord>> {
        if !self.run.eval().exists() {
            return Ok(vec![]);
        }
        crate::run_dir::read_jsonl(&self.run.eval())
    }

    /// The training episodes' records are written per iteration; this reads one back.
    pub fn episodes(&self, iteration: u64) -> anyhow::Result<Vec<EpisodeRecord>> {
        crate::run_dir::read_jsonl(&self.run.trajectories(iteration))
    }
}

/// `valid_seen 0.42 [0.34, 0.51] · valid_unseen …`.
pub fn eval_summary(recs: &[EvalRecord]) -> String {
    recs.iter()
        .map(|r| {
            format!(
                "{} {:.2} [{:.2}, {:.2}] (n={})",
                r.split, r.success_rate, r.ci_low, r.ci_high, r.episodes
            )
        })
        .collect::<Vec<_>>()
        .join(" · ")
}
