//! Gradient tests of the training path: every trainable tensor receives a gradient, and the
//! gradients match central finite differences on a tiny f64 model (shared/docs/ml-backend.md).

use candle_core::{DType, Tensor};

use crate::config::{Arch, ModelConfig};
use crate::decoder::{log_probs_and_entropy, Decoder, ForwardInput, Mode};

fn tiny(arch: Arch, interleaved: bool) -> Decoder {
    let mut cfg = ModelConfig::tiny(arch, 23);
    cfg.hidden_size = 16;
    cfg.intermediate_size = 24;
    cfg.head_dim = 4;
    cfg.rope_interleaved = interleaved;
    let mut d = Decoder::random(cfg, 3, 0.3, DType::F64, &crate::test_util::test_device()).unwrap();
    // Non-trivial norm gains and biases so every term of the gradient matters.
    let names: Vec<String> = d.params().iter().map(|(n, _)| n.clone()).collect();
    for (i, n) in names.iter().enumerate() {
        if n.contains("norm") || n.ends_with("bias") {
            let v = d.params().get(n).unwrap().clone();
            let noise =
                Tensor::randn(0f64, 0.2, v.shape(), &crate::test_util::test_device()).unwrap();
            let base = if n.ends_with("bias") { 0.0 } else { 1.0 };
            v.set(&((noise + base).unwrap() + (i as f64) * 1e-3).unwrap())
                .unwrap();
        }
    }
    d.params_mut();
    d
}

/// A loss touching every output: NLL of fixed targets plus 0.1 x mean entropy, with padding.
fn loss(d: &Decoder) -> Tensor {
    let seqs: [&[u32]; 2] = [&[1, 5, 7, 2, 9], &[3, 4, 22]];
    let input = ForwardInput::right_padded(
        d.config(),
        &seqs,
        0,
        DType::F64,
        &crate::test_util::test_device(),
    )
    .unwrap();
    let logits = d.forward_logits(&input, Mode::Train).unwrap();
    let (lp, ent) = log_probs_and_entropy(&logits, true).unwrap();
    // Targets: next tokens of row 0 (positions 0..4) and row 1 (positions 0..2).
    let mut terms = vec![];
    for (r, s) in seqs.iter().enumerate() {
        for p in 0..s.len() - 1 {
            terms.push(
                lp.get(r)
                    .unwrap()
                    .get(p)
                    .unwrap()
                    .get(s[p + 1] as usize)
                    .unwrap(),
            );
            terms.push((ent.as_ref().unwrap().get(r).unwrap().get(p).unwrap() * 0.1).unwrap());
        }
    }
    Tensor::stack(&terms, 0)
        .unwrap()
        .sum_all()
        .unwrap()
        .neg()
        .unwrap()
}

fn check_family(arch: Arch, interleaved: bool) {
    let d = tiny(arch, interleaved);
    let grads = loss(&d).backward().unwrap();
    let mut worst = 0f64;
    for (name, var) in d.params().iter() {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{arch:?}: no gradient for {name}"));
        let g: Vec<f64> = g.flatten_all().unwrap().to_vec1().unwrap();
        assert!(g.iter().any(|x| x.abs() > 0.0), "{name}: all-zero gradient");
        let n = g.len();
        for &idx in &[0, n / 2, n - 1] {
            let orig: Vec<f64> = var.flatten_all().unwrap().to_vec1().unwrap();
            let eps = 1e-5;
            let eval = |delta: f64| {
                let mut x = orig.clone();
                x[idx] += delta;
                var.set(
                    &Tensor::from_vec(x, var.shape(), &crate::test_util::test_device()).unwrap(),
                )
                .unwrap();
                loss(&d).to_scalar::<f64>().unwrap()
            };
            let fd = (eval(eps) - eval(-eps)) / (2.0 * eps);
            var.set(
                &Tensor::from_vec(orig, var.shape(), &crate::test_util::test_device()).unwrap(),
            )
            .unwrap();
            let rel = (fd - g[idx]).abs() / (fd.abs() + g[idx].abs()).max(1e-6);
            worst = worst.max(rel);
            assert!(
                rel < 1e-4,
                "{arch:?} {name}[{idx}]: backward {} vs fd {fd}",
                g[idx]
            );
        }
    }
    assert!(worst < 1e-4);
}

#[test]
fn llama_gradients_match_finite_differences() {
    check_family(Arch::Llama, false);
}

#[test]
fn llama_interleaved_rope_gradients_match_finite_differences() {
    check_family(Arch::Llama, true);
}

#[test]
fn qwen2_gradients_match_finite_differences() {
    check_family(Arch::Qwen2, false);
}

#[test]
fn qwen3_gradients_match_finite_differences() {
    check_family(Arch::Qwen3, false);
}

#[test]
fn frozen_parameters_get_no_gradient() {
    let mut d = tiny(Arch::Qwen2, false);
    d.params_mut().freeze_where(|n| n.contains("embed_tokens"));
    let grads = loss(&d).backward().unwrap();
    for (name, var) in d.params().iter() {
        let has = grads.get(var.as_tensor()).is_some();
        assert_eq!(has, !name.contains("embed_tokens"), "{name}");
    }
}

#[test]
fn fused_inference_matches_composed_training_path() {
    for arch in [Arch::Llama, Arch::Qwen2, Arch::Qwen3] {
        let cfg = ModelConfig::tiny(arch, 40);
        let d = Decoder::random(cfg, 9, 0.2, DType::F32, &crate::test_util::test_device()).unwrap();
        let seqs: [&[u32]; 2] = [&[1, 5, 7, 2, 9, 30], &[3, 4, 22]];
        let input = ForwardInput::right_padded(
            d.config(),
            &seqs,
            0,
            DType::F32,
            &crate::test_util::test_device(),
        )
        .unwrap();
        let a = d.forward_logits(&input, Mode::Train).unwrap();
        let b = d.forward_logits(&input, Mode::Infer).unwrap();
        let diff = crate::test_util::max_abs_diff(&a, &b);
        assert!(diff < 1e-4, "{arch:?}: fused vs composed differ by {diff}");
    }
}
