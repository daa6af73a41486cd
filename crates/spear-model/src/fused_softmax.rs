//! A trainable softmax over the last dimension for the CPU: one pass forward and one pass
//! backward (`dx = y ⊙ (dy − Σ dy ⊙ y)`), rows in parallel with rayon.
//!
//! The composed softmax (`max`, `sub`, `exp`, `sum`, `div`, each materialising a
//! `[B, heads, T, T]` tensor, and as many again in the backward pass) made attention the
//! dominant cost of training on long agent prompts (≈500 tokens); candle-nn's fused
//! `softmax_last_dim` has no backward (ml-backend.md). This op keeps the gradient and touches
//! each element twice per pass.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

struct SoftmaxLast;
struct SoftmaxLastBwd;

fn rows_fwd<T: num_like::Float>(x: &[T], n: usize) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(n)
        .zip(x.par_chunks(n))
        .for_each(|(o, r)| {
            let m = r.iter().copied().fold(T::neg_infinity(), T::max);
            let mut s = T::zero();
            for (oi, &xi) in o.iter_mut().zip(r) {
                let e = (xi - m).exp();
                *oi = e;
                s = s + e;
            }
            let inv = T::one() / s;
            o.iter_mut().for_each(|v| *v = *v * inv);
        });
    out
}

fn rows_bwd<T: num_like::Float>(y: &[T], dy: &[T], n: usize) -> Vec<T> {
    let mut out = vec![T::zero(); y.len()];
    out.par_chunks_mut(n)
        .zip(y.par_chunks(n).zip(dy.par_chunks(n)))
        .for_each(|(o, (yr, dr))| {
            let mut dot = T::zero();
            for (&a, &b) in yr.iter().zip(dr) {
                dot = dot + a * b;
            }
            for ((oi, &a), &b) in o.iter_mut().zip(yr).zip(dr) {
                *oi = a * (b - dot);
            }
        });
    out
}

fn contiguous<'a, T: candle_core::WithDType>(s: &'a [T], l: &Layout) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s[a..b]),
        None => candle_core::bail!("spear softmax: input must be contiguous"),
    }
}

impl CustomOp1 for SoftmaxLast {
    fn name(&self) -> &'static str {
        "spear-softmax-last"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let n = *layout.dims().last().unwrap_or(&1);
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(rows_fwd(contiguous(v, layout)?, n)),
            CpuStorage::F64(v) => CpuStorage::F64(rows_fwd(contiguous(v, layout)?, n)),
            _ => candle_core::bail!("spear softmax: f32 or f64 only"),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let g = res.apply_op2_no_bwd(&grad_res.contiguous()?, &SoftmaxLastBwd)?;
        Ok(Some(g))
    }
}

impl CustomOp2 for SoftmaxLastBwd {
    fn name(&self) -> &'static str {
        "spear-softmax-last-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = *l1.dims().last().unwrap_or(&1);
        let out = match (s1, s2) {
            (CpuStorage::F32(y), CpuStorage::F32(d)) => {
                CpuStorage::F32(rows_bwd(contiguous(y, l1)?, contiguous(d, l2)?, n))
            }
            (CpuStorage::F64(y), CpuStorage::F64(d)) => {
                CpuStorage::F64(rows_bwd(contiguous(y, l1)?, contiguous(d, l2)?, n))
            }
            _ => candle_core::bail!("spear softmax backward: f32 or f64, same dtype"),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// Softmax over the last dimension with a one-pass backward (CPU tensors only).
pub fn softmax_last_trainable(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(SoftmaxLast)
}

/// `softmax(scores + mask)` over the last dimension: `scores` `[b, …, t, k]` (contiguous),
/// `mask` `[b, 1, …, 1, t, k]` (0 or a large negative). The mask is a constant: no gradient.
struct MaskedSoftmaxLast;

fn masked_rows_fwd<T: num_like::Float>(x: &[T], m: &[T], b: usize, t: usize, k: usize) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    let rows_per_b = x.len() / k / b.max(1);
    out.par_chunks_mut(k)
        .zip(x.par_chunks(k))
        .enumerate()
        .for_each(|(r, (o, xr))| {
            let bi = r / rows_per_b.max(1);
            let i = r % t;
            let mr = &m[(bi * t + i) * k..(bi * t + i + 1) * k];
            let mut mx = T::neg_infinity();
            for (oi, (&xi, &mi)) in o.iter_mut().zip(xr.iter().zip(mr)) {
                let v = xi + mi;
                *oi = v;
                mx = mx.max(v);
            }
            let mut s = T::zero();
            for oi in o.iter_mut() {
                let e = (*oi - mx).exp();
                *oi = e;
                s = s + e;
            }
            let inv = T::one() / s;
            o.iter_mut().for_each(|v| *v = *v * inv);
        });
    out
}

impl CustomOp2 for MaskedSoftmaxLast {
    fn name(&self) -> &'static str {
        "spear-masked-softmax-last"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = l1.dims();
        let md = l2.dims();
        if d.len() < 2 || md.len() != d.len() || md[0] != d[0] {
            candle_core::bail!("spear masked softmax: bad shapes {d:?} / {md:?}");
        }
        let (b, t, k) = (d[0], d[d.len() - 2], d[d.len() - 1]);
        if md[md.len() - 2] != t || md[md.len() - 1] != k || l2.shape().elem_count() != b * t * k {
            candle_core::bail!("spear masked softmax: mask {md:?} does not fit scores {d:?}");
        }
        let out = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(m)) => CpuStorage::F32(masked_rows_fwd(
                contiguous(x, l1)?,
                contiguous(m, l2)?,
                b,
                t,
                k,
            )),
            (CpuStorage::F64(x), CpuStorage::F64(m)) => CpuStorage::F64(masked_rows_fwd(
                contiguous(x, l1)?,
                contiguous(m, l2)?,
                b,
                t,
                k,
            )),
            _ => candle_core::bail!("spear masked softmax: f32 or f64, same dtype"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _a: &Tensor,
        _mask: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = res.apply_op2_no_bwd(&grad_res.contiguous()?, &SoftmaxLastBwd)?;
        Ok((Some(g), None))
    }
}

