//! Fused log-softmax + gather + entropy over rows of logits, with a hand-written backward.
//!
//! The composed version (`log_softmax`, `gather`, `exp * lp`, `sum`) keeps about six `[n, vocab]`
//! temporaries alive for backward, plus as many gradients: at SmolLM2's 49152-token vocabulary and
//! 2048 response rows each one is 400 MB. The fused op reads the logits once forward and once
//! backward and stores only `[n, 3]` (log-prob, entropy, log-sum-exp).
//!
//! For a row `z` with target `t`: `lse = log Σ exp z`, `p = exp(z - lse)`,
//! `lp = z_t - lse`, `H = -Σ p log p = lse - Σ p z`. Gradients:
//! `∂lp/∂z_j = δ_jt - p_j`, `∂H/∂z_j = -p_j (log p_j + H)`.
//! Sums are accumulated in f64 (the sampler computes its statistics in f64 too, spec: the
//! sampling and scoring log-probs must agree to 1e-4).
//!
//! On other devices [`crate::device_ops`] computes the same with candle's kernels and a backward
//! in tensor ops (f64 there: the composed ops).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp3, DType, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use crate::error::{ModelError, Result};

/// Log-probs `[n]` of `targets` under rows of `logits: [n, vocab]`, and optionally the entropy
/// `[n]` of each row's distribution, both differentiable with respect to `logits`.
pub fn token_logprobs_and_entropy(
    logits: &Tensor,
    targets: &[u32],
    with_entropy: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let (n, v) = logits.dims2()?;
    if targets.len() != n {
        return Err(ModelError::arg(
            "targets",
            format!("{} targets for {n} logit rows", targets.len()),
        ));
    }
    if let Some(bad) = targets.iter().find(|&&t| t as usize >= v) {
        return Err(ModelError::arg(
            "targets",
            format!("token id {bad} >= vocab size {v}"),
        ));
    }
    let fused_ok =
        logits.device().is_cpu() && matches!(logits.dtype(), DType::F32 | DType::F64) && n > 0;
    if !fused_ok {
        if crate::device_ops::supported(logits) {
            return crate::device_ops::token_logprobs_and_entropy(logits, targets, with_entropy);
        }
        return composed(logits, targets, with_entropy);
    }
    let out = logits.contiguous()?.apply_op1(TokenLogProb {
        targets: Arc::new(targets.to_vec()),
    })?;
    split_columns(&out, with_entropy)
}

/// Column 0 (log-probs) and, if asked for, column 1 (entropies) of `[n, ≥ 2]` as `[n]` tensors.
pub(crate) fn split_columns(out: &Tensor, with_entropy: bool) -> Result<(Tensor, Option<Tensor>)> {
    let lp = out.narrow(1, 0, 1)?.squeeze(1)?;
    let ent = if with_entropy {
        Some(out.narrow(1, 1, 1)?.squeeze(1)?)
    } else {
        None
    };
    Ok((lp, ent))
}

/// The reference composition of candle ops (used off the CPU and in tests).
pub fn composed(
    logits: &Tensor,
    targets: &[u32],
    with_entropy: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let n = targets.len();
    let lp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let ent = if with_entropy {
        Some(lp.exp()?.mul(&lp)?.sum(D::Minus1)?.neg()?)
    } else {
        None
    };
    let tgt = Tensor::from_vec(targets.to_vec(), (n, 1), logits.device())?;
    let lp = lp.gather(&tgt, D::Minus1)?.squeeze(D::Minus1)?;
    Ok((lp, ent))
}

/// Float element types the kernels run on (f32 or f64 storage, f64 accumulation).
trait Real: Copy + Send + Sync + 'static {
    fn to_f64(self) -> f64;
    fn from_f64(x: f64) -> Self;
    fn exp(self) -> Self;
}

impl Real for f32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn exp(self) -> Self {
        crate::fused::exp_f32(self)
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
        crate::fused::exp_f64(self)
    }
}

