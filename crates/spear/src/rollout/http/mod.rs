//! The HTTP rollout engine: inference servers (vLLM, SGLang, `spear serve`) generate, the
//! trainer's policy supplies the tokenizer and chat template (the orchestrator is also the
//! trainer), and token ids go in and come out — text is never re-tokenised between turns.
//!
//! * [`dialect`]: request/response bodies of the three dialects (`rollout.api`).
//! * [`pool`]: the endpoint pool (routing, stickiness, timeouts, retries, admin calls).
//! * [`sync`]: weight sync v1's files (`<sync_dir>/step_N/` + `STABLE`, keep the last K).
//!
//! [`HttpEngine`] is what the trainer holds; [`HttpSampler`] borrows it with the policy and is
//! the [`ChatSampler`] the rollouts drive.

pub mod dialect;
pub mod pool;
pub mod sync;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use spear_model::{FinishReason, GenRequest, Generation, ModelError, Policy, SamplingParams};

pub use self::pool::{EndpointPool, PoolOptions, ServerInfo};
use crate::rollout::ChatSampler;
use crate::train::config::{ApiKind, RolloutSection};

/// No version synced yet.
const NONE: u64 = u64::MAX;

/// The servers and the weight-sync directory.
#[derive(Debug)]
pub struct HttpEngine {
    /// The pool.
    pub pool: EndpointPool,
    /// Where `step_N/` directories are written.
    pub sync_dir: PathBuf,
    /// How many to keep.
    pub keep: usize,
    version: AtomicU64,
}

impl HttpEngine {
    /// A pool over the section's endpoints, weights written under `sync_dir`.
    pub fn new(cfg: &RolloutSection, sync_dir: PathBuf) -> anyhow::Result<Self> {
        Ok(Self::with_pool(
            EndpointPool::new(PoolOptions::from_config(cfg))?,
            sync_dir,
            cfg.keep_weights as usize,
        ))
    }

    /// From a pool (tests set the backoff).
    pub fn with_pool(pool: EndpointPool, sync_dir: PathBuf, keep: usize) -> Self {
        Self {
            pool,
            sync_dir,
            keep,
            version: AtomicU64::new(NONE),
        }
    }

    /// The start-up check (see [`EndpointPool::check`]): every server must hold at least
    /// `min_context` positions (one prompt token plus `sampling.max_new_tokens`); a server with
    /// less context than the policy's positions is accepted with a warning, and a prompt that
    /// does not fit it is refused when it is sent, with the flag to set.
    pub fn check(&self, policy: &Policy, min_context: usize) -> anyhow::Result<Vec<ServerInfo>> {
        let infos = self.pool.check(min_context)?;
        let own = policy.model.config().max_position_embeddings;
        for i in &infos {
            if let Some(l) = i.max_model_len.filter(|&l| l < own) {
                tracing::warn!(
                    "{} holds {l} positions, fewer than the policy's {own}: prompts longer than \
                     {l} minus sampling.max_new_tokens will be refused",
                    i.url
                );
            }
        }
        Ok(infos)
    }

    /// The policy version every server holds (None before the first sync).
    pub fn version(&self) -> Option<u64> {
        match self.version.load(Ordering::SeqCst) {
            NONE => None,
            v => Some(v),
        }
    }

    /// Writes `policy` as version `version` and has every server load it (nothing when the
    /// servers already hold that version). Returns the directory written, if any.
    pub fn sync(&self, policy: &Policy, version: u64) -> anyhow::Result<Option<PathBuf>> {
        if self.version() == Some(version) {
            return Ok(None);
        }
        // LoRA adapters are folded into their base weights by the export.
        // vLLM's reload_weights misses one use of a tied embedding: its servers get it untied.
        let untie = self.pool.options().api == ApiKind::Vllm;
        let dir = sync::write_weights(&self.sync_dir, version, policy, self.keep, untie)?;
        self.pool.sync_weights(&dir, version)?;
        self.version.store(version, Ordering::SeqCst);
        Ok(Some(dir))
    }

    /// The sampler the rollouts drive.
    pub fn sampler<'a>(&'a self, policy: &'a Policy) -> HttpSampler<'a> {
        HttpSampler {
            engine: self,
            policy,
        }
    }

    /// The sync directory.
    pub fn sync_dir(&self) -> &Path {
        &self.sync_dir
    }
}

/// The HTTP engine as the trainer's [`ExternalEngine`]: it owns a front of the policy (the
/// same decoder handle, sharing the weights, of which the sampler reads only the config, with the
/// tokenizer and chat template), so rollouts need no borrow of the trainer's policy and can run
/// while it updates (`rollout.mode = "async"`).
#[derive(Debug)]
pub struct HttpExternal {
    engine: HttpEngine,
    front: Policy,
}

impl HttpExternal {
    /// Wraps `engine`; the front comes from `policy`.
    pub fn new(engine: HttpEngine, policy: &Policy) -> anyhow::Result<Self> {
        Ok(Self {
            engine,
            front: Policy::new(policy.model.clone(), policy.tokenizer.clone())?,
        })
    }

    /// The engine (pool, sync directory).
    pub fn engine(&self) -> &HttpEngine {
        &self.engine
    }

    fn s(&self) -> HttpSampler<'_> {
        self.engine.sampler(&self.front)
    }
}

