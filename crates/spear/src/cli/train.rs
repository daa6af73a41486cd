//! `spear train`, `spear sft`, `spear eval` (issue #5).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::Context;
use clap::{ArgGroup, Args};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use spear::run_dir::RunDir;
use spear::tasks::EvalSettings;
use spear::train::config::{EvalSplit, TrainConfig};
use spear::train::presets::{Preset, DEFAULT_PRESET};
use spear::train::trainer::{eval_summary, Progress, ResumeOptions, Trainer, STOP};

use crate::cli::math::{eval_aime, AimeEval, AimeOptions, AimeSet};

/// Where a run's config comes from.
#[derive(Args, Debug, Clone)]
pub struct ConfigArgs {
    /// Preset: a base (household-tiny, household-smollm2, alfworld, webshop-tiny, webshop,
    /// with -grpo/-gigpo/-spear; math, math-tiny, math-paper, with -grpo/-spear). Default
    /// household-tiny.
    #[arg(long, value_enum, hide_possible_values = true)]
    pub preset: Option<Preset>,
    /// A TOML config file (its missing keys take the defaults, not the preset's).
    #[arg(long, conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// Override one key, e.g. `--set run.iterations=10 --set rl.replay.enabled=false`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

impl ConfigArgs {
    /// Resolves preset / file, then the overrides.
    pub fn resolve(&self) -> anyhow::Result<TrainConfig> {
        if let Some(path) = &self.config {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the config file {}", path.display()))?;
            let base =
                TrainConfig::from_toml_str(&text).with_context(|| format!("{}", path.display()))?;
            return Ok(base.with_overrides(&self.sets)?);
        }
        let (c, notes) = self
            .preset
            .unwrap_or(DEFAULT_PRESET)
            .with_overrides(&self.sets)?;
        for n in notes {
            eprintln!("note: {n}");
        }
        Ok(c)
    }
}

/// Arguments of `spear train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Continue the run in this directory from its last complete checkpoint. `--set` may
    /// change only run.iterations, run.eval_every, run.save_every and run.log_episodes.
    #[arg(long, conflicts_with_all = ["preset", "config"])]
    resume: Option<PathBuf>,
    /// With --resume: continue from this checkpoint (e.g. `iter_000004`) instead of the latest;
    /// newer checkpoints are set aside as `discarded.iter_N`, log lines after it dropped.
    #[arg(long, requires = "resume", value_name = "CHECKPOINT")]
    from: Option<String>,
    /// Print the resolved config and exit.
    #[arg(long)]
    print_config: bool,
}

/// Terminal progress: one bar over iterations, a line per iteration and per event.
pub struct CliProgress {
    bar: ProgressBar,
}

impl CliProgress {
    /// A bar of `n` iterations (hidden when stderr is not a terminal; lines still print).
    pub fn new(n: u64, done: u64) -> Self {
        let bar = ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} it  {elapsed_precise} eta {eta}  {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix("train");
        bar.set_position(done);
        Self { bar }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for CliProgress {
    fn line(&self, msg: &str) {
        if self.bar.is_hidden() {
            eprintln!("{msg}");
        } else {
            self.bar.println(msg);
        }
    }

    fn iteration(&self, t: u64, n: u64, summary: &str) {
        self.line(&format!("[{t:>4}/{n}] {summary}"));
        self.bar.set_position(t);
        self.bar
            .set_message(summary.split(" |").next().unwrap_or("").to_string());
    }

    fn sft_bar(&self) -> Option<ProgressBar> {
        if self.bar.is_hidden() {
            return None;
        }
        let b = ProgressBar::new(1);
        b.set_prefix("sft");
        Some(b)
    }
}

fn install_ctrlc() {
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted again: exiting now (the last checkpoint is intact)");
            std::process::exit(130);
        }
        eprintln!("\nCtrl-C: finishing this iteration and its checkpoint, then stopping (Ctrl-C again to quit now)");
    });
}

