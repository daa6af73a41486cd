//! `spear serve`: the candle engine behind vLLM's HTTP API (see `spear::serve`).

use std::path::Path;

use anyhow::Context;
use candle_core::{DType, Device};
use clap::Args;
use spear::serve::engine::Loaded;
use spear::serve::protocol::step_of;
use spear::serve::{run, ServeOptions};
use spear::train::config::TrainConfig;
use spear_model::Policy;

/// Arguments of `spear serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Port to listen on (0: any free port; the bound address is printed).
    #[arg(long)]
    pub port: u16,
    /// Interface to bind. Only loopback addresses unless --allow-remote.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Allow a non-loopback --host. The reload endpoint (`/collective_rpc reload_weights`)
    /// reads any directory the server can read: use it only on a private network.
    #[arg(long)]
    pub allow_remote: bool,
    /// The model to serve: a known name (smollm2-135m), a .gguf file, an HF model directory, a
    /// run directory (its last checkpoint) or a checkpoint directory `…/checkpoints/iter_N`.
    /// Without it the server waits for the first `reload_weights`.
    #[arg(long)]
    pub model: Option<String>,
    /// The model name answered by /v1/models and expected in requests.
    #[arg(long, default_value = "policy")]
    pub served_model_name: String,
    /// Most sequences decoded in one batch (more requests wait their turn).
    #[arg(long, default_value_t = 64, value_parser = super::at_least_one)]
    pub max_batch: usize,
    /// Compute threads (default: all cores).
    #[arg(long, value_parser = super::at_least_one)]
    pub threads: Option<usize>,
    /// HTTP worker threads; each holds one request until it is answered, so this bounds the
    /// number of concurrent requests.
    #[arg(long, default_value_t = 128, value_parser = super::at_least_one)]
    pub http_threads: usize,
    /// Cap on max_model_len (default: the model's max_position_embeddings).
    #[arg(long, value_parser = super::at_least_one)]
    pub max_model_len: Option<usize>,
    /// Policy version reported for --model (default: N of a `step_N` directory).
    #[arg(long)]
    pub weight_version: Option<u64>,
    /// Seed of the stream that seeds requests sent without a `seed`.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

fn load_model(spec: &str) -> anyhow::Result<Policy> {
    if spec == "tiny" {
        anyhow::bail!(
            "--model tiny: a from-scratch policy needs its environment's tokenizer; export one \
             as an HF directory (spear_model::checkpoint::export_hf, or serve a run directory) \
             or start without --model and POST /collective_rpc reload_weights"
        );
    }
    let p = Path::new(spec);
    let is_run = p.join("config.toml").is_file();
    let is_ckpt = !p.join("config.json").is_file()
        && p.join("model.safetensors").is_file()
        && p.parent()
            .and_then(Path::parent)
            .is_some_and(|r| r.join("config.toml").is_file());
    if is_run || is_ckpt {
        let (run_dir, ck) = super::train::find_run_and_checkpoint(p)?;
        let cfg_path = run_dir.join("config.toml");
        let text = std::fs::read_to_string(&cfg_path)
            .with_context(|| format!("reading {}", cfg_path.display()))?;
        let cfg =
            TrainConfig::from_toml_str(&text).with_context(|| format!("{}", cfg_path.display()))?;
        let (_suite, policy) = spear::tasks::build(&cfg)?;
        spear::train::state::check_vocabulary(&ck, &policy, "--model")?;
        spear_model::checkpoint::load_checkpoint(
            &ck.join("model.safetensors"),
            &policy.model,
            spear_model::AdamWConfig::default(),
        )?;
        eprintln!("checkpoint {}", ck.display());
        return Ok(policy);
    }
    Policy::load(spec, DType::F32, &Device::Cpu).with_context(|| {
        format!(
            "--model {spec:?}: loading the policy (a known name such as smollm2-135m, a .gguf \
             file, an HF model directory, a run or checkpoint directory)"
        )
    })
}

/// Runs `spear serve`.
pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if let Some(t) = args.threads {
        // Before any compute thread starts: candle's CPU kernels read it.
        std::env::set_var("RAYON_NUM_THREADS", t.to_string());
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .context("setting --threads")?;
    }
    // Check the address before a possibly slow model load.
    spear::serve::bind_address(&args.host, args.port, args.allow_remote)?;
    let initial = match &args.model {
        None => None,
        Some(spec) => {
            let policy = load_model(spec)?;
            Some(Loaded {
                policy,
                version: args.weight_version.or_else(|| step_of(spec)),
                source: spec.clone(),
            })
        }
    };
    run(ServeOptions {
        host: args.host,
        port: args.port,
        served_model_name: args.served_model_name,
        max_batch: args.max_batch,
        http_threads: args.http_threads,
        allow_remote: args.allow_remote,
        max_model_len: args.max_model_len,
        seed: args.seed,
        initial,
    })
}

/// Arguments of `spear score logprobs`.
#[derive(Args, Debug)]
pub struct LogprobArgs {
    /// The model (as `spear serve --model`).
    #[arg(long)]
    pub model: String,
    /// Score under softmax(logits / T): the distribution a sampler at temperature T reports.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Device: `cpu` or `cuda:N` (a build with `--features cuda`; then `--model` is an HF
    /// directory, a `.gguf` file or a known model name).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// `spear score logprobs`: reads JSON lines `{"prompt_ids": [...], "token_ids": [...]}` on stdin
/// and prints `{"logprobs": [...]}` per line: the in-process teacher-forced log-probs of
/// `token_ids` after `prompt_ids` (what the trainer computes), e.g. to compare with an
/// inference server's (`scripts/test-vllm.sh`).
pub fn score_logprobs(args: LogprobArgs) -> anyhow::Result<()> {
    use std::io::BufRead;
    anyhow::ensure!(
        args.temperature > 0.0 && args.temperature.is_finite(),
        "--temperature {} must be > 0",
        args.temperature
    );
    let policy = if args.device == "cpu" {
        load_model(&args.model)?
    } else {
        let dev = spear::train::config::DeviceSpec::parse(&args.device)
            .map_err(|e| anyhow::anyhow!("--device: {}", e.message))?
            .device()?;
        Policy::load(&args.model, candle_core::DType::F32, &dev)
            .with_context(|| format!("--model {} on {}", args.model, args.device))?
    };
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("stdin line {}: not JSON", i + 1))?;
        let ids = |k: &str| -> anyhow::Result<Vec<u32>> {
            serde_json::from_value(v.get(k).cloned().unwrap_or_default())
                .with_context(|| format!("stdin line {}: `{k}` must be a list of token ids", i + 1))
        };
        let (prompt, response) = (ids("prompt_ids")?, ids("token_ids")?);
        anyhow::ensure!(
            !prompt.is_empty() && !response.is_empty(),
            "stdin line {}: empty prompt_ids or token_ids",
            i + 1
        );
        let s = policy.score_at_temperature(
            &[spear_model::ScoreItem {
                prompt: &prompt,
                response: &response,
            }],
            spear_model::Mode::Infer,
            false,
            args.temperature,
        )?;
        let lp: Vec<f32> = s.logprobs.to_dtype(DType::F32)?.to_vec1()?;
        println!("{}", serde_json::json!({ "logprobs": lp }));
    }
    Ok(())
}
