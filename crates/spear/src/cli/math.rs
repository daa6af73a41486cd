//! `spear score math`, `spear sandbox run`, `spear bench sandbox`, `spear eval --preset
//! aime24|aime25` (issue #7).

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use candle_core::{DType, Device};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use spear::rollout::math::{evaluate_math, MathEvalReport, MathEvalSettings, MathRolloutConfig};
use spear_envs::math::data::aime::{aime_problems, AimeYear};
use spear_envs::math::reward::{IncompleteRule, RewardVariant};
use spear_envs::math::sandbox::{
    Executor, HttpExecutor, Isolation, Limits, LocalExecutor, PythonEnv, SandboxPool,
};
use spear_envs::math::tool::{program_for, tool_reply, truncate_middle, MAX_TOOL_RESPONSE_CHARS};
use spear_envs::math::{compute_score, spear_score, SpearRewardConfig, ToolCallSchedule};
use spear_model::{Policy, SamplingParams};

/// Which `reward.py` function `--spear` reproduces.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum VariantArg {
    /// `..._posneg_decay_qwen3` (Qwen3-32B runs).
    Qwen3,
    /// `..._posneg_decay` (Qwen2.5-32B runs).
    Qwen25,
}

/// Arguments of `spear score math`.
#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// The ground truth (use `--answer=-3` for values starting with `-`; may be empty).
    #[arg(long, allow_hyphen_values = true)]
    pub answer: String,
    /// Strict box verification (what SPEAR uses); default is math_dapo's Minerva mode.
    #[arg(long)]
    pub strict: bool,
    /// SPEAR's wrapper (`reward.py`): strict verifier + tool-call reward; adds `acc` and
    /// `is_incomplete`; `pred` is what the wrapper reports (`""` without a box).
    #[arg(long)]
    pub spear: bool,
    /// Assistant messages that carried tool calls (for `--spear`).
    #[arg(long, default_value_t = 0)]
    pub tool_calls: usize,
    /// Training step t for the cosine decay μ(t) (for `--spear`).
    #[arg(long, default_value_t = 0)]
    pub step: u64,
    /// T of the cosine decay (`max_toolcall_steps`).
    #[arg(long, default_value_t = 200)]
    pub max_toolcall_steps: u64,
    /// Reward variant (for `--spear`).
    #[arg(long, value_enum, default_value_t = VariantArg::Qwen3)]
    pub variant: VariantArg,
    /// `is_incomplete` = no boxed answer AND no tool call (the CPU presets' rule) instead
    /// of upstream's (only a boxed `[INVALID]` is incomplete).
    #[arg(long)]
    pub incomplete_needs_no_tool_call: bool,
}

/// Runs `spear score math`: reads the raw response from stdin (no trimming).
pub fn score(args: ScoreArgs) -> anyhow::Result<()> {
    let mut raw = Vec::new();
    std::io::stdin()
        .read_to_end(&mut raw)
        .context("reading the response from stdin")?;
    let response = String::from_utf8(raw).context("the response on stdin is not UTF-8")?;
    let out = if args.spear {
        let cfg = SpearRewardConfig {
            variant: match args.variant {
                VariantArg::Qwen3 => RewardVariant::Qwen3,
                VariantArg::Qwen25 => RewardVariant::Qwen25,
            },
            schedule: ToolCallSchedule::Cosine {
                max_steps: args.max_toolcall_steps,
            },
            incomplete: if args.incomplete_needs_no_tool_call {
                IncompleteRule::NoAnswerNoToolCall
            } else {
                IncompleteRule::Upstream
            },
        };
        let s = spear_score(&response, &args.answer, args.tool_calls, args.step, &cfg);
        serde_json::json!({
            "score": s.score,
            "pred": s.pred,
            "acc": s.acc,
            "is_incomplete": s.is_incomplete,
        })
    } else {
        // `pred` as math_dapo returns it: `null` for strict mode's `None`, the string
        // "[INVALID]" in Minerva mode without an `Answer:` line.
        let s = compute_score(&response, &args.answer, args.strict);
        serde_json::json!({ "score": s.score, "pred": s.pred })
    };
    println!("{out}");
    Ok(())
}

