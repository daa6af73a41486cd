//! Trainable decoder LLMs on candle (see `shared/docs/ml-backend.md`).
//!
//! - [`alloc`]: keep freed tensor memory in the process (glibc malloc tuning)
//! - [`config`]: HF `config.json` <-> [`ModelConfig`] (Llama, Qwen2/2.5, Qwen3)
//! - [`params`]: named parameters ([`ParamStore`]), random init, freezing
//! - [`ops`]: composed (trainable) and fused (inference) RMSNorm / RoPE / softmax
//! - [`bf16gemm`], [`linear_bf16`]: bf16 products with f32 sums (AMX, AVX512-BF16, f32 fallback)
//!   for `model.dtype = "bf16"`
//! - [`fused`]: CPU softmax / RMSNorm kernels with hand-written backward (training path)
//! - [`device_ops`]: the same ops (and log-prob + entropy) off the CPU: candle's fused kernels
//!   forward, a backward in tensor ops
//! - [`decoder`]: the decoder with GQA, RoPE, SwiGLU and a KV cache
//! - [`tokenizer`], [`chat`]: tokenizers (HF, GGUF, word-level) and Jinja chat templates
//! - [`load`]: HF directories, GGUF, pinned pretrained models (SmolLM2-135M)
//! - [`sampling`]: batched generation with behaviour log-probs ([`Sampler`] trait)
//! - [`logprob`]: fused log-softmax + gather + entropy with its own backward
//! - [`batch`]: step-wise continuous batching for a server ([`batch::DecodeBatch`])
//! - [`stop`]: incremental stop-string detection for the sampler
//! - [`scoring`]: teacher-forced log-probs / entropies with gradient, micro-batch planning
//! - [`optim`]: gradients, fused AdamW, clipping, lr schedules
//! - [`checkpoint`]: atomic checkpoints and HF export
//! - [`lora`]: LoRA adapters and merge
//! - [`policy`]: model + tokenizer + template, the trainer's entry point

pub mod alloc;
pub mod batch;
pub mod bf16gemm;
pub mod blas;
pub mod chat;
pub mod checkpoint;
pub mod config;
pub mod decoder;
pub mod device_ops;
pub mod error;
pub mod fused;
pub mod linear_bf16;
pub mod load;
pub mod logprob;
pub mod lora;
pub mod ops;
pub mod optim;
pub mod params;
pub mod policy;
pub mod sampling;
pub mod scoring;
pub mod stop;
pub mod tokenizer;

pub use batch::{BatchRequest, DecodeBatch};
pub use bf16gemm::Bf16Path;
pub use blas::F32Matmul;
pub use chat::{ChatMessage, ChatTemplate, ToolCall};
pub use config::{Arch, ModelConfig};
pub use decoder::{Decoder, ForwardInput, KvCache, Mode};
pub use error::{ModelError, Result};
pub use linear_bf16::ComputeDtype;
pub use optim::{AdamW, AdamWConfig, Grads, LrSchedule};
pub use params::ParamStore;
pub use policy::Policy;
pub use sampling::{FinishReason, GenRequest, Generation, LocalSampler, Sampler, SamplingParams};
pub use scoring::{plan_micro_batches, score, score_at_temperature, ScoreItem, Scored};
pub use tokenizer::TextTokenizer;

#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod grad_tests;
#[cfg(test)]
mod test_util;
