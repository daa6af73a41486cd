//! The rollout engine's door: [`ChatSampler`], what every rollout (the agent loop and the math
//! tool loop) needs from a model — its tokenizer and chat template, its context length and
//! end-of-sequence ids, and one batched `generate` call: token ids in (with a seed per
//! request), token ids, sampled log-probs and a finish reason out. The in-process [`Policy`]
//! implements it; an HTTP client of an inference server (vLLM, SGLang, `spear serve`) is
//! another implementation, and nothing else in the rollout or the trainer changes.

use serde_json::Value;
use spear_model::{ChatMessage, GenRequest, Generation, Policy, SamplingParams, TextTokenizer};

/// A model the rollouts can drive.
pub trait ChatSampler: Sync {
    /// The tokenizer whose ids `generate` takes and returns.
    fn tokenizer(&self) -> &TextTokenizer;
    /// Renders messages (and tool schemas) with the chat template.
    fn render_chat(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[Value]>,
        add_generation_prompt: bool,
    ) -> spear_model::Result<String>;
    /// Token ids of the chat-templated messages with the generation prompt.
    fn chat_prompt_ids(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[Value]>,
    ) -> spear_model::Result<Vec<u32>> {
        self.tokenizer()
            .encode(&self.render_chat(messages, tools, true)?)
    }
    /// One continuation per request (one batched call per turn). Each request carries its own
    /// seed, so a sequence does not depend on the rest of the batch.
    fn generate(
        &self,
        requests: &[GenRequest],
        params: &SamplingParams,
    ) -> spear_model::Result<Vec<Generation>>;
    /// Most tokens (prompt + generated) one sequence may hold.
    fn max_context(&self) -> usize;
    /// The model's end-of-sequence ids (besides the tokenizer's stop tokens).
    fn eos_token_ids(&self) -> &[u32];
}

impl ChatSampler for Policy {
    fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }
    fn render_chat(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[Value]>,
        add_generation_prompt: bool,
    ) -> spear_model::Result<String> {
        Policy::render_chat(self, messages, tools, add_generation_prompt)
    }
    fn chat_prompt_ids(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[Value]>,
    ) -> spear_model::Result<Vec<u32>> {
        Policy::chat_prompt_ids(self, messages, tools)
    }
    fn generate(
        &self,
        requests: &[GenRequest],
        params: &SamplingParams,
    ) -> spear_model::Result<Vec<Generation>> {
        Policy::generate(self, requests, params)
    }
    fn max_context(&self) -> usize {
        self.model.config().max_position_embeddings
    }
    fn eos_token_ids(&self) -> &[u32] {
        &self.model.config().eos_token_ids
    }
}

/// The response as the projection sees it: decoded with special tokens kept (a word-level
/// tiny policy has `<think>`/`<action>` as special tokens), without the final stop token.
pub fn response_text(sampler: &dyn ChatSampler, ids: &[u32]) -> anyhow::Result<String> {
    let stops = &sampler.tokenizer().stop_token_ids;
    let eos = sampler.eos_token_ids();
    let end = if ids
        .last()
        .is_some_and(|t| stops.contains(t) || eos.contains(t))
    {
        ids.len() - 1
    } else {
        ids.len()
    };
    Ok(sampler.tokenizer().decode(&ids[..end], false)?)
}