/// Runs `spear train`.
pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    install_ctrlc();
    let (mut trainer, progress) = if let Some(dir) = &args.resume {
        let p0 = CliProgress::new(0, 0);
        let opts = ResumeOptions {
            from: args.from.clone(),
            sets: args.config.sets.clone(),
        };
        let t = Trainer::resume(dir, &opts, &p0)?;
        p0.finish();
        let p = CliProgress::new(t.cfg.run.iterations, t.iteration);
        (t, p)
    } else {
        let cfg = args.config.resolve()?;
        if args.print_config {
            print!("{}", cfg.to_toml_string());
            return Ok(());
        }
        let p = CliProgress::new(cfg.run.iterations, 0);
        p.line(&format!(
            "run {} → {}/{}",
            cfg.run.name, cfg.run.out_dir, cfg.run.name
        ));
        let t = Trainer::create(cfg, &p)?;
        (t, p)
    };
    trainer.train(&progress)?;
    progress.finish();
    let recs = trainer.eval_records()?;
    let last_iter = recs.iter().map(|r| r.iteration).max();
    if let Some(li) = last_iter {
        let first: Vec<_> = recs
            .iter()
            .filter(|r| r.iteration == recs[0].iteration)
            .cloned()
            .collect();
        let last: Vec<_> = recs.iter().filter(|r| r.iteration == li).cloned().collect();
        eprintln!(
            "evaluation at iteration {}: {}",
            first[0].iteration,
            eval_summary(&first)
        );
        eprintln!("evaluation at iteration {li}: {}", eval_summary(&last));
    }
    let report = write_report(&trainer.run)?;
    eprintln!("run directory: {}", trainer.run.root.display());
    println!("report: {}", report.display());
    Ok(())
}

/// Writes the run's HTML report.
fn write_report(run: &RunDir) -> anyhow::Result<PathBuf> {
    let out = run.report();
    spear::report::write_report(
        std::slice::from_ref(&run.root),
        &out,
        &spear::report::ViewerLimits::default(),
    )?;
    Ok(out)
}

/// Arguments of `spear sft`.
#[derive(Args, Debug)]
pub struct SftArgs {
    #[command(flatten)]
    config: ConfigArgs,
}

/// Runs `spear sft`: the warm start alone, evaluated, saved as a run at iteration 0.
pub fn sft(args: SftArgs) -> anyhow::Result<()> {
    install_ctrlc();
    let mut cfg = args.config.resolve()?;
    cfg.sft.enabled = true;
    // With model.init_checkpoint: a second SFT stage on top of those weights.
    cfg.sft.after_init_checkpoint = true;
    cfg.run.name = format!("{}-sft", cfg.run.name);
    let p = CliProgress::new(0, 0);
    let trainer = Trainer::create(cfg, &p)?;
    let (recs, _) = trainer.evaluate()?;
    p.finish();
    eprintln!("after SFT: {}", eval_summary(&recs));
    println!(
        "checkpoint: {} (RL from here: `spear train --resume {}`)",
        trainer.run.checkpoints().display(),
        trainer.run.root.display()
    );
    Ok(())
}

/// Arguments of `spear eval`: a run's checkpoint through its task suite (`--checkpoint`), or a
/// model on an AIME set (`--preset aime24|aime25`, with the options under "AIME evaluation").
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("target").args(["preset", "checkpoint"]).required(true)))]
pub struct EvalArgs {
    /// Evaluate a model (`--model`) on an AIME set: avg@k and pass@k (docs/math.md).
    #[arg(long, value_enum, ignore_case = true)]
    preset: Option<AimeSet>,
    /// A run directory (its last checkpoint) or a checkpoint directory `…/checkpoints/iter_N`.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// With --checkpoint: a split to evaluate instead of the run's `eval.splits` (repeatable;
    /// one of the run's environment).
    #[arg(long, value_enum, conflicts_with = "preset")]
    split: Vec<EvalSplit>,
    /// With --checkpoint: episodes (default: the run's `eval.episodes`); math runs: problems
    /// per split.
    #[arg(long, conflicts_with = "preset")]
    episodes: Option<u64>,
    /// Sampling temperature (default: the run's `eval.temperature`; AIME: 1.0, the paper's
    /// validation).
    #[arg(long)]
    temperature: Option<f64>,
    /// Seed of the evaluation sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    aime: AimeOptions,
}

