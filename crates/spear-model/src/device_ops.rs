//! Trainable fused ops for devices other than the CPU (issue 15): RMSNorm, softmax, the masked
//! attention softmax, RoPE, and log-prob + entropy over the vocabulary.
//!
//! The forward runs candle's fused kernels (`candle_nn::ops::{rms_norm, softmax_last_dim}`,
//! `candle_nn::rotary_emb::{rope, rope_i}`; CUDA kernels on a GPU), which record no backward. A
//! join op ([`Join`]) attaches a backward written in tensor ops, which run on the same device:
//! - softmax `y`: `∂L/∂x = y ⊙ (g - Σ g ⊙ y)` (the attention softmax: times its scale);
//! - RMSNorm `y = x r w`, `r = 1 / sqrt(mean(x²) + eps)`:
//!   `∂L/∂x = r (g ⊙ w) - x r³ mean((g ⊙ w) ⊙ x)`, `∂L/∂w = Σ_rows g ⊙ x r`;
//! - RoPE: the rotation by the negative angle (`sin → -sin`) of the upstream gradient;
//! - log-prob and entropy of row `z` with target `t`: `∂lp/∂z = δ_t - p`,
//!   `∂H/∂z = -p (log p + H)`; the forward keeps only `[n, 2]` and the backward recomputes the
//!   log-softmax (the CPU's [`crate::logprob`] kernel does the same in one pass).
//!
//! The CPU has its own kernels ([`crate::fused`], [`crate::logprob`]); these run there too, in
//! the tests, against the composed references, and on a GPU with `SPEAR_TEST_DEVICE=cuda:0`.

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor, D};

use crate::error::{ModelError, Result};

/// Whether these ops serve `x` in training: a device other than the CPU and a dtype candle's
/// fused kernels take (the CPU uses [`crate::fused`]; f64 off the CPU uses composed ops).
pub fn supported(x: &Tensor) -> bool {
    !x.device().is_cpu()
        && matches!(x.dtype(), DType::F32 | DType::BF16 | DType::F16)
        && x.elem_count() > 0
}

/// Gradients of the joined inputs from (inputs, output, upstream gradient).
type Backward =
    dyn Fn(&[&Tensor], &Tensor, &Tensor) -> candle_core::Result<Vec<Option<Tensor>>> + Send + Sync;

/// An output computed without a graph, joined to the inputs it came from, with a backward.
/// The forward copies the output (the custom-op interface returns new storage).
struct Join {
    name: &'static str,
    backward: Arc<Backward>,
}

fn copy_out<S: BackendStorage>(s: &S, l: &Layout) -> candle_core::Result<(S, Shape)> {
    if !l.is_contiguous() || l.start_offset() != 0 {
        return Err(candle_core::Error::Msg(
            "join: output is not contiguous from offset 0".into(),
        ));
    }
    Ok((s.try_clone(l)?, l.shape().clone()))
}

impl CustomOp2 for Join {
    fn name(&self) -> &'static str {
        self.name
    }
    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        y: &CpuStorage,
        l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        copy_out(y, l)
    }
    fn cuda_fwd(
        &self,
        _: &CudaStorage,
        _: &Layout,
        y: &CudaStorage,
        l: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        copy_out(y, l)
    }
    fn bwd(
        &self,
        a: &Tensor,
        _y: &Tensor,
        res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let mut gs = (self.backward)(&[&a.detach()], &res.detach(), &g.detach())?.into_iter();
        Ok((gs.next().flatten(), None))
    }
}

impl CustomOp3 for Join {
    fn name(&self) -> &'static str {
        self.name
    }
    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        y: &CpuStorage,
        l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        copy_out(y, l)
    }
    fn cuda_fwd(
        &self,
        _: &CudaStorage,
        _: &Layout,
        _: &CudaStorage,
        _: &Layout,
        y: &CudaStorage,
        l: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        copy_out(y, l)
    }
    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let mut gs =
            (self.backward)(&[&a.detach(), &b.detach()], &res.detach(), &g.detach())?.into_iter();
        Ok((gs.next().flatten(), gs.next().flatten(), None))
    }
}