/// Which sandbox runs the code.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum IsolationArg {
    /// bubblewrap; refuses to run anything when it is missing (the default).
    Bwrap,
    /// rlimits only: NOT an isolation boundary (trusted code only; chosen by name).
    Rlimits,
}

/// Arguments of `spear sandbox run`.
#[derive(Args, Debug)]
pub struct SandboxRunArgs {
    /// The code as the model would pass it (a python fence is extracted; the
    /// recipe's wrapper imports are prepended).
    pub file: PathBuf,
    /// Wall-clock limit, seconds.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Memory limit, MiB.
    #[arg(long, default_value_t = 1024)]
    pub memory_mb: u64,
    /// Local isolation.
    #[arg(long, value_enum, default_value_t = IsolationArg::Bwrap)]
    pub isolation: IsolationArg,
    /// Use a SandboxFusion service instead (`http://host:port/run_code`).
    #[arg(long)]
    pub url: Option<String>,
    /// Print the raw run result (status, return code, stdout, stderr) as JSON too.
    #[arg(long)]
    pub json: bool,
}

fn local_executor(isolation: IsolationArg) -> anyhow::Result<LocalExecutor> {
    if isolation == IsolationArg::Bwrap {
        // Refuse before preparing the Python environment.
        LocalExecutor::check_bwrap_installed()?;
    }
    let env = PythonEnv::ensure_default()?;
    Ok(match isolation {
        IsolationArg::Bwrap => LocalExecutor::new(env, Isolation::Bwrap)?,
        IsolationArg::Rlimits => LocalExecutor::rlimits_only(env),
    })
}

/// Runs `spear sandbox run`: prints the tool reply the model would see.
pub fn sandbox_run(args: SandboxRunArgs) -> anyhow::Result<()> {
    let code = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        bail!("--timeout must be a positive number of seconds");
    }
    let limits = Limits {
        timeout: Duration::from_secs_f64(args.timeout),
        memory_mb: args.memory_mb,
        ..Limits::default()
    };
    let exec: Box<dyn Executor> = match &args.url {
        Some(url) => Box::new(HttpExecutor::new(url).map_err(anyhow::Error::msg)?),
        None => Box::new(local_executor(args.isolation)?),
    };
    let r = exec.run(&program_for(&code), &limits);
    if args.json {
        eprintln!(
            "{}",
            serde_json::json!({
                "executor": exec.name(),
                "status": format!("{:?}", r.status),
                "return_code": r.return_code,
                "stdout": r.stdout,
                "stderr": r.stderr,
                "execution_time": r.execution_time,
            })
        );
    }
    println!(
        "{}",
        truncate_middle(&tool_reply(&r), MAX_TOOL_RESPONSE_CHARS)
    );
    Ok(())
}

/// Arguments of `spear bench sandbox`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Sequential calls per measurement.
    #[arg(long, default_value_t = 20, value_parser = crate::cli::at_least_one)]
    pub calls: usize,
    /// Concurrency of the throughput measurement.
    #[arg(long, default_value_t = 4, value_parser = crate::cli::at_least_one)]
    pub concurrency: usize,
}

struct Measure {
    label: String,
    median_ms: f64,
    mean_ms: f64,
    calls_per_s: f64,
}

/// Median of a non-empty sample (mean of the two middle values for an even count).
fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

fn time_sequential(label: &str, n: usize, mut f: impl FnMut()) -> Measure {
    f(); // warm-up (page cache)
    let mut per_call = Vec::with_capacity(n);
    let t = Instant::now();
    for i in 0..n {
        let c = Instant::now();
        f();
        per_call.push(c.elapsed().as_secs_f64() * 1000.0);
        eprint!("\r  {label}: {}/{n}", i + 1);
    }
    eprintln!();
    let s = t.elapsed().as_secs_f64();
    Measure {
        label: label.to_string(),
        median_ms: median(&mut per_call),
        mean_ms: s * 1000.0 / n as f64,
        calls_per_s: n as f64 / s,
    }
}

