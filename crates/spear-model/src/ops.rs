//! Building blocks of the decoder in two flavours: composed differentiable ops for training and
//! candle's fused kernels for no-grad inference.
//!
//! candle-nn's fused `rope`, `rms_norm` and `softmax_last_dim` record no backward op, so gradients
//! silently stop at them (shared/docs/ml-backend.md, candle #2168/#3568/#3569). The training path
//! therefore uses only the composed versions here; tests check that both flavours agree.

use candle_core::{DType, Device, Tensor, D};

use crate::error::Result;

/// Additive mask value for blocked attention entries (finite, so fully masked rows stay finite).
pub const MASK_VALUE: f64 = -1e9;

/// RMSNorm over the last dimension: `x / sqrt(mean(x^2) + eps) * w`.
///
/// `fused`: candle's kernel (no gradient, inference). Otherwise the trainable kernel of
/// [`crate::fused`] on the CPU, else the composed ops.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64, fused: bool) -> Result<Tensor> {
    if fused {
        let x = x.contiguous()?;
        return Ok(candle_nn::ops::rms_norm(&x, w, eps as f32)?);
    }
    if crate::fused::supported(x) && x.dtype() == w.dtype() {
        return crate::fused::rms_norm(x, w, eps);
    }
    if crate::device_ops::supported(x) && x.dtype() == w.dtype() {
        return crate::device_ops::rms_norm(x, w, eps);
    }
    rms_norm_composed(x, w, eps)
}

/// RMSNorm from elementary differentiable ops (the reference the kernels are tested against).
pub fn rms_norm_composed(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    let inv = (ms + eps)?.sqrt()?.recip()?;
    Ok(x.broadcast_mul(&inv)?.broadcast_mul(w)?)
}

/// Softmax over the last dimension (`fused`: candle's kernel, no gradient; otherwise the
/// trainable kernel of [`crate::fused`] on the CPU, else composed ops).
pub fn softmax_last(x: &Tensor, fused: bool) -> Result<Tensor> {
    if fused {
        Ok(candle_nn::ops::softmax_last_dim(&x.contiguous()?)?)
    } else if crate::fused::supported(x) {
        crate::fused::softmax_last(x)
    } else if crate::device_ops::supported(x) {
        crate::device_ops::softmax_last(x)
    } else {
        Ok(candle_nn::ops::softmax(x, D::Minus1)?)
    }
}

/// `softmax(scale * scores + mask)` for attention scores `[b, kv_heads, g * t, T]` (query heads
/// of one KV head stacked along time) and a mask `[b, 1, 1, t, T]`; returns the same shape.
/// `fused`: candle's kernels (no gradient); otherwise the trainable kernel of [`crate::fused`] on
/// the CPU, else composed ops.
pub fn attention_softmax(
    scores: &Tensor,
    mask: &Tensor,
    scale: f64,
    fused: bool,
) -> Result<Tensor> {
    let (b, nkv, gt, tk) = scores.dims4()?;
    let t = mask.dim(3)?;
    if !fused && crate::fused::supported(scores) && scores.dtype() == mask.dtype() {
        return crate::fused::masked_softmax(scores, mask, scale);
    }
    if !fused && crate::device_ops::supported(scores) && scores.dtype() == mask.dtype() {
        return crate::device_ops::masked_softmax(scores, mask, scale);
    }
    let att = (scores * scale)?
        .reshape((b, nkv, gt / t, t, tk))?
        .broadcast_add(mask)?;
    Ok(softmax_last(&att, fused)?.reshape((b, nkv, gt, tk))?)
}

