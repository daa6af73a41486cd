//! Gradients, a fused in-place AdamW, global-norm clipping and learning-rate schedules.
//!
//! AdamW follows `torch.optim.AdamW` exactly: `p *= 1 - lr * wd` (decoupled decay), then
//! `m = b1 m + (1-b1) g`, `v = b2 v + (1-b2) g^2`, `p -= lr / (1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)`.
//! On CPU the update runs in one pass over each tensor's storage (no temporaries); weight decay
//! applies to every trainable tensor, as verl's FSDP workers configure it.

use std::cell::RefCell;
use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Storage, Tensor};
use rayon::prelude::*;

use crate::error::{ModelError, Result};
use crate::params::ParamStore;

/// Gradients of trainable parameters by name (accumulated over micro-batches).
#[derive(Debug, Clone, Default)]
pub struct Grads {
    map: BTreeMap<String, Tensor>,
}

impl Grads {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the gradients of the trainable parameters from one `backward()`, and those that
    /// checkpointed decoder blocks computed during it ([`ParamStore::take_pending_grads`]).
    pub fn accumulate(&mut self, store: &GradStore, params: &ParamStore) -> Result<()> {
        for (name, var) in params.trainable() {
            if let Some(g) = store.get(var.as_tensor()) {
                self.add(name, g.detach())?;
            }
        }
        for (name, g) in params.take_pending_grads() {
            if params.is_trainable(&name) {
                self.add(&name, g)?;
            }
        }
        Ok(())
    }

    fn add(&mut self, name: &str, g: Tensor) -> Result<()> {
        let sum = match self.map.remove(name) {
            Some(prev) => (prev + g)?,
            None => g,
        };
        self.map.insert(name.to_string(), sum);
        Ok(())
    }

    /// The gradient of `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.map.get(name)
    }

    /// All gradients.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Tensor)> {
        self.map.iter()
    }

    /// Number of tensors with a gradient.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no gradient was accumulated.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Global L2 norm over all gradients.
    ///
    /// Each tensor's sum of squares is computed as `to_dtype(F64).sqr().sum_all()` would (f64
    /// squares added in storage order from 0.0), the tensors in parallel and without
    /// temporaries on the CPU; the per-tensor sums are then added in name order, so the norm
    /// is bit-identical to the composed ops' whatever the thread count.
    pub fn global_norm(&self) -> Result<f64> {
        let tensors: Vec<&Tensor> = self.map.values().collect();
        let sums = tensors
            .par_iter()
            .map(|g| match sum_squares_cpu(g) {
                Some(s) => Ok(s),
                None => Ok(g
                    .to_dtype(DType::F64)?
                    .sqr()?
                    .sum_all()?
                    .to_scalar::<f64>()?),
            })
            .collect::<Result<Vec<f64>>>()?;
        let mut s = 0.0;
        for x in sums {
            s += x;
        }
        Ok(s.sqrt())
    }

    /// Multiplies every gradient by `k`.
    pub fn scale(&mut self, k: f64) -> Result<()> {
        for g in self.map.values_mut() {
            *g = (&*g * k)?;
        }
        Ok(())
    }

    /// Clips to global norm `max_norm` (like `torch.nn.utils.clip_grad_norm_`: scale by
    /// `max_norm / (norm + 1e-6)` when that is below 1). Returns the norm before clipping.
    pub fn clip_global_norm(&mut self, max_norm: f64) -> Result<f64> {
        let n = self.global_norm()?;
        let k = max_norm / (n + 1e-6);
        if k < 1.0 {
            self.scale(k)?;
        }
        Ok(n)
    }
}

/// The sum of squares of a contiguous f32/f64 CPU tensor in one pass: each element widened to
/// f64, squared, and added in storage order from 0.0 (the order of candle's sequential
/// `sum_all` over a contiguous tensor). `None` for other tensors.
fn sum_squares_cpu(t: &Tensor) -> Option<f64> {
    let (storage, layout) = t.storage_and_layout();
    let (start, end) = layout.contiguous_offsets()?;
    match &*storage {
        Storage::Cpu(CpuStorage::F32(v)) => Some(v[start..end].iter().fold(0.0f64, |acc, &x| {
            let x = x as f64;
            acc + x * x
        })),
        Storage::Cpu(CpuStorage::F64(v)) => {
            Some(v[start..end].iter().fold(0.0f64, |acc, &x| acc + x * x))
        }
        _ => None,
    }
}