/// `y` (no graph) as a function of `inputs` (one or two) with the given backward.
fn join(
    name: &'static str,
    inputs: &[&Tensor],
    y: Tensor,
    backward: impl Fn(&[&Tensor], &Tensor, &Tensor) -> candle_core::Result<Vec<Option<Tensor>>>
        + Send
        + Sync
        + 'static,
) -> Result<Tensor> {
    let y = if y.is_contiguous() && y.layout().start_offset() == 0 {
        y
    } else {
        y.force_contiguous()?
    };
    let op = Join {
        name,
        backward: Arc::new(backward),
    };
    Ok(match inputs {
        [a] => a.apply_op2(&y, op)?,
        [a, b] => a.apply_op3(b, &y, op)?,
        _ => return Err(ModelError::arg("inputs", "join takes one or two inputs")),
    })
}

/// `y ⊙ (g - Σ_last g ⊙ y)`, the softmax's vector-Jacobian product.
fn softmax_vjp(y: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
    let dot = (g * y)?.sum_keepdim(D::Minus1)?;
    y * g.broadcast_sub(&dot)?
}

/// Differentiable softmax over the last dimension.
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    let y = candle_nn::ops::softmax_last_dim(&x.detach().contiguous()?)?;
    join("softmax-last (device)", &[x], y, |_, y, g| {
        Ok(vec![Some(softmax_vjp(y, g)?)])
    })
}

/// Differentiable `softmax(scale · scores + mask)` for scores `[b, kv_heads, g · t, T]` and a
/// mask `[b, 1, 1, t, T]` (as [`crate::ops::attention_softmax`]); the mask gets no gradient.
pub fn masked_softmax(scores: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    let (b, nkv, gt, tk) = scores.dims4()?;
    let t = mask.dim(3)?;
    if t == 0 || gt % t != 0 {
        return Err(ModelError::arg(
            "mask",
            format!("{t} query rows for scores {:?}", scores.dims()),
        ));
    }
    let z = (scores.detach() * scale)?
        .reshape((b, nkv, gt / t, t, tk))?
        .broadcast_add(&mask.detach())?;
    let y = candle_nn::ops::softmax_last_dim(&z.contiguous()?)?.reshape((b, nkv, gt, tk))?;
    join("masked-softmax (device)", &[scores], y, move |_, y, g| {
        Ok(vec![Some((softmax_vjp(y, g)? * scale)?)])
    })
}

/// Differentiable RMSNorm over the last dimension with weight `w: [n]`.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let y = candle_nn::ops::rms_norm(&x.detach().contiguous()?, &w.detach(), eps as f32)?;
    join("rms-norm (device)", &[x, w], y, move |xs, _, g| {
        let (x, w) = (xs[0], xs[1]);
        let n = x.dim(D::Minus1)?;
        let r = (x.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?.recip()?;
        let gw = g.broadcast_mul(w)?;
        let m = (&gw * x)?.mean_keepdim(D::Minus1)?;
        let r3 = (r.sqr()? * &r)?;
        let gx = (gw.broadcast_mul(&r)? - x.broadcast_mul(&(m * r3)?)?)?;
        let gw_ = (g * x.broadcast_mul(&r)?)?.reshape(((), n))?.sum(0)?;
        Ok(vec![Some(gx), Some(gw_)])
    })
}

/// Differentiable rotary embedding of `x: [b, h, t, d]` with tables `[b, t, d/2]` (both layouts,
/// as [`crate::ops::rope`]); the tables get no gradient.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, interleaved: bool) -> Result<Tensor> {
    let apply = move |x: &Tensor, cos: &Tensor, sin: &Tensor| -> candle_core::Result<Tensor> {
        if interleaved {
            candle_nn::rotary_emb::rope_i(&x.contiguous()?, cos, sin)
        } else {
            candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin)
        }
    };
    let (cos, sin) = (cos.detach().contiguous()?, sin.detach().contiguous()?);
    let y = apply(&x.detach(), &cos, &sin)?;
    let neg_sin = sin.neg()?;
    join("rope (device)", &[x], y, move |_, _, g| {
        Ok(vec![Some(apply(g, &cos, &neg_sin)?)])
    })
}

