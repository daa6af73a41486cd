//! One training run (spec §2.8): rollout → rewards (extrinsic + SPEAR's decaying tool-call
//! reward) → Dr.BoT filters → invalid-action penalty → advantages → SIL replay draw →
//! on-policy then replay updates → buffer update → evaluation → log → checkpoint.
//!
//! The environment is a [`TaskSuite`] (built by [`crate::tasks::build`] from `env.kind`) and
//! the model is reached through the [`ChatSampler`] door for rollouts: this module names no
//! environment. [`Trainer::step`] reads like spec §2.8; the learner's plain-data steps are in
//! [`super::learn`].

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;
use rand::seq::index::sample as sample_indices;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use spear_model::{AdamW, AdamWConfig, Decoder, LrSchedule, Policy};
use spear_rl::replay::ReplayBuffer;
use spear_rl::update_plan::UpdatePlan;

use super::config::{EngineKind, RolloutMode, TrainConfig};
use super::learn::{self, IterationInputs};
use super::sft::{run_sft, run_sft_tokens, SftSettings};
use super::state::{self, TrainerState};
use super::update::run_update;
use crate::rollout::http::{HttpEngine, HttpExternal};
use crate::rollout::{ChatSampler, ExternalEngine};
use crate::run_dir::{
    append_jsonl, drop_iteration_lines, remove_stale_temporaries, truncate_jsonl, EpisodeRecord,
    EvalRecord, IterationMetrics, RunDir, RunLock,
};
use crate::seed::mix_seed;
use crate::tasks::{self, CollectSettings, Collected, EvalSettings, TaskSuite, WarmStart};

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
    /// The environment.
    suite: Box<dyn TaskSuite>,
    /// Frozen weights RL started from, for the KL loss (`rl.loss.use_kl_loss`).
    reference: Option<Policy>,
    /// A rollout engine with weights of its own ([`Trainer::set_rollout_engine`]); `None`: the
    /// policy samples in process.
    engine: Option<Box<dyn ExternalEngine>>,
    /// Async with an external engine: the next iteration's rollout, collected during the last
    /// update (not checkpointed: a resumed run collects its first iteration anew).
    pending: Option<Collected>,
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
        t.start_fresh(progress)?;
        Ok(t)
    }

    /// The weights RL starts from (the warm start, or `model.init_checkpoint`), the KL
    /// reference, and the iteration-0 checkpoint.
    fn start_fresh(&mut self, progress: &dyn Progress) -> anyhow::Result<()> {
        if self.cfg.model.init_checkpoint.is_empty() {
            self.warm_start(progress)?;
        } else {
            self.load_init(progress)?;
            if self.cfg.sft.after_init_checkpoint {
                self.warm_start(progress)?;
            } else if self.cfg.sft.enabled {
                progress.line(
                    "warm start skipped: RL starts from model.init_checkpoint as it is \
                     (sft.after_init_checkpoint = true would run SFT on top of it)",
                );
            }
        }
        self.add_lora(progress)?;
        self.freeze_reference()?;
        self.checkpoint()
    }

    /// With `model.lora_rank > 0`: LoRA adapters on the policy, every other weight frozen (the
    /// optimizer then holds moments for the adapters only). Added after the warm start, and
    /// before a checkpoint is loaded on resume, so the names match.
    fn add_lora(&mut self, progress: &dyn Progress) -> anyhow::Result<()> {
        let Some(lora) = self.cfg.model.lora(mix_seed(&[self.cfg.run.seed, 0x10A])) else {
            return Ok(());
        };
        let n = spear_model::lora::add_lora(&mut self.policy.model, &lora)
            .context("model.lora_target_modules")?;
        let held = if self.cfg.model.lora_base_dtype.0 == spear_model::ComputeDtype::Bf16 {
            let k = spear_model::lora::hold_frozen_base_in_bf16(&mut self.policy.model)
                .context("model.lora_base_dtype")?;
            format!("; the frozen base ({k} matrices) held in bf16")
        } else {
            String::new()
        };
        let params = self.policy.model.params();
        progress.line(&format!(
            "LoRA r = {}, alpha = {} on {n} weights: {:.3} M of {:.2} M parameters train{held}",
            lora.rank,
            lora.alpha,
            params.num_trainable() as f64 / 1e6,
            params.num_params() as f64 / 1e6
        ));
        Ok(())
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
        let mut model = Decoder::random(m.config().clone(), 0, 0.02, m.dtype(), &m.device())?;
        model.compute_dtype = m.compute_dtype;
        spear_model::checkpoint::load_checkpoint(&path, &model, adamw_config(&self.cfg))
            .with_context(|| format!("loading the KL reference {}", path.display()))?;
        self.reference = Some(Policy::new(model, self.policy.tokenizer.clone())?);
        Ok(())
    }

    /// Loads `model.init_checkpoint`'s weights (not its optimizer).
    fn load_init(&mut self, progress: &dyn Progress) -> anyhow::Result<()> {
        let path = Path::new(&self.cfg.model.init_checkpoint);
        // A checkpoint (`…/checkpoints/iter_000040`), a run's `checkpoints` folder (its
        // latest complete checkpoint) or a run directory (the same).
        let dir = if path.join("model.safetensors").is_file() {
            path.to_path_buf()
        } else {
            let latest = match state::latest(path)? {
                Some(d) => Some(d),
                None => state::latest(&path.join("checkpoints"))?,
            };
            latest.with_context(|| {
                format!(
                    "model.init_checkpoint = {}: not a checkpoint (no model.safetensors), nor a \
                     run's checkpoints folder or run directory with a complete checkpoint; give \
                     e.g. runs/NAME or runs/NAME/checkpoints/iter_000040",
                    path.display()
                )
            })?
        };
        state::check_vocabulary(&dir, &self.policy, "model.init_checkpoint")?;
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
                t.add_lora(progress)?;
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
                t.start_fresh(progress)?;
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
        let (suite, policy) = tasks::build(&cfg)?;
        progress.line(&format!(
            "{}; policy {} ({:.2} M parameters, vocabulary {}) in {:.1}s",
            suite.describe(),
            cfg.model.name,
            policy.model.params().num_params() as f64 / 1e6,
            policy.tokenizer.vocab_size(),
            t0.elapsed().as_secs_f64()
        ));
        if let Some(r) = suite.references()? {
            progress.line(&r);
        }
        let engine = match cfg.rollout.engine {
            EngineKind::Local => None,
            EngineKind::Http => {
                let r = &cfg.rollout;
                let sync_dir = if r.sync_dir.is_empty() {
                    run.root.join("weights")
                } else {
                    std::path::PathBuf::from(&r.sync_dir)
                };
                let e = HttpEngine::new(r, sync_dir)?;
                let infos = e.check(&policy, cfg.sampling.max_new_tokens as usize + 1)?;
                let lens: Vec<String> = infos
                    .iter()
                    .map(|i| match i.max_model_len {
                        Some(l) => format!("{} (context {l})", i.url),
                        None => i.url.clone(),
                    })
                    .collect();
                progress.line(&format!(
                    "rollouts on {} {} server(s): {}; weights via {}",
                    infos.len(),
                    r.api,
                    lens.join(", "),
                    e.sync_dir().display()
                ));
                if cfg.rl.loss.bypass_mode {
                    progress.line(
                        "rl.loss.bypass_mode = true: the servers' log-probs are the old \
                         log-probs (nothing is recomputed, the mismatch metrics read 0); set \
                         rl.loss.bypass_mode = false to recompute them and log the mismatch",
                    );
                }
                Some(Box::new(HttpExternal::new(e, &policy)?) as Box<dyn ExternalEngine>)
            }
        };
        let seed = cfg.run.seed;
        Ok(Self {
            engine,
            opt: AdamW::new(adamw_config(&cfg)),
            buffer: ReplayBuffer::new(&cfg.rl.replay, mix_seed(&[seed, 0xB0FF])),
            rng: ChaCha8Rng::seed_from_u64(mix_seed(&[seed, 0x7A1])),
            iteration: 0,
            elapsed: 0.0,
            suite,
            policy,
            reference: None,
            pending: None,
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
            group_by_length: self.cfg.sft.group_by_length,
        };
        let demos = self.suite.warm_start();
        let (n, what) = match demos {
            WarmStart::Text(x, what) => (x.len(), what),
            WarmStart::Tokens(x, what) => (x.len(), what),
        };
        progress.line(&format!(
            "warm start: SFT on {n} {what}, {} epoch(s)",
            s.epochs
        ));
        let bar = progress.sft_bar();
        let log = |m: &str| progress.line(m);
        let rep = match demos {
            WarmStart::Text(x, _) => run_sft(&self.policy, x, &s, bar.as_ref(), Some(&log))?,
            WarmStart::Tokens(x, _) => {
                run_sft_tokens(&self.policy, x, &s, bar.as_ref(), Some(&log))?
            }
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
            vocab: Some(self.policy.tokenizer.fingerprint()),
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

    /// Evaluates every split of the suite at the current iteration and appends `eval.jsonl`.
    /// Returns the records and the seconds it took.
    pub fn evaluate(&self) -> anyhow::Result<(Vec<EvalRecord>, f64)> {
        let start = Instant::now();
        let seed = mix_seed(&[self.cfg.run.seed, self.iteration, 0xE]);
        let s = EvalSettings::from_config(&self.cfg, seed, self.iteration);
        let mut recs = vec![];
        for split in self.suite.eval_splits() {
            let rec = self.suite.evaluate(&self.policy, &split, &s)?;
            append_jsonl(&self.run.eval(), &rec)?;
            recs.push(rec);
        }
        Ok((recs, start.elapsed().as_secs_f64()))
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
            .suite
            .eval_splits()
            .iter()
            .all(|n| done.contains(n.as_str())))
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
            let (m, headline) = self.step_with_headline()?;
            let summary = format!(
                "success {:.2} reward {:.2} {headline} replay {} | gen {:.1}s upd {:.1}s",
                m.success_rate, m.episode_reward, m.replay_samples, m.time.generate, m.time.update
            );
            progress.iteration(self.iteration, self.cfg.run.iterations, &summary);
        }
        Ok(())
    }

    /// Spec §2.8 step 1: `env.tasks_per_iter` training tasks drawn with the run's RNG (G
    /// episodes each) and the settings of iteration `t`'s collection, by a sampler holding the
    /// weights of `version` updates.
    fn collect_plan(&mut self, t: u64, version: u64) -> (Vec<usize>, CollectSettings) {
        let cfg = &self.cfg;
        let n_train = self.suite.num_train_tasks();
        let n = (cfg.env.tasks_per_iter as usize).min(n_train);
        let mut picked: Vec<usize> = sample_indices(&mut self.rng, n_train, n).into_vec();
        picked.sort_unstable();
        let s = CollectSettings {
            group_size: cfg.env.group_size as usize,
            max_turns: cfg.env.max_turns as usize,
            history_length: cfg.env.history_length as usize,
            sampling: tasks::train_sampling(cfg),
            seed: mix_seed(&[cfg.run.seed, 0x5A]),
            iteration: t,
            keep_prompts: cfg.run.log_episodes > 0,
            drbot: cfg.rl.drbot.clone(),
            concurrent_episodes: cfg.rollout.mode == RolloutMode::Async,
            policy_version: version,
        };
        (picked, s)
    }

    /// The sampler of the rollouts: the external engine when one is set, else the policy.
    fn rollout_sampler(&self) -> &dyn ChatSampler {
        match &self.engine {
            Some(e) => e.sampler(),
            None => &self.policy,
        }
    }

    /// Spec §2.8 step 1, now: the collection of iteration `t` with the current weights.
    fn collect(&mut self, t: u64) -> anyhow::Result<Collected> {
        if let Some(e) = &self.engine {
            // Before the first rollout (after the warm start, or a resume) the engine loads the
            // trainer's weights; nothing happens when it already holds this version.
            if e.version() != self.iteration {
                e.sync_weights(&self.policy, self.iteration)
                    .context("loading the policy's weights into the rollout engine")?;
            }
        }
        let version = match &self.engine {
            Some(e) => e.version(),
            // The in-process sampler holds the weights of every update so far.
            None => self.iteration,
        };
        let (picked, s) = self.collect_plan(t, version);
        self.suite.collect(self.rollout_sampler(), &picked, &s)
    }

    /// Sets a rollout engine with weights of its own (an inference-server pool, or a
    /// [`crate::rollout::SnapshotEngine`]): rollouts go through it, it receives the weights
    /// after every update (now too, so that it starts from the trainer's), and with
    /// `rollout.mode = "async"` the collection of iteration t+1 overlaps the update of
    /// iteration t. Evaluation stays on the trainer's policy.
    pub fn set_rollout_engine(&mut self, engine: Box<dyn ExternalEngine>) -> anyhow::Result<()> {
        engine.sync_weights(&self.policy, self.iteration)?;
        self.engine = Some(engine);
        self.pending = None;
        Ok(())
    }

    /// One iteration `t = iteration + 1`; logs, evaluates and checkpoints as configured.
    pub fn step(&mut self) -> anyhow::Result<IterationMetrics> {
        Ok(self.step_with_headline()?.0)
    }

    /// [`Self::step`], with the environment's headline figure for the progress line.
    fn step_with_headline(&mut self) -> anyhow::Result<(IterationMetrics, String)> {
        let start = Instant::now();
        let t = self.iteration + 1;
        let rl = self.cfg.rl.clone();
        // 1. Rollout (or the one that overlapped the previous update).
        let mut collected = match self.pending.take() {
            Some(c) => c,
            None => self.collect(t)?,
        };
        // Async collection's staleness bound (the version about to be updated is t − 1). With
        // the in-process sampler collection never overlaps an update, so nothing is stale.
        let async_dropped = match self.cfg.rollout.mode {
            RolloutMode::Sync => 0,
            RolloutMode::Async => {
                learn::drop_stale(&mut collected, t - 1, self.cfg.rollout.max_staleness)
            }
        };
        let (headline, sample_turns, extra) = (
            collected.headline.clone(),
            collected.sample_turns,
            collected.extra.clone(),
        );
        let rollout_times = (
            collected.out.generate_secs,
            collected.out.env_secs,
            collected.out.generated_tokens,
        );
        // 2.–5. Rewards, Dr.BoT filters, invalid-action penalty, advantages.
        let t_adv = Instant::now();
        let mut it = learn::prepare(collected, t, &rl, &mut self.rng)?;
        let mut adv_secs = t_adv.elapsed().as_secs_f64();
        // verl's `recompute_log_prob`: the trainer's own behaviour log-probs become
        // `old_log_probs`; the engine's stay in `rollout_log_probs` (mismatch metrics, TIS).
        // In bypass mode the engine's are kept as `old_log_probs`.
        let t_old = Instant::now();
        let mismatch = if rl.loss.bypass_mode {
            super::update::bypass_old_log_probs(&mut it.kept.samples)?
        } else {
            super::update::recompute_old_log_probs(
                &self.policy,
                &mut it.kept.samples,
                self.cfg.optim.token_budget as usize,
                sampling_temperature(self.cfg.sampling.temperature),
            )?
        };
        let old_log_prob_secs = t_old.elapsed().as_secs_f64();
        let t_adv = Instant::now();
        // 6. The SIL batch.
        let draw = if rl.replay.enabled {
            self.buffer.maybe_replay()
        } else {
            None
        };
        let replay_p50 = draw.as_ref().and_then(|d| d.p50_mean);
        let replay_samples = draw.map(|d| d.samples).unwrap_or_default();
        adv_secs += t_adv.elapsed().as_secs_f64();
        // 7. Actor update: on-policy, then γ(t)-scaled replay mini-batches.
        let plan = UpdatePlan::build(
            it.kept.len(),
            replay_samples.len(),
            t,
            &rl.update,
            &rl.replay,
        );
        let (lr, warmup) = (self.cfg.optim.lr, self.cfg.optim.warmup_steps);
        let schedule = LrSchedule::Warmup { warmup };
        // Async with an external engine: iteration t+1's rollout runs while this update does
        // (its tasks are drawn now); the engine gets the new weights when the update ends.
        let overlap = self.cfg.rollout.mode == RolloutMode::Async
            && t < self.cfg.run.iterations
            && !STOP.load(Ordering::SeqCst);
        let next = match &self.engine {
            Some(e) if overlap => Some(self.collect_plan(t + 1, e.version())),
            _ => None,
        };
        let (policy, reference, opt, rng) = (
            &self.policy,
            self.reference.as_ref(),
            &mut self.opt,
            &mut self.rng,
        );
        let (suite, engine) = (&*self.suite, self.engine.as_deref());
        let token_budget = self.cfg.optim.token_budget as usize;
        let temperature = sampling_temperature(self.cfg.sampling.temperature);
        let (stats, pending) = std::thread::scope(|scope| {
            let handle = match (&next, engine) {
                (Some((picked, s)), Some(e)) => {
                    Some(scope.spawn(move || suite.collect(e.sampler(), picked, s)))
                }
                _ => None,
            };
            let stats = run_update(
                policy,
                reference,
                opt,
                &plan,
                &it.kept.samples,
                &replay_samples,
                &rl,
                &|step| schedule.lr_at(lr, step),
                token_budget,
                temperature,
                rl.drbot.max_response_length as usize,
                rng,
            )
            .and_then(|stats| {
                if let Some(e) = engine {
                    e.sync_weights(policy, t)
                        .context("loading the updated weights into the rollout engine")?;
                }
                Ok(stats)
            });
            let pending = handle.map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(anyhow::anyhow!(
                        "the rollout overlapping the update of iteration {t} panicked"
                    ))
                })
            });
            (stats, pending)
        });
        let stats = stats?;
        self.pending = pending.transpose()?;
        learn::record_advantages(&mut it, sample_turns);
        // 8. Buffer update (the kept samples move into the buffer).
        let t_buf = Instant::now();
        if rl.replay.enabled {
            let kept = std::mem::take(&mut it.kept);
            self.buffer.update_owned(kept, &it.kept_groups, t);
        }
        adv_secs += t_buf.elapsed().as_secs_f64();
        self.iteration = t;
        // 9. Evaluation.
        let mut eval_secs = 0.0;
        if self.eval_due(t) {
            eval_secs = self.evaluate()?.1;
        }
        // 10. Log and checkpoint.
        let t_save = Instant::now();
        let mut m = learn::iteration_metrics(&IterationInputs {
            t,
            iteration: &it,
            stats: &stats,
            sil_weight: if rl.replay.enabled {
                plan.replay_weight
            } else {
                0.0
            },
            buffer_samples: self.buffer.stored_samples() as u64,
            replay_samples: replay_samples.len() as u64,
            replay_p50,
            rollout_times,
            adv_secs,
            eval_secs,
            extra,
            mismatch,
            old_log_prob_secs,
            async_dropped,
        });
        if self.cfg.run.log_episodes > 0 {
            let n = self.cfg.run.log_episodes as usize;
            let mut text = String::new();
            for e in it.episodes.iter().take(n) {
                text.push_str(&serde_json::to_string(e)?);
                text.push('\n');
            }
            spear_model::checkpoint::write_atomic(&self.run.trajectories(t), text.as_bytes())?;
        }
        m.time.save = t_save.elapsed().as_secs_f64();
        m.time.total = start.elapsed().as_secs_f64();
        self.elapsed += m.time.total;
        m.elapsed = self.elapsed;
        // Log first, then checkpoint: a resume drops log lines newer than its checkpoint.
        append_jsonl(&self.run.metrics(), &m)?;
        let r = &self.cfg.run;
        if t % r.save_every == 0 || t == r.iterations || STOP.load(Ordering::SeqCst) {
            self.checkpoint()?;
        }
        Ok((m, headline))
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
