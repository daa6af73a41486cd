//! Named trainable parameters (HF names) with a frozen set.
//!
//! Parameters are candle `Var`s; cloning a `Var` shares its storage, so the decoder's layer structs
//! and this store see the same numbers and the optimizer updates them in place.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};

/// Role of a parameter, which decides its random initialisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// Matrix or embedding: normal(0, std).
    Weight,
    /// RMSNorm gain: ones.
    NormGain,
    /// Bias: zeros.
    Bias,
}

/// Name, shape and kind of every parameter of a decoder with `cfg`, in HF naming.
pub fn param_specs(cfg: &ModelConfig) -> Vec<(String, Vec<usize>, ParamKind)> {
    use ParamKind::*;
    let (h, i, d) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim);
    let (qd, kvd) = (cfg.num_heads * d, cfg.num_kv_heads * d);
    let mut v = vec![(
        "model.embed_tokens.weight".to_string(),
        vec![cfg.vocab_size, h],
        Weight,
    )];
    for l in 0..cfg.num_layers {
        let p = format!("model.layers.{l}");
        v.push((format!("{p}.input_layernorm.weight"), vec![h], NormGain));
        v.push((format!("{p}.self_attn.q_proj.weight"), vec![qd, h], Weight));
        v.push((format!("{p}.self_attn.k_proj.weight"), vec![kvd, h], Weight));
        v.push((format!("{p}.self_attn.v_proj.weight"), vec![kvd, h], Weight));
        if cfg.qkv_bias {
            v.push((format!("{p}.self_attn.q_proj.bias"), vec![qd], Bias));
            v.push((format!("{p}.self_attn.k_proj.bias"), vec![kvd], Bias));
            v.push((format!("{p}.self_attn.v_proj.bias"), vec![kvd], Bias));
        }
        if cfg.qk_norm {
            v.push((format!("{p}.self_attn.q_norm.weight"), vec![d], NormGain));
            v.push((format!("{p}.self_attn.k_norm.weight"), vec![d], NormGain));
        }
        v.push((format!("{p}.self_attn.o_proj.weight"), vec![h, qd], Weight));
        v.push((
            format!("{p}.post_attention_layernorm.weight"),
            vec![h],
            NormGain,
        ));
        v.push((format!("{p}.mlp.gate_proj.weight"), vec![i, h], Weight));
        v.push((format!("{p}.mlp.up_proj.weight"), vec![i, h], Weight));
        v.push((format!("{p}.mlp.down_proj.weight"), vec![h, i], Weight));
    }
    v.push(("model.norm.weight".to_string(), vec![h], NormGain));
    if !cfg.tie_word_embeddings {
        v.push((
            "lm_head.weight".to_string(),
            vec![cfg.vocab_size, h],
            Weight,
        ));
    }
    v
}

/// Standard normal samples from a seeded ChaCha8 stream (Box-Muller).
pub fn normal_vec(rng: &mut ChaCha8Rng, n: usize, std: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        out.push(std * r * t.cos());
        out.push(std * r * t.sin());
    }
    out.truncate(n);
    out
}

/// The parameters of one model, by HF name.
#[derive(Debug, Clone, Default)]
pub struct ParamStore {
    vars: BTreeMap<String, Var>,
    frozen: BTreeSet<String>,
    /// Gradients that a backward pass produced outside candle's `GradStore`: activation
    /// checkpointing recomputes a decoder block inside the backward and computes its weights'
    /// gradients there ([`crate::decoder::Decoder::activation_checkpointing`]). Shared by clones
    /// of the store (a probe copy of the model adds to the same place); drained by
    /// [`crate::optim::Grads::accumulate`] or [`ParamStore::take_pending_grads`].
    pending: Arc<Mutex<BTreeMap<String, Tensor>>>,
}

