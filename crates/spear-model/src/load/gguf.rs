//! GGUF files (llama.cpp): metadata -> config and tokenizer, tensors dequantized to trainable
//! floats under HF names.
//!
//! llama.cpp's converter permutes the rows of Llama's q/k projections so that its interleaved
//! RoPE reproduces HF's half rotation. We undo that permutation at load time, so the loaded model
//! is in HF layout (half-rotation RoPE) and exports to an HF directory unchanged. Qwen2/Qwen3 GGUF
//! files are not permuted.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::Value;
use candle_core::{DType, Device, Tensor};

use crate::config::{Arch, ModelConfig};
use crate::decoder::Decoder;
use crate::error::{ModelError, Result};
use crate::load::gguf_header::read_header;
use crate::load::hf::params_from_tensors;
use crate::load::memory::{check_fits, KeyStyle};
use crate::params::param_specs;
use crate::tokenizer::{TextTokenizer, CHATML_TEMPLATE};

/// Undoes llama.cpp's q/k row permutation: GGUF rows of a head are ordered
/// `(pair 0 first half, pair 0 second half, pair 1 ...)`; HF orders them
/// `(first half..., second half...)`. Works on weights `[heads*d, in]` and biases `[heads*d]`.
pub fn unpermute_rows(t: &Tensor, heads: usize) -> Result<Tensor> {
    let dims = t.dims().to_vec();
    let rows = dims[0];
    let d = rows / heads;
    let rest: usize = dims[1..].iter().product();
    let x = t
        .reshape((heads, d / 2, 2, rest))?
        .transpose(1, 2)?
        .contiguous()?;
    Ok(x.reshape(dims)?)
}

/// The inverse of [`unpermute_rows`] (HF -> llama.cpp layout), used by tests.
pub fn permute_rows(t: &Tensor, heads: usize) -> Result<Tensor> {
    let dims = t.dims().to_vec();
    let d = dims[0] / heads;
    let rest: usize = dims[1..].iter().product();
    let x = t
        .reshape((heads, 2, d / 2, rest))?
        .transpose(1, 2)?
        .contiguous()?;
    Ok(x.reshape(dims)?)
}

struct Meta<'a> {
    md: &'a HashMap<String, Value>,
    file: String,
}

impl Meta<'_> {
    fn get(&self, key: &str) -> Result<&Value> {
        self.md
            .get(key)
            .ok_or_else(|| self.err(key, "missing".into()))
    }
    fn err(&self, key: &str, reason: String) -> ModelError {
        ModelError::Config {
            source_name: self.file.clone(),
            key: key.to_string(),
            reason,
        }
    }
    fn usize(&self, key: &str) -> Result<usize> {
        let v = self.get(key)?;
        let n = match (v.to_u64(), v.to_i32(), v.to_i64()) {
            (Ok(n), _, _) => Some(n),
            (_, Ok(x), _) => u64::try_from(x).ok(),
            (_, _, Ok(x)) => u64::try_from(x).ok(),
            _ => return Err(self.err(key, format!("{v:?} is not an integer"))),
        };
        n.and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| self.err(key, format!("{v:?} is not a non-negative size")))
    }
    fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.md.get(key) {
            None => Ok(None),
            Some(v) => v
                .to_f32()
                .map(|x| Some(x as f64))
                .or_else(|_| v.to_f64().map(Some))
                .map_err(|e| self.err(key, e.to_string())),
        }
    }
    fn opt_u32(&self, key: &str) -> Option<u32> {
        self.md.get(key).and_then(|v| v.to_u32().ok())
    }
    fn strings(&self, key: &str) -> Result<Vec<String>> {
        self.get(key)?
            .to_vec()
            .map_err(|e| self.err(key, e.to_string()))?
            .iter()
            .map(|v| {
                v.to_string()
                    .cloned()
                    .map_err(|e| self.err(key, e.to_string()))
            })
            .collect()
    }
}

