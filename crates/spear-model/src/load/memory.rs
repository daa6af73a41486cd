//! Refusing a model that cannot fit before allocating it.
//!
//! A `config.json` or GGUF header fixes the parameter count. Loading allocates at least that
//! many parameters at the load dtype (GGUF: dequantized to f32 first), plus the bookkeeping of
//! every tensor. [`check_fits`] computes that lower bound from the configuration alone, with
//! saturating 128-bit arithmetic, and refuses the model when it exceeds the memory available
//! (`MemAvailable` of `/proc/meminfo`, for weights loaded into host memory) or
//! [`HARD_LIMIT_BYTES`] on any device, naming the file and the field that dominates.

use candle_core::Device;

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};

/// No single device holds more parameter bytes than this (1 TiB); larger configurations are
/// refused whatever the machine.
pub const HARD_LIMIT_BYTES: u128 = 1 << 40;

/// Host bytes counted per tensor for names, shapes and handles (a generous estimate).
pub const PER_TENSOR_BYTES: u128 = 512;

/// A size field of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Vocabulary size.
    VocabSize,
    /// Model width.
    HiddenSize,
    /// SwiGLU inner width.
    IntermediateSize,
    /// Number of layers.
    NumLayers,
    /// Query heads.
    NumHeads,
    /// Key/value heads.
    NumKvHeads,
    /// Per-head width.
    HeadDim,
}

/// How the fields are named in the file the configuration came from.
#[derive(Debug, Clone, Copy)]
pub enum KeyStyle<'a> {
    /// HF `config.json` keys.
    Hf,
    /// GGUF metadata keys of architecture `arch` (`llama.block_count`, ...).
    Gguf {
        /// `general.architecture`.
        arch: &'a str,
    },
}

impl Field {
    /// The key of this field in a file of `style`.
    pub fn key(self, style: KeyStyle<'_>) -> String {
        match style {
            KeyStyle::Hf => match self {
                Field::VocabSize => "vocab_size",
                Field::HiddenSize => "hidden_size",
                Field::IntermediateSize => "intermediate_size",
                Field::NumLayers => "num_hidden_layers",
                Field::NumHeads => "num_attention_heads",
                Field::NumKvHeads => "num_key_value_heads",
                Field::HeadDim => "head_dim",
            }
            .to_string(),
            KeyStyle::Gguf { arch } => match self {
                Field::VocabSize => "tokenizer.ggml.tokens".to_string(),
                Field::HiddenSize => format!("{arch}.embedding_length"),
                Field::IntermediateSize => format!("{arch}.feed_forward_length"),
                Field::NumLayers => format!("{arch}.block_count"),
                Field::NumHeads => format!("{arch}.attention.head_count"),
                Field::NumKvHeads => format!("{arch}.attention.head_count_kv"),
                Field::HeadDim => format!("{arch}.attention.key_length"),
            },
        }
    }

    fn value(self, c: &ModelConfig) -> usize {
        match self {
            Field::VocabSize => c.vocab_size,
            Field::HiddenSize => c.hidden_size,
            Field::IntermediateSize => c.intermediate_size,
            Field::NumLayers => c.num_layers,
            Field::NumHeads => c.num_heads,
            Field::NumKvHeads => c.num_kv_heads,
            Field::HeadDim => c.head_dim,
        }
    }
}

/// The parameter count of a configuration, by part (saturating at `u128::MAX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamEstimate {
    /// Embedding rows (and the untied LM head).
    pub embeddings: u128,
    /// Parameters of one decoder layer.
    pub per_layer: u128,
    /// All layers.
    pub layers: u128,
    /// Everything (embeddings, layers, final norm).
    pub total: u128,
    /// Number of tensors.
    pub tensors: u128,
}

fn mul(a: u128, b: u128) -> u128 {
    a.saturating_mul(b)
}