/// Runs `spear bench sandbox`.
pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let n = args.calls.max(1);
    let env = PythonEnv::ensure_default()?;
    let limits = Limits::default();
    let trivial = "print(1)".to_string();
    let numpy = program_for("print(1)"); // the recipe's wrapper imports numpy
    let mut rows = Vec::new();

    // Python's own start-up: the interpreter run directly, nothing else.
    let dir = std::env::temp_dir().join(format!("spear-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    for (name, code) in [("trivial", &trivial), ("numpy", &numpy)] {
        let f = dir.join(format!("{name}.py"));
        std::fs::write(&f, code)?;
        rows.push(time_sequential(&format!("bare python, {name}"), n, || {
            let _ = std::process::Command::new(&env.python).arg(&f).output();
        }));
    }
    let _ = std::fs::remove_dir_all(&dir);

    let rl: Arc<dyn Executor> = Arc::new(LocalExecutor::rlimits_only(env.clone()));
    let bw: Option<Arc<dyn Executor>> = match LocalExecutor::new(env.clone(), Isolation::Bwrap) {
        Ok(e) => Some(Arc::new(e)),
        Err(e) => {
            eprintln!("spear: bubblewrap rows skipped: {e}");
            None
        }
    };
    let mut execs = vec![("rlimits (isolation off)", rl)];
    if let Some(b) = bw {
        execs.push(("bwrap (isolation on)", b));
    }
    for (label, exec) in &execs {
        for (name, code) in [("trivial", &trivial), ("numpy", &numpy)] {
            let m = time_sequential(&format!("{label}, {name}"), n, || {
                let r = exec.run(code, &limits);
                if tool_reply(&r) != "1" {
                    eprintln!("unexpected result: {r:?}");
                }
            });
            rows.push(m);
        }
        let pool = SandboxPool::new(exec.clone(), args.concurrency, limits.clone());
        let codes = vec![numpy.clone(); n * 2];
        let t = Instant::now();
        let _ = pool.run_many(&codes);
        let s = t.elapsed().as_secs_f64();
        rows.push(Measure {
            label: format!("{label}, numpy, pool x{}", args.concurrency),
            median_ms: f64::NAN,
            mean_ms: s * 1000.0 / codes.len() as f64,
            calls_per_s: codes.len() as f64 / s,
        });
    }

    println!("| setting | median ms / call | mean ms / call | calls / s |");
    println!("|---|---:|---:|---:|");
    for r in &rows {
        let med = if r.median_ms.is_nan() {
            "–".to_string()
        } else {
            format!("{:.1}", r.median_ms)
        };
        println!(
            "| {} | {med} | {:.1} | {:.2} |",
            r.label, r.mean_ms, r.calls_per_s
        );
    }
    let find = |l: &str| rows.iter().find(|r| r.label == l).map(|r| r.median_ms);
    for name in ["trivial", "numpy"] {
        if let (Some(bare), Some(rl), Some(bw)) = (
            find(&format!("bare python, {name}")),
            find(&format!("rlimits (isolation off), {name}")),
            find(&format!("bwrap (isolation on), {name}")),
        ) {
            println!(
                "{name} (medians): sandbox overhead beyond Python start-up: bwrap {:+.1} ms, rlimits {:+.1} ms (bwrap − rlimits {:+.1} ms)",
                bw - bare,
                rl - bare,
                bw - rl
            );
        }
    }
    Ok(())
}

/// An AIME set of `spear eval --preset` (the embedded problems, 30 each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AimeSet {
    /// AIME 2024 I + II.
    #[value(name = "aime24", alias = "aime2024", alias = "aime_2024")]
    Aime24,
    /// AIME 2025 I + II.
    #[value(name = "aime25", alias = "aime2025", alias = "aime_2025")]
    Aime25,
}