impl ParamStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Random init: weights normal(0, `std`), norm gains one, biases zero; one seed fixes all.
    pub fn random_init(
        cfg: &ModelConfig,
        seed: u64,
        std: f64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut store = ParamStore::new();
        for (name, shape, kind) in param_specs(cfg) {
            let n: usize = shape.iter().product();
            let data = match kind {
                ParamKind::Weight => normal_vec(&mut rng, n, std),
                ParamKind::NormGain => vec![1.0; n],
                ParamKind::Bias => vec![0.0; n],
            };
            let t = Tensor::from_vec(data, shape, device)?.to_dtype(dtype)?;
            store.insert(name, Var::from_tensor(&t)?);
        }
        Ok(store)
    }

    /// Adds or replaces a parameter.
    pub fn insert(&mut self, name: impl Into<String>, var: Var) {
        self.vars.insert(name.into(), var);
    }

    /// The parameter called `name`.
    pub fn get(&self, name: &str) -> Result<&Var> {
        self.vars.get(name).ok_or_else(|| ModelError::Weights {
            file: "parameter store".into(),
            name: name.to_string(),
            reason: "missing".into(),
        })
    }

    /// Whether `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.vars.contains_key(name)
    }

    /// All parameters, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Var)> {
        self.vars.iter()
    }

    /// The parameters the optimizer updates (not frozen), sorted by name.
    pub fn trainable(&self) -> impl Iterator<Item = (&String, &Var)> {
        self.vars
            .iter()
            .filter(move |(n, _)| !self.frozen.contains(n.as_str()))
    }

    /// Whether `name` is trainable.
    pub fn is_trainable(&self, name: &str) -> bool {
        self.vars.contains_key(name) && !self.frozen.contains(name)
    }

    /// Freezes every parameter whose name satisfies `pred`; returns how many were frozen.
    pub fn freeze_where(&mut self, pred: impl Fn(&str) -> bool) -> usize {
        let names: Vec<String> = self.vars.keys().filter(|n| pred(n)).cloned().collect();
        let k = names.len();
        self.frozen.extend(names);
        k
    }

    /// Makes every parameter trainable again.
    pub fn unfreeze_all(&mut self) {
        self.frozen.clear();
    }

    /// Removes a parameter (used when merging LoRA adapters).
    pub fn remove(&mut self, name: &str) -> Option<Var> {
        self.frozen.remove(name);
        self.vars.remove(name)
    }

    /// Number of scalars in all parameters.
    pub fn num_params(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }

    /// Number of scalars in the trainable parameters.
    pub fn num_trainable(&self) -> usize {
        self.trainable().map(|(_, v)| v.elem_count()).sum()
    }

    /// Number of parameters (tensors).
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// Adds `g` to the pending gradient of `name` (see the `pending` field).
    pub(crate) fn add_pending_grad(&self, name: &str, g: Tensor) -> Result<()> {
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let sum = match map.remove(name) {
            Some(prev) => (prev + g)?,
            None => g,
        };
        map.insert(name.to_string(), sum);
        Ok(())
    }

    /// Takes the gradients that checkpointed decoder blocks computed during the last
    /// `backward()` calls (empty without activation checkpointing).
    pub fn take_pending_grads(&self) -> BTreeMap<String, Tensor> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Arch, ModelConfig};

    #[test]
    fn specs_cover_each_family() {
        let l = param_specs(&ModelConfig::tiny(Arch::Llama, 50));
        let q2 = param_specs(&ModelConfig::tiny(Arch::Qwen2, 50));
        let q3 = param_specs(&ModelConfig::tiny(Arch::Qwen3, 50));
        // Llama: embed + 2 layers x 9 + norm = 20 (tied head).
        assert_eq!(l.len(), 20);
        // Qwen2: + 3 biases per layer = 26.
        assert_eq!(q2.len(), 26);
        // Qwen3: + 2 norms per layer + lm_head = 20 + 4 + 1 = 25.
        assert_eq!(q3.len(), 25);
        assert!(q3
            .iter()
            .any(|(n, s, _)| n == "lm_head.weight" && s == &vec![50, 32]));
    }

    #[test]
    fn random_init_is_seeded_and_freezing_works() {
        let cfg = ModelConfig::tiny(Arch::Llama, 50);
        let a = ParamStore::random_init(&cfg, 7, 0.02, DType::F32, &Device::Cpu).unwrap();
        let b = ParamStore::random_init(&cfg, 7, 0.02, DType::F32, &Device::Cpu).unwrap();
        let w = |s: &ParamStore| {
            s.get("model.embed_tokens.weight")
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(w(&a), w(&b));
        let mut a = a;
        assert_eq!(a.freeze_where(|n| n.contains("embed_tokens")), 1);
        assert_eq!(a.num_trainable(), a.num_params() - 50 * 32);
        let samples = normal_vec(&mut ChaCha8Rng::seed_from_u64(1), 20000, 2.0);
        let mean = samples.iter().sum::<f64>() / 20000.0;
        let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 20000.0;
        assert!(
            mean.abs() < 0.05 && (var - 4.0).abs() < 0.15,
            "{mean} {var}"
        );
    }
}
