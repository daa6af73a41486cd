//! A policy: decoder + tokenizer + chat template, loaded by name or path. This is the entry point
//! the trainer uses.

use std::path::Path;

use candle_core::{DType, Device};

use crate::chat::{ChatMessage, ChatTemplate};
use crate::config::{Arch, ModelConfig};
use crate::decoder::{Decoder, Mode};
use crate::error::{ModelError, Result};
use crate::load::{gguf, hf, pretrained};
use crate::sampling::{GenRequest, Generation, LocalSampler, Sampler, SamplingParams};
use crate::scoring::{score, score_at_temperature, ScoreItem, Scored};
use crate::tokenizer::{TextTokenizer, CHATML_TEMPLATE};

/// A trainable language-model policy.
#[derive(Debug)]
pub struct Policy {
    /// The decoder.
    pub model: Decoder,
    /// Its tokenizer.
    pub tokenizer: TextTokenizer,
    template: ChatTemplate,
}

impl Policy {
    /// Bundles a model and tokenizer (the template comes from the tokenizer, else ChatML).
    pub fn new(model: Decoder, tokenizer: TextTokenizer) -> Result<Self> {
        if tokenizer.vocab_size() > model.config().vocab_size {
            return Err(ModelError::arg(
                "tokenizer",
                format!(
                    "vocabulary of {} tokens exceeds the model's {}",
                    tokenizer.vocab_size(),
                    model.config().vocab_size
                ),
            ));
        }
        let template = ChatTemplate::new(
            tokenizer
                .chat_template
                .as_deref()
                .unwrap_or(CHATML_TEMPLATE),
        )?;
        Ok(Policy {
            model,
            tokenizer,
            template,
        })
    }

    /// Loads `spec`: a known pretrained name (`smollm2-135m`, fetched on first use), a `.gguf`
    /// file, or an HF model directory. Weights become trainable `dtype` tensors on `device`.
    pub fn load(spec: &str, dtype: DType, device: &Device) -> Result<Self> {
        if let Some(p) = pretrained::spec(spec) {
            let path = pretrained::fetch(p)?;
            let (m, t) = gguf::load_gguf(&path, dtype, device)?;
            return Self::new(m, t);
        }
        let path = Path::new(spec);
        if path.is_dir() {
            let (m, t) = hf::load_hf_dir(path, dtype, device)?;
            let t = t.ok_or_else(|| ModelError::Tokenizer {
                context: spec.to_string(),
                reason: "no tokenizer.json in the model directory".into(),
            })?;
            return Self::new(m, t);
        }
        if path.extension().is_some_and(|e| e == "gguf") && path.is_file() {
            let (m, t) = gguf::load_gguf(path, dtype, device)?;
            return Self::new(m, t);
        }
        let known: Vec<&str> = pretrained::KNOWN.iter().map(|s| s.name).collect();
        if !path.exists() {
            return Err(ModelError::arg(
                "model",
                format!(
                    "`{spec}` not found: there is no file or directory at {}, and it is not a \
                     known model name ({known:?})",
                    path.display()
                ),
            ));
        }
        Err(ModelError::arg(
            "model",
            format!("`{spec}` is neither a known model ({known:?}), a .gguf file nor an HF model directory"),
        ))
    }

    /// A small from-scratch policy: word-level tokenizer from `corpus` and a random decoder.
    pub fn from_scratch(
        arch: Arch,
        corpus: &[&str],
        cfg_edit: impl FnOnce(&mut ModelConfig),
        seed: u64,
    ) -> Result<Self> {
        let tok = TextTokenizer::word_level(corpus, 1, &[])?;
        let mut cfg = ModelConfig::tiny(arch, tok.vocab_size());
        cfg_edit(&mut cfg);
        cfg.eos_token_ids = tok.stop_token_ids.clone();
        let model = Decoder::random(cfg, seed, 0.02, DType::F32, &Device::Cpu)?;
        Self::new(model, tok)
    }

    /// Renders messages (and tool schemas) with the chat template.
    pub fn render_chat(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[serde_json::Value]>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        self.template.render(
            messages,
            tools,
            add_generation_prompt,
            self.tokenizer.bos_token.as_deref(),
            self.tokenizer.eos_token.as_deref(),
            None,
        )
    }

    /// Renders and tokenizes a chat prompt (with the assistant generation prompt).
    pub fn chat_prompt_ids(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[serde_json::Value]>,
    ) -> Result<Vec<u32>> {
        self.tokenizer
            .encode(&self.render_chat(messages, tools, true)?)
    }

    /// The in-process sampler.
    pub fn sampler(&self) -> LocalSampler<'_> {
        LocalSampler {
            model: &self.model,
            tokenizer: Some(&self.tokenizer),
        }
    }

    /// Samples one continuation per request.
    pub fn generate(
        &self,
        requests: &[GenRequest],
        params: &SamplingParams,
    ) -> Result<Vec<Generation>> {
        self.sampler().generate(requests, params)
    }

    /// Teacher-forced log-probs (and entropies) of responses; `Mode::Train` keeps the graph.
    pub fn score(&self, items: &[ScoreItem<'_>], mode: Mode, with_entropy: bool) -> Result<Scored> {
        score(&self.model, items, mode, with_entropy)
    }

    /// [`Policy::score`] under softmax(logits / `temperature`): the distribution the sampler
    /// reports log-probs for when it samples at that temperature.
    pub fn score_at_temperature(
        &self,
        items: &[ScoreItem<'_>],
        mode: Mode,
        with_entropy: bool,
        temperature: f64,
    ) -> Result<Scored> {
        score_at_temperature(&self.model, items, mode, with_entropy, temperature)
    }
}
