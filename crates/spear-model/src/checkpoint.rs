//! Checkpoints (weights + optimizer + RNG in one safetensors file, written atomically) and export
//! of a policy as an HF model directory.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use rand_chacha::ChaCha8Rng;

use crate::decoder::Decoder;
use crate::error::{ModelError, Result};
use crate::optim::{AdamW, Moments};
use crate::tokenizer::TextTokenizer;

/// Writes `bytes` to `path` atomically: temp file in the same directory, fsync, rename, fsync dir.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp: PathBuf = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut f = File::create(&tmp).map_err(|e| ModelError::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| ModelError::io(&tmp, e))?;
        f.sync_all().map_err(|e| ModelError::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| ModelError::io(path, e))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn rng_to_bytes(rng: &ChaCha8Rng) -> Vec<u8> {
    let mut b = rng.get_seed().to_vec();
    b.extend(rng.get_stream().to_le_bytes());
    b.extend(rng.get_word_pos().to_le_bytes());
    b
}

fn rng_from_bytes(b: &[u8]) -> Option<ChaCha8Rng> {
    use rand::SeedableRng;
    if b.len() != 32 + 8 + 16 {
        return None;
    }
    let seed: [u8; 32] = b[..32].try_into().ok()?;
    let mut r = ChaCha8Rng::from_seed(seed);
    r.set_stream(u64::from_le_bytes(b[32..40].try_into().ok()?));
    r.set_word_pos(u128::from_le_bytes(b[40..56].try_into().ok()?));
    Some(r)
}

/// What a checkpoint restores besides the weights.
#[derive(Debug, Clone)]
pub struct CheckpointExtras {
    /// Optimizer (step and moments).
    pub optimizer: Option<AdamW>,
    /// Named RNG states (e.g. `"trainer"`).
    pub rngs: Vec<(String, ChaCha8Rng)>,
}

/// Saves weights (`param/<name>`), AdamW moments (`adam_m/<name>`, `adam_v/<name>`, step in
/// `adam_step`) and RNG states (`rng/<name>`, 56 bytes) into one safetensors file, atomically.
pub fn save_checkpoint(
    path: &Path,
    model: &Decoder,
    optimizer: Option<&AdamW>,
    rngs: &[(&str, &ChaCha8Rng)],
) -> Result<()> {
    let mut map: HashMap<String, Tensor> = HashMap::new();
    for (name, var) in model.params().iter() {
        map.insert(
            format!("param/{name}"),
            var.as_tensor().to_device(&Device::Cpu)?,
        );
    }
    if let Some(opt) = optimizer {
        map.insert(
            "adam_step".into(),
            Tensor::new(&[opt.step as i64], &Device::Cpu)?,
        );
        for (name, m) in &opt.state {
            let (a, b) = match m {
                Moments::F32(a, b) => (
                    Tensor::new(a.as_slice(), &Device::Cpu)?,
                    Tensor::new(b.as_slice(), &Device::Cpu)?,
                ),
                Moments::F64(a, b) => (
                    Tensor::new(a.as_slice(), &Device::Cpu)?,
                    Tensor::new(b.as_slice(), &Device::Cpu)?,
                ),
            };
            map.insert(format!("adam_m/{name}"), a);
            map.insert(format!("adam_v/{name}"), b);
        }
    }
    for (base, ad) in model.lora_adapters() {
        map.insert(
            format!("lora_scale/{base}"),
            Tensor::new(&[ad.scale], &Device::Cpu)?,
        );
    }
    for (name, rng) in rngs {
        map.insert(
            format!("rng/{name}"),
            Tensor::new(rng_to_bytes(rng).as_slice(), &Device::Cpu)?,
        );
    }
    let bytes =
        safetensors::serialize(map.iter().map(|(k, v)| (k.clone(), v)), None).map_err(|e| {
            ModelError::Checkpoint {
                path: path.into(),
                reason: e.to_string(),
            }
        })?;
    write_atomic(path, &bytes)
}

/// The weights as a model without adapters has them: every LoRA-adapted weight as
/// `W + scale * B A`, the adapters themselves left out.
pub fn merged_weights(model: &Decoder) -> Result<Vec<(String, Tensor)>> {
    let ads = model.lora_adapters();
    let mut out = Vec::new();
    for (name, var) in model.params().iter() {
        if name.contains(".lora_A.") || name.contains(".lora_B.") {
            continue;
        }
        let w = var.as_tensor().detach();
        let w = match ads.get(name) {
            Some(ad) => {
                let a = model.params().get(&ad.a)?.as_tensor().detach();
                let b = model.params().get(&ad.b)?.as_tensor().detach();
                let delta = (b.matmul(&a)? * ad.scale)?;
                // In the adapters' dtype (f32), also over a base held in bf16.
                (w.to_dtype(delta.dtype())? + delta)?
            }
            None => w,
        };
        out.push((name.clone(), w));
    }
    Ok(out)
}

/// A checkpoint written with LoRA adapters, loaded into a model without them (evaluation, the
/// KL reference, `model.init_checkpoint`): folds each adapter into its base weight with the
/// scale the checkpoint recorded, so the model computes what the trained one did.
fn fold_foreign_adapters(map: &HashMap<String, Tensor>, model: &Decoder) -> Result<()> {
    for (key, scale) in map {
        let Some(base) = key.strip_prefix("lora_scale/") else {
            continue;
        };
        if model.lora_adapters().contains_key(base) {
            continue;
        }
        let stem = base.trim_end_matches(".weight");
        let get = |k: String| {
            map.get(&k)
                .ok_or_else(|| ModelError::arg("checkpoint", format!("missing `{k}`")))
        };
        let a = get(format!("param/{stem}.lora_A.weight"))?;
        let b = get(format!("param/{stem}.lora_B.weight"))?;
        let scale = scale.flatten_all()?.to_vec1::<f64>()?[0];
        let w = model.params().get(base)?;
        let delta = (b.matmul(a)? * scale)?;
        let merged =
            (w.as_tensor().detach() + delta.to_dtype(w.dtype())?.to_device(w.device())?)?;
        w.set(&merged)?;
    }
    Ok(())
}

