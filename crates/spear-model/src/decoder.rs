//! The trainable decoder: Llama / Qwen2 / Qwen3 with GQA, RoPE, SwiGLU and RMSNorm.
//!
//! `Mode::Train` runs only composed differentiable ops and tracks gradients of trainable
//! parameters; `Mode::Infer` detaches every weight (no graph is recorded, so KV caches do not keep
//! history alive) and, when `fused_inference` is on, uses candle's fused kernels.

use std::collections::BTreeMap;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var, D};

use crate::blas::F32Matmul;
use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::linear_bf16::{self, ComputeDtype, DecodeWeights};
use crate::ops;
use crate::params::{param_specs, ParamStore};

/// Whether a forward pass records gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Composed ops, gradients flow to trainable parameters.
    Train,
    /// No graph; fused kernels if enabled.
    Infer,
}

/// A LoRA adapter on one linear weight: `y = x W^T + scale * (x A^T) B^T`.
#[derive(Debug, Clone)]
pub struct LoraAdapter {
    /// Name of `A: [r, in]`.
    pub a: String,
    /// Name of `B: [out, r]`.
    pub b: String,
    /// `alpha / r`.
    pub scale: f64,
}

/// One layer's cached keys and values: buffers `[b, kv_heads, capacity, head_dim]` of which the
/// first `len` positions are filled.
#[derive(Debug)]
struct LayerKv {
    k: Tensor,
    v: Tensor,
    len: usize,
}

/// Per-layer key/value cache, preallocated: new positions are written into the buffers in place
/// (`slice_set`) instead of concatenating a new tensor every step; when a buffer is full it is
/// reallocated at twice the size. Attention reads a view of the filled part.
///
/// Cloning copies the buffers (two caches never share storage, so writing one cannot change the
/// other).
#[derive(Debug, Default)]
pub struct KvCache {
    layers: Vec<Option<LayerKv>>,
    reserve: usize,
    /// The bf16 forms of the weights for the products of this cache's decoding steps
    /// ([`KvCache::with_prepared_weights`]); shared by copies of the cache (e.g. after
    /// [`KvCache::select_rows`]).
    prepared: Option<Arc<DecodeWeights>>,
}

impl Clone for KvCache {
    fn clone(&self) -> Self {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                l.as_ref().map(|l| LayerKv {
                    k: l.k.copy().expect("copying a KV buffer"),
                    v: l.v.copy().expect("copying a KV buffer"),
                    len: l.len,
                })
            })
            .collect();
        KvCache {
            layers,
            reserve: self.reserve,
            prepared: self.prepared.clone(),
        }
    }
}

impl KvCache {
    /// An empty cache for `num_layers` layers.
    pub fn new(num_layers: usize) -> Self {
        Self::with_capacity(num_layers, 0)
    }

    /// An empty cache whose buffers are allocated for `positions` positions up front (e.g.
    /// prompt + max new tokens), so generation never reallocates.
    pub fn with_capacity(num_layers: usize, positions: usize) -> Self {
        KvCache {
            layers: (0..num_layers).map(|_| None).collect(),
            reserve: positions,
            prepared: None,
        }
    }

    /// This cache, with a store for the bf16 forms of the weights its decoding steps multiply by
    /// ([`DecodeWeights`]): under `model.dtype = "bf16"` on the CPU each weight is then converted
    /// once for the life of the cache instead of at every step. Only for a cache whose model's
    /// weights do not change while it lives (one generation call); the numbers are the same as
    /// without it.
    pub fn with_prepared_weights(mut self) -> Self {
        self.prepared = Some(Arc::new(DecodeWeights::default()));
        self
    }

    /// Bytes of converted weights this cache holds ([`KvCache::with_prepared_weights`]).
    pub fn prepared_bytes(&self) -> usize {
        self.prepared.as_ref().map_or(0, |p| p.bytes())
    }

