//! The rollout engine's door: [`ChatSampler`], what every rollout (the agent loop and the math
//! tool loop) needs from a model — its tokenizer and chat template, its context length and
//! end-of-sequence ids, and one batched `generate` call: token ids in (with a seed per
//! request), token ids, sampled log-probs and a finish reason out. The in-process [`Policy`]
//! implements it (and [`LocalEngine`], the policy with the trainer's policy version); the HTTP
//! client of inference servers (vLLM, SGLang, `spear serve`, [`super::http`]) is another
//! implementation, and nothing else in the rollout or the trainer changes.

use serde_json::Value;
use spear_model::{ChatMessage, GenRequest, Generation, Policy, SamplingParams, TextTokenizer};

/// The text side of a [`ChatSampler`] whose tokenizer and chat template are those of a
/// [`Policy`] field (`tokenizer`, `render_chat`, `chat_prompt_ids`): the in-process engine,
/// the snapshot engine and the HTTP front ends all render prompts with the trainer's policy.
macro_rules! chat_front {
    ($field:ident) => {
        fn tokenizer(&self) -> &spear_model::TextTokenizer {
            &self.$field.tokenizer
        }
        fn render_chat(
            &self,
            messages: &[spear_model::ChatMessage],
            tools: Option<&[serde_json::Value]>,
            add_generation_prompt: bool,
        ) -> spear_model::Result<String> {
            self.$field
                .render_chat(messages, tools, add_generation_prompt)
        }
        fn chat_prompt_ids(
            &self,
            messages: &[spear_model::ChatMessage],
            tools: Option<&[serde_json::Value]>,
        ) -> spear_model::Result<Vec<u32>> {
            self.$field.chat_prompt_ids(messages, tools)
        }
    };
}
pub(crate) use chat_front;

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
    /// [`Self::generate`] with an episode key per request: an engine that routes requests
    /// over several servers keeps one episode on one server (prefix-cache hits). Results do
    /// not depend on the keys. The default ignores them.
    fn generate_in_sessions(
        &self,
        requests: &[GenRequest],
        sessions: &[u64],
        params: &SamplingParams,
    ) -> spear_model::Result<Vec<Generation>> {
        let _ = sessions;
        self.generate(requests, params)
    }
    /// The policy version (weight updates applied) generations come from, where known.
    fn policy_version(&self) -> Option<u64> {
        None
    }
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

/// The in-process policy as the trainer's engine: [`Policy`]'s generations, each stamped with
/// the policy version (the trainer's completed iterations) that produced it.
#[derive(Clone, Copy)]
pub struct LocalEngine<'a> {
    /// The policy.
    pub policy: &'a Policy,
    /// Its version.
    pub version: u64,
}

impl ChatSampler for LocalEngine<'_> {
    crate::rollout::sampler::chat_front!(policy);
    fn generate(
        &self,
        requests: &[GenRequest],
        params: &SamplingParams,
    ) -> spear_model::Result<Vec<Generation>> {
        let mut gens = self.policy.generate(requests, params)?;
        for g in &mut gens {
            g.policy_version = Some(self.version);
        }
        Ok(gens)
    }
    fn max_context(&self) -> usize {
        ChatSampler::max_context(self.policy)
    }
    fn eos_token_ids(&self) -> &[u32] {
        &self.policy.model.config().eos_token_ids
    }
    fn policy_version(&self) -> Option<u64> {
        Some(self.version)
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