impl AimeSet {
    /// The embedded set's year.
    pub fn year(self) -> AimeYear {
        match self {
            AimeSet::Aime24 => AimeYear::Y2024,
            AimeSet::Aime25 => AimeYear::Y2025,
        }
    }
}

/// The options of `spear eval --preset aime24|aime25` (spec §5.3 validation, §5.4) beyond the
/// ones it shares with `--checkpoint` (`--temperature`, `--seed`); none goes with `--checkpoint`.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "AIME evaluation (with --preset)")]
pub struct AimeOptions {
    /// A known model name (`smollm2-135m`), a `.gguf` file or an HF model directory.
    #[arg(long, default_value = "smollm2-135m", conflicts_with = "checkpoint")]
    pub model: String,
    /// Samples per problem (the paper: 32).
    #[arg(long, default_value_t = 32, value_parser = crate::cli::at_least_one, conflicts_with = "checkpoint")]
    pub k: usize,
    /// Nucleus mass (the paper's validation: 0.6).
    #[arg(long, default_value_t = 0.6, conflicts_with = "checkpoint")]
    pub top_p: f64,
    /// Most tokens one assistant turn may generate.
    #[arg(long, default_value_t = 4096, conflicts_with = "checkpoint")]
    pub max_new_tokens: usize,
    /// Response budget per conversation, tool output included, in tokens (the paper: 16384).
    #[arg(long, default_value_t = 16384, conflicts_with = "checkpoint")]
    pub max_response_tokens: usize,
    /// Evaluate only the first N problems (quick runs).
    #[arg(long, conflicts_with = "checkpoint")]
    pub problems: Option<usize>,
    /// Write the report (totals and per-problem samples) as JSON here.
    #[arg(long, conflicts_with = "checkpoint")]
    pub out: Option<PathBuf>,
    /// Conversations generated together (rounded to whole problems of k samples).
    #[arg(long, default_value_t = 32, value_parser = crate::cli::at_least_one, conflicts_with = "checkpoint")]
    pub batch: usize,
    /// Concurrent sandbox calls.
    #[arg(long, default_value_t = 8, value_parser = crate::cli::at_least_one, conflicts_with = "checkpoint")]
    pub sandbox_concurrency: usize,
    /// Local sandbox isolation.
    #[arg(long, value_enum, default_value_t = IsolationArg::Bwrap, conflicts_with = "checkpoint")]
    pub isolation: IsolationArg,
    /// Use a SandboxFusion service instead (`http://host:port/run_code`).
    #[arg(long, conflicts_with = "checkpoint")]
    pub sandbox_url: Option<String>,
}

/// One AIME evaluation: the set, the sampling temperature and seed, and the AIME options.
#[derive(Debug, Clone)]
pub struct AimeEval {
    /// Which AIME set.
    pub set: AimeSet,
    /// Sampling temperature (the paper's validation: 1.0).
    pub temperature: f64,
    /// Run seed: every sample's randomness derives from it.
    pub seed: u64,
    /// The rest.
    pub opts: AimeOptions,
}

