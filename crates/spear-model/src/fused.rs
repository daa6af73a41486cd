//! Fused CPU kernels with hand-written backward passes for the training path: softmax over the
//! last dimension and RMSNorm.
//!
//! candle-nn's fused `softmax_last_dim` and `rms_norm` record no backward (their gradients are
//! silently dropped, shared/docs/ml-backend.md), and the composed versions keep four or five
//! full-size temporaries per call alive until backward (attention scores are `[b, heads, t, t]`).
//! These ops store only their output (and input) and compute the gradient in one pass:
//! - softmax `y = exp(x - max) / Σ exp(x - max)`: `∂L/∂x = y ⊙ (g - Σ g ⊙ y)`;
//! - RMSNorm `y = x r w` with `r = 1 / sqrt(mean(x²) + eps)` over the last dimension `n`:
//!   `∂L/∂x_i = r g_i w_i - x_i r³ / n Σ_j g_j w_j x_j`, `∂L/∂w = Σ_rows g x r`.
//!
//! Row sums are accumulated in f64. Off the CPU these functions hand over to
//! [`crate::device_ops`] (candle's kernels forward, a backward in tensor ops); for dtypes other
//! than f32/f64 the callers in `ops` use the composed ops.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::error::Result;

/// Whether the fused kernels can run on `x`.
pub fn supported(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) && x.elem_count() > 0
}

/// Differentiable softmax over the last dimension (CPU, f32/f64).
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return crate::device_ops::softmax_last(x);
    }
    Ok(x.contiguous()?.apply_op1(Softmax)?)
}

/// Differentiable RMSNorm over the last dimension with weight `w: [n]` (CPU, f32/f64).
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return crate::device_ops::rms_norm(x, w, eps);
    }
    Ok(x.contiguous()?
        .apply_op2(&w.contiguous()?, RmsNorm { eps })?)
}

trait Real: Copy + Send + Sync + 'static {
    fn to_f64(self) -> f64;
    fn from_f64(x: f64) -> Self;
    fn exp(self) -> Self;
}

/// `f32::exp`, with the arguments whose result rounds to +0 (below -104; `expf` underflows below
/// about -103.97) answered without calling libm. Masked attention scores (`MASK_VALUE` = -1e9)
/// are such arguments, and glibc's `expf` takes a slow path for them (it raises the underflow
/// and sets `errno`): a causal softmax has nearly half of its entries masked. The result is
/// bit-identical to `f32::exp` for every input (NaN stays NaN: the comparison is false).
#[inline]
pub(crate) fn exp_f32(x: f32) -> f32 {
    if x < -104.0 {
        0.0
    } else {
        x.exp()
    }
}

/// `f64::exp` with the same short cut below -746 (`exp` underflows to +0 below about -745.13).
#[inline]
pub(crate) fn exp_f64(x: f64) -> f64 {
    if x < -746.0 {
        0.0
    } else {
        x.exp()
    }
}

impl Real for f32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn exp(self) -> Self {
        exp_f32(self)
    }
}

impl Real for f64 {
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(x: f64) -> Self {
        x
    }
    fn exp(self) -> Self {
        exp_f64(self)
    }
}

fn slice<'a, T>(x: &'a [T], l: &Layout, op: &str) -> candle_core::Result<&'a [T]> {
    let (s, e) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{op}: input not contiguous")))?;
    Ok(&x[s..e])
}

fn last_dim(l: &Layout) -> candle_core::Result<usize> {
    l.dims()
        .last()
        .copied()
        .filter(|&n| n > 0)
        .ok_or_else(|| candle_core::Error::Msg("fused op: empty last dimension".into()))
}

/// Rows per rayon task (keeps tasks large enough for short rows).
fn rows_per_task(n: usize) -> usize {
    (16384 / n).max(1)
}

// ---------------------------------------------------------------- softmax

struct Softmax;

