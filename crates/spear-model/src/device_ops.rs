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
use candle_core::{CpuStorage, CudaStorage, CustomOp3, DType, Layout, Shape, Tensor, D};

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
/// One custom op serves one and two inputs: `(a, b, y)`, with `b = y` for one input.
struct Join {
    name: &'static str,
    inputs: usize,
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
        // One input: `b` is the output itself (no gradient).
        let (a, b) = (a.detach(), b.detach());
        let inputs: &[&Tensor] = if self.inputs == 1 { &[&a] } else { &[&a, &b] };
        let mut gs = (self.backward)(inputs, &res.detach(), &g.detach())?.into_iter();
        let ga = gs.next().flatten();
        let gb = if self.inputs == 1 {
            None
        } else {
            gs.next().flatten()
        };
        Ok((ga, gb, None))
    }
}

/// `y` (no graph) as a function of `inputs` (one or two) with the given backward, which gets
/// the inputs and the output detached and the upstream gradient, and returns the inputs'
/// gradients. Also the join of a checkpointed decoder block.
pub(crate) fn join(
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
        inputs: inputs.len(),
        backward: Arc::new(backward),
    };
    Ok(match inputs {
        [a] => a.apply_op3(&y, &y, op)?,
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
    // The values of the composed reference, without a graph.
    let (lp, ent) = crate::logprob::composed(&logits.detach(), targets, true)?;
    let ent = ent.ok_or_else(|| ModelError::arg("logits", "no entropy"))?;
    let y = Tensor::stack(&[&lp, &ent], 1)?;
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
    crate::logprob::split_columns(&out, with_entropy)
}

/// One op of [`check_against_composed`]: the largest differences to the composed reference.
#[derive(Debug, Clone)]
pub struct KernelCheck {
    /// The op.
    pub name: String,
    /// Max |Δ| of the values.
    pub value_diff: f32,
    /// Max |Δ| of the input gradients, over max(1, max |reference gradient|).
    pub grad_diff: f32,
}

/// Runs each op of this module on `device` against the composed reference: values, and the
/// gradients of `Σ (y ⊙ u)²` for a random `u` (log-probs: `Σ lp ⊙ u₁ + Σ (H ⊙ u₂)²`), in f32
/// with seeded inputs. The unit tests assert the tolerances on the CPU; `spear bench model
/// --only kernels --device cuda:0` prints the table on a GPU (`scripts/gpu-check.sh`).
pub fn check_against_composed(device: &candle_core::Device) -> Result<Vec<KernelCheck>> {
    use candle_core::Var;
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut randn = |shape: &[usize], std: f64| -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = crate::params::normal_vec(&mut rng, n, std)
            .into_iter()
            .map(|x| x as f32)
            .collect();
        Ok(Tensor::from_vec(v, shape, device)?)
    };
    type F<'a> = &'a dyn Fn(&[&Tensor]) -> Result<Tensor>;
    let grad_of = |inputs: &[&Tensor], up: &Tensor, f: F| -> Result<(Tensor, Vec<Tensor>)> {
        let vars = inputs
            .iter()
            .map(|t| Var::from_tensor(t))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let ts: Vec<&Tensor> = vars.iter().map(Var::as_tensor).collect();
        let y = f(&ts)?;
        let g = (&y * up)?.sqr()?.sum_all()?.backward()?;
        let grads = ts
            .iter()
            .map(|t| {
                g.get(t)
                    .cloned()
                    .ok_or_else(|| ModelError::arg("check", "an input got no gradient"))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((y, grads))
    };
    let diff = |a: &Tensor, b: &Tensor| -> Result<f32> {
        Ok((a - b)?.abs()?.max_all()?.to_scalar::<f32>()?)
    };
    let mut out = vec![];
    let mut compare =
        |name: &str, a: (Tensor, Vec<Tensor>), b: (Tensor, Vec<Tensor>)| -> Result<()> {
            let mut grad_diff = 0f32;
            for (x, y) in a.1.iter().zip(&b.1) {
                let scale = y.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);
                grad_diff = grad_diff.max(diff(x, y)? / scale);
            }
            out.push(KernelCheck {
                name: name.to_string(),
                value_diff: diff(&a.0, &b.0)?,
                grad_diff,
            });
            Ok(())
        };
    let (x0, w0, up) = (
        randn(&[3, 4, 37], 2.0)?,
        randn(&[37], 1.0)?,
        randn(&[3, 4, 37], 1.0)?,
    );
    let a = grad_of(&[&x0], &up, &|x| softmax_last(x[0]))?;
    let b = grad_of(&[&x0], &up, &|x| {
        Ok(candle_nn::ops::softmax(x[0], D::Minus1)?)
    })?;
    compare("softmax", a, b)?;
    let a = grad_of(&[&x0, &w0], &up, &|x| rms_norm(x[0], x[1], 1e-5))?;
    let b = grad_of(&[&x0, &w0], &up, &|x| {
        crate::ops::rms_norm_composed(x[0], x[1], 1e-5)
    })?;
    compare("rms-norm", a, b)?;
    let pos = vec![vec![0, 1, 2, 7], vec![3, 4, 5, 6]];
    let (c, s) = crate::ops::rope_tables(&pos, 8, 100.0, DType::F32, device)?;
    let (x0, up) = (randn(&[2, 3, 4, 8], 1.0)?, randn(&[2, 3, 4, 8], 1.0)?);
    for inter in [false, true] {
        let a = grad_of(&[&x0], &up, &|x| rope(x[0], &c, &s, inter))?;
        let b = grad_of(&[&x0], &up, &|x| {
            crate::ops::rope_composed(x[0], &c, &s, inter)
        })?;
        let name = if inter { "rope (interleaved)" } else { "rope" };
        compare(name, a, b)?;
    }
    // b=2, kv=2, g=3, t=4 queries, T=6 keys, padding in the mask.
    let valid = vec![vec![true; 6], vec![false, false, true, true, true, true]];
    let mask = crate::ops::attention_mask(&valid, 4, DType::F32, device)?;
    let (x0, up) = (randn(&[2, 2, 12, 6], 3.0)?, randn(&[2, 2, 12, 6], 1.0)?);
    let a = grad_of(&[&x0], &up, &|x| masked_softmax(x[0], &mask, 0.125))?;
    let b = grad_of(&[&x0], &up, &|x| {
        let att = (x[0] * 0.125)?
            .reshape((2, 2, 3, 4, 6))?
            .broadcast_add(&mask)?;
        Ok(candle_nn::ops::softmax(&att, D::Minus1)?.reshape((2, 2, 12, 6))?)
    })?;
    compare("masked softmax", a, b)?;
    // Log-prob and entropy of 5 rows over 41 tokens (two rows share a target).
    let z0 = randn(&[5, 41], 3.0)?;
    let targets = [0u32, 40, 7, 7, 19];
    let (u_lp, u_h) = (randn(&[5], 1.0)?, randn(&[5], 1.0)?);
    let run = |device_path: bool| -> Result<(Tensor, Vec<Tensor>)> {
        let z = Var::from_tensor(&z0)?;
        let (lp, h) = if device_path {
            token_logprobs_and_entropy(z.as_tensor(), &targets, true)?
        } else {
            crate::logprob::composed(z.as_tensor(), &targets, true)?
        };
        let h = h.ok_or_else(|| ModelError::arg("check", "no entropy"))?;
        let loss = ((&lp * &u_lp)?.sum_all()? + (&h * &u_h)?.sqr()?.sum_all()?)?;
        let g = loss.backward()?;
        let gz = g
            .get(z.as_tensor())
            .cloned()
            .ok_or_else(|| ModelError::arg("check", "the logits got no gradient"))?;
        Ok((Tensor::cat(&[&lp, &h], 0)?, vec![gz]))
    };
    compare("log-prob + entropy", run(true)?, run(false)?)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! [`super::check_against_composed`] on the test device (the CPU by default, where candle's
    //! fused kernels have CPU versions; a GPU with `SPEAR_TEST_DEVICE=cuda:0` and a
    //! `--features cuda` build), and the log-prob op without the entropy.

    use candle_core::{Tensor, Var};

    use crate::test_util::test_device;

    #[test]
    fn every_op_matches_the_composed_reference() {
        let checks = super::check_against_composed(&test_device()).unwrap();
        assert_eq!(checks.len(), 6);
        for c in &checks {
            eprintln!(
                "{}: values {:.1e}, gradients {:.1e}",
                c.name, c.value_diff, c.grad_diff
            );
            assert!(c.value_diff < 1e-5, "{c:?}");
            assert!(c.grad_diff < 1e-5, "{c:?}");
        }
    }

    #[test]
    fn log_probs_without_entropy() {
        let z0 = Tensor::randn(0f32, 3.0, (5, 41), &test_device()).unwrap();
        let z = Var::from_tensor(&z0).unwrap();
        let (lp, h) =
            super::token_logprobs_and_entropy(z.as_tensor(), &[0, 40, 7, 7, 19], false).unwrap();
        assert!(h.is_none());
        let (reference, _) = crate::logprob::composed(&z0, &[0, 40, 7, 7, 19], false).unwrap();
        assert!(crate::test_util::max_abs_diff(&lp, &reference) < 1e-5);
        let g = lp.sum_all().unwrap().backward().unwrap();
        let g = g.get(z.as_tensor()).unwrap();
        // Σ_j ∂lp/∂z_j = 1 - Σ p = 0 per row.
        let rows = g.sum(1).unwrap().abs().unwrap().max_all().unwrap();
        assert!(rows.to_scalar::<f32>().unwrap() < 1e-5);
    }
}
