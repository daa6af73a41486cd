//! `x · Wᵀ` with bf16 inputs and f32 sums as a trainable candle op (`model.dtype = "bf16"`, issue 16).
//!
//! The tensors stay f32 (master weights, activations, gradients, AdamW state): the op rounds its
//! inputs to bf16 while packing them for [`crate::bf16gemm`] and returns f32. The backward pass
//! does the same for its two products, `∂x = g · W` and `∂W = gᵀ · x` (read through strides, no
//! transposed copies); `∂W` is skipped for a frozen weight.
//!
//! The same op runs the f32 products through a BLAS library loaded at run time ([`linear_blas`],
//! `model.matmul = "blas"`, [`crate::blas`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};

use crate::bf16gemm::{self, Bf16Path, MatRef};
use crate::blas::BlasLib;
use crate::error::Result;

/// The precision of the linear layers' matrix products.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ComputeDtype {
    /// f32 everywhere (the default).
    #[default]
    F32,
    /// bf16 inputs with f32 sums in the linear layers (q/k/v/o, MLP, LM head); everything else f32.
    Bf16,
}

impl ComputeDtype {
    /// `f32` or `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            ComputeDtype::F32 => "f32",
            ComputeDtype::Bf16 => "bf16",
        }
    }
}

impl FromStr for ComputeDtype {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "f32" => Ok(ComputeDtype::F32),
            "bf16" => Ok(ComputeDtype::Bf16),
            other => Err(format!("{other:?} is not a dtype; use \"f32\" or \"bf16\"")),
        }
    }
}

impl std::fmt::Display for ComputeDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether [`linear`] can run on these tensors (CPU, f32 input, f32 or bf16 weight: a LoRA
/// base held in bf16, `model.lora_base_dtype`).
pub fn supported(x: &Tensor, w: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32 && matches!(w.dtype(), DType::F32 | DType::BF16)
}

/// `x: [.., k]` times `wᵀ` for `w: [n, k]`, in bf16 with f32 sums, on the path
/// [`Bf16Path::detect`] picks (or `path`). Differentiable in both arguments.
pub fn linear(x: &Tensor, w: &Tensor, path: Option<Bf16Path>) -> Result<Tensor> {
    let path = path.unwrap_or_else(Bf16Path::detect);
    Ok(x.contiguous()?.apply_op2(
        &w.contiguous()?,
        Bf16Linear {
            kind: Kind::Forward,
            product: Product::Bf16(path),
        },
    )?)
}

/// `x: [.., k]` times `wᵀ` for `w: [n, k]` in f32 through a BLAS library (`model.matmul =
/// "blas"`, [`crate::blas`]); the backward's two products go through it too. Differentiable in
/// both arguments. Same conditions as [`linear`] ([`supported`]); a bf16 weight is widened.
pub fn linear_blas(x: &Tensor, w: &Tensor, lib: &Arc<BlasLib>) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op2(
        &w.contiguous()?,
        Bf16Linear {
            kind: Kind::Forward,
            product: Product::Blas(lib.clone()),
        },
    )?)
}

/// The bf16 forms of a model's weights for one generation call (`model.dtype = "bf16"` on the
/// CPU): each linear layer's weight is converted once, on its first product, instead of at every
/// decoding step ([`bf16gemm::PreparedWeight`]: its rows in bf16 for steps with fewer than 16
/// sequences, its packed tiles for larger steps and the prefill). Keyed by weight name, so it must
/// not outlive a change of the weights: [`crate::sampling::generate`] makes one per call, inside
/// its [`crate::KvCache`]. Extra memory while it lives: up to the size of the f32 weights (half for
/// each form).
#[derive(Default)]
pub struct DecodeWeights {
    map: Mutex<HashMap<String, Arc<bf16gemm::PreparedWeight>>>,
}

impl std::fmt::Debug for DecodeWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DecodeWeights({} bytes)", self.bytes())
    }
}