fn softmax_rows<T: Real>(x: &[T], n: usize) -> Vec<T> {
    let mut out = vec![T::from_f64(0.0); x.len()];
    let chunk = rows_per_task(n) * n;
    out.par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .for_each(|(o, x)| {
            for (o, x) in o.chunks_mut(n).zip(x.chunks(n)) {
                let m = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v.to_f64()));
                let mut s = 0.0f64;
                for (oj, &xj) in o.iter_mut().zip(x) {
                    let e = T::from_f64(xj.to_f64() - m).exp();
                    *oj = e;
                    s += e.to_f64();
                }
                let inv = 1.0 / s;
                for oj in o.iter_mut() {
                    *oj = T::from_f64(oj.to_f64() * inv);
                }
            }
        });
    out
}

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "softmax-last-dim-trainable"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let n = last_dim(l)?;
        let out = match s {
            CpuStorage::F32(x) => CpuStorage::F32(softmax_rows(slice(x, l, "softmax")?, n)),
            CpuStorage::F64(x) => CpuStorage::F64(softmax_rows(slice(x, l, "softmax")?, n)),
            _ => candle_core::bail!("softmax: f32 or f64 only"),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(y.apply_op2_no_bwd(&g.contiguous()?, &SoftmaxGrad)?))
    }
}

struct SoftmaxGrad;

fn softmax_grad_rows<T: Real>(y: &[T], g: &[T], n: usize) -> Vec<T> {
    let mut out = vec![T::from_f64(0.0); y.len()];
    let chunk = rows_per_task(n) * n;
    out.par_chunks_mut(chunk)
        .zip(y.par_chunks(chunk).zip(g.par_chunks(chunk)))
        .for_each(|(o, (y, g))| {
            for ((o, y), g) in o.chunks_mut(n).zip(y.chunks(n)).zip(g.chunks(n)) {
                let s: f64 = y
                    .iter()
                    .zip(g)
                    .map(|(&a, &b)| a.to_f64() * b.to_f64())
                    .sum();
                for ((oj, &yj), &gj) in o.iter_mut().zip(y).zip(g) {
                    *oj = T::from_f64(yj.to_f64() * (gj.to_f64() - s));
                }
            }
        });
    out
}

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "softmax-last-dim-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let n = last_dim(l1)?;
        let out = match (s1, s2) {
            (CpuStorage::F32(y), CpuStorage::F32(g)) => CpuStorage::F32(softmax_grad_rows(
                slice(y, l1, "softmax grad")?,
                slice(g, l2, "softmax grad")?,
                n,
            )),
            (CpuStorage::F64(y), CpuStorage::F64(g)) => CpuStorage::F64(softmax_grad_rows(
                slice(y, l1, "softmax grad")?,
                slice(g, l2, "softmax grad")?,
                n,
            )),
            _ => candle_core::bail!("softmax grad: f32 or f64 tensors of one dtype"),
        };
        Ok((out, l1.shape().clone()))
    }
}

// ---------------------------------------------------------------- RMSNorm

struct RmsNorm {
    eps: f64,
}

fn inv_rms<T: Real>(x: &[T], eps: f64) -> f64 {
    let ms = x.iter().map(|&v| v.to_f64() * v.to_f64()).sum::<f64>() / x.len() as f64;
    1.0 / (ms + eps).sqrt()
}

fn rms_rows<T: Real>(x: &[T], w: &[T], eps: f64) -> Vec<T> {
    let n = w.len();
    let mut out = vec![T::from_f64(0.0); x.len()];
    let chunk = rows_per_task(n) * n;
    out.par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .for_each(|(o, x)| {
            for (o, x) in o.chunks_mut(n).zip(x.chunks(n)) {
                let r = inv_rms(x, eps);
                for ((oj, &xj), &wj) in o.iter_mut().zip(x).zip(w) {
                    *oj = T::from_f64(xj.to_f64() * r * wj.to_f64());
                }
            }
        });
    out
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm-trainable"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let n = last_dim(l1)?;
        if l2.shape().elem_count() != n {
            candle_core::bail!(
                "rms-norm: weight of {} for rows of {n}",
                l2.shape().elem_count()
            )
        }
        let out = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(w)) => CpuStorage::F32(rms_rows(
                slice(x, l1, "rms-norm")?,
                slice(w, l2, "rms-norm")?,
                self.eps,
            )),
            (CpuStorage::F64(x), CpuStorage::F64(w)) => CpuStorage::F64(rms_rows(
                slice(x, l1, "rms-norm")?,
                slice(w, l2, "rms-norm")?,
                self.eps,
            )),
            _ => candle_core::bail!("rms-norm: f32 or f64 tensors of one dtype"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let n = w.elem_count();
        let rows = x.elem_count() / n;
        // One pass: the input gradient rows, then one extra row with the weight gradient.
        let both = x.apply_op3_no_bwd(w, &g.contiguous()?, &RmsNormGrad { eps: self.eps })?;
        let gx = both.narrow(0, 0, rows)?.reshape(x.shape())?;
        let gw = both.narrow(0, rows, 1)?.reshape(w.shape())?;
        Ok((Some(gx), Some(gw)))
    }
}