/// Runs the AIME evaluation: prints a per-problem table and avg@k / pass@k, optionally writes
/// the JSON report.
pub fn eval_aime(eval: &AimeEval) -> anyhow::Result<()> {
    let (year, args) = (eval.set.year(), &eval.opts);
    if args.k == 0 {
        bail!("--k must be at least 1");
    }
    if !(eval.temperature >= 0.0 && eval.temperature.is_finite()) {
        bail!("--temperature must be >= 0 (0 = greedy)");
    }
    if !(args.top_p > 0.0 && args.top_p <= 1.0) {
        bail!("--top-p must be in (0, 1]");
    }
    if args.max_new_tokens == 0 || args.max_response_tokens == 0 {
        bail!("--max-new-tokens and --max-response-tokens must be at least 1");
    }
    let mut problems = aime_problems(year);
    if let Some(n) = args.problems {
        if n == 0 {
            bail!("--problems must be at least 1");
        }
        problems.truncate(n);
    }
    let exec: Arc<dyn Executor> = match &args.sandbox_url {
        Some(url) => Arc::new(HttpExecutor::new(url).map_err(anyhow::Error::msg)?),
        None => Arc::new(local_executor(args.isolation)?),
    };
    let pool = SandboxPool::new(exec, args.sandbox_concurrency.max(1), Limits::default());
    // GPU 0 when there is one, else the CPU. `cuda_if_available` only asks whether the build
    // has the `cuda` feature: on a machine without a GPU the cuda build then failed with
    // CUDA_ERROR_NO_DEVICE instead of evaluating on the CPU.
    let device = Device::new_cuda(0).unwrap_or(Device::Cpu);
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(format!("loading {}", args.model));
    spinner.enable_steady_tick(Duration::from_millis(120));
    let policy = Policy::load(&args.model, DType::F32, &device)
        .with_context(|| format!("loading the model {:?}", args.model))?;
    spinner.finish_and_clear();

    let settings = MathEvalSettings {
        k: args.k,
        sampling: SamplingParams {
            temperature: eval.temperature,
            top_p: args.top_p,
            max_new_tokens: args.max_new_tokens,
            ..SamplingParams::default()
        },
        rollout: MathRolloutConfig {
            max_response_tokens: args.max_response_tokens,
            ..MathRolloutConfig::default()
        },
        seed: eval.seed,
        batch_conversations: args.batch.max(1),
    };
    let total = (problems.len() * args.k) as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} conversations ({elapsed} elapsed, ETA {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(year.data_source());
    let t0 = Instant::now();
    let report = evaluate_math(&policy, &problems, &settings, &pool, &mut |done| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    print!("{}", aime_table(&report));
    println!(
        "{}: {} problems x {} samples, T = {}, top-p = {}, seed {}, model {}, {:.1} s",
        year.data_source(),
        problems.len(),
        args.k,
        eval.temperature,
        args.top_p,
        eval.seed,
        args.model,
        secs
    );
    if let Some(path) = &args.out {
        let doc = serde_json::json!({
            "preset": year.data_source(),
            "model": args.model,
            "k": args.k,
            "temperature": eval.temperature,
            "top_p": args.top_p,
            "max_new_tokens": args.max_new_tokens,
            "max_response_tokens": args.max_response_tokens,
            "seed": eval.seed,
            "sandbox": pool.executor_name(),
            "seconds": secs,
            "avg_at_k": report.avg_at_k,
            "pass_at": report.pass_at.iter().map(|(j, v)| (format!("pass@{j}"), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
            "mean_tool_calls": report.mean_tool_calls,
            "problems": report.problems,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    Ok(())
}

/// The per-problem table and the totals (Markdown).
pub fn aime_table(r: &MathEvalReport) -> String {
    let mut s = String::new();
    s.push_str("| problem | answer | correct / k | mean tool calls | mean response tokens |\n");
    s.push_str("|---|---:|---:|---:|---:|\n");
    for p in &r.problems {
        let c = p.correct.iter().filter(|&&c| c).count();
        let n = p.correct.len().max(1) as f64;
        let calls: u32 = p.tool_calls.iter().sum();
        let toks: usize = p.response_tokens.iter().sum();
        s.push_str(&format!(
            "| {} | {} | {}/{} | {:.2} | {:.0} |\n",
            p.id,
            p.answer,
            c,
            p.correct.len(),
            calls as f64 / n,
            toks as f64 / n
        ));
    }
    s.push_str(&format!(
        "\navg@{k} = {:.4}   (mean accuracy over all samples)\n",
        r.avg_at_k,
        k = r.k
    ));
    for (j, v) in &r.pass_at {
        let note = if *j == r.k {
            "   (problems with a correct sample)"
        } else {
            "   (unbiased estimator)"
        };
        s.push_str(&format!("pass@{j} = {v:.4}{note}\n"));
    }
    s.push_str(&format!(
        "mean tool calls per conversation = {:.3}\n",
        r.mean_tool_calls
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_by_hand() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        // even count: mean of the middle two, (2 + 3) / 2
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }
}