/// `softmax(scores + mask)` over the last dimension with a one-pass backward (CPU only);
/// `mask` `[b, 1, …, 1, t, k]` broadcasts over the middle dimensions and gets no gradient.
pub fn masked_softmax_last_trainable(scores: &Tensor, mask: &Tensor) -> Result<Tensor> {
    scores
        .contiguous()?
        .apply_op2(&mask.contiguous()?, MaskedSoftmaxLast)
}

/// The float operations the row kernels need (f32 and f64).
mod num_like {
    pub trait Float:
        Copy
        + Send
        + Sync
        + std::ops::Add<Output = Self>
        + std::ops::Sub<Output = Self>
        + std::ops::Mul<Output = Self>
        + std::ops::Div<Output = Self>
    {
        fn zero() -> Self;
        fn one() -> Self;
        fn neg_infinity() -> Self;
        fn max(self, o: Self) -> Self;
        fn exp(self) -> Self;
    }
    macro_rules! imp {
        ($t:ty) => {
            impl Float for $t {
                fn zero() -> Self {
                    0.0
                }
                fn one() -> Self {
                    1.0
                }
                fn neg_infinity() -> Self {
                    <$t>::NEG_INFINITY
                }
                fn max(self, o: Self) -> Self {
                    <$t>::max(self, o)
                }
                fn exp(self) -> Self {
                    <$t>::exp(self)
                }
            }
        };
    }
    imp!(f32);
    imp!(f64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var, D};

    #[test]
    fn forward_and_gradient_match_the_composed_softmax() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(
            &Tensor::randn(0f64, 2.0, (3, 2, 5, 7), &dev)
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap(),
        )
        .unwrap();
        let w = Tensor::randn(0f64, 1.0, (3, 2, 5, 7), &dev).unwrap();
        let a = softmax_last_trainable(x.as_tensor()).unwrap();
        let b = candle_nn::ops::softmax(x.as_tensor(), D::Minus1).unwrap();
        let diff = (&a - &b).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f64>().unwrap() < 1e-12);
        let ga = (&a * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (&b * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let d = (ga.get(&x).unwrap() - gb.get(&x).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(d < 1e-12, "gradient differs by {d}");
        // A fully masked-out row stays finite (max subtraction).
        let big = Tensor::new(&[[-1e9f32, -1e9, 0.0]], &dev).unwrap();
        let s: Vec<Vec<f32>> = softmax_last_trainable(&big).unwrap().to_vec2().unwrap();
        assert!((s[0][2] - 1.0).abs() < 1e-6 && s[0][0] == 0.0);
    }

    #[test]
    fn masked_softmax_matches_add_then_softmax() {
        let dev = Device::Cpu;
        let x =
            Var::from_tensor(&Tensor::randn(0f64, 2.0, (2, 3, 2, 4, 5), &dev).unwrap()).unwrap();
        let mut m = vec![0f64; 2 * 4 * 5];
        for (j, v) in m.iter_mut().enumerate() {
            if j % 3 == 1 {
                *v = -1e9;
            }
        }
        let mask = Tensor::from_vec(m, (2, 1, 1, 4, 5), &dev).unwrap();
        let w = Tensor::randn(0f64, 1.0, (2, 3, 2, 4, 5), &dev).unwrap();
        let a = masked_softmax_last_trainable(x.as_tensor(), &mask).unwrap();
        let b = candle_nn::ops::softmax(&x.as_tensor().broadcast_add(&mask).unwrap(), D::Minus1)
            .unwrap();
        let diff = (&a - &b).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f64>().unwrap() < 1e-12);
        let ga = (&a * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (&b * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let d = (ga.get(&x).unwrap() - gb.get(&x).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(d < 1e-12, "gradient differs by {d}");
    }
}