    /// Number of cached positions (0 when empty).
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .map_or(0, |l| l.len)
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps (and repeats) batch rows: row `i` of the result is row `rows[i]` of `self`.
    pub fn select_rows(&self, rows: &[usize]) -> Result<KvCache> {
        let Some(Some(l0)) = self.layers.first() else {
            return Ok(self.clone());
        };
        let idx = Tensor::from_vec(
            rows.iter().map(|&r| r as u32).collect::<Vec<_>>(),
            rows.len(),
            l0.k.device(),
        )?;
        let layers = self
            .layers
            .iter()
            .map(|l| match l {
                Some(l) => Ok(Some(LayerKv {
                    k: l.k.index_select(&idx, 0)?,
                    v: l.v.index_select(&idx, 0)?,
                    len: l.len,
                })),
                None => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(KvCache {
            layers,
            reserve: self.reserve,
            prepared: self.prepared.clone(),
        })
    }

    /// Stacks the rows of `self` and then `other` into one cache, left-padding the shorter one
    /// with zero keys/values so both have `max(len)` positions. Returns the cache and how many
    /// positions were prepended to `self`'s rows and to `other`'s rows; the caller marks those
    /// keys invalid (masked), so they never receive attention weight.
    pub fn stack_rows_left_padded(&self, other: &KvCache) -> Result<(KvCache, usize, usize)> {
        if self.layers.len() != other.layers.len() {
            return Err(ModelError::arg(
                "cache",
                format!(
                    "stacking caches of {} and {} layers",
                    self.layers.len(),
                    other.layers.len()
                ),
            ));
        }
        let (la, lb) = (self.len(), other.len());
        let len = la.max(lb);
        let reserve = self.reserve.max(other.reserve);
        let mut layers = Vec::with_capacity(self.layers.len());
        for (a, b) in self.layers.iter().zip(&other.layers) {
            let (a, b) = match (a, b) {
                (Some(a), Some(b)) => (a, b),
                (None, None) => {
                    layers.push(None);
                    continue;
                }
                _ => {
                    return Err(ModelError::arg(
                        "cache",
                        "stacking a filled and an empty layer",
                    ))
                }
            };
            let (ba, nkv, _, hd) = a.k.dims4()?;
            let bb = b.k.dim(0)?;
            let cap = len.max(reserve);
            let k = Tensor::zeros((ba + bb, nkv, cap, hd), a.k.dtype(), a.k.device())?;
            let v = Tensor::zeros((ba + bb, nkv, cap, hd), a.v.dtype(), a.v.device())?;
            for (src, row0, pad) in [(a, 0, len - a.len), (b, ba, len - b.len)] {
                if src.len == 0 {
                    continue;
                }
                // slice_set writes along one dim only: place the rows through a padded copy.
                let ks = src.k.narrow(2, 0, src.len)?.contiguous()?;
                let vs = src.v.narrow(2, 0, src.len)?.contiguous()?;
                let (ks, vs) = if pad > 0 {
                    let (r, _, _, _) = ks.dims4()?;
                    let z = Tensor::zeros((r, nkv, pad, hd), ks.dtype(), ks.device())?;
                    (Tensor::cat(&[&z, &ks], 2)?, Tensor::cat(&[&z, &vs], 2)?)
                } else {
                    (ks, vs)
                };
                let (ks, vs) = if cap > len {
                    let (r, _, _, _) = ks.dims4()?;
                    let z = Tensor::zeros((r, nkv, cap - len, hd), ks.dtype(), ks.device())?;
                    (
                        Tensor::cat(&[&ks, &z], 2)?.contiguous()?,
                        Tensor::cat(&[&vs, &z], 2)?.contiguous()?,
                    )
                } else {
                    (ks, vs)
                };
                k.slice_set(&ks, 0, row0)?;
                v.slice_set(&vs, 0, row0)?;
            }
            layers.push(Some(LayerKv { k, v, len }));
        }
        Ok((
            KvCache {
                layers,
                reserve,
                prepared: self.prepared.clone(),
            },
            len - la,
            len - lb,
        ))
    }

    /// Drops the first `n` cached positions of every row (e.g. padding no row attends to any
    /// more).
    pub fn drop_front(&self, n: usize) -> Result<KvCache> {
        if n == 0 {
            return Ok(self.clone());
        }
        let len = self.len();
        if n > len {
            return Err(ModelError::arg(
                "cache",
                format!("dropping {n} of {len} positions"),
            ));
        }
        let layers = self
            .layers
            .iter()
            .map(|l| match l {
                Some(l) => {
                    let keep = l.len - n;
                    let cap = l.k.dim(2)?.max(keep);
                    let (b, nkv, _, hd) = l.k.dims4()?;
                    let k = Tensor::zeros((b, nkv, cap, hd), l.k.dtype(), l.k.device())?;
                    let v = Tensor::zeros((b, nkv, cap, hd), l.v.dtype(), l.v.device())?;
                    if keep > 0 {
                        k.slice_set(&l.k.narrow(2, n, keep)?.contiguous()?, 2, 0)?;
                        v.slice_set(&l.v.narrow(2, n, keep)?.contiguous()?, 2, 0)?;
                    }
                    Ok(Some(LayerKv { k, v, len: keep }))
                }
                None => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(KvCache {
            layers,
            reserve: self.reserve,
            prepared: self.prepared.clone(),
        })
    }

    fn len_of(&self, layer: usize) -> usize {
        self.layers[layer].as_ref().map_or(0, |l| l.len)
    }

    /// Writes `k, v: [b, kv_heads, t, head_dim]` after the cached positions of `layer` and
    /// returns views `[b, kv_heads, len, head_dim]` of everything cached (detached).
    fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, nkv, t, hd) = k.dims4()?;
        let (k, v) = (k.detach().contiguous()?, v.detach().contiguous()?);
        let len = self.layers[layer].as_ref().map_or(0, |l| l.len);
        let cap = self.layers[layer]
            .as_ref()
            .map_or(0, |l| l.k.dim(2).unwrap_or(0));
        if len + t > cap {
            let new_cap = (len + t).max(2 * cap).max(self.reserve);
            let nk = Tensor::zeros((b, nkv, new_cap, hd), k.dtype(), k.device())?;
            let nv = Tensor::zeros((b, nkv, new_cap, hd), v.dtype(), v.device())?;
            if let Some(old) = &self.layers[layer] {
                nk.slice_set(&old.k.narrow(2, 0, len)?.contiguous()?, 2, 0)?;
                nv.slice_set(&old.v.narrow(2, 0, len)?.contiguous()?, 2, 0)?;
            }
            self.layers[layer] = Some(LayerKv { k: nk, v: nv, len });
        }
        let l = self.layers[layer].as_mut().expect("allocated above");
        if l.k.dim(0)? != b {
            return Err(ModelError::arg(
                "cache",
                format!("batch of {b} rows for a cache of {}", l.k.dim(0)?),
            ));
        }
        l.k.slice_set(&k, 2, len)?;
        l.v.slice_set(&v, 2, len)?;
        l.len = len + t;
        Ok((l.k.narrow(2, 0, l.len)?, l.v.narrow(2, 0, l.len)?))
    }
}

/// Inputs of one forward pass: token ids `[b, t]`, RoPE tables and the attention mask.
#[derive(Debug, Clone)]
pub struct ForwardInput {
    /// Token ids `[b, t]` (u32).
    pub ids: Tensor,
    /// RoPE cos `[b, t, d/2]`.
    pub cos: Tensor,
    /// RoPE sin `[b, t, d/2]`.
    pub sin: Tensor,
    /// Additive mask `[b, 1, 1, t, T]`.
    pub mask: Tensor,
}

impl ForwardInput {
    /// Builds the input of a batch: `ids[b]` with `positions[b]`, where `key_valid[b]` marks which
    /// of the `T` keys (cached ones first, then the `t` new ones) are real tokens.
    pub fn new(
        cfg: &ModelConfig,
        ids: &[Vec<u32>],
        positions: &[Vec<u32>],
        key_valid: &[Vec<bool>],
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let b = ids.len();
        let t = ids.first().map_or(0, Vec::len);
        if b == 0 || t == 0 {
            return Err(ModelError::arg("ids", "empty batch"));
        }
        if ids.iter().any(|r| r.len() != t) {
            return Err(ModelError::arg("ids", "rows of different lengths"));
        }
        if let Some(bad) = ids
            .iter()
            .flatten()
            .find(|&&x| x as usize >= cfg.vocab_size)
        {
            return Err(ModelError::arg(
                "ids",
                format!("token id {bad} >= vocab size {}", cfg.vocab_size),
            ));
        }
        let flat: Vec<u32> = ids.iter().flatten().copied().collect();
        let ids = Tensor::from_vec(flat, (b, t), device)?;
        let (cos, sin) = ops::rope_tables(positions, cfg.head_dim, cfg.rope_theta, dtype, device)?;
        let mask = ops::attention_mask(key_valid, t, dtype, device)?;
        Ok(ForwardInput {
            ids,
            cos,
            sin,
            mask,
        })
    }

    /// Right-padded teacher-forcing input: positions `0..len`, padding keys invalid.
    pub fn right_padded(
        cfg: &ModelConfig,
        seqs: &[&[u32]],
        pad_id: u32,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let t = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        let ids: Vec<Vec<u32>> = seqs
            .iter()
            .map(|s| {
                let mut r = s.to_vec();
                r.resize(t, pad_id);
                r
            })
            .collect();
        let pos: Vec<Vec<u32>> = seqs.iter().map(|_| (0..t as u32).collect()).collect();
        let valid: Vec<Vec<bool>> = seqs
            .iter()
            .map(|s| (0..t).map(|j| j < s.len()).collect())
            .collect();
        Self::new(cfg, &ids, &pos, &valid, dtype, device)
    }
}

#[derive(Debug, Clone)]
struct LayerNames {
    input_norm: String,
    q: String,
    k: String,
    v: String,
    q_bias: String,
    k_bias: String,
    v_bias: String,
    q_norm: String,
    k_norm: String,
    o: String,
    post_norm: String,
    gate: String,
    up: String,
    down: String,
}

impl LayerNames {
    fn new(l: usize) -> Self {
        let p = format!("model.layers.{l}");
        LayerNames {
            input_norm: format!("{p}.input_layernorm.weight"),
            q: format!("{p}.self_attn.q_proj.weight"),
            k: format!("{p}.self_attn.k_proj.weight"),
            v: format!("{p}.self_attn.v_proj.weight"),
            q_bias: format!("{p}.self_attn.q_proj.bias"),
            k_bias: format!("{p}.self_attn.k_proj.bias"),
            v_bias: format!("{p}.self_attn.v_proj.bias"),
            q_norm: format!("{p}.self_attn.q_norm.weight"),
            k_norm: format!("{p}.self_attn.k_norm.weight"),
            o: format!("{p}.self_attn.o_proj.weight"),
            post_norm: format!("{p}.post_attention_layernorm.weight"),
            gate: format!("{p}.mlp.gate_proj.weight"),
            up: format!("{p}.mlp.up_proj.weight"),
            down: format!("{p}.mlp.down_proj.weight"),
        }
    }
}

/// A decoder-only transformer with named parameters.
#[derive(Debug, Clone)]
pub struct Decoder {
    cfg: ModelConfig,
    params: ParamStore,
    names: Vec<LayerNames>,
    lora: BTreeMap<String, LoraAdapter>,
    /// Use candle's fused kernels in `Mode::Infer` (on by default).
    pub fused_inference: bool,
    /// Precision of the linear layers' products (`model.dtype`): f32, or bf16 inputs with f32
    /// sums ([`crate::linear_bf16`]: our kernels on the CPU, candle's bf16 matmul elsewhere);
    /// weights and everything else stay f32.
    pub compute_dtype: ComputeDtype,
    /// How the f32 products of the linear layers run on the CPU (`model.matmul`): candle's
    /// matmul (the `gemm` crate, the default) or a BLAS library loaded at run time
    /// ([`crate::blas`]). bf16 products ([`Decoder::compute_dtype`]) are not affected.
    pub f32_matmul: F32Matmul,
    /// Activation checkpointing per decoder block (`model.activation_checkpointing`, off by
    /// default): in `Mode::Train` a block keeps only its input `[b·t, hidden]` for the backward,
    /// not its attention scores and MLP activations, and is run a second time in the backward
    /// (one more block forward per step, the usual ~1/3 more compute). Gradients are those of the
    /// plain graph up to summation order; the blocks' weight gradients reach
    /// [`crate::optim::Grads::accumulate`] through [`ParamStore::take_pending_grads`].
    pub activation_checkpointing: bool,
}

impl Decoder {
    /// Wraps `params`, checking that every tensor of `cfg` is present with the right shape.
    ///
    /// Also applies [`crate::alloc::keep_freed_memory`] (once per process).
    pub fn new(cfg: ModelConfig, params: ParamStore) -> Result<Self> {
        crate::alloc::keep_freed_memory();
        cfg.validate("decoder")?;
        for (name, shape, _) in param_specs(&cfg) {
            let v = params.get(&name)?;
            if v.dims() != shape.as_slice() {
                return Err(ModelError::Weights {
                    file: "parameter store".into(),
                    name,
                    reason: format!("shape {:?}, expected {:?}", v.dims(), shape),
                });
            }
        }
        let names = (0..cfg.num_layers).map(LayerNames::new).collect();
        Ok(Decoder {
            cfg,
            params,
            names,
            lora: BTreeMap::new(),
            fused_inference: true,
            compute_dtype: ComputeDtype::F32,
            f32_matmul: F32Matmul::Gemm,
            activation_checkpointing: false,
        })
    }

    /// A randomly initialised decoder (weights normal(0, `std`)).
    pub fn random(
        cfg: ModelConfig,
        seed: u64,
        std: f64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let params = ParamStore::random_init(&cfg, seed, std, dtype, device)?;
        Self::new(cfg, params)
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The parameters.
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// The parameters, mutably (freezing, LoRA).
    pub fn params_mut(&mut self) -> &mut ParamStore {
        &mut self.params
    }

    /// The LoRA adapters, by base weight name.
    pub fn lora_adapters(&self) -> &BTreeMap<String, LoraAdapter> {
        &self.lora
    }

    pub(crate) fn lora_adapters_mut(&mut self) -> &mut BTreeMap<String, LoraAdapter> {
        &mut self.lora
    }

    /// Device of the weights.
    pub fn device(&self) -> Device {
        self.params
            .get("model.embed_tokens.weight")
            .map(|v| v.device().clone())
            .unwrap_or(Device::Cpu)
    }

    /// Dtype of the activations: the final norm's weight's (a LoRA base held in bf16,
    /// [`crate::lora::hold_frozen_base_in_bf16`], leaves the norms and activations in f32).
    pub fn dtype(&self) -> DType {
        self.params
            .get("model.norm.weight")
            .map(|v| v.dtype())
            .unwrap_or(DType::F32)
    }

    /// The weight `name` as used in `mode` (detached unless training a trainable tensor).
    fn w(&self, name: &str, mode: Mode) -> Result<Tensor> {
        let v = self.params.get(name)?;
        Ok(if mode == Mode::Train && self.params.is_trainable(name) {
            v.as_tensor().clone()
        } else {
            v.as_tensor().detach()
        })
    }

    fn fused(&self, mode: Mode) -> bool {
        mode == Mode::Infer && self.fused_inference
    }

    /// `x: [n, in]` times `W^T` (+ bias, + LoRA). `prep`: the bf16 forms of the weights kept
    /// for a generation call ([`KvCache::with_prepared_weights`]), used in bf16 inference.
    fn linear(
        &self,
        x: &Tensor,
        w: &str,
        bias: Option<&str>,
        mode: Mode,
        prep: Option<&DecodeWeights>,
    ) -> Result<Tensor> {
        let wt = self.w(w, mode)?;
        // f32 through a BLAS library (`model.matmul = "blas"`), for products of enough rows.
        let blas = match &self.f32_matmul {
            F32Matmul::Blas(lib)
                if self.compute_dtype == ComputeDtype::F32
                    && x.elem_count() / x.dim(D::Minus1)?.max(1) >= crate::blas::MIN_ROWS
                    && linear_bf16::supported(x, &wt) =>
            {
                Some(lib)
            }
            _ => None,
        };
        let mut y = if let Some(lib) = blas {
            linear_bf16::linear_blas(x, &wt, lib)?
        } else {
            match (self.compute_dtype, prep) {
                (ComputeDtype::Bf16, Some(p))
                    if mode == Mode::Infer && linear_bf16::supported(x, &wt) =>
                {
                    linear_bf16::linear_prepared(x, &wt, &p.get(w), None)?
                }
                (ComputeDtype::Bf16, _) if linear_bf16::supported(x, &wt) => {
                    linear_bf16::linear(x, &wt, None)?
                }
                // Off the CPU: candle's bf16 matmul (cuBLAS on a GPU), autocast-style.
                (ComputeDtype::Bf16, _) if x.dtype() == DType::F32 && !x.device().is_cpu() => {
                    linear_bf16::linear_generic(x, &wt)?
                }
                _ if wt.dtype() != x.dtype() => x.matmul(&wt.to_dtype(x.dtype())?.t()?)?,
                _ => x.matmul(&wt.t()?)?,
            }
        };
        if let Some(b) = bias {
            y = y.broadcast_add(&self.w(b, mode)?)?;
        }
        if let Some(ad) = self.lora.get(w) {
            let a = self.w(&ad.a, mode)?;
            let b = self.w(&ad.b, mode)?;
            let delta = x.matmul(&a.t()?)?.matmul(&b.t()?)?;
            y = (y + (delta * ad.scale)?)?;
        }
        Ok(y)
    }

    /// Runs the decoder and returns the final-normed hidden states `[b, t, hidden]`.
    ///
    /// With a cache, new keys/values are appended (detached) and attention covers cached + new.
    /// In `Mode::Train` without a cache and with [`Decoder::activation_checkpointing`] on, each
    /// block keeps only its input for the backward and is run again there.
    pub fn forward_hidden(
        &self,
        input: &ForwardInput,
        mut cache: Option<&mut KvCache>,
        mode: Mode,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (b, t) = input.ids.dims2()?;
        let fused = self.fused(mode);
        if let Some(c) = cache.as_deref_mut() {
            if c.layers.len() != cfg.num_layers {
                let prepared = c.prepared.take();
                *c = KvCache::new(cfg.num_layers);
                c.prepared = prepared;
            }
        }
        let checkpoint = self.activation_checkpointing && mode == Mode::Train && cache.is_none();
        let emb = self.w("model.embed_tokens.weight", mode)?;
        let mut h = emb
            .index_select(&input.ids.flatten_all()?, 0)?
            .reshape((b * t, cfg.hidden_size))?;
        if h.dtype() != self.dtype() {
            // Embeddings held in bf16 (a frozen LoRA base); the residual stream stays f32.
            h = h.to_dtype(self.dtype())?;
        }
        for l in 0..self.names.len() {
            h = if checkpoint {
                self.checkpointed_block(l, &h, input)?
            } else {
                self.block(l, &h, input, cache.as_deref_mut(), mode, fused)?
            };
        }
        let h = ops::rms_norm(
            &h,
            &self.w("model.norm.weight", mode)?,
            cfg.rms_norm_eps,
            fused,
        )?;
        Ok(h.reshape((b, t, cfg.hidden_size))?)
    }

    /// Decoder block `l` on the residual stream `h: [b·t, hidden]`.
    fn block(
        &self,
        l: usize,
        h: &Tensor,
        input: &ForwardInput,
        cache: Option<&mut KvCache>,
        mode: Mode,
        fused: bool,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let n = &self.names[l];
        let (b, t) = input.ids.dims2()?;
        let (nh, nkv, hd) = (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim);
        let g = cfg.group_size();
        let eps = cfg.rms_norm_eps;
        let scale = 1.0 / (hd as f64).sqrt();
        let prep = cache.as_deref().and_then(|c| c.prepared.clone());
        let prep = prep.as_deref();
        let x = ops::rms_norm(h, &self.w(&n.input_norm, mode)?, eps, fused)?;
        let (qb, kb, vb) = if cfg.qkv_bias {
            (
                Some(n.q_bias.as_str()),
                Some(n.k_bias.as_str()),
                Some(n.v_bias.as_str()),
            )
        } else {
            (None, None, None)
        };
        let q = self
            .linear(&x, &n.q, qb, mode, prep)?
            .reshape((b, t, nh, hd))?;
        let k = self
            .linear(&x, &n.k, kb, mode, prep)?
            .reshape((b, t, nkv, hd))?;
        let v = self
            .linear(&x, &n.v, vb, mode, prep)?
            .reshape((b, t, nkv, hd))?;
        let (q, k) = if cfg.qk_norm {
            (
                ops::rms_norm(&q, &self.w(&n.q_norm, mode)?, eps, fused)?,
                ops::rms_norm(&k, &self.w(&n.k_norm, mode)?, eps, fused)?,
            )
        } else {
            (q, k)
        };
        let q = q.transpose(1, 2)?.contiguous()?;
        let k = k.transpose(1, 2)?.contiguous()?;
        let v = v.transpose(1, 2)?.contiguous()?;
        let q = ops::rope(&q, &input.cos, &input.sin, cfg.rope_interleaved, fused)?;
        let k = ops::rope(&k, &input.cos, &input.sin, cfg.rope_interleaved, fused)?;
        let (k, v) = match cache {
            // Inference: attend to a view of the preallocated buffers (no copy).
            Some(c) if mode == Mode::Infer => c.append(l, &k, &v)?,
            // Training through a cache: the new keys keep their gradient (the cached
            // ones are detached).
            Some(c) => {
                let past = c.len_of(l);
                let (ck, cv) = c.append(l, &k, &v)?;
                if past == 0 {
                    (k, v)
                } else {
                    (
                        Tensor::cat(&[&ck.narrow(2, 0, past)?, &k], 2)?,
                        Tensor::cat(&[&cv.narrow(2, 0, past)?, &v], 2)?,
                    )
                }
            }
            None => (k, v),
        };
        // Grouped-query attention without copying K/V: query heads of one KV head are
        // stacked along the time axis (head index = kv * g + r, as HF's repeat_kv).
        let qg = q.reshape((b, nkv, g * t, hd))?;
        let att = ops::attention_softmax(&qg.matmul(&k.t()?)?, &input.mask, scale, fused)?;
        let o = att
            .matmul(&v)?
            .reshape((b, nh, t, hd))?
            .transpose(1, 2)?
            .reshape((b * t, nh * hd))?;
        let o = self.linear(&o, &n.o, None, mode, prep)?;
        let h = (h + o)?;
        let x = ops::rms_norm(&h, &self.w(&n.post_norm, mode)?, eps, fused)?;
        let gate = self.linear(&x, &n.gate, None, mode, prep)?;
        let up = self.linear(&x, &n.up, None, mode, prep)?;
        let act = (candle_nn::ops::silu(&gate)? * up)?;
        Ok((h + self.linear(&act, &n.down, None, mode, prep)?)?)
    }

    /// Block `l` with activation checkpointing: run without a graph (only `h` and the output
    /// stay alive), and joined to `h` by a join op ([`crate::device_ops`]) whose backward runs the
    /// block again with the graph.
    fn checkpointed_block(&self, l: usize, h: &Tensor, input: &ForwardInput) -> Result<Tensor> {
        // The same composed kernels as the recomputation in the backward, weights detached.
        let y = self
            .block(l, &h.detach(), input, None, Mode::Infer, false)?
            .contiguous()?;
        // A block input that records no graph (first block with frozen embeddings, as under
        // LoRA) would let candle skip the op, and with it the block's weight gradients.
        let h = if h.track_op() {
            h.clone()
        } else {
            Var::from_tensor(h)?.as_tensor().clone()
        };
        // The backward runs the block again on its input with the graph, returns the input's
        // gradient, and adds the block weights' gradients to the pending store
        // ([`ParamStore::take_pending_grads`]).
        let (model, input) = (self.clone(), input.clone());
        crate::device_ops::join("checkpointed-block", &[&h], y, move |xs, _, g| {
            let wrap = |e: ModelError| candle_core::Error::Msg(format!("checkpointed block: {e}"));
            let x = Var::from_tensor(xs[0])?;
            let y = model
                .block(l, x.as_tensor(), &input, None, Mode::Train, false)
                .map_err(wrap)?;
            // d/dθ Σ y ⊙ ḡ is the vector-Jacobian product of the block with the incoming
            // gradient.
            let store = (y * g)?.sum_all()?.backward()?;
            for (name, var) in model.params.trainable() {
                if let Some(gr) = store.get(var.as_tensor()) {
                    model
                        .params
                        .add_pending_grad(name, gr.detach())
                        .map_err(wrap)?;
                }
            }
            Ok(vec![store.get(x.as_tensor()).map(Tensor::detach)])
        })
    }

    /// Logits `[n, vocab]` of hidden rows `[n, hidden]`.
    pub fn logits(&self, hidden: &Tensor, mode: Mode) -> Result<Tensor> {
        self.logits_with(hidden, mode, None)
    }

    /// [`Decoder::logits`] of a decoding step, using the bf16 weights `cache` keeps
    /// ([`KvCache::with_prepared_weights`]) where it keeps them.
    pub fn logits_decoding(&self, hidden: &Tensor, cache: &KvCache) -> Result<Tensor> {
        self.logits_with(hidden, Mode::Infer, cache.prepared.as_deref())
    }

    fn logits_with(
        &self,
        hidden: &Tensor,
        mode: Mode,
        prep: Option<&DecodeWeights>,
    ) -> Result<Tensor> {
        let name = if self.cfg.tie_word_embeddings {
            "model.embed_tokens.weight"
        } else {
            "lm_head.weight"
        };
        self.linear(hidden, name, None, mode, prep)
    }

    /// Logits `[b, t, vocab]` of every position (convenience for tests and references).
    pub fn forward_logits(&self, input: &ForwardInput, mode: Mode) -> Result<Tensor> {
        let h = self.forward_hidden(input, None, mode)?;
        let (b, t, hs) = h.dims3()?;
        let lg = self.logits(&h.reshape((b * t, hs))?, mode)?;
        Ok(lg.reshape((b, t, self.cfg.vocab_size))?)
    }
}

/// Log-softmax over the last dimension and entropy, both differentiable.
pub fn log_probs_and_entropy(
    logits: &Tensor,
    with_entropy: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let lp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let ent = if with_entropy {
        Some(lp.exp()?.mul(&lp)?.sum(D::Minus1)?.neg()?)
    } else {
        None
    };
    Ok((lp, ent))
}
