//! HF model directories: `config.json`, `model.safetensors` or shards listed in
//! `model.safetensors.index.json`, and the tokenizer files.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};

use crate::config::ModelConfig;
use crate::decoder::Decoder;
use crate::error::{ModelError, Result};
use crate::load::memory::{check_fits, KeyStyle};
use crate::params::{param_specs, ParamStore};
use crate::tokenizer::TextTokenizer;

/// Reads every weight file of an HF directory into one map (tensors as stored).
fn read_weights(dir: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let files: Vec<std::path::PathBuf> = if single.exists() {
        vec![single]
    } else if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|e| ModelError::io(&index, e))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| ModelError::Json {
            path: index.clone(),
            source: e,
        })?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| ModelError::Config {
                source_name: index.display().to_string(),
                key: "weight_map".into(),
                reason: "missing or not an object".into(),
            })?;
        let names: BTreeSet<&str> = map.values().filter_map(|x| x.as_str()).collect();
        names.into_iter().map(|n| dir.join(n)).collect()
    } else {
        return Err(ModelError::Weights {
            file: dir.display().to_string(),
            name: "model.safetensors".into(),
            reason: "neither model.safetensors nor model.safetensors.index.json exists".into(),
        });
    };
    let mut all = HashMap::new();
    for f in files {
        let m = candle_core::safetensors::load(&f, device).map_err(|e| ModelError::Weights {
            file: f.display().to_string(),
            name: "*".into(),
            reason: e.to_string(),
        })?;
        all.extend(m);
    }
    Ok(all)
}

/// Builds a parameter store from named tensors, checking names and shapes against `cfg`.
pub fn params_from_tensors(
    cfg: &ModelConfig,
    mut tensors: HashMap<String, Tensor>,
    dtype: DType,
    source: &str,
) -> Result<ParamStore> {
    let mut store = ParamStore::new();
    for (name, shape, _) in param_specs(cfg) {
        let t = tensors.remove(&name).ok_or_else(|| ModelError::Weights {
            file: source.to_string(),
            name: name.clone(),
            reason: "missing".into(),
        })?;
        if t.dims() != shape.as_slice() {
            return Err(ModelError::Weights {
                file: source.to_string(),
                name,
                reason: format!("shape {:?}, config implies {:?}", t.dims(), shape),
            });
        }
        store.insert(name, Var::from_tensor(&t.to_dtype(dtype)?)?);
    }
    Ok(store)
}

/// Loads an HF model directory as a trainable decoder (weights converted to `dtype`) and its
/// tokenizer when `tokenizer.json` is present.
pub fn load_hf_dir(
    dir: &Path,
    dtype: DType,
    device: &Device,
) -> Result<(Decoder, Option<TextTokenizer>)> {
    let config_path = dir.join("config.json");
    let cfg = ModelConfig::from_hf_file(&config_path)?;
    check_fits(
        &cfg,
        dtype.size_in_bytes(),
        device,
        &config_path.display().to_string(),
        KeyStyle::Hf,
    )?;
    let tensors = read_weights(dir, device)?;
    let params = params_from_tensors(&cfg, tensors, dtype, &dir.display().to_string())?;
    let model = Decoder::new(cfg, params)?;
    let tok = if dir.join("tokenizer.json").exists() {
        Some(TextTokenizer::from_hf_dir(dir)?)
    } else {
        None
    };
    Ok((model, tok))
}