/// AdamW hyper-parameters (defaults: torch's betas/eps, verl's weight decay 0.01).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// Moment buffers of one tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Moments {
    /// f32 parameter.
    F32(Vec<f32>, Vec<f32>),
    /// f64 parameter.
    F64(Vec<f64>, Vec<f64>),
}

/// The optimizer: config, step count and moments by parameter name.
#[derive(Debug, Clone)]
pub struct AdamW {
    /// Hyper-parameters.
    pub config: AdamWConfig,
    /// Completed steps.
    pub step: u64,
    /// Moments by parameter name.
    pub state: BTreeMap<String, Moments>,
}

struct AdamOp<'a> {
    moments: RefCell<&'a mut Moments>,
    lr: f64,
    cfg: AdamWConfig,
    step: u64,
}

macro_rules! adam_kernel {
    ($p:expr, $g:expr, $m:expr, $v:expr, $lr:expr, $c:expr, $t:expr, $ty:ty) => {{
        let bc1 = 1.0 - $c.beta1.powi($t as i32);
        let bc2 = 1.0 - $c.beta2.powi($t as i32);
        let decay = (1.0 - $lr * $c.weight_decay) as $ty;
        let step_size = ($lr / bc1) as $ty;
        let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as $ty;
        let (b1, b2, eps) = ($c.beta1 as $ty, $c.beta2 as $ty, $c.eps as $ty);
        const CHUNK: usize = 1 << 16;
        $p.par_chunks_mut(CHUNK)
            .zip($g.par_chunks(CHUNK))
            .zip($m.par_chunks_mut(CHUNK).zip($v.par_chunks_mut(CHUNK)))
            .for_each(|((p, g), (m, v))| {
                for i in 0..p.len() {
                    let gi = g[i];
                    let mi = b1 * m[i] + (1.0 - b1) * gi;
                    let vi = b2 * v[i] + (1.0 - b2) * gi * gi;
                    m[i] = mi;
                    v[i] = vi;
                    p[i] = p[i] * decay - step_size * mi / (vi.sqrt() * inv_sqrt_bc2 + eps);
                }
            });
    }};
}

impl InplaceOp2 for AdamOp<'_> {
    fn name(&self) -> &'static str {
        "fused-adamw"
    }

    fn cpu_fwd(
        &self,
        p: &mut CpuStorage,
        pl: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<()> {
        let (ps, pe) = pl
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("adamw: parameter not contiguous".into()))?;
        let (gs, ge) = gl
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("adamw: gradient not contiguous".into()))?;
        let mut mom = self.moments.borrow_mut();
        match (p, g, &mut **mom) {
            (CpuStorage::F32(p), CpuStorage::F32(g), Moments::F32(m, v)) => {
                let (p, g) = (&mut p[ps..pe], &g[gs..ge]);
                adam_kernel!(p, g, m, v, self.lr, self.cfg, self.step, f32)
            }
            (CpuStorage::F64(p), CpuStorage::F64(g), Moments::F64(m, v)) => {
                let (p, g) = (&mut p[ps..pe], &g[gs..ge]);
                adam_kernel!(p, g, m, v, self.lr, self.cfg, self.step, f64)
            }
            _ => candle_core::bail!("adamw: parameter, gradient and moments must share f32/f64"),
        }
        Ok(())
    }
}

impl AdamW {
    /// A fresh optimizer.
    pub fn new(config: AdamWConfig) -> Self {
        AdamW {
            config,
            step: 0,
            state: BTreeMap::new(),
        }
    }

    /// One update of every trainable parameter that has a gradient, at learning rate `lr`.
    pub fn step(&mut self, params: &ParamStore, grads: &Grads, lr: f64) -> Result<()> {
        self.step += 1;
        for (name, var) in params.trainable() {
            let Some(g) = grads.get(name) else { continue };
            if g.dims() != var.dims() {
                return Err(ModelError::arg(
                    "grads",
                    format!(
                        "{name}: gradient shape {:?} vs parameter {:?}",
                        g.dims(),
                        var.dims()
                    ),
                ));
            }
            let n = var.elem_count();
            let mom = self
                .state
                .entry(name.clone())
                .or_insert_with(|| match var.dtype() {
                    DType::F64 => Moments::F64(vec![0.0; n], vec![0.0; n]),
                    _ => Moments::F32(vec![0.0; n], vec![0.0; n]),
                });
            let g = g.to_dtype(var.dtype())?.contiguous()?;
            if var.device().is_cpu() {
                let op = AdamOp {
                    moments: RefCell::new(mom),
                    lr,
                    cfg: self.config,
                    step: self.step,
                };
                var.as_tensor().inplace_op2(&g, &op)?;
            } else {
                self.step_on_device(var, &g, name, lr)?;
            }
        }
        Ok(())
    }

