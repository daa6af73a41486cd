//! LoRA adapters: `W x + (alpha / r) * B A x` on chosen linear layers, base weights frozen, and a
//! merge (`W += (alpha / r) * B A`) for export.
//!
//! Initialisation follows PEFT's default: `A ~ U(-1/sqrt(in), 1/sqrt(in))`, `B = 0`, so the
//! adapted model starts equal to the base model. Adapter names follow PEFT's layout
//! (`...q_proj.lora_A.weight`).

use candle_core::{DType, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::decoder::{Decoder, LoraAdapter};
use crate::error::{ModelError, Result};

/// LoRA settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    /// Rank r.
    pub rank: usize,
    /// Scale numerator (scale = alpha / r).
    pub alpha: f64,
    /// Module names to adapt, e.g. `["q_proj", "k_proj", "v_proj", "o_proj"]`.
    pub target_modules: Vec<String>,
    /// Seed of the A initialisation.
    pub seed: u64,
}

/// Adds adapters to every targeted linear weight and freezes everything else. Returns the number
/// of adapted weights.
pub fn add_lora(model: &mut Decoder, cfg: &LoraConfig) -> Result<usize> {
    if cfg.rank == 0 {
        return Err(ModelError::arg("rank", "must be positive"));
    }
    if !model.lora_adapters().is_empty() {
        return Err(ModelError::arg("model", "already has LoRA adapters"));
    }
    let targets: Vec<(String, Var)> = model
        .params()
        .iter()
        .filter(|(n, v)| {
            v.rank() == 2
                && n.ends_with(".weight")
                && cfg
                    .target_modules
                    .iter()
                    .any(|t| n.ends_with(&format!(".{t}.weight")))
        })
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    if targets.is_empty() {
        return Err(ModelError::arg(
            "target_modules",
            format!("{:?} match no linear weight", cfg.target_modules),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let scale = cfg.alpha / cfg.rank as f64;
    for (name, w) in &targets {
        let (out, inp) = w.dims2()?;
        let base = name.trim_end_matches(".weight");
        let bound = 1.0 / (inp as f64).sqrt();
        let a: Vec<f64> = (0..cfg.rank * inp)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let a = Tensor::from_vec(a, (cfg.rank, inp), w.device())?.to_dtype(w.dtype())?;
        let b = Tensor::zeros((out, cfg.rank), w.dtype(), w.device())?;
        let (an, bn) = (
            format!("{base}.lora_A.weight"),
            format!("{base}.lora_B.weight"),
        );
        model.params_mut().insert(an.clone(), Var::from_tensor(&a)?);
        model.params_mut().insert(bn.clone(), Var::from_tensor(&b)?);
        model.lora_adapters_mut().insert(
            name.clone(),
            LoraAdapter {
                a: an,
                b: bn,
                scale,
            },
        );
    }
    model.params_mut().freeze_where(|n| !n.contains(".lora_"));
    Ok(targets.len())
}

/// Holds every frozen matrix (the base's linear weights and embeddings; not the norm gains) in
/// bf16 (`model.lora_base_dtype = "bf16"`): 2 bytes per base parameter instead of 4. The
/// adapters, norms, activations, gradients and AdamW state stay f32; the products read the bf16
/// weights directly (`linear_bf16`: widened per product on the CPU, cuBLAS bf16 on a GPU), so the
/// model should compute in bf16 (`model.dtype = "bf16"`). Call after [`add_lora`] (or any
/// freezing); returns the number of tensors converted.
pub fn hold_frozen_base_in_bf16(model: &mut Decoder) -> Result<usize> {
    let frozen: Vec<(String, Var)> = model
        .params()
        .iter()
        .filter(|(n, v)| {
            !model.params().is_trainable(n) && v.rank() == 2 && v.dtype() != DType::BF16
        })
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    for (name, v) in &frozen {
        let t = v.as_tensor().to_dtype(DType::BF16)?;
        model
            .params_mut()
            .insert(name.clone(), Var::from_tensor(&t)?);
    }
    Ok(frozen.len())
}

/// Folds every adapter into its base weight, removes the adapters and unfreezes all weights.
pub fn merge_lora(model: &mut Decoder) -> Result<()> {
    let adapters: Vec<(String, LoraAdapter)> = model
        .lora_adapters()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (name, ad) in adapters {
        let w = model.params().get(&name)?.clone();
        let a = model.params().get(&ad.a)?.as_tensor().detach();
        let b = model.params().get(&ad.b)?.as_tensor().detach();
        let delta = (b.matmul(&a)? * ad.scale)?;
        let merged = (w.as_tensor().to_dtype(delta.dtype())? + delta)?;
        let dtype = model.dtype();
        if w.dtype() == dtype {
            w.set(&merged.to_dtype(dtype)?)?;
        } else {
            // A base held in bf16 (made trainable below in the model's dtype).
            let v = Var::from_tensor(&merged.to_dtype(dtype)?)?;
            model.params_mut().insert(name.clone(), v);
        }
        model.params_mut().remove(&ad.a);
        model.params_mut().remove(&ad.b);
    }
    model.lora_adapters_mut().clear();
    // A base held in bf16 comes back in the model's dtype: every weight is trainable again.
    let dtype = model.dtype();
    let held: Vec<(String, Var)> = model
        .params()
        .iter()
        .filter(|(_, v)| v.dtype() != dtype)
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    for (name, v) in held {
        let t = v.as_tensor().to_dtype(dtype)?;
        model.params_mut().insert(name, Var::from_tensor(&t)?);
    }
    model.params_mut().unfreeze_all();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Arch, ModelConfig};
    use crate::decoder::{ForwardInput, Mode};
    use candle_core::{DType, Device};

    #[test]
    fn lora_trains_only_adapters_and_merges_exactly() {
        let cfg = ModelConfig::tiny(Arch::Qwen2, 30);
        let mut m = Decoder::random(cfg.clone(), 1, 0.2, DType::F32, &Device::Cpu).unwrap();
        let seqs: [&[u32]; 1] = [&[1, 4, 9, 16, 25]];
        let inp = ForwardInput::right_padded(&cfg, &seqs, 0, DType::F32, &Device::Cpu).unwrap();
        let base = m.forward_logits(&inp, Mode::Infer).unwrap();
        let lc = LoraConfig {
            rank: 2,
            alpha: 4.0,
            target_modules: vec!["q_proj".into(), "v_proj".into()],
            seed: 0,
        };
        // 2 layers x 2 modules.
        assert_eq!(add_lora(&mut m, &lc).unwrap(), 4);
        // B = 0: unchanged output.
        let same = m.forward_logits(&inp, Mode::Infer).unwrap();
        let d = crate::test_util::max_abs_diff(&base, &same);
        assert!(d < 1e-6);
        // Only adapters are trainable. Per layer: q_proj [32, 32] -> A [2, 32] + B [32, 2] = 128;
        // v_proj [16, 32] -> A [2, 32] + B [16, 2] = 96; two layers: 2 x 224 = 448 scalars.
        assert_eq!(m.params().num_trainable(), 448);
        let grads = m
            .forward_logits(&inp, Mode::Train)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (n, v) in m.params().iter() {
            assert_eq!(
                grads.get(v.as_tensor()).is_some(),
                n.contains("lora_"),
                "{n}"
            );
        }
        // Give B values, then merging must keep the outputs.
        for (n, v) in m.params().iter() {
            if n.contains("lora_B") {
                v.set(&Tensor::randn(0f32, 0.5, v.shape(), &Device::Cpu).unwrap())
                    .unwrap();
            }
        }
        let adapted = m.forward_logits(&inp, Mode::Infer).unwrap();
        merge_lora(&mut m).unwrap();
        assert!(m.params().iter().all(|(n, _)| !n.contains("lora_")));
        let merged = m.forward_logits(&inp, Mode::Infer).unwrap();
        let d = crate::test_util::max_abs_diff(&adapted, &merged);
        let moved = crate::test_util::max_abs_diff(&adapted, &base);
        assert!(d < 1e-4 && moved > 1e-3, "{d} {moved}");
    }

    /// A checkpoint of an adapted model, loaded into a model without adapters (evaluation, the
    /// KL reference), and its HF export, both compute what the adapted model computes; loaded
    /// into a model with the same adapters, it restores them.
    #[test]
    fn checkpoints_and_exports_fold_adapters_into_plain_models() {
        use crate::checkpoint::{export_hf, load_checkpoint, save_checkpoint};
        let cfg = ModelConfig::tiny(Arch::Llama, 30);
        let mut m = Decoder::random(cfg.clone(), 3, 0.2, DType::F32, &Device::Cpu).unwrap();
        let seqs: [&[u32]; 1] = [&[2, 7, 1, 8, 28]];
        let inp = ForwardInput::right_padded(&cfg, &seqs, 0, DType::F32, &Device::Cpu).unwrap();
        let base = m.forward_logits(&inp, Mode::Infer).unwrap();
        let lc = LoraConfig {
            rank: 2,
            alpha: 3.0,
            target_modules: vec!["k_proj".into(), "up_proj".into()],
            seed: 5,
        };
        add_lora(&mut m, &lc).unwrap();
        for (n, v) in m.params().iter() {
            if n.contains("lora_B") {
                v.set(&Tensor::randn(0f32, 0.5, v.shape(), &Device::Cpu).unwrap())
                    .unwrap();
            }
        }
        let adapted = m.forward_logits(&inp, Mode::Infer).unwrap();
        assert!(crate::test_util::max_abs_diff(&adapted, &base) > 1e-3);
        let dir = std::env::temp_dir().join(format!("spear-lora-fold-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ck = dir.join("ck.safetensors");
        save_checkpoint(&ck, &m, None, &[]).unwrap();
        let adamw = crate::optim::AdamWConfig::default();

        let plain = Decoder::random(cfg.clone(), 9, 0.2, DType::F32, &Device::Cpu).unwrap();
        load_checkpoint(&ck, &plain, adamw).unwrap();
        let folded = plain.forward_logits(&inp, Mode::Infer).unwrap();
        assert!(crate::test_util::max_abs_diff(&adapted, &folded) < 1e-4);

        let mut same = Decoder::random(cfg.clone(), 9, 0.2, DType::F32, &Device::Cpu).unwrap();
        add_lora(&mut same, &lc).unwrap();
        load_checkpoint(&ck, &same, adamw).unwrap();
        assert_eq!(same.lora_adapters().len(), 4);
        let restored = same.forward_logits(&inp, Mode::Infer).unwrap();
        assert_eq!(crate::test_util::max_abs_diff(&adapted, &restored), 0.0);

        export_hf(&dir.join("hf"), &m, None).unwrap();
        let hf =
            candle_core::safetensors::load(dir.join("hf/model.safetensors"), &Device::Cpu).unwrap();
        assert!(hf.keys().all(|k| !k.contains("lora")), "{:?}", hf.keys());
        let exported = Decoder::random(cfg.clone(), 9, 0.2, DType::F32, &Device::Cpu).unwrap();
        for (n, v) in exported.params().iter() {
            v.set(&hf[n]).unwrap();
        }
        let from_hf = exported.forward_logits(&inp, Mode::Infer).unwrap();
        assert!(crate::test_util::max_abs_diff(&adapted, &from_hf) < 1e-4);
        // The adapted model itself still has its adapters after the export.
        assert_eq!(m.lora_adapters().len(), 4);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// `model.lora_base_dtype = "bf16"`: every frozen matrix becomes bf16 (half the bytes), the
    /// norms, adapters and activations stay f32, the model computes what the f32 base computes
    /// in bf16 once the embeddings are rounded (the products round the weights anyway), the
    /// adapters get the same gradients, and checkpoints resume exactly
    /// and fold into a plain f32 model; merging gives f32 weights back.
    #[test]
    fn a_base_held_in_bf16_trains_saves_and_folds() {
        use crate::checkpoint::{load_checkpoint, save_checkpoint};
        use crate::linear_bf16::ComputeDtype;
        let cfg = ModelConfig::tiny(Arch::Qwen2, 30);
        let dev = Device::Cpu;
        let seqs: [&[u32]; 2] = [&[1, 4, 9, 16, 25], &[2, 3, 5]];
        let inp = ForwardInput::right_padded(&cfg, &seqs, 0, DType::F32, &dev).unwrap();
        let lc = LoraConfig {
            rank: 2,
            alpha: 4.0,
            target_modules: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()],
            seed: 0,
        };
        let build = || {
            let mut m = Decoder::random(cfg.clone(), 1, 0.2, DType::F32, &dev).unwrap();
            m.compute_dtype = ComputeDtype::Bf16;
            add_lora(&mut m, &lc).unwrap();
            // Seeded B values (the same in every model built here).
            let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(4);
            for (n, v) in m.params().iter() {
                if n.contains("lora_B") {
                    let x = crate::params::normal_vec(&mut rng, v.elem_count(), 0.5);
                    let b = Tensor::from_vec(x, v.shape(), &dev).unwrap();
                    v.set(&b.to_dtype(DType::F32).unwrap()).unwrap();
                }
            }
            m
        };
        let bytes = |m: &Decoder| -> usize {
            m.params()
                .iter()
                .map(|(_, v)| v.elem_count() * v.dtype().size_in_bytes())
                .sum()
        };
        let f32_base = build();
        let mut m = build();
        let before = bytes(&m);
        let n = hold_frozen_base_in_bf16(&mut m).unwrap();
        // Embeddings + 2 layers x 7 linear weights (lm_head tied).
        assert_eq!(n, 1 + 2 * 7);
        for (name, v) in m.params().iter() {
            let want = if name.contains("lora_") || v.rank() == 1 {
                DType::F32
            } else {
                DType::BF16
            };
            assert_eq!(v.dtype(), want, "{name}");
        }
        assert_eq!(m.dtype(), DType::F32);
        let base_bytes = 4 * m
            .params()
            .iter()
            .filter(|(_, v)| v.dtype() == DType::BF16)
            .map(|(_, v)| v.elem_count())
            .sum::<usize>();
        assert_eq!(before - bytes(&m), base_bytes / 2);
        // The products already round the weights to bf16, so the only change is the embedding
        // rows' rounding: an f32 base with bf16-rounded embeddings computes the same logits.
        let emb = f32_base.params().get("model.embed_tokens.weight").unwrap();
        let rounded = emb.as_tensor().to_dtype(DType::BF16).unwrap();
        emb.set(&rounded.to_dtype(DType::F32).unwrap()).unwrap();
        let want = f32_base.forward_logits(&inp, Mode::Infer).unwrap();
        let got = m.forward_logits(&inp, Mode::Infer).unwrap();
        assert_eq!(got.dtype(), DType::F32);
        let scale = crate::test_util::max_abs(&want);
        let d = crate::test_util::max_abs_diff(&want, &got) / scale;
        assert!(
            d < 1e-6,
            "bf16 base vs f32 base with rounded embeddings: {d}"
        );
        // The adapters, and only they, get gradients, close to the f32 base's.
        let grads = |m: &Decoder| {
            m.forward_logits(&inp, Mode::Train)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
        };
        let (g32, g16) = (grads(&f32_base), grads(&m));
        for ((n, v32), (_, v16)) in f32_base.params().iter().zip(m.params().iter()) {
            assert_eq!(
                g16.get(v16.as_tensor()).is_some(),
                n.contains("lora_"),
                "{n}"
            );
            if let (Some(a), Some(b)) = (g32.get(v32.as_tensor()), g16.get(v16.as_tensor())) {
                let d = crate::test_util::max_rel_diff(b, a);
                assert!(d < 1e-5, "{n}: relative gradient difference {d}");
            }
        }
        // Checkpoint: the same setup restores it exactly; a plain f32 model folds the adapters.
        let dir = std::env::temp_dir().join(format!("spear-lora-bf16-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ck = dir.join("ck.safetensors");
        save_checkpoint(&ck, &m, None, &[]).unwrap();
        let adamw = crate::optim::AdamWConfig::default();
        let mut same = Decoder::random(cfg.clone(), 9, 0.2, DType::F32, &dev).unwrap();
        same.compute_dtype = ComputeDtype::Bf16;
        add_lora(&mut same, &lc).unwrap();
        hold_frozen_base_in_bf16(&mut same).unwrap();
        load_checkpoint(&ck, &same, adamw).unwrap();
        let restored = same.forward_logits(&inp, Mode::Infer).unwrap();
        assert_eq!(crate::test_util::max_abs_diff(&got, &restored), 0.0);
        let mut plain = Decoder::random(cfg.clone(), 9, 0.2, DType::F32, &dev).unwrap();
        plain.compute_dtype = ComputeDtype::Bf16;
        load_checkpoint(&ck, &plain, adamw).unwrap();
        assert!(plain.params().iter().all(|(_, v)| v.dtype() == DType::F32));
        let folded = plain.forward_logits(&inp, Mode::Infer).unwrap();
        // The folded weight W + s·BA is rounded to bf16 as a whole in the products (the adapted
        // model rounds only W): bf16-sized differences, far below what the adapters change.
        let d = crate::test_util::max_abs_diff(&got, &folded) / scale;
        let mut bare = Decoder::random(cfg.clone(), 1, 0.2, DType::F32, &dev).unwrap();
        bare.compute_dtype = ComputeDtype::Bf16;
        let bare = bare.forward_logits(&inp, Mode::Infer).unwrap();
        let moved = crate::test_util::max_abs_diff(&got, &bare) / scale;
        assert!(
            d < 5e-2 && moved > 0.3,
            "folded into a plain model: {d} (adapters move {moved})"
        );
        // Merging gives f32 weights that compute the same.
        merge_lora(&mut m).unwrap();
        assert!(m.params().iter().all(|(_, v)| v.dtype() == DType::F32));
        let merged = m.forward_logits(&inp, Mode::Infer).unwrap();
        let d = crate::test_util::max_abs_diff(&got, &merged) / scale;
        assert!(d < 5e-2, "merged: {d}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