impl DecodeWeights {
    /// The prepared form of weight `name` (empty until its first product).
    pub fn get(&self, name: &str) -> Arc<bf16gemm::PreparedWeight> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(name.to_string()).or_default().clone()
    }

    /// Bytes held by the converted weights.
    pub fn bytes(&self) -> usize {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.values().map(|p| p.bytes()).sum()
    }
}

/// `x: [.., k]` times `wᵀ` for `w: [n, k]` like [`linear`], through the converted forms `prep`
/// keeps of `w` (made from `w` on first need). Inference only: the result records no graph.
pub fn linear_prepared(
    x: &Tensor,
    w: &Tensor,
    prep: &bf16gemm::PreparedWeight,
    path: Option<Bf16Path>,
) -> Result<Tensor> {
    let path = path.unwrap_or_else(Bf16Path::detect);
    let (n, k) = w.dims2()?;
    let x = x.contiguous()?;
    let dims = x.dims().to_vec();
    let (&kx, lead) = dims
        .split_last()
        .ok_or_else(|| candle_core::Error::Msg("bf16 linear: scalar input".into()))?;
    if kx != k {
        return Err(candle_core::Error::Msg(format!(
            "bf16 linear: x has {kx} features, w is [{n}, {k}]"
        ))
        .into());
    }
    let m: usize = lead.iter().product();
    let (xs, xl) = x.storage_and_layout();
    let candle_core::Storage::Cpu(xs) = &*xs else {
        return Err(candle_core::Error::Msg("bf16 linear: x is not on the CPU".into()).into());
    };
    let xd = contiguous(xs, xl)?;
    let a = MatRef {
        data: &xd,
        rows: m,
        cols: k,
        rs: k,
        cs: 1,
    };
    let mut c = vec![0f32; m * n];
    if prep.needs_source(m, path) {
        let w = w.contiguous()?;
        let (ws, wl) = w.storage_and_layout();
        let candle_core::Storage::Cpu(ws) = &*ws else {
            return Err(candle_core::Error::Msg("bf16 linear: w is not on the CPU".into()).into());
        };
        let wd = contiguous(ws, wl)?;
        bf16gemm::matmul_prepared(&a, Some(&wd), n, prep, &mut c, path)
    } else {
        bf16gemm::matmul_prepared(&a, None, n, prep, &mut c, path)
    }
    .map_err(candle_core::Error::Msg)?;
    let mut out = lead.to_vec();
    out.push(n);
    Ok(Tensor::from_vec(c, out, x.device())?)
}

/// `x · wᵀ` with bf16 products through candle's own matmul, for devices other than the CPU
/// (a GPU: cuBLAS bf16 GEMM with f32 accumulation): `x` and `w` are cast to bf16, the product's
/// bf16 output is widened back to f32, as PyTorch's autocast does for a linear layer. The casts
/// are differentiable, so the gradients flow back to the f32 tensors (the backward's products run
/// in bf16 too). Runs on the CPU as well (candle widens bf16 to f32 there), which is how the tests
/// check it.
pub fn linear_generic(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let y = x
        .to_dtype(DType::BF16)?
        .broadcast_matmul(&w.to_dtype(DType::BF16)?.t()?)?;
    Ok(y.to_dtype(x.dtype())?)
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// `(x [.., k], w [n, k]) -> x wᵀ [.., n]`.
    Forward,
    /// `(g [.., n], w [n, k]) -> g w [.., k]`.
    GradX,
    /// `(g [.., n], x [.., k]) -> gᵀ x [n, k]`.
    GradW,
}

/// The kernel of a [`Bf16Linear`] op: bf16 inputs with f32 sums, or f32 through a BLAS library.
#[derive(Clone)]
enum Product {
    Bf16(Bf16Path),
    Blas(Arc<BlasLib>),
}

struct Bf16Linear {
    kind: Kind,
    product: Product,
}

fn rows_cols(l: &Layout) -> candle_core::Result<(usize, usize)> {
    let dims = l.dims();
    let (&c, lead) = dims
        .split_last()
        .ok_or_else(|| candle_core::Error::Msg("bf16 linear: scalar input".into()))?;
    Ok((lead.iter().product(), c))
}