/// Forward: one `[lp, H, lse]` triple per row.
struct TokenLogProb {
    targets: Arc<Vec<u32>>,
}

fn contiguous<'a, T>(x: &'a [T], l: &Layout, what: &str) -> candle_core::Result<&'a [T]> {
    let (s, e) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("token-logprob: {what} not contiguous")))?;
    Ok(&x[s..e])
}

fn fwd_rows<T: Real>(z: &[T], v: usize, targets: &[u32]) -> Vec<T> {
    let mut out = vec![T::from_f64(0.0); targets.len() * 3];
    out.par_chunks_mut(3)
        .zip(z.par_chunks(v))
        .zip(targets.par_iter())
        .for_each(|((o, row), &t)| {
            let m = row
                .iter()
                .fold(f64::NEG_INFINITY, |m, &x| m.max(x.to_f64()));
            let (mut s, mut w) = (0.0f64, 0.0f64);
            for &x in row {
                // `exp` in the storage type (vectorisable for f32), sums in f64.
                let d = x.to_f64() - m;
                let e = T::from_f64(d).exp().to_f64();
                s += e;
                w += e * d;
            }
            let lse = m + s.ln();
            o[0] = T::from_f64(row[t as usize].to_f64() - lse);
            o[1] = T::from_f64(s.ln() - w / s);
            o[2] = T::from_f64(lse);
        });
    out
}

impl CustomOp1 for TokenLogProb {
    fn name(&self) -> &'static str {
        "token-logprob-entropy"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, v) = l.shape().dims2()?;
        let out = match s {
            CpuStorage::F32(x) => {
                CpuStorage::F32(fwd_rows(contiguous(x, l, "logits")?, v, &self.targets))
            }
            CpuStorage::F64(x) => {
                CpuStorage::F64(fwd_rows(contiguous(x, l, "logits")?, v, &self.targets))
            }
            _ => candle_core::bail!("token-logprob: logits must be f32 or f64"),
        };
        Ok((out, Shape::from((n, 3))))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let op = TokenLogProbGrad {
            targets: self.targets.clone(),
        };
        let g = arg.apply_op3_no_bwd(&res.contiguous()?, &grad.contiguous()?, &op)?;
        Ok(Some(g))
    }
}

/// Backward: `∂L/∂z` from the logits, the forward triples and their incoming gradients.
struct TokenLogProbGrad {
    targets: Arc<Vec<u32>>,
}

fn bwd_rows<T: Real>(z: &[T], res: &[T], grad: &[T], v: usize, targets: &[u32]) -> Vec<T> {
    let mut out = vec![T::from_f64(0.0); z.len()];
    out.par_chunks_mut(v)
        .zip(z.par_chunks(v))
        .zip(res.par_chunks(3).zip(grad.par_chunks(3)))
        .zip(targets.par_iter())
        .for_each(|(((o, row), (r, g)), &t)| {
            let (h, lse) = (r[1].to_f64(), r[2].to_f64());
            let (g_lp, g_h) = (g[0].to_f64(), g[1].to_f64());
            if g_h == 0.0 {
                for (oj, &zj) in o.iter_mut().zip(row) {
                    let p = T::from_f64(zj.to_f64() - lse).exp().to_f64();
                    *oj = T::from_f64(-g_lp * p);
                }
            } else {
                for (oj, &zj) in o.iter_mut().zip(row) {
                    let lp = zj.to_f64() - lse;
                    let p = T::from_f64(lp).exp().to_f64();
                    *oj = T::from_f64(-g_lp * p - g_h * p * (lp + h));
                }
            }
            let ti = t as usize;
            o[ti] = T::from_f64(o[ti].to_f64() + g_lp);
        });
    out
}