struct RmsNormGrad {
    eps: f64,
}

fn rms_grad_rows<T: Real>(x: &[T], w: &[T], g: &[T], eps: f64) -> Vec<T> {
    let n = w.len();
    let mut out = vec![T::from_f64(0.0); x.len() + n];
    let (gx, _) = out.split_at_mut(x.len());
    let chunk = rows_per_task(n) * n;
    // Input gradient by row blocks; each block also returns its partial weight gradient.
    let partial: Vec<Vec<f64>> = gx
        .par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk).zip(g.par_chunks(chunk)))
        .map(|(o, (x, g))| {
            let mut gw = vec![0.0f64; n];
            for ((o, x), g) in o.chunks_mut(n).zip(x.chunks(n)).zip(g.chunks(n)) {
                let r = inv_rms(x, eps);
                let dot: f64 = x
                    .iter()
                    .zip(g)
                    .zip(w)
                    .map(|((&xj, &gj), &wj)| gj.to_f64() * wj.to_f64() * xj.to_f64())
                    .sum();
                let c = r * r * r * dot / n as f64;
                for (j, oj) in o.iter_mut().enumerate() {
                    let (xj, gj) = (x[j].to_f64(), g[j].to_f64());
                    *oj = T::from_f64(r * gj * w[j].to_f64() - xj * c);
                    gw[j] += gj * xj * r;
                }
            }
            gw
        })
        .collect();
    let gw_out = &mut out[x.len()..];
    for (j, o) in gw_out.iter_mut().enumerate() {
        *o = T::from_f64(partial.iter().map(|p| p[j]).sum());
    }
    out
}

impl CustomOp3 for RmsNormGrad {
    fn name(&self) -> &'static str {
        "rms-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let n = last_dim(l1)?;
        let rows = l1.shape().elem_count() / n;
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(g)) => {
                CpuStorage::F32(rms_grad_rows(
                    slice(x, l1, "rms-norm grad")?,
                    slice(w, l2, "rms-norm grad")?,
                    slice(g, l3, "rms-norm grad")?,
                    self.eps,
                ))
            }
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(g)) => {
                CpuStorage::F64(rms_grad_rows(
                    slice(x, l1, "rms-norm grad")?,
                    slice(w, l2, "rms-norm grad")?,
                    slice(g, l3, "rms-norm grad")?,
                    self.eps,
                ))
            }
            _ => candle_core::bail!("rms-norm grad: f32 or f64 tensors of one dtype"),
        };
        Ok((out, Shape::from((rows + 1, n))))
    }
}

// ---------------------------------------------------------------- attention softmax

/// Differentiable `softmax(scale * scores + mask)` over the last dimension, for attention
/// scores `[b, heads, t, T]` (or `[b, kv_heads, g * t, T]`, query heads stacked along time) and an additive mask `[b, 1, 1, t, T]` (broadcast over heads; no
/// gradient flows to the mask). One pass forward; backward `scale * y ⊙ (g - Σ g ⊙ y)`.
pub fn masked_softmax(scores: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    if !scores.device().is_cpu() {
        return crate::device_ops::masked_softmax(scores, mask, scale);
    }
    let (b, h, rows, tk) = scores.dims4()?;
    let t = mask.dim(3)?;
    if t == 0 || rows % t != 0 {
        return Err(crate::error::ModelError::arg(
            "mask",
            format!("{t} query rows for scores {:?}", scores.dims()),
        ));
    }
    let mask = mask.reshape((b, t, tk))?.contiguous()?;
    let y = scores
        .contiguous()?
        .reshape((b, h * rows / t, t, tk))?
        .apply_op2(&mask, MaskedSoftmax { scale })?;
    Ok(y.reshape((b, h, rows, tk))?)
}

struct MaskedSoftmax {
    scale: f64,
}