/// Counts the parameters `crate::params::param_specs` would allocate for `c`, without
/// allocating anything.
pub fn estimate(c: &ModelConfig) -> ParamEstimate {
    let u = |x: usize| x as u128;
    let (h, i, d) = (u(c.hidden_size), u(c.intermediate_size), u(c.head_dim));
    let (qd, kvd) = (mul(u(c.num_heads), d), mul(u(c.num_kv_heads), d));
    let heads = if c.tie_word_embeddings { 1 } else { 2 };
    let embeddings = mul(mul(u(c.vocab_size), h), heads);
    let mut per_layer = [
        mul(2, h),
        mul(qd, h),
        mul(mul(2, kvd), h),
        mul(h, qd),
        mul(mul(3, i), h),
    ]
    .iter()
    .fold(0u128, |a, &b| a.saturating_add(b));
    let mut tensors_per_layer = 9u128;
    if c.qkv_bias {
        per_layer = per_layer.saturating_add(qd.saturating_add(mul(2, kvd)));
        tensors_per_layer += 3;
    }
    if c.qk_norm {
        per_layer = per_layer.saturating_add(mul(2, d));
        tensors_per_layer += 2;
    }
    let layers = mul(u(c.num_layers), per_layer);
    ParamEstimate {
        embeddings,
        per_layer,
        layers,
        total: embeddings.saturating_add(layers).saturating_add(h),
        // the embedding, the final norm and, untied, the LM head
        tensors: mul(u(c.num_layers), tensors_per_layer).saturating_add(1 + heads),
    }
}

/// `MemAvailable` of `/proc/meminfo` in bytes; `None` where it cannot be read.
pub fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// `n` bytes for people: KiB … EiB with one decimal, or scientific notation beyond.
pub fn human_bytes(n: u128) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = n as f64;
    let mut k = 0;
    while v >= 1024.0 && k + 1 < UNITS.len() {
        v /= 1024.0;
        k += 1;
    }
    if v >= 1024.0 {
        format!("{:.1e} B", n as f64)
    } else if k == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[k])
    }
}

/// Refuses `cfg` when loading it cannot fit (module docs). `bytes_per_param`: bytes of one
/// parameter while loading (the load dtype; 4 for GGUF, which dequantizes to f32); `source`:
/// the file, named in the error with the key of the dominant field in `style`.
pub fn check_fits(
    cfg: &ModelConfig,
    bytes_per_param: usize,
    device: &Device,
    source: &str,
    style: KeyStyle<'_>,
) -> Result<()> {
    let budget = if device.is_cpu() {
        mem_available().map(|b| (b, "available (MemAvailable in /proc/meminfo)"))
    } else {
        None
    };
    check_fits_within(cfg, bytes_per_param, device.is_cpu(), budget, source, style)
}