/// RoPE cos/sin tables of shape `[b, t, head_dim / 2]` for the given positions.
///
/// Frequencies `theta^(-2i/d)` and angles are computed in f64, then cast to `dtype`.
pub fn rope_tables(
    positions: &[Vec<u32>],
    head_dim: usize,
    theta: f64,
    dtype: DType,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let half = head_dim / 2;
    let b = positions.len();
    let t = positions.first().map_or(0, Vec::len);
    let inv: Vec<f64> = (0..half)
        .map(|i| 1.0 / theta.powf(2.0 * i as f64 / head_dim as f64))
        .collect();
    let mut cos = Vec::with_capacity(b * t * half);
    let mut sin = Vec::with_capacity(b * t * half);
    for row in positions {
        assert_eq!(row.len(), t, "ragged position rows");
        for &p in row {
            for f in &inv {
                let a = p as f64 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
    }
    let cos = Tensor::from_vec(cos, (b, t, half), device)?.to_dtype(dtype)?;
    let sin = Tensor::from_vec(sin, (b, t, half), device)?.to_dtype(dtype)?;
    Ok((cos, sin))
}

/// Rotary embedding of `x: [b, h, t, d]` with tables `[b, t, d/2]`.
///
/// Half rotation pairs `(i, i + d/2)` (HF layout); interleaved pairs `(2i, 2i+1)` (GPT-J and
/// llama.cpp layout). `fused` uses candle's kernels (no gradient); otherwise the trainable kernel
/// of [`crate::fused`] on the CPU, else composed ops.
pub fn rope(
    x: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    interleaved: bool,
    fused: bool,
) -> Result<Tensor> {
    if fused {
        let x = x.contiguous()?;
        return Ok(if interleaved {
            candle_nn::rotary_emb::rope_i(&x, cos, sin)?
        } else {
            candle_nn::rotary_emb::rope(&x, cos, sin)?
        });
    }
    if crate::fused::supported(x) && x.dtype() == cos.dtype() {
        return crate::fused::rope(x, cos, sin, interleaved);
    }
    if crate::device_ops::supported(x) && x.dtype() == cos.dtype() {
        return crate::device_ops::rope(x, cos, sin, interleaved);
    }
    rope_composed(x, cos, sin, interleaved)
}

/// RoPE from elementary differentiable ops (the reference the kernels are tested against).
pub fn rope_composed(x: &Tensor, cos: &Tensor, sin: &Tensor, interleaved: bool) -> Result<Tensor> {
    let (b, h, t, d) = x.dims4()?;
    let cos = cos.unsqueeze(1)?;
    let sin = sin.unsqueeze(1)?;
    if interleaved {
        let xr = x.reshape((b, h, t, d / 2, 2))?;
        let xe = xr.narrow(D::Minus1, 0, 1)?.squeeze(D::Minus1)?;
        let xo = xr.narrow(D::Minus1, 1, 1)?.squeeze(D::Minus1)?;
        let re = (xe.broadcast_mul(&cos)? - xo.broadcast_mul(&sin)?)?;
        let ro = (xe.broadcast_mul(&sin)? + xo.broadcast_mul(&cos)?)?;
        Ok(Tensor::stack(&[re, ro], D::Minus1)?.reshape((b, h, t, d))?)
    } else {
        let x1 = x.narrow(D::Minus1, 0, d / 2)?;
        let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
        let r1 = (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?;
        let r2 = (x2.broadcast_mul(&cos)? + x1.broadcast_mul(&sin)?)?;
        Ok(Tensor::cat(&[r1, r2], D::Minus1)?)
    }
}

/// Additive attention mask `[b, 1, 1, q, T]` for `q` new queries at the end of `T` keys.
///
/// Query `i` sits at key index `T - q + i` and sees key `j` when `j <= T - q + i` and key `j` is
/// valid (not padding). Each query also sees itself, so a padding query never has an empty row.
pub fn attention_mask(
    key_valid: &[Vec<bool>],
    q: usize,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let b = key_valid.len();
    let t_all = key_valid.first().map_or(0, Vec::len);
    let mut m = Vec::with_capacity(b * q * t_all);
    for row in key_valid {
        assert_eq!(row.len(), t_all, "ragged key-valid rows");
        for i in 0..q {
            let qi = t_all - q + i;
            for (j, &ok) in row.iter().enumerate() {
                let visible = j == qi || (j < qi && ok);
                m.push(if visible { 0.0f32 } else { MASK_VALUE as f32 });
            }
        }
    }
    Ok(Tensor::from_vec(m, (b, 1, 1, q, t_all), device)?.to_dtype(dtype)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &Tensor, b: &Tensor, tol: f32) {
        let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= tol, "{x} vs {y}");
        }
    }

    #[test]
    fn rms_norm_hand_value_and_fused_agree() {
        // x = [3, 4]: mean(x^2) = 12.5, 1/sqrt(12.5) = 0.28284; w = [1, 2] -> [0.84853, 2.26274].
        let x = Tensor::new(&[[3f32, 4.]], &crate::test_util::test_device()).unwrap();
        let w = Tensor::new(&[1f32, 2.], &crate::test_util::test_device()).unwrap();
        let y = rms_norm(&x, &w, 0.0, false).unwrap();
        close(
            &y,
            &Tensor::new(&[[0.848528f32, 2.262742]], &crate::test_util::test_device()).unwrap(),
            1e-5,
        );
        let x = Tensor::randn(0f32, 1., (2, 3, 16), &crate::test_util::test_device()).unwrap();
        let w = Tensor::randn(0f32, 1., 16, &crate::test_util::test_device()).unwrap();
        close(
            &rms_norm(&x, &w, 1e-5, false).unwrap(),
            &rms_norm(&x, &w, 1e-5, true).unwrap(),
            1e-5,
        );
    }

    #[test]
    fn rope_hand_value_and_fused_agree() {
        // d = 2, position 1, theta irrelevant (i = 0 -> freq 1): rotate (1, 0) by 1 rad.
        let (c, s) = rope_tables(
            &[vec![1]],
            2,
            10000.0,
            DType::F32,
            &crate::test_util::test_device(),
        )
        .unwrap();
        let x = Tensor::new(&[[[[1f32, 0.]]]], &crate::test_util::test_device()).unwrap();
        let y = rope(&x, &c, &s, false, false).unwrap();
        close(
            &y,
            &Tensor::new(
                &[[[[0.540302f32, 0.841471]]]],
                &crate::test_util::test_device(),
            )
            .unwrap(),
            1e-6,
        );
        let pos = vec![vec![0, 1, 2, 7], vec![3, 4, 5, 6]];
        let (c, s) =
            rope_tables(&pos, 8, 100.0, DType::F32, &crate::test_util::test_device()).unwrap();
        let x = Tensor::randn(0f32, 1., (2, 3, 4, 8), &crate::test_util::test_device()).unwrap();
        for inter in [false, true] {
            close(
                &rope(&x, &c, &s, inter, false).unwrap(),
                &rope(&x, &c, &s, inter, true).unwrap(),
                1e-5,
            );
            close(
                &rope_composed(&x, &c, &s, inter).unwrap(),
                &rope(&x, &c, &s, inter, true).unwrap(),
                1e-5,
            );
        }
    }

    #[test]
    fn softmax_flavours_agree() {
        let x = Tensor::randn(0f32, 3., (3, 7), &crate::test_util::test_device()).unwrap();
        close(
            &softmax_last(&x, false).unwrap(),
            &softmax_last(&x, true).unwrap(),
            1e-6,
        );
    }

    #[test]
    fn mask_is_causal_and_hides_padding() {
        // Two rows of 3 keys; row 1 has a left pad at key 0. Two queries (keys 1 and 2).
        let valid = vec![vec![true, true, true], vec![false, true, true]];
        let m = attention_mask(&valid, 2, DType::F32, &crate::test_util::test_device()).unwrap();
        let m: Vec<f32> = m.flatten_all().unwrap().to_vec1().unwrap();
        let z = 0f32;
        let x = MASK_VALUE as f32;
        assert_eq!(m, vec![z, z, x, z, z, z, x, z, x, x, z, z]);
    }
}