fn masked_softmax_rows<T: Real>(x: &[T], m: &[T], t: usize, n: usize, scale: f64) -> Vec<T> {
    let mut out = vec![T::from_f64(0.0); x.len()];
    // One task per (batch, head) block of t rows, which uses the t mask rows of its batch.
    let heads_per_batch = x.len() / m.len();
    let block = t * n;
    out.par_chunks_mut(block)
        .zip(x.par_chunks(block))
        .enumerate()
        .for_each(|(bh, (o, x))| {
            let bi = bh / heads_per_batch;
            let mb = &m[bi * block..(bi + 1) * block];
            for ((o, x), mrow) in o.chunks_mut(n).zip(x.chunks(n)).zip(mb.chunks(n)) {
                let mut mx = f64::NEG_INFINITY;
                for (oj, (&xj, &mj)) in o.iter_mut().zip(x.iter().zip(mrow)) {
                    let z = T::from_f64(scale * xj.to_f64() + mj.to_f64());
                    *oj = z;
                    mx = mx.max(z.to_f64());
                }
                let mut s = 0.0f64;
                for oj in o.iter_mut() {
                    let e = T::from_f64(oj.to_f64() - mx).exp();
                    *oj = e;
                    s += e.to_f64();
                }
                let inv = 1.0 / s;
                for oj in o.iter_mut() {
                    *oj = T::from_f64(oj.to_f64() * inv);
                }
            }
        });
    out
}

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "masked-softmax-trainable"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, _, t, n) = l1.shape().dims4()?;
        if l2.dims() != [b, t, n] {
            candle_core::bail!(
                "masked-softmax: mask {:?} for scores {:?}",
                l2.dims(),
                l1.dims()
            )
        }
        let out = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(m)) => CpuStorage::F32(masked_softmax_rows(
                slice(x, l1, "masked-softmax")?,
                slice(m, l2, "masked-softmax")?,
                t,
                n,
                self.scale,
            )),
            (CpuStorage::F64(x), CpuStorage::F64(m)) => CpuStorage::F64(masked_softmax_rows(
                slice(x, l1, "masked-softmax")?,
                slice(m, l2, "masked-softmax")?,
                t,
                n,
                self.scale,
            )),
            _ => candle_core::bail!("masked-softmax: f32 or f64 tensors of one dtype"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _m: &Tensor,
        y: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let gx = (y.apply_op2_no_bwd(&g.contiguous()?, &SoftmaxGrad)? * self.scale)?;
        Ok((Some(gx), None))
    }
}

// ---------------------------------------------------------------- RoPE

/// Differentiable rotary embedding of `x: [b, heads, t, d]` with tables `[b, t, d/2]` (half
/// rotation pairs `(i, i + d/2)`, interleaved pairs `(2i, 2i+1)`). The rotation is linear and
/// orthogonal, so the backward pass is the same kernel rotating by `-angle`. No gradient flows
/// to the tables.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, interleaved: bool) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return crate::device_ops::rope(x, cos, sin, interleaved);
    }
    let op = Rope {
        interleaved,
        inverse: false,
    };
    Ok(x.contiguous()?
        .apply_op3(&cos.contiguous()?, &sin.contiguous()?, op)?)
}

struct Rope {
    interleaved: bool,
    inverse: bool,
}

fn rope_rows<T: Real>(x: &[T], c: &[T], s: &[T], dims: (usize, usize, usize), op: &Rope) -> Vec<T> {
    let (h, t, d) = dims;
    let half = d / 2;
    let sign = if op.inverse { -1.0 } else { 1.0 };
    let mut out = vec![T::from_f64(0.0); x.len()];
    out.par_chunks_mut(t * d)
        .zip(x.par_chunks(t * d))
        .enumerate()
        .for_each(|(bh, (o, x))| {
            let bi = bh / h;
            for ti in 0..t {
                let tab = (bi * t + ti) * half;
                let (o, x) = (&mut o[ti * d..(ti + 1) * d], &x[ti * d..(ti + 1) * d]);
                for i in 0..half {
                    let (cv, sv) = (c[tab + i].to_f64(), sign * s[tab + i].to_f64());
                    let (a, b) = if op.interleaved {
                        (2 * i, 2 * i + 1)
                    } else {
                        (i, i + half)
                    };
                    let (xa, xb) = (x[a].to_f64(), x[b].to_f64());
                    o[a] = T::from_f64(xa * cv - xb * sv);
                    o[b] = T::from_f64(xb * cv + xa * sv);
                }
            }
        });
    out
}