/// Log-probs `[n]` of `targets` under the rows of `logits: [n, vocab]` and the rows' entropies
/// `[n]`, differentiable with respect to the logits (targets checked by the caller).
pub fn token_logprobs_and_entropy(
    logits: &Tensor,
    targets: &[u32],
    with_entropy: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let n = targets.len();
    let tgt = Tensor::from_vec(targets.to_vec(), (n, 1), logits.device())?;
    let z = logits.detach();
    let lsm = candle_nn::ops::log_softmax(&z, D::Minus1)?;
    let lp = lsm.gather(&tgt, D::Minus1)?;
    let ent = (lsm.exp()? * &lsm)?.sum_keepdim(D::Minus1)?.neg()?;
    drop(lsm);
    let y = Tensor::cat(&[&lp, &ent], 1)?;
    let out = join("token-logprob (device)", &[logits], y, move |zs, y, g| {
        let z = zs[0];
        let lsm = candle_nn::ops::log_softmax(z, D::Minus1)?;
        let p = lsm.exp()?;
        let g_lp = g.narrow(1, 0, 1)?.contiguous()?;
        let g_h = g.narrow(1, 1, 1)?;
        let h = y.narrow(1, 1, 1)?;
        // -p (g_lp + g_H (log p + H)), then + g_lp at each row's target.
        let inner = lsm
            .broadcast_add(&h)?
            .broadcast_mul(&g_h)?
            .broadcast_add(&g_lp)?;
        let gz = (p * inner)?.neg()?;
        Ok(vec![Some(gz.scatter_add(&tgt, &g_lp, D::Minus1)?)])
    })?;
    let lp = out.narrow(1, 0, 1)?.squeeze(1)?;
    let ent = if with_entropy {
        Some(out.narrow(1, 1, 1)?.squeeze(1)?)
    } else {
        None
    };
    Ok((lp, ent))
}

#[cfg(test)]
mod tests {
    //! Each op against the composed reference: values and gradients for a random upstream
    //! gradient. On the CPU (candle's CPU versions of the fused kernels) by default; on a GPU
    //! with `SPEAR_TEST_DEVICE=cuda:0` and a `--features cuda` build.

    use candle_core::{DType, Tensor, Var, D};

    use crate::test_util::{max_abs_diff, test_device};

