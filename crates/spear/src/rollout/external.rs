//! Rollout engines outside the trainer's in-process policy: an inference-server pool (the HTTP
//! engine) or a snapshot of the weights in this process. Such an engine samples with weights
//! the trainer does not update in place, so with `rollout.mode = "async"` the collection of
//! iteration t+1 can run while iteration t updates; the trainer calls
//! [`ExternalEngine::sync_weights`] after every update.
//!
//! The in-process policy itself is not an external engine: it is updated in place, so with it
//! `rollout.mode = "async"` means concurrent episodes only (no overlap, staleness 0).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use candle_core::Var;
use spear_model::{GenRequest, Generation, Policy, SamplingParams};

use super::ChatSampler;

/// A rollout engine with weights of its own.
pub trait ExternalEngine: Send + Sync {
    /// The sampler the rollouts call (from many threads at once in async mode).
    fn sampler(&self) -> &dyn ChatSampler;
    /// Loads the trainer's weights after update `version` (the number of updates so far). It
    /// may run while a collection is sampling: a request in flight finishes on the old or the
    /// new weights, never on a mix.
    fn sync_weights(&self, policy: &Policy, version: u64) -> anyhow::Result<()>;
    /// The version of the weights it holds now.
    fn version(&self) -> u64;
}

/// A copy of the policy's weights in this process, synchronised after every update: what
/// overlapping collection with the in-process engine costs (one more copy of the weights).
/// Generations wait while the weights are replaced (like vLLM's `pause?mode=wait`).
pub struct SnapshotEngine {
    policy: Policy,
    gate: RwLock<()>,
    version: AtomicU64,
}

impl SnapshotEngine {
    /// A deep copy of `policy`'s weights (version `version`).
    pub fn new(policy: &Policy, version: u64) -> anyhow::Result<Self> {
        // The decoder looks its parameters up by name: a clone with every variable replaced by
        // a copy of its values owns its weights (and keeps LoRA adapters' structure).
        let mut model = policy.model.clone();
        let names: Vec<String> = model.params().iter().map(|(n, _)| n.clone()).collect();
        for name in names {
            let src = policy.model.params().get(&name)?;
            let var = Var::from_tensor(&src.as_tensor().copy()?)?;
            model.params_mut().insert(name, var);
        }
        Ok(Self {
            policy: Policy::new(model, policy.tokenizer.clone())?,
            gate: RwLock::new(()),
            version: AtomicU64::new(version),
        })
    }
}

impl ExternalEngine for SnapshotEngine {
    fn sampler(&self) -> &dyn ChatSampler {
        self
    }

    fn sync_weights(&self, policy: &Policy, version: u64) -> anyhow::Result<()> {
        let _paused = self
            .gate
            .write()
            .map_err(|_| anyhow::anyhow!("a generation of the weight snapshot panicked"))?;
        for (name, var) in self.policy.model.params().iter() {
            let src = policy.model.params().get(name)?;
            var.set(src.as_tensor())?;
        }
        self.version.store(version, Ordering::SeqCst);
        Ok(())
    }

    fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }
}

impl ChatSampler for SnapshotEngine {
    crate::rollout::sampler::chat_front!(policy);
    fn generate(
        &self,
        requests: &[GenRequest],
        params: &SamplingParams,
    ) -> spear_model::Result<Vec<Generation>> {
        // A poisoned gate only means another generation panicked; the weights are whole.
        let _running = self.gate.read().unwrap_or_else(|e| e.into_inner());
        self.policy.generate(requests, params)
    }
    fn max_context(&self) -> usize {
        self.policy.model.config().max_position_embeddings
    }
    fn eos_token_ids(&self) -> &[u32] {
        &self.policy.model.config().eos_token_ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The snapshot owns its weights (an update of the policy does not reach it) until a sync,
    /// after which it generates exactly what the policy generates.
    #[test]
    fn snapshot_is_a_copy_until_synced() {
        let cfg = crate::train::config::TrainConfig::default();
        let corpus = vec!["go to the sinkbasin take the apple".to_string()];
        let policy = crate::train::setup::tiny_policy(&cfg.model, &corpus, 3).unwrap();
        let snap = SnapshotEngine::new(&policy, 0).unwrap();
        let req = [GenRequest {
            prompt_ids: policy.tokenizer.encode("go to the").unwrap(),
            seed: 5,
        }];
        let params = SamplingParams {
            max_new_tokens: 6,
            ..SamplingParams::default()
        };
        let before = policy.generate(&req, &params).unwrap();
        assert_eq!(
            snap.generate(&req, &params).unwrap()[0].logprobs,
            before[0].logprobs
        );
        // Move the policy's weights.
        for (_, var) in policy.model.params().iter() {
            let t = var.as_tensor();
            var.set(&(t + 0.05).unwrap()).unwrap();
        }
        let after = policy.generate(&req, &params).unwrap();
        assert_ne!(after[0].logprobs, before[0].logprobs);
        assert_eq!(
            snap.generate(&req, &params).unwrap()[0].logprobs,
            before[0].logprobs
        );
        snap.sync_weights(&policy, 1).unwrap();
        assert_eq!(snap.version(), 1);
        assert_eq!(
            snap.generate(&req, &params).unwrap()[0].logprobs,
            after[0].logprobs
        );
    }
}