/// HF name of a GGUF tensor name, if it is one we use.
fn hf_name(gguf: &str) -> Option<String> {
    let fixed = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (part, kind) = rest.rsplit_once('.')?;
    let hf = match part {
        "attn_norm" => "input_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "ffn_norm" => "post_attention_layernorm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

/// Loads a GGUF file as a trainable decoder (dequantized to `dtype`) and its tokenizer.
///
/// The header is read by [`read_header`] (every size checked against the file); the model's
/// parameter count is checked against the memory available ([`check_fits`], at 4 bytes per
/// parameter or more since tensors are dequantized to f32) and each tensor's shape against the
/// configuration before any tensor is read.
pub fn load_gguf(path: &Path, dtype: DType, device: &Device) -> Result<(Decoder, TextTokenizer)> {
    let file_name = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut f = std::io::BufReader::new(f);
    let header = read_header(&mut f).map_err(|e| {
        let reason = format!("not a readable GGUF file: {}", e.reason);
        if e.tensor {
            ModelError::Weights {
                file: file_name.clone(),
                name: e.at,
                reason,
            }
        } else {
            ModelError::Config {
                source_name: file_name.clone(),
                key: e.at,
                reason,
            }
        }
    })?;
    let m = Meta {
        md: &header.metadata,
        file: file_name.clone(),
    };
    let arch_name = m
        .get("general.architecture")?
        .to_string()
        .map_err(|e| m.err("general.architecture", e.to_string()))?
        .clone();
    let arch = match arch_name.as_str() {
        "llama" => Arch::Llama,
        "qwen2" => Arch::Qwen2,
        "qwen3" => Arch::Qwen3,
        other => {
            return Err(m.err(
                "general.architecture",
                format!("`{other}` is not supported (llama, qwen2, qwen3 are)"),
            ))
        }
    };
    let a = |k: &str| format!("{arch_name}.{k}");
    let tokens = m.strings("tokenizer.ggml.tokens")?;
    let hidden = m.usize(&a("embedding_length"))?;
    let heads = m.usize(&a("attention.head_count"))?;
    let kv_heads = m.usize(&a("attention.head_count_kv")).unwrap_or(heads);
    let head_dim = m
        .usize(&a("attention.key_length"))
        .unwrap_or(hidden / heads.max(1));
    let has_output = header.tensor("output.weight").is_some();
    let bos = m.opt_u32("tokenizer.ggml.bos_token_id");
    let eos = m.opt_u32("tokenizer.ggml.eos_token_id");
    let cfg = ModelConfig {
        arch,
        vocab_size: tokens.len(),
        hidden_size: hidden,
        intermediate_size: m.usize(&a("feed_forward_length"))?,
        num_layers: m.usize(&a("block_count"))?,
        num_heads: heads,
        num_kv_heads: kv_heads,
        head_dim,
        rms_norm_eps: m
            .opt_f64(&a("attention.layer_norm_rms_epsilon"))?
            .unwrap_or(1e-5),
        rope_theta: m.opt_f64(&a("rope.freq_base"))?.unwrap_or(10000.0),
        rope_interleaved: false,
        tie_word_embeddings: !has_output,
        qkv_bias: header.tensor("blk.0.attn_q.bias").is_some(),
        qk_norm: arch == Arch::Qwen3,
        max_position_embeddings: m.usize(&a("context_length")).unwrap_or(4096),
        bos_token_id: bos,
        eos_token_ids: eos.into_iter().collect(),
    };
    cfg.validate(&file_name)?;
    check_fits(
        &cfg,
        dtype.size_in_bytes().max(4),
        device,
        &file_name,
        KeyStyle::Gguf { arch: &arch_name },
    )?;
    let needed = crate::load::memory::estimate(&cfg).tensors;
    if needed > header.tensors.len() as u128 {
        return Err(m.err(
            &a("block_count"),
            format!(
                "{} layers need {needed} tensors, the file has {}",
                cfg.num_layers,
                header.tensors.len()
            ),
        ));
    }
    let shapes: HashMap<String, Vec<usize>> = param_specs(&cfg)
        .into_iter()
        .map(|(n, s, _)| (n, s))
        .collect();
    let mut tensors = HashMap::new();
    for t in &header.tensors {
        let Some(hf) = hf_name(&t.name) else { continue };
        // A tensor the configuration has no parameter for is not read.
        let Some(shape) = shapes.get(&hf) else {
            continue;
        };
        let weights_err = |reason: String| ModelError::Weights {
            file: file_name.clone(),
            name: t.name.clone(),
            reason,
        };
        if &t.dims != shape {
            return Err(weights_err(format!(
                "shape {:?}, config implies {shape:?}",
                t.dims
            )));
        }
        let info = t
            .candle_info()
            .ok_or_else(|| weights_err(format!("ggml type {} is not supported", t.type_code)))?;
        let q = info
            .read(&mut f, header.data_offset, device)
            .map_err(|e| weights_err(e.to_string()))?;
        let mut t = q.dequantize(device)?;
        if arch == Arch::Llama {
            if hf.contains("q_proj") {
                t = unpermute_rows(&t, heads)?;
            } else if hf.contains("k_proj") {
                t = unpermute_rows(&t, kv_heads)?;
            }
        }
        tensors.insert(hf, t);
    }
    let params = params_from_tensors(&cfg, tensors, dtype, &file_name)?;
    let model = Decoder::new(cfg, params)?;
    let merges = if header.metadata.contains_key("tokenizer.ggml.merges") {
        m.strings("tokenizer.ggml.merges")?
    } else {
        vec![]
    };
    let types: Vec<i32> = match header.metadata.get("tokenizer.ggml.token_type") {
        Some(v) => v
            .to_vec()
            .map_err(|e| m.err("tokenizer.ggml.token_type", e.to_string()))?
            .iter()
            .map(|x| x.to_i32().unwrap_or(1))
            .collect(),
        None => vec![],
    };
    let pre = header
        .metadata
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok().cloned())
        .unwrap_or_default();
    let template = header
        .metadata
        .get("tokenizer.chat_template")
        .and_then(|v| v.to_string().ok().cloned())
        .unwrap_or_else(|| CHATML_TEMPLATE.to_string());
    let tok = TextTokenizer::from_gguf_metadata(
        &tokens,
        &merges,
        &types,
        &pre,
        bos,
        eos,
        Some(template),
    )?;
    Ok((model, tok))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decoder::{ForwardInput, Mode};

    #[test]
    fn gguf_names_map_to_hf() {
        assert_eq!(
            hf_name("blk.3.attn_q.bias").unwrap(),
            "model.layers.3.self_attn.q_proj.bias"
        );
        assert_eq!(
            hf_name("blk.0.ffn_norm.weight").unwrap(),
            "model.layers.0.post_attention_layernorm.weight"
        );
        assert_eq!(
            hf_name("token_embd.weight").unwrap(),
            "model.embed_tokens.weight"
        );
        assert_eq!(hf_name("rope_freqs.weight"), None);
    }

    #[test]
    fn permutation_round_trips_by_hand() {
        // One head, d = 4, rows [r0 r1 r2 r3] (HF: first half r0 r1, second half r2 r3).
        // llama.cpp order interleaves the halves: [r0 r2 r1 r3].
        let t = Tensor::new(&[[0f32], [1.], [2.], [3.]], &Device::Cpu).unwrap();
        let p = permute_rows(&t, 1).unwrap();
        assert_eq!(
            p.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![0., 2., 1., 3.]
        );
        let back = unpermute_rows(&p, 1).unwrap();
        assert_eq!(
            back.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![0., 1., 2., 3.]
        );
    }

    #[test]
    fn interleaved_rope_on_permuted_weights_equals_half_rope() {
        // The reason GGUF needs interleaved RoPE: permuted q/k + interleaved == HF + half.
        let cfg = ModelConfig::tiny(Arch::Llama, 30);
        let hf = Decoder::random(cfg.clone(), 5, 0.3, DType::F32, &Device::Cpu).unwrap();
        let mut icfg = cfg.clone();
        icfg.rope_interleaved = true;
        let mut ps = crate::params::ParamStore::new();
        for (n, v) in hf.params().iter() {
            let t = if n.contains("q_proj") {
                permute_rows(v.as_tensor(), cfg.num_heads).unwrap()
            } else if n.contains("k_proj") {
                permute_rows(v.as_tensor(), cfg.num_kv_heads).unwrap()
            } else {
                v.as_tensor().clone()
            };
            ps.insert(n.clone(), candle_core::Var::from_tensor(&t).unwrap());
        }
        let gg = Decoder::new(icfg, ps).unwrap();
        let seqs: [&[u32]; 1] = [&[1, 2, 3, 4, 5, 6, 7]];
        let inp = ForwardInput::right_padded(&cfg, &seqs, 0, DType::F32, &Device::Cpu).unwrap();
        let a = hf.forward_logits(&inp, Mode::Train).unwrap();
        let b = gg.forward_logits(&inp, Mode::Train).unwrap();
        let d = crate::test_util::max_abs_diff(&a, &b);
        assert!(d < 1e-5, "{d}");
    }
}