pub(crate) fn find_run_and_checkpoint(path: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    if path.join("config.toml").is_file() {
        let ck = spear::train::state::latest(&path.join("checkpoints"))?
            .with_context(|| format!("{} has no complete checkpoint yet", path.display()))?;
        return Ok((path.to_path_buf(), ck));
    }
    if path.join("model.safetensors").is_file() {
        let run = path
            .parent()
            .and_then(Path::parent)
            .with_context(|| format!("{}: cannot find its run directory", path.display()))?;
        return Ok((run.to_path_buf(), path.to_path_buf()));
    }
    anyhow::bail!(
        "{} is neither a run directory (with config.toml) nor a checkpoint directory (with \
         model.safetensors)",
        path.display()
    )
}

/// Runs `spear eval`: an AIME set (`--preset`), or a checkpoint (`--checkpoint`).
pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    if let Some(set) = args.preset {
        return eval_aime(&AimeEval {
            set,
            temperature: args.temperature.unwrap_or(1.0),
            seed: args.seed,
            opts: args.aime,
        });
    }
    let path = args
        .checkpoint
        .as_ref()
        .context("give --checkpoint runs/<name> (or a checkpoint directory)")?;
    eval_checkpoint(path, &args)
}

/// `spear eval --checkpoint`: every split of the run (or `--split`) through the run's task
/// suite, with the trainer's evaluation settings.
fn eval_checkpoint(path: &Path, args: &EvalArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.episodes != Some(0), "--episodes must be at least 1");
    let (run_dir, ck) = find_run_and_checkpoint(path)?;
    let run = RunDir::new(&run_dir);
    let text = std::fs::read_to_string(run.config())
        .with_context(|| format!("reading {}", run.config().display()))?;
    let mut cfg =
        TrainConfig::from_toml_str(&text).with_context(|| format!("{}", run.config().display()))?;
    if !args.split.is_empty() {
        cfg.eval.splits = args.split.clone();
        cfg.validate()?;
    }
    if let Some(n) = args.episodes {
        cfg.eval.episodes = n;
        cfg.env.math.eval_problems = n;
    }
    if let Some(t) = args.temperature {
        cfg.eval.temperature = t;
    }
    let (suite, policy) = spear::tasks::build(&cfg)?;
    spear::train::state::check_vocabulary(&ck, &policy, "--checkpoint")?;
    spear_model::checkpoint::load_checkpoint(
        &ck.join("model.safetensors"),
        &policy.model,
        spear_model::AdamWConfig::default(),
    )?;
    eprintln!("checkpoint {}", ck.display());
    let settings = EvalSettings::from_config(&cfg, args.seed, 0);
    for name in suite.eval_splits() {
        let start = std::time::Instant::now();
        let rec = suite.evaluate(&policy, &name, &settings)?;
        let secs = start.elapsed().as_secs_f64();
        print_eval(&name, &rec, secs);
    }
    Ok(())
}

/// One split's result: avg@k / pass@k for math records, success per task type otherwise.
fn print_eval(name: &str, rec: &spear::run_dir::EvalRecord, secs: f64) {
    if let Some(m) = &rec.math {
        let pass: Vec<String> = m
            .pass_at
            .iter()
            .map(|(j, v)| format!("pass@{j} {v:.3}"))
            .collect();
        println!(
            "{name}: avg@{} {:.3} (95% CI {:.3}–{:.3}), {}, {} problems, {:.2} tool calls per \
             conversation, T = {}, {secs:.0}s",
            m.k,
            rec.success_rate,
            rec.ci_low,
            rec.ci_high,
            pass.join(", "),
            m.problems,
            m.mean_tool_calls,
            rec.temperature
        );
        return;
    }
    println!(
        "{name}: success {:.3} (95% CI {:.3}–{:.3}), score {:.3}, {} episodes, T = {}, {secs:.0}s",
        rec.success_rate, rec.ci_low, rec.ci_high, rec.task_score, rec.episodes, rec.temperature
    );
    for (ty, rate) in &rec.success_by_type {
        let n = rec.episodes_by_type.get(ty).copied().unwrap_or(0);
        let k = (rate * n as f64).round() as u64;
        let (lo, hi) = spear::run_dir::wilson_interval(k, n);
        println!("  {ty:<34} {rate:.3}  ({k}/{n}, 95% CI {lo:.3}–{hi:.3})");
    }
}