/// Restores a checkpoint into `model` (same config) and returns the optimizer and RNG states.
/// Adapters saved by a LoRA run are loaded as they are into a model with the same adapters, and
/// folded into the base weights of a model without them.
pub fn load_checkpoint(
    path: &Path,
    model: &Decoder,
    adamw: crate::optim::AdamWConfig,
) -> Result<CheckpointExtras> {
    let bad = |reason: String| ModelError::Checkpoint {
        path: path.into(),
        reason,
    };
    let map = candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| bad(e.to_string()))?;
    for (name, var) in model.params().iter() {
        let t = map
            .get(&format!("param/{name}"))
            .ok_or_else(|| bad(format!("missing `param/{name}`")))?;
        if t.dims() != var.dims() {
            return Err(bad(format!(
                "`param/{name}` has shape {:?}, model has {:?}",
                t.dims(),
                var.dims()
            )));
        }
        var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
    }
    fold_foreign_adapters(&map, model).map_err(|e| bad(e.to_string()))?;
    let optimizer = match map.get("adam_step") {
        None => None,
        Some(s) => {
            let mut opt = AdamW::new(adamw);
            opt.step = s.to_vec1::<i64>()?.first().copied().unwrap_or(0) as u64;
            for (k, m) in &map {
                let Some(name) = k.strip_prefix("adam_m/") else {
                    continue;
                };
                let v = map
                    .get(&format!("adam_v/{name}"))
                    .ok_or_else(|| bad(format!("missing `adam_v/{name}`")))?;
                let mom = match m.dtype() {
                    DType::F64 => Moments::F64(m.to_vec1()?, v.to_vec1()?),
                    _ => Moments::F32(
                        m.to_dtype(DType::F32)?.to_vec1()?,
                        v.to_dtype(DType::F32)?.to_vec1()?,
                    ),
                };
                opt.state.insert(name.to_string(), mom);
            }
            Some(opt)
        }
    };
    let mut rngs = vec![];
    for (k, t) in &map {
        if let Some(name) = k.strip_prefix("rng/") {
            let b: Vec<u8> = t.to_vec1()?;
            rngs.push((
                name.to_string(),
                rng_from_bytes(&b).ok_or_else(|| bad(format!("`{k}` is not a ChaCha8 state")))?,
            ));
        }
    }
    rngs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(CheckpointExtras { optimizer, rngs })
}

/// Exports an HF model directory: `config.json`, `model.safetensors` (f32, HF names; LoRA
/// adapters are folded into their base weights on the way out, the model itself keeps them),
/// `generation_config.json` and, with a tokenizer, `tokenizer.json` + `tokenizer_config.json`.
pub fn export_hf(dir: &Path, model: &Decoder, tokenizer: Option<&TextTokenizer>) -> Result<()> {
    export_hf_with(dir, model, tokenizer, false)
}

/// [`export_hf`], and with `untie` a model with tied embeddings is written untied: the output
/// head as its own `lm_head.weight` (a copy of the embedding) and `tie_word_embeddings: false`.
/// The same function either way; vLLM 0.32.0 (CPU) needs it, because its `reload_weights`
/// refreshes only one of the two uses of a tied embedding (measured with scripts/test-vllm.sh).
pub fn export_hf_with(
    dir: &Path,
    model: &Decoder,
    tokenizer: Option<&TextTokenizer>,
    untie: bool,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let mut cfg = model.config().clone();
    let untie = untie && cfg.tie_word_embeddings;
    if untie {
        cfg.tie_word_embeddings = false;
    }
    if let Some(t) = tokenizer {
        for id in &t.stop_token_ids {
            if !cfg.eos_token_ids.contains(id) {
                cfg.eos_token_ids.push(*id);
            }
        }
    }
    let cfg_json = serde_json::to_string_pretty(&cfg.to_hf_json()).expect("json");
    write_atomic(&dir.join("config.json"), cfg_json.as_bytes())?;
    let gen =
        serde_json::json!({"eos_token_id": cfg.eos_token_ids, "bos_token_id": cfg.bos_token_id});
    write_atomic(
        &dir.join("generation_config.json"),
        gen.to_string().as_bytes(),
    )?;
    let mut map: HashMap<String, Tensor> = HashMap::new();
    for (name, t) in merged_weights(model)? {
        map.insert(name, t.to_device(&Device::Cpu)?.to_dtype(DType::F32)?);
    }
    if untie {
        if let Some(e) = map.get("model.embed_tokens.weight").cloned() {
            map.insert("lm_head.weight".into(), e);
        }
    }
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    let p = dir.join("model.safetensors");
    let bytes = safetensors::serialize(map.iter().map(|(k, v)| (k.clone(), v)), Some(meta))
        .map_err(|e| ModelError::Checkpoint {
            path: p.clone(),
            reason: e.to_string(),
        })?;
    write_atomic(&p, &bytes)?;
    if let Some(t) = tokenizer {
        t.save_hf(dir)?;
    }
    Ok(())
}