    fn grad_of(
        inputs: &[&Tensor],
        up: &Tensor,
        f: &dyn Fn(&[&Tensor]) -> Tensor,
    ) -> (Tensor, Vec<Tensor>) {
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(t).unwrap())
            .collect();
        let ts: Vec<&Tensor> = vars.iter().map(Var::as_tensor).collect();
        let y = f(&ts);
        let loss = (&y * up).unwrap().sqr().unwrap().sum_all().unwrap();
        let g = loss.backward().unwrap();
        let grads = ts.iter().map(|t| g.get(t).unwrap().clone()).collect();
        (y, grads)
    }

    fn randn(shape: &[usize], std: f32) -> Tensor {
        Tensor::randn(0f32, std, shape, &test_device()).unwrap()
    }

    fn assert_close(what: &str, a: &(Tensor, Vec<Tensor>), b: &(Tensor, Vec<Tensor>), tol: f32) {
        let d = max_abs_diff(&a.0, &b.0);
        assert!(d < tol, "{what}: values differ by {d}");
        for (i, (x, y)) in a.1.iter().zip(&b.1).enumerate() {
            let scale = y
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            let d = max_abs_diff(x, y) / scale.max(1.0);
            assert!(d < tol, "{what}: gradient {i} differs by {d} (relative)");
        }
    }

    #[test]
    fn softmax_and_rms_norm_match_composed() {
        let (x0, w0, up) = (
            randn(&[3, 4, 37], 2.0),
            randn(&[37], 1.0),
            randn(&[3, 4, 37], 1.0),
        );
        let a = grad_of(&[&x0], &up, &|x| super::softmax_last(x[0]).unwrap());
        let b = grad_of(&[&x0], &up, &|x| {
            candle_nn::ops::softmax(x[0], D::Minus1).unwrap()
        });
        assert_close("softmax", &a, &b, 1e-5);
        let a = grad_of(&[&x0, &w0], &up, &|x| {
            super::rms_norm(x[0], x[1], 1e-5).unwrap()
        });
        let b = grad_of(&[&x0, &w0], &up, &|x| {
            crate::ops::rms_norm_composed(x[0], x[1], 1e-5).unwrap()
        });
        assert_close("rms-norm", &a, &b, 1e-5);
    }

    #[test]
    fn rope_and_masked_softmax_match_composed() {
        let dev = test_device();
        let pos = vec![vec![0, 1, 2, 7], vec![3, 4, 5, 6]];
        let (c, s) = crate::ops::rope_tables(&pos, 8, 100.0, DType::F32, &dev).unwrap();
        let (x0, up) = (randn(&[2, 3, 4, 8], 1.0), randn(&[2, 3, 4, 8], 1.0));
        for inter in [false, true] {
            let a = grad_of(&[&x0], &up, &|x| super::rope(x[0], &c, &s, inter).unwrap());
            let b = grad_of(&[&x0], &up, &|x| {
                crate::ops::rope_composed(x[0], &c, &s, inter).unwrap()
            });
            assert_close(&format!("rope (interleaved {inter})"), &a, &b, 1e-5);
        }
        // b=2, kv=2, g=3, t=4 queries, T=6 keys, padding in the mask.
        let valid = vec![vec![true; 6], vec![false, false, true, true, true, true]];
        let mask = crate::ops::attention_mask(&valid, 4, DType::F32, &dev).unwrap();
        let (x0, up) = (randn(&[2, 2, 12, 6], 3.0), randn(&[2, 2, 12, 6], 1.0));
        let a = grad_of(&[&x0], &up, &|x| {
            super::masked_softmax(x[0], &mask, 0.125).unwrap()
        });
        let b = grad_of(&[&x0], &up, &|x| {
            let att = (x[0] * 0.125)
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
        assert_close("masked softmax", &a, &b, 1e-5);
    }

    #[test]
    fn token_logprobs_and_entropy_match_composed() {
        let z0 = randn(&[5, 41], 3.0);
        let targets = [0u32, 40, 7, 7, 19];
        let (up_lp, up_h) = (randn(&[5], 1.0), randn(&[5], 1.0));
        let run = |device_path: bool| {
            let z = Var::from_tensor(&z0).unwrap();
            let (lp, h) = if device_path {
                super::token_logprobs_and_entropy(z.as_tensor(), &targets, true).unwrap()
            } else {
                crate::logprob::composed(z.as_tensor(), &targets, true).unwrap()
            };
            let h = h.unwrap();
            let loss = ((&lp * &up_lp).unwrap().sum_all().unwrap()
                + (&h * &up_h).unwrap().sqr().unwrap().sum_all().unwrap())
            .unwrap();
            let g = loss.backward().unwrap().get(z.as_tensor()).unwrap().clone();
            (lp, h, g)
        };
        let (a, b) = (run(true), run(false));
        assert!(max_abs_diff(&a.0, &b.0) < 1e-5, "log-probs");
        assert!(max_abs_diff(&a.1, &b.1) < 1e-5, "entropies");
        assert!(max_abs_diff(&a.2, &b.2) < 1e-4, "gradient");
        // Without the entropy: the same log-probs and their gradient alone.
        let z = Var::from_tensor(&z0).unwrap();
        let (lp, h) = super::token_logprobs_and_entropy(z.as_tensor(), &targets, false).unwrap();
        assert!(h.is_none());
        let g = lp.sum_all().unwrap().backward().unwrap();
        let g = g.get(z.as_tensor()).unwrap();
        // Σ_j ∂lp/∂z_j = 1 - Σ p = 0 per row.
        let rows = g.sum(1).unwrap().abs().unwrap().max_all().unwrap();
        assert!(rows.to_scalar::<f32>().unwrap() < 1e-5);
    }
}