impl CustomOp3 for Rope {
    fn name(&self) -> &'static str {
        "rope-trainable"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, h, t, d) = l1.shape().dims4()?;
        if d % 2 != 0 || l2.dims() != [b, t, d / 2] || l3.dims() != [b, t, d / 2] {
            candle_core::bail!("rope: tables {:?} for x {:?}", l2.dims(), l1.dims())
        }
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(c), CpuStorage::F32(s)) => {
                CpuStorage::F32(rope_rows(
                    slice(x, l1, "rope")?,
                    slice(c, l2, "rope")?,
                    slice(s, l3, "rope")?,
                    (h, t, d),
                    self,
                ))
            }
            (CpuStorage::F64(x), CpuStorage::F64(c), CpuStorage::F64(s)) => {
                CpuStorage::F64(rope_rows(
                    slice(x, l1, "rope")?,
                    slice(c, l2, "rope")?,
                    slice(s, l3, "rope")?,
                    (h, t, d),
                    self,
                ))
            }
            _ => candle_core::bail!("rope: f32 or f64 tensors of one dtype"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        c: &Tensor,
        s: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let op = Rope {
            interleaved: self.interleaved,
            inverse: !self.inverse,
        };
        Ok((
            Some(g.contiguous()?.apply_op3_no_bwd(c, s, &op)?),
            None,
            None,
        ))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Var, D};

    use super::*;

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    #[test]
    fn guarded_exp_is_bit_identical_to_std_exp() {
        // A sweep through the underflow edges (f32: about -103.97, f64: about -745.13), the
        // mask value, infinities and NaN.
        let mut xs: Vec<f64> = (0..=40_000).map(|i| -110.0 + i as f64 * 0.001).collect();
        xs.extend((0..=20_000).map(|i| -750.0 + i as f64 * 0.001));
        xs.extend([
            -1e9,
            -1e30,
            f64::NEG_INFINITY,
            f64::INFINITY,
            0.0,
            -0.0,
            1.0,
            80.0,
        ]);
        for &x in &xs {
            let x32 = x as f32;
            assert_eq!(exp_f32(x32).to_bits(), x32.exp().to_bits(), "f32 {x32}");
            assert_eq!(exp_f64(x).to_bits(), x.exp().to_bits(), "f64 {x}");
        }
        assert!(exp_f32(f32::NAN).is_nan() && exp_f64(f64::NAN).is_nan());
        // The short cut is taken where the masked scores land.
        assert_eq!(exp_f32(-1e9), 0.0);
    }

    #[test]
    fn softmax_hand_value() {
        // [0, ln 3] -> [1/4, 3/4].
        let x = Tensor::new(&[[0f32, 3f32.ln()]], &crate::test_util::test_device()).unwrap();
        let y: Vec<Vec<f32>> = softmax_last(&x).unwrap().to_vec2().unwrap();
        assert!((y[0][0] - 0.25).abs() < 1e-7 && (y[0][1] - 0.75).abs() < 1e-7);
    }

    #[test]
    fn rms_norm_hand_value() {
        // x = [3, 4]: mean(x^2) = 12.5, 1/sqrt(12.5) = 0.282843; w = [1, 2] -> [0.848528, 2.262742].
        let x = Tensor::new(&[[3f32, 4.]], &crate::test_util::test_device()).unwrap();
        let w = Tensor::new(&[1f32, 2.], &crate::test_util::test_device()).unwrap();
        let y: Vec<Vec<f32>> = rms_norm(&x, &w, 0.0).unwrap().to_vec2().unwrap();
        assert!((y[0][0] - 0.848528).abs() < 1e-6 && (y[0][1] - 2.262742).abs() < 1e-6);
    }

    /// Values and gradients (against a random upstream gradient) equal the composed ops.
    #[test]
    fn match_composed_values_and_gradients() {
        for dtype in [DType::F32, DType::F64] {
            let tol = if dtype == DType::F32 { 2e-5 } else { 1e-12 };
            let dev = &crate::test_util::test_device();
            let x0 = Tensor::randn(0f32, 2.0, (3, 4, 37), dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let w0 = Tensor::randn(0f32, 1.0, 37, dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let up = Tensor::randn(0f32, 1.0, (3, 4, 37), dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let run = |fused: bool| {
                let x = Var::from_tensor(&x0).unwrap();
                let w = Var::from_tensor(&w0).unwrap();
                let (s, r) = if fused {
                    (
                        softmax_last(x.as_tensor()).unwrap(),
                        rms_norm(x.as_tensor(), w.as_tensor(), 1e-5).unwrap(),
                    )
                } else {
                    (
                        candle_nn::ops::softmax(x.as_tensor(), D::Minus1).unwrap(),
                        crate::ops::rms_norm_composed(x.as_tensor(), w.as_tensor(), 1e-5).unwrap(),
                    )
                };
                let loss = ((&s * &up).unwrap().sum_all().unwrap()
                    + (&r * &up).unwrap().sqr().unwrap().sum_all().unwrap())
                .unwrap();
                let g = loss.backward().unwrap();
                (
                    s,
                    r,
                    g.get(x.as_tensor()).unwrap().clone(),
                    g.get(w.as_tensor()).unwrap().clone(),
                )
            };
            let a = run(true);
            let b = run(false);
            assert!(max_abs_diff(&a.0, &b.0) < tol, "softmax {dtype:?}");
            assert!(max_abs_diff(&a.1, &b.1) < tol, "rms {dtype:?}");
            assert!(max_abs_diff(&a.2, &b.2) < 10.0 * tol, "grad x {dtype:?}");
            assert!(max_abs_diff(&a.3, &b.3) < 10.0 * tol, "grad w {dtype:?}");
        }
    }

    fn grad_of(x0: &Tensor, up: &Tensor, f: &dyn Fn(&Tensor) -> Tensor) -> (Tensor, Tensor) {
        let x = Var::from_tensor(x0).unwrap();
        let y = f(x.as_tensor());
        let loss = (&y * up).unwrap().sqr().unwrap().sum_all().unwrap();
        let g = loss.backward().unwrap();
        (y, g.get(x.as_tensor()).unwrap().clone())
    }

    #[test]
    fn rope_and_attention_softmax_match_composed() {
        let dev = &crate::test_util::test_device();
        for dtype in [DType::F32, DType::F64] {
            let tol = if dtype == DType::F32 { 1e-4 } else { 1e-11 };
            let r = |shape: &[usize], std: f32| {
                Tensor::randn(0f32, std, shape, dev)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap()
            };
            // RoPE on [b=2, h=3, t=4, d=8], both layouts.
            let pos = vec![vec![0, 1, 2, 7], vec![3, 4, 5, 6]];
            let (c, s) = crate::ops::rope_tables(&pos, 8, 100.0, dtype, dev).unwrap();
            let (x0, up) = (r(&[2, 3, 4, 8], 1.0), r(&[2, 3, 4, 8], 1.0));
            for inter in [false, true] {
                let a = grad_of(&x0, &up, &|x| rope(x, &c, &s, inter).unwrap());
                let b = grad_of(&x0, &up, &|x| {
                    crate::ops::rope_composed(x, &c, &s, inter).unwrap()
                });
                assert!(max_abs_diff(&a.0, &b.0) < tol, "rope {inter} {dtype:?}");
                assert!(
                    max_abs_diff(&a.1, &b.1) < tol,
                    "rope grad {inter} {dtype:?}"
                );
            }
            // Attention: b=2, kv=2, g=3, t=4 queries, T=6 keys, with padding in the mask.
            let valid = vec![vec![true; 6], vec![false, false, true, true, true, true]];
            let mask = crate::ops::attention_mask(&valid, 4, dtype, dev).unwrap();
            let (x0, up) = (r(&[2, 2, 12, 6], 3.0), r(&[2, 2, 12, 6], 1.0));
            let a = grad_of(&x0, &up, &|x| masked_softmax(x, &mask, 0.125).unwrap());
            let b = grad_of(&x0, &up, &|x| {
                let att = (x * 0.125)
                    .unwrap()
                    .reshape((2, 2, 3, 4, 6))
                    .unwrap()
                    .broadcast_add(&mask)
                    .unwrap();
                candle_nn::ops::softmax(&att, D::Minus1)
                    .unwrap()
                    .reshape((2, 2, 12, 6))
                    .unwrap()
            });
            assert!(max_abs_diff(&a.0, &b.0) < tol, "softmax {dtype:?}");
            assert!(max_abs_diff(&a.1, &b.1) < tol, "softmax grad {dtype:?}");
        }
    }
}