/// [`check_fits`] with the memory budget given: `params_on_host` says whether the weights
/// count against `budget` (CPU) or only their bookkeeping does (GPU); `budget` is the bytes
/// available and how they were measured.
pub fn check_fits_within(
    cfg: &ModelConfig,
    bytes_per_param: usize,
    params_on_host: bool,
    budget: Option<(u64, &str)>,
    source: &str,
    style: KeyStyle<'_>,
) -> Result<()> {
    let e = estimate(cfg);
    let param_bytes = mul(e.total, bytes_per_param as u128);
    let host_bytes = mul(e.tensors, PER_TENSOR_BYTES).saturating_add(if params_on_host {
        param_bytes
    } else {
        0
    });
    let limit = if param_bytes > HARD_LIMIT_BYTES {
        Some(format!(
            "more than the {} any single device holds",
            human_bytes(HARD_LIMIT_BYTES)
        ))
    } else {
        budget
            .filter(|&(b, _)| host_bytes > b as u128)
            .map(|(b, how)| format!("more than the {} of memory {how}", human_bytes(b as u128)))
    };
    let Some(limit) = limit else { return Ok(()) };
    let layer_fields = [
        Field::NumLayers,
        Field::HiddenSize,
        Field::IntermediateSize,
        Field::NumHeads,
        Field::NumKvHeads,
        Field::HeadDim,
    ];
    let embed_fields = [Field::VocabSize, Field::HiddenSize];
    let (part, fields): (String, &[Field]) = if e.layers >= e.embeddings {
        (
            format!(
                "the layers dominate: {} layers × {} parameters each",
                cfg.num_layers, e.per_layer
            ),
            &layer_fields,
        )
    } else {
        (
            format!(
                "the embeddings dominate: {} × {}{}",
                cfg.vocab_size,
                cfg.hidden_size,
                if cfg.tie_word_embeddings {
                    ""
                } else {
                    " (twice: the LM head is untied)"
                }
            ),
            &embed_fields,
        )
    };
    // Name the largest field of the dominant part: an absurd value stands out there.
    let key = fields
        .iter()
        .max_by_key(|f| f.value(cfg))
        .copied()
        .unwrap_or(Field::NumLayers);
    let listed: Vec<String> = fields
        .iter()
        .map(|f| format!("{} = {}", f.key(style), f.value(cfg)))
        .collect();
    Err(ModelError::Config {
        source_name: source.to_string(),
        key: key.key(style),
        reason: format!(
            "the model has {} parameters, {} to load ({bytes_per_param} bytes each, plus {} \
             tensors), {limit}; {part} ({}). Check these values in the file; a model this \
             size needs a machine with more memory or a smaller load dtype",
            e.total,
            human_bytes(host_bytes.max(param_bytes)),
            e.tensors,
            listed.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Arch;
    use crate::params::param_specs;

    #[test]
    fn estimate_counts_what_param_specs_allocates() {
        for arch in [Arch::Llama, Arch::Qwen2, Arch::Qwen3] {
            let c = ModelConfig::tiny(arch, 50);
            let specs = param_specs(&c);
            let n: usize = specs
                .iter()
                .map(|(_, s, _)| s.iter().product::<usize>())
                .sum();
            let e = estimate(&c);
            assert_eq!(e.total, n as u128, "{arch:?}");
            assert_eq!(e.tensors, specs.len() as u128, "{arch:?}");
        }
    }

    #[test]
    fn absurd_layer_count_is_refused_naming_the_field() {
        let mut c = ModelConfig::tiny(Arch::Llama, 50);
        c.num_layers = 1_000_000_000;
        // 7744 parameters per layer × 10^9 layers: past any budget and the hard limit
        let e = check_fits_within(
            &c,
            4,
            true,
            Some((1 << 30, "test budget")),
            "cfg.json",
            KeyStyle::Hf,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("cfg.json") && e.contains("`num_hidden_layers`"),
            "{e}"
        );
        assert!(e.contains("num_hidden_layers = 1000000000"), "{e}");
        let e = check_fits_within(
            &c,
            4,
            true,
            Some((1 << 30, "test budget")),
            "m.gguf",
            KeyStyle::Gguf { arch: "llama" },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`llama.block_count`"), "{e}");
        // fits in a large budget
        c.num_layers = 2;
        check_fits_within(
            &c,
            4,
            true,
            Some((1 << 30, "test")),
            "cfg.json",
            KeyStyle::Hf,
        )
        .unwrap();
    }

    #[test]
    fn hard_limit_and_saturation() {
        let mut c = ModelConfig::tiny(Arch::Qwen3, 50);
        c.hidden_size = usize::MAX / 2;
        c.intermediate_size = usize::MAX;
        let e = check_fits_within(&c, 2, false, None, "cfg.json", KeyStyle::Hf)
            .unwrap_err()
            .to_string();
        assert!(e.contains("any single device"), "{e}");
        assert!(e.contains("`intermediate_size`"), "{e}");
        // a huge vocabulary: the embeddings dominate
        let mut c = ModelConfig::tiny(Arch::Llama, 1 << 40);
        c.hidden_size = 4096;
        let e = check_fits_within(&c, 4, false, None, "cfg.json", KeyStyle::Hf)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`vocab_size`") && e.contains("embeddings"),
            "{e}"
        );
        // on a GPU only the bookkeeping counts against host memory
        let c = ModelConfig::tiny(Arch::Llama, 50);
        check_fits_within(
            &c,
            4,
            false,
            Some((1 << 20, "test")),
            "cfg.json",
            KeyStyle::Hf,
        )
        .unwrap();
        assert!(check_fits_within(
            &c,
            4,
            true,
            Some((1 << 10, "test")),
            "cfg.json",
            KeyStyle::Hf
        )
        .is_err());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
        assert!(human_bytes(u128::MAX).contains('e'));
    }
}