    /// Tensor-op AdamW for non-CPU devices (moments round-trip through host buffers).
    fn step_on_device(
        &mut self,
        var: &candle_core::Var,
        g: &Tensor,
        name: &str,
        lr: f64,
    ) -> Result<()> {
        let c = self.config;
        let t = self.step as i32;
        let dev = var.device().clone();
        let shape = var.shape().clone();
        let mom = self.state.get_mut(name).expect("inserted");
        let (m, v) = match mom {
            Moments::F32(m, v) => (
                Tensor::from_slice(m.as_slice(), shape.clone(), &dev)?,
                Tensor::from_slice(v.as_slice(), shape.clone(), &dev)?,
            ),
            Moments::F64(m, v) => (
                Tensor::from_slice(m.as_slice(), shape.clone(), &dev)?,
                Tensor::from_slice(v.as_slice(), shape.clone(), &dev)?,
            ),
        };
        let m = ((m * c.beta1)? + (g * (1.0 - c.beta1))?)?;
        let v = ((v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        let denom = ((v.sqrt()? / bc2.sqrt())? + c.eps)?;
        let p = ((var.as_tensor() * (1.0 - lr * c.weight_decay))?
            - ((m.clone() / denom)? * (lr / bc1))?)?;
        var.set(&p)?;
        match mom {
            Moments::F32(mm, vv) => {
                *mm = m.flatten_all()?.to_vec1()?;
                *vv = v.flatten_all()?.to_vec1()?;
            }
            Moments::F64(mm, vv) => {
                *mm = m.flatten_all()?.to_vec1()?;
                *vv = v.flatten_all()?.to_vec1()?;
            }
        }
        Ok(())
    }
}

/// Learning-rate schedule (verl's `lr_warmup_steps` / `warmup_style` semantics).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LrSchedule {
    /// `lr` at every step.
    Constant,
    /// Linear warmup from `lr / warmup` to `lr` over `warmup` steps, then constant.
    Warmup {
        /// Warmup steps.
        warmup: u64,
    },
    /// Linear warmup, then cosine decay to `min_ratio * lr` at `total` steps.
    Cosine {
        /// Warmup steps.
        warmup: u64,
        /// Total steps.
        total: u64,
        /// Final lr as a fraction of the peak.
        min_ratio: f64,
    },
}

impl LrSchedule {
    /// Learning rate of (0-based) step `step` for peak `lr`.
    pub fn lr_at(&self, lr: f64, step: u64) -> f64 {
        let warm = |w: u64| {
            if w > 0 && step < w {
                Some(lr * (step + 1) as f64 / w as f64)
            } else {
                None
            }
        };
        match *self {
            LrSchedule::Constant => lr,
            LrSchedule::Warmup { warmup } => warm(warmup).unwrap_or(lr),
            LrSchedule::Cosine {
                warmup,
                total,
                min_ratio,
            } => warm(warmup).unwrap_or_else(|| {
                let span = total.saturating_sub(warmup).max(1) as f64;
                let progress = ((step - warmup) as f64 / span).min(1.0);
                let c = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                lr * (min_ratio + (1.0 - min_ratio) * c)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn adamw_first_steps_by_hand() {
        // p = 1, g = 0.5, lr = 0.1, wd = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8.
        // Step 1: p = 1 * (1 - 0.01) = 0.99; m = 0.05, v = 0.00025; m_hat = 0.5,
        // v_hat = 0.25 -> update 0.1 * 0.5 / 0.5 = 0.1 -> p = 0.89.
        // Step 2 (same g): p = 0.89 * 0.99 = 0.8811; m = 0.095, v = 0.00049975;
        // m_hat = 0.095/0.19 = 0.5, v_hat = 0.00049975/0.001999 = 0.25 -> p = 0.7811.
        let mut store = ParamStore::new();
        let v = Var::new(&[1f32, -2.0], &Device::Cpu).unwrap();
        store.insert("w", v.clone());
        let mut grads = Grads::new();
        grads.map.insert(
            "w".into(),
            Tensor::new(&[0.5f32, 0.0], &Device::Cpu).unwrap(),
        );
        let mut opt = AdamW::new(AdamWConfig {
            weight_decay: 0.1,
            ..Default::default()
        });
        opt.step(&store, &grads, 0.1).unwrap();
        let p: Vec<f32> = v.to_vec1().unwrap();
        assert!((p[0] - 0.89).abs() < 1e-6, "{p:?}");
        // Zero gradient: only decay, -2 * 0.99 = -1.98.
        assert!((p[1] + 1.98).abs() < 1e-6, "{p:?}");
        opt.step(&store, &grads, 0.1).unwrap();
        let p: Vec<f32> = v.to_vec1().unwrap();
        assert!((p[0] - 0.7811).abs() < 1e-5, "{p:?}");
    }

    #[test]
    fn frozen_parameters_are_not_updated() {
        let mut store = ParamStore::new();
        let v = Var::new(&[1f64], &Device::Cpu).unwrap();
        store.insert("w", v.clone());
        store.freeze_where(|_| true);
        let mut grads = Grads::new();
        grads
            .map
            .insert("w".into(), Tensor::new(&[1f64], &Device::Cpu).unwrap());
        AdamW::new(AdamWConfig::default())
            .step(&store, &grads, 0.1)
            .unwrap();
        assert_eq!(v.to_vec1::<f64>().unwrap(), vec![1.0]);
    }

    #[test]
    fn global_norm_is_bit_identical_to_the_composed_ops() {
        // f32 tensors of several sizes, a transposed (non-contiguous) view that takes the
        // composed path, a narrowed view (storage offset) and an f64 tensor.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 3.0
        };
        let mut g = Grads::new();
        for (i, n) in [1usize, 7, 64, 1000, 65_537].into_iter().enumerate() {
            let v: Vec<f32> = (0..n).map(|_| next()).collect();
            g.map.insert(
                format!("f32_{i}"),
                Tensor::from_vec(v, n, &Device::Cpu).unwrap(),
            );
        }
        let m: Vec<f32> = (0..12 * 5).map(|_| next()).collect();
        let m = Tensor::from_vec(m, (12, 5), &Device::Cpu).unwrap();
        g.map.insert("transposed".into(), m.t().unwrap());
        g.map.insert("narrowed".into(), m.narrow(0, 3, 4).unwrap());
        let d: Vec<f64> = (0..333).map(|_| next() as f64 * 1.1).collect();
        g.map.insert(
            "f64".into(),
            Tensor::from_vec(d, 333, &Device::Cpu).unwrap(),
        );
        let mut composed = 0.0;
        for t in g.map.values() {
            composed += t
                .to_dtype(DType::F64)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap();
        }
        assert!(sum_squares_cpu(g.get("transposed").unwrap()).is_none());
        assert!(sum_squares_cpu(g.get("narrowed").unwrap()).is_some());
        assert_eq!(
            g.global_norm().unwrap().to_bits(),
            composed.sqrt().to_bits()
        );
    }

    #[test]
    fn clipping_scales_to_max_norm() {
        // Gradients [3, 4] and [12]: norm sqrt(9 + 16 + 144) = 13; clip to 1.3 -> factor ~0.1.
        let mut g = Grads::new();
        g.map
            .insert("a".into(), Tensor::new(&[3f32, 4.], &Device::Cpu).unwrap());
        g.map
            .insert("b".into(), Tensor::new(&[12f32], &Device::Cpu).unwrap());
        let n = g.clip_global_norm(1.3).unwrap();
        assert!((n - 13.0).abs() < 1e-9);
        assert!((g.global_norm().unwrap() - 1.3).abs() < 1e-5);
        // Below the limit nothing changes.
        let n2 = g.clip_global_norm(100.0).unwrap();
        assert!((n2 - 1.3).abs() < 1e-5 && (g.global_norm().unwrap() - 1.3).abs() < 1e-5);
    }

    #[test]
    fn schedules_by_hand() {
        let w = LrSchedule::Warmup { warmup: 4 };
        // Steps 0..3: lr * 1/4, 2/4, 3/4, 4/4; then lr.
        assert_eq!(w.lr_at(1.0, 0), 0.25);
        assert_eq!(w.lr_at(1.0, 3), 1.0);
        assert_eq!(w.lr_at(1.0, 10), 1.0);
        let c = LrSchedule::Cosine {
            warmup: 0,
            total: 10,
            min_ratio: 0.1,
        };
        // Halfway: 0.1 + 0.9 * 0.5 = 0.55; end: 0.1.
        assert!((c.lr_at(1.0, 5) - 0.55).abs() < 1e-12);
        assert!((c.lr_at(1.0, 10) - 0.1).abs() < 1e-12);
        assert_eq!(LrSchedule::Constant.lr_at(0.3, 99), 0.3);
    }
}