/// The contiguous f32 data of an input; a bf16 one (a frozen weight held in bf16) is widened
/// into a temporary, which costs one pass over the weight per product, not its f32 copy kept
/// alive for the backward.
fn contiguous<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<Cow<'a, [f32]>> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("bf16 linear: input not contiguous".into()))?;
    match s {
        CpuStorage::F32(v) => Ok(Cow::Borrowed(&v[a..b])),
        CpuStorage::BF16(v) => Ok(Cow::Owned(v[a..b].iter().map(|x| x.to_f32()).collect())),
        _ => candle_core::bail!("bf16 linear: f32 or bf16 tensors only"),
    }
}

impl CustomOp2 for Bf16Linear {
    fn name(&self) -> &'static str {
        match self.product {
            Product::Bf16(_) => "linear-bf16",
            Product::Blas(_) => "linear-blas",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (d1, d2) = (contiguous(s1, l1)?, contiguous(s2, l2)?);
        let (d1, d2) = (&*d1, &*d2);
        let ((r1, c1), (r2, c2)) = (rows_cols(l1)?, rows_cols(l2)?);
        let (a, b, shape) = match self.kind {
            Kind::Forward => {
                if c1 != c2 {
                    candle_core::bail!("bf16 linear: x has {c1} features, w is [{r2}, {c2}]");
                }
                let mut dims = l1.dims().to_vec();
                *dims.last_mut().expect("rank checked") = r2;
                (
                    MatRef {
                        data: d1,
                        rows: r1,
                        cols: c1,
                        rs: c1,
                        cs: 1,
                    },
                    MatRef {
                        data: d2,
                        rows: c2,
                        cols: r2,
                        rs: 1,
                        cs: c2,
                    },
                    Shape::from(dims),
                )
            }
            Kind::GradX => {
                if c1 != r2 {
                    candle_core::bail!(
                        "bf16 linear backward: g has {c1} columns, w is [{r2}, {c2}]"
                    );
                }
                let mut dims = l1.dims().to_vec();
                *dims.last_mut().expect("rank checked") = c2;
                (
                    MatRef {
                        data: d1,
                        rows: r1,
                        cols: c1,
                        rs: c1,
                        cs: 1,
                    },
                    MatRef {
                        data: d2,
                        rows: r2,
                        cols: c2,
                        rs: c2,
                        cs: 1,
                    },
                    Shape::from(dims),
                )
            }
            Kind::GradW => {
                if r1 != r2 {
                    candle_core::bail!("bf16 linear backward: g has {r1} rows, x has {r2}");
                }
                (
                    MatRef {
                        data: d1,
                        rows: c1,
                        cols: r1,
                        rs: 1,
                        cs: c1,
                    },
                    MatRef {
                        data: d2,
                        rows: r2,
                        cols: c2,
                        rs: c2,
                        cs: 1,
                    },
                    Shape::from((c1, c2)),
                )
            }
        };
        let mut out = vec![0f32; a.rows * b.cols];
        match &self.product {
            Product::Bf16(path) => bf16gemm::matmul(&a, &b, &mut out, *path),
            Product::Blas(lib) => crate::blas::matmul(lib, &a, &b, &mut out),
        }
        .map_err(candle_core::Error::Msg)?;
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        let op = |kind| Bf16Linear {
            kind,
            product: self.product.clone(),
        };
        let gx = if x.track_op() {
            Some(g.apply_op2_no_bwd(w, &op(Kind::GradX))?)
        } else {
            None
        };
        let gw = if w.track_op() {
            Some(g.apply_op2_no_bwd(x, &op(Kind::GradW))?)
        } else {
            None
        };
        Ok((gx, gw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::max_rel_diff as max_rel;
    use candle_core::{Device, Var};

    /// `∂x = g·W` (shaped as `x`) and `∂W = gᵀ·x` of `y = x·Wᵀ` with candle's matmul, for
    /// `x: [b, t, k]`, `w: [n, k]`, `g: [b, t, n]`.
    fn reference_grads(x: &Tensor, w: &Tensor, g: &Tensor) -> (Tensor, Tensor) {
        let (b, t, k) = x.dims3().unwrap();
        let g2 = g.reshape((b * t, w.dim(0).unwrap())).unwrap();
        let gx = g2.matmul(w).unwrap().reshape((b, t, k)).unwrap();
        let gw = g2
            .t()
            .unwrap()
            .matmul(&x.reshape((b * t, k)).unwrap())
            .unwrap();
        (gx, gw)
    }

    fn round(t: &Tensor) -> Tensor {
        t.to_dtype(DType::BF16)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
    }

    /// The BLAS op (`model.matmul = "blas"`): forward and both gradients against candle's f32
    /// matmul, odd shapes, 3-d input, one and two threads, and a bf16 weight (widened): max
    /// error ≤ 1e-5 of the largest reference value; a frozen weight gets no gradient.
    #[test]
    fn blas_linear_matches_candle_matmul_forward_and_backward() {
        let lib = crate::blas::tests::test_lib();
        let dev = Device::Cpu;
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                for &(b, t, k, n) in &[
                    (1, 1, 1, 1),
                    (2, 7, 33, 17),
                    (3, 11, 64, 96),
                    (1, 3, 130, 700),
                ] {
                    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, t, k), &dev).unwrap())
                        .unwrap();
                    let w =
                        Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap()).unwrap();
                    let gy = Tensor::randn(0f32, 1.0, (b, t, n), &dev).unwrap();
                    let y = linear_blas(x.as_tensor(), w.as_tensor(), &lib).unwrap();
                    let want = x
                        .as_tensor()
                        .broadcast_matmul(&w.as_tensor().t().unwrap())
                        .unwrap();
                    let case = (threads, b, t, k, n);
                    assert_eq!(y.dims(), &[b, t, n]);
                    assert!(max_rel(&y, &want) < 1e-5, "forward {case:?}");
                    let grads = (y * &gy).unwrap().sum_all().unwrap().backward().unwrap();
                    let (want_gx, want_gw) = reference_grads(x.as_tensor(), w.as_tensor(), &gy);
                    let gx = grads.get(x.as_tensor()).unwrap();
                    let gw = grads.get(w.as_tensor()).unwrap();
                    assert!(max_rel(gx, &want_gx) < 1e-5, "dx {case:?}");
                    assert!(max_rel(gw, &want_gw) < 1e-5, "dw {case:?}");
                    // A frozen bf16 weight: widened for the product, no gradient of its own.
                    let w16 = w.as_tensor().to_dtype(DType::BF16).unwrap().detach();
                    let y16 = linear_blas(x.as_tensor(), &w16, &lib).unwrap();
                    let want16 = x
                        .as_tensor()
                        .broadcast_matmul(&w16.to_dtype(DType::F32).unwrap().t().unwrap())
                        .unwrap();
                    assert!(max_rel(&y16, &want16) < 1e-5, "bf16 weight {case:?}");
                    let grads = y16.sum_all().unwrap().backward().unwrap();
                    assert!(grads.get(x.as_tensor()).is_some() && grads.get(&w16).is_none());
                }
            });
        }
    }

    /// Forward and both gradients of every available path against candle's f32 matmul on the
    /// bf16-rounded inputs (the composed reference), odd shapes, 3-d input: max error ≤ 1e-5 of
    /// the largest reference value for the forward and `∂W` and `∂x` (sums of exact bf16
    /// products in f32; the gradients round `g` to bf16 too, so their reference does).
    #[test]
    fn forward_and_backward_match_the_composed_reference() {
        let dev = Device::Cpu;
        for path in Bf16Path::ALL.into_iter().filter(|p| p.available()) {
            for &(b, t, k, n) in &[
                (1, 1, 1, 1),
                (2, 7, 33, 17),
                (3, 11, 64, 96),
                (1, 40, 130, 70),
            ] {
                let x =
                    Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, t, k), &dev).unwrap()).unwrap();
                let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap()).unwrap();
                let gy = Tensor::randn(0f32, 1.0, (b, t, n), &dev).unwrap();
                let y = linear(x.as_tensor(), w.as_tensor(), Some(path)).unwrap();
                let want = round(x.as_tensor())
                    .broadcast_matmul(&round(w.as_tensor()).t().unwrap())
                    .unwrap();
                assert_eq!(y.dims(), &[b, t, n]);
                assert!(
                    max_rel(&y, &want) < 1e-5,
                    "{} forward {:?}",
                    path.name(),
                    (b, t, k, n)
                );
                let grads = (y * &gy).unwrap().sum_all().unwrap().backward().unwrap();
                let gx = grads.get(x.as_tensor()).unwrap();
                let gw = grads.get(w.as_tensor()).unwrap();
                let (want_gx, want_gw) =
                    reference_grads(&round(x.as_tensor()), &round(w.as_tensor()), &round(&gy));
                assert!(
                    max_rel(gx, &want_gx) < 1e-5,
                    "{} dx {:?}",
                    path.name(),
                    (b, t, k, n)
                );
                assert!(
                    max_rel(gw, &want_gw) < 1e-5,
                    "{} dw {:?}",
                    path.name(),
                    (b, t, k, n)
                );
            }
        }
    }

    /// The device path (cuBLAS on a GPU, here candle's CPU matmul): the same bf16-rounded
    /// products as the AMX / f32-gemm paths up to the bf16 rounding of its output (2⁻⁸
    /// relative), for the forward and both gradients; a frozen weight gets no gradient.
    #[test]
    fn generic_path_matches_the_kernel_paths_to_bf16_output_rounding() {
        let dev = crate::test_util::test_device();
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 7, 33), &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (17, 33), &dev).unwrap()).unwrap();
        let gy = Tensor::randn(0f32, 1.0, (2, 7, 17), &dev).unwrap();
        let y = linear_generic(x.as_tensor(), w.as_tensor()).unwrap();
        assert_eq!(y.dtype(), DType::F32);
        let want = round(x.as_tensor())
            .broadcast_matmul(&round(w.as_tensor()).t().unwrap())
            .unwrap();
        assert!(max_rel(&y, &want) < 8e-3, "forward {}", max_rel(&y, &want));
        assert!(max_rel(&y, &want) > 0.0, "bf16 output rounding expected");
        let grads = (y * &gy).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = round(&gy).reshape((14, 17)).unwrap();
        let want_gx = g2
            .matmul(&round(w.as_tensor()))
            .unwrap()
            .reshape((2, 7, 33))
            .unwrap();
        let want_gw = g2
            .t()
            .unwrap()
            .matmul(&round(x.as_tensor()).reshape((14, 33)).unwrap())
            .unwrap();
        let (gx, gw) = (
            grads.get(x.as_tensor()).unwrap(),
            grads.get(w.as_tensor()).unwrap(),
        );
        assert_eq!((gx.dtype(), gw.dtype()), (DType::F32, DType::F32));
        assert!(max_rel(gx, &want_gx) < 8e-3, "dx {}", max_rel(gx, &want_gx));
        assert!(max_rel(gw, &want_gw) < 8e-3, "dw {}", max_rel(gw, &want_gw));
        let frozen = w.as_tensor().detach();
        let y = linear_generic(x.as_tensor(), &frozen).unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        assert!(grads.get(x.as_tensor()).is_some() && grads.get(&frozen).is_none());
    }

    #[test]
    fn frozen_weight_gets_no_gradient_and_dtype_parses() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (4, 8), &dev).unwrap()).unwrap();
        let w = Tensor::randn(0f32, 1.0, (3, 8), &dev).unwrap();
        let y = linear(x.as_tensor(), &w, Some(Bf16Path::F32Gemm)).unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        assert!(grads.get(x.as_tensor()).is_some());
        assert!(grads.get(&w).is_none());
        assert_eq!("bf16".parse::<ComputeDtype>().unwrap(), ComputeDtype::Bf16);
        assert_eq!(" f32 ".parse::<ComputeDtype>().unwrap(), ComputeDtype::F32);
        let e = "fp16".parse::<ComputeDtype>().unwrap_err();
        assert!(e.contains("\"fp16\"") && e.contains("\"bf16\""), "{e}");
    }
}