impl ChatSampler for HttpExternal {
    crate::rollout::sampler::chat_front!(front);
    fn generate(
        &self,
        requests: &[GenRequest],
        params: &SamplingParams,
    ) -> spear_model::Result<Vec<Generation>> {
        self.s().generate(requests, params)
    }
    fn generate_in_sessions(
        &self,
        requests: &[GenRequest],
        sessions: &[u64],
        params: &SamplingParams,
    ) -> spear_model::Result<Vec<Generation>> {
        self.s().generate_in_sessions(requests, sessions, params)
    }
    fn max_context(&self) -> usize {
        self.s().max_context()
    }
    fn eos_token_ids(&self) -> &[u32] {
        &self.front.model.config().eos_token_ids
    }
    fn policy_version(&self) -> Option<u64> {
        self.engine.version()
    }
}

impl crate::rollout::ExternalEngine for HttpExternal {
    fn sampler(&self) -> &dyn ChatSampler {
        self
    }
    fn sync_weights(&self, policy: &Policy, version: u64) -> anyhow::Result<()> {
        let t = std::time::Instant::now();
        if let Some(dir) = self.engine.sync(policy, version)? {
            tracing::info!(
                "weights version {version} ({}) loaded by the servers in {:.1}s",
                dir.display(),
                t.elapsed().as_secs_f64()
            );
        }
        Ok(())
    }
    /// `u64::MAX` before the first sync (the trainer then syncs before its first rollout).
    fn version(&self) -> u64 {
        self.engine.version().unwrap_or(u64::MAX)
    }
}

/// The HTTP engine as a [`ChatSampler`]: the policy's tokenizer and template, the servers'
/// generations.
#[derive(Debug, Clone, Copy)]
pub struct HttpSampler<'a> {
    engine: &'a HttpEngine,
    policy: &'a Policy,
}

impl HttpSampler<'_> {
    fn stop_ids(&self, params: &SamplingParams) -> Vec<u32> {
        let mut ids = params.stop_token_ids.clone();
        if !params.ignore_eos {
            let more = self
                .policy
                .tokenizer
                .stop_token_ids
                .iter()
                .chain(&self.policy.model.config().eos_token_ids);
            for &t in more {
                if !ids.contains(&t) {
                    ids.push(t);
                }
            }
        }
        ids
    }

    /// Checks a reply against the policy (vocabulary, length) and fills its text and version.
    fn finish(
        &self,
        mut g: Generation,
        params: &SamplingParams,
    ) -> spear_model::Result<Generation> {
        let vocab = self.policy.model.config().vocab_size;
        if let Some(&bad) = g.token_ids.iter().find(|&&t| t as usize >= vocab) {
            return Err(ModelError::arg(
                "rollout.endpoints",
                format!(
                    "a server returned token id {bad}, outside the policy's vocabulary of \
                     {vocab}: it serves another model (check rollout.model_name and the \
                     server's model)"
                ),
            ));
        }
        if g.token_ids.len() > params.max_new_tokens {
            return Err(ModelError::arg(
                "rollout.endpoints",
                format!(
                    "a server returned {} tokens for max_tokens = {}",
                    g.token_ids.len(),
                    params.max_new_tokens
                ),
            ));
        }
        let mut text = self.policy.tokenizer.decode(&g.token_ids, true)?;
        if let FinishReason::StopString(s) = &g.finish {
            if let Some(at) = text.find(s.as_str()) {
                text.truncate(at + s.len());
            }
        }
        g.text = text;
        g.policy_version = self.engine.version();
        Ok(g)
    }
}

fn http_err(e: anyhow::Error) -> ModelError {
    ModelError::arg("rollout.endpoints", format!("{e:#}"))
}

impl ChatSampler for HttpSampler<'_> {
    crate::rollout::sampler::chat_front!(policy);
    fn generate(
        &self,
        requests: &[GenRequest],
        params: &SamplingParams,
    ) -> spear_model::Result<Vec<Generation>> {
        // Without episode keys, each request is its own session.
        let sessions: Vec<u64> = requests
            .iter()
            .map(|r| crate::seed::mix_seed(&[r.seed, 0x5E55]))
            .collect();
        self.generate_in_sessions(requests, &sessions, params)
    }
    fn generate_in_sessions(
        &self,
        requests: &[GenRequest],
        sessions: &[u64],
        params: &SamplingParams,
    ) -> spear_model::Result<Vec<Generation>> {
        params.validate()?;
        if let Some(len) = self.engine.pool.max_model_len() {
            for r in requests {
                let need = r.prompt_ids.len() + params.max_new_tokens;
                if need > len {
                    return Err(ModelError::arg(
                        "rollout.endpoints",
                        format!(
                            "a prompt of {} tokens plus {} new tokens exceeds the servers' \
                             context of {len} (vLLM/spear --max-model-len, SGLang \
                             --context-length): restart them with a larger one, or lower \
                             env.history_length or sampling.max_new_tokens",
                            r.prompt_ids.len(),
                            params.max_new_tokens
                        ),
                    ));
                }
            }
        }
        let stop = self.stop_ids(params);
        let wire = dialect::Wire {
            model: &self.engine.pool.options().model_name,
            params,
            stop_token_ids: &stop,
        };
        let gens = self
            .engine
            .pool
            .generate(requests, sessions, &wire)
            .map_err(http_err)?;
        gens.into_iter().map(|g| self.finish(g, params)).collect()
    }
    fn max_context(&self) -> usize {
        let own = self.policy.model.config().max_position_embeddings;
        self.engine.pool.max_model_len().map_or(own, |l| l.min(own))
    }
    fn eos_token_ids(&self) -> &[u32] {
        &self.policy.model.config().eos_token_ids
    }
    fn policy_version(&self) -> Option<u64> {
        self.engine.version()
    }
}
