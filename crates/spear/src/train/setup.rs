//! What every environment's set-up shares: the policy (a tiny from-scratch decoder whose
//! word-level vocabulary comes from the environment's text, or a pretrained model), the
//! warm start's text examples and their tokens. The environments' own set-up lives in
//! their suites (`crate::tasks`).

use anyhow::Context;
use candle_core::DType;
use spear_model::config::Arch;
use spear_model::decoder::Decoder;
use spear_model::{ChatMessage, F32Matmul, ModelConfig, Policy, TextTokenizer};

use super::config::{MatmulSpec, ModelSection, ModelSource, TinyArch, TinyTokenizer, TrainConfig};

/// Tokens a tiny word-level policy must treat as single tokens: the response tags (so the
/// projection finds them after decoding) and `in/on` (the household `put` command, which the
/// word splitter would otherwise cut into `in / on`).
pub const TINY_SPECIAL_TOKENS: &[&str] = &["<think>", "</think>", "<action>", "</action>", "in/on"];

/// One supervised example: prompt text (before the chat template) and the response text.
#[derive(Debug, Clone, PartialEq)]
pub struct SftExample {
    /// The RL prompt of the step (same template, same history).
    pub prompt: String,
    /// `<think>…</think><action>…</action>`.
    pub response: String,
}

/// The response the warm start teaches for one expert step. The thinking restates the goal
/// (the planner has no verbal reasoning to offer); the action is the expert's command.
pub fn demo_response(task: &str, action: &str) -> String {
    think_action(&format!("My task is to {task}"), action)
}

/// A demonstrated response: `thinking` in `<think>` tags, then `action` in `<action>` tags
/// (the format the agent loop parses).
pub fn think_action(thinking: &str, action: &str) -> String {
    format!("<think>{thinking}</think><action>{action}</action>")
}

/// A tiny from-scratch policy: word-level tokenizer from `corpus` (with
/// [`TINY_SPECIAL_TOKENS`]) and a random decoder sized by `[model]`.
pub fn tiny_policy(m: &ModelSection, corpus: &[String], seed: u64) -> anyhow::Result<Policy> {
    let refs: Vec<&str> = corpus.iter().map(String::as_str).collect();
    let tok = match m.tokenizer {
        TinyTokenizer::Words => TextTokenizer::word_level(&refs, 1, TINY_SPECIAL_TOKENS)?,
        TinyTokenizer::Exact => TextTokenizer::word_level_exact(&refs, 1, TINY_SPECIAL_TOKENS)?,
    };
    tiny_policy_with(m, tok, seed)
}

/// A random decoder sized by `[model]` on the given tokenizer.
pub fn tiny_policy_with(m: &ModelSection, tok: TextTokenizer, seed: u64) -> anyhow::Result<Policy> {
    let arch = match m.arch {
        TinyArch::Qwen2 => Arch::Qwen2,
        TinyArch::Llama => Arch::Llama,
        TinyArch::Qwen3 => Arch::Qwen3,
    };
    let mut cfg = ModelConfig::tiny(arch, tok.vocab_size());
    cfg.hidden_size = m.hidden_size as usize;
    cfg.intermediate_size = m.intermediate_size as usize;
    cfg.num_layers = m.num_layers as usize;
    cfg.num_heads = m.num_heads as usize;
    cfg.num_kv_heads = m.num_kv_heads as usize;
    cfg.head_dim = (m.hidden_size / m.num_heads) as usize;
    cfg.max_position_embeddings = m.max_position_embeddings as usize;
    cfg.eos_token_ids = tok.stop_token_ids.clone();
    let model = Decoder::random(cfg, seed, m.init_std, DType::F32, &m.device()?)?;
    Ok(Policy::new(model, tok)?)
}

/// The policy of a run: tiny (needs the corpus) or loaded by name/path.
pub fn build_policy(
    cfg: &TrainConfig,
    corpus: impl FnOnce() -> Vec<String>,
) -> anyhow::Result<Policy> {
    let mut policy = build_policy_f32(cfg, corpus)?;
    apply_compute_options(&mut policy, cfg)?;
    Ok(policy)
}

/// `model.dtype`, `model.matmul` and `model.activation_checkpointing` on a built policy (how it
/// computes, not what it is: checkpoints do not record them). `model.matmul = "blas"` loads the
/// library here (fetching the pinned OpenBLAS on first use), so a missing one stops the run
/// before it starts.
pub fn apply_compute_options(policy: &mut Policy, cfg: &TrainConfig) -> anyhow::Result<()> {
    policy.model.compute_dtype = cfg.model.dtype.0;
    policy.model.activation_checkpointing = cfg.model.activation_checkpointing;
    policy.model.f32_matmul = match cfg.model.matmul {
        MatmulSpec::Gemm => F32Matmul::Gemm,
        MatmulSpec::Blas => F32Matmul::Blas(
            spear_model::blas::load(&cfg.model.blas_library)
                .map_err(|e| anyhow::anyhow!("model.matmul = \"blas\": {e}"))?,
        ),
    };
    Ok(())
}

fn build_policy_f32(
    cfg: &TrainConfig,
    corpus: impl FnOnce() -> Vec<String>,
) -> anyhow::Result<Policy> {
    match &cfg.model.name {
        ModelSource::Tiny => tiny_policy(&cfg.model, &corpus(), cfg.run.seed),
        source @ (ModelSource::Pretrained(_) | ModelSource::Path(_)) => {
            let spec = source.as_str();
            Policy::load(&spec, DType::F32, &cfg.model.device()?).with_context(|| {
                format!(
                    "model.name = {spec:?}: loading the policy (a known name such as \
                     smollm2-135m, a .gguf file, or an HF model directory)"
                )
            })
        }
    }
}

/// Chat-templated token ids of a user prompt.
pub fn prompt_ids(policy: &Policy, prompt: &str) -> anyhow::Result<Vec<u32>> {
    Ok(policy.chat_prompt_ids(&[ChatMessage::user(prompt.to_string())], None)?)
}

/// Token ids of a response as the sampler would emit it: the text, then the first stop token.
pub fn response_ids(policy: &Policy, response: &str) -> anyhow::Result<Vec<u32>> {
    let mut ids = policy.tokenizer.encode(response)?;
    if let Some(&eos) = policy.tokenizer.stop_token_ids.first() {
        ids.push(eos);
    }
    Ok(ids)
}