impl CustomOp3 for TokenLogProbGrad {
    fn name(&self) -> &'static str {
        "token-logprob-entropy-grad"
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
        let (_, v) = l1.shape().dims2()?;
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(z), CpuStorage::F32(r), CpuStorage::F32(g)) => {
                CpuStorage::F32(bwd_rows(
                    contiguous(z, l1, "logits")?,
                    contiguous(r, l2, "result")?,
                    contiguous(g, l3, "gradient")?,
                    v,
                    &self.targets,
                ))
            }
            (CpuStorage::F64(z), CpuStorage::F64(r), CpuStorage::F64(g)) => {
                CpuStorage::F64(bwd_rows(
                    contiguous(z, l1, "logits")?,
                    contiguous(r, l2, "result")?,
                    contiguous(g, l3, "gradient")?,
                    v,
                    &self.targets,
                ))
            }
            _ => candle_core::bail!("token-logprob grad: f32 or f64 tensors of one dtype"),
        };
        Ok((out, l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Var;

    use super::*;

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    #[test]
    fn hand_values() {
        // Row [0, ln 3]: p = [1/4, 3/4]; target 1 -> lp = ln 0.75 = -0.287682;
        // H = -(0.25 ln 0.25 + 0.75 ln 0.75) = 0.562335.
        let z = Tensor::new(&[[0f32, 3f32.ln()]], &crate::test_util::test_device()).unwrap();
        let (lp, h) = token_logprobs_and_entropy(&z, &[1], true).unwrap();
        let lp: Vec<f32> = lp.to_vec1().unwrap();
        let h: Vec<f32> = h.unwrap().to_vec1().unwrap();
        assert!((lp[0] + 0.287682).abs() < 1e-6, "{lp:?}");
        assert!((h[0] - 0.562335).abs() < 1e-6, "{h:?}");
    }

    #[test]
    fn matches_composed_values_and_gradients() {
        for dtype in [DType::F32, DType::F64] {
            let z0 = (Tensor::randn(0f32, 3.0, (5, 37), &crate::test_util::test_device()).unwrap())
                .to_dtype(dtype)
                .unwrap();
            let targets = [0u32, 36, 5, 5, 17];
            let w_lp = Tensor::new(
                &[0.3f32, -1.0, 2.0, 0.5, 1.5],
                &crate::test_util::test_device(),
            )
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
            let w_h = Tensor::new(
                &[-0.7f32, 0.2, 1.1, 0.0, -2.0],
                &crate::test_util::test_device(),
            )
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
            let run = |fused: bool, with_h: bool| {
                let z = Var::from_tensor(&z0).unwrap();
                let (lp, h) = if fused {
                    token_logprobs_and_entropy(z.as_tensor(), &targets, with_h).unwrap()
                } else {
                    composed(z.as_tensor(), &targets, with_h).unwrap()
                };
                let mut loss = (&lp * &w_lp).unwrap().sum_all().unwrap();
                if let Some(h) = &h {
                    loss = (loss + (h * &w_h).unwrap().sum_all().unwrap()).unwrap();
                }
                let g = loss.backward().unwrap();
                (lp, h, g.get(z.as_tensor()).unwrap().clone())
            };
            for with_h in [false, true] {
                let (a_lp, a_h, a_g) = run(true, with_h);
                let (b_lp, b_h, b_g) = run(false, with_h);
                let tol = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
                assert!(max_abs_diff(&a_lp, &b_lp) < tol);
                if with_h {
                    assert!(max_abs_diff(&a_h.unwrap(), &b_h.unwrap()) < tol);
                }
                assert!(max_abs_diff(&a_g, &b_g) < tol, "{dtype:?} {with_h}");
            }
        }
    }

    #[test]
    fn bad_targets_are_rejected() {
        let z = Tensor::zeros((2, 4), DType::F32, &crate::test_util::test_device()).unwrap();
        assert!(token_logprobs_and_entropy(&z, &[1], false).is_err());
        assert!(token_logprobs_and_entropy(&z, &[1, 4], false).is_err());
    }
}
