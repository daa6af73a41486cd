//! Property-based fuzz targets for model files (docs/fuzzing.md): the GGUF header reader, the
//! whole GGUF loader and the HF `config.json` loader must not panic (nor allocate without
//! bound) on any input.
//!
//! Inputs: random bytes; a valid tiny Llama GGUF with random header fields (dimensions, types,
//! offsets, counts, metadata values, version); the same file with random byte flips and
//! truncations; a valid `config.json` with random values put on its keys. CI runs
//! `FUZZ_CASES` cases per target; `PROPTEST_CASES=100000` runs the long campaign.

use std::path::PathBuf;

use candle_core::{DType, Device};
use proptest::prelude::*;
use spear_model::config::ModelConfig;
use spear_model::load::gguf::load_gguf;
use spear_model::load::gguf_header::builder::{GgufSpec, Meta, TensorSpec};
use spear_model::load::gguf_header::parse_header;
use spear_model::load::hf::load_hf_dir;

const FUZZ_CASES: u32 = 128;

fn config(default: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = default;
    }
    c
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("spear-fuzz-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A loadable tiny Llama GGUF: hidden 8, 2 heads of 4, 1 KV head, FFN 12, one layer, six
/// tokens, tied embeddings, all tensors F32 (values zero).
fn tiny_llama() -> GgufSpec {
    let u = |k: &str, v: u32| (k.to_string(), Meta::U32(v));
    let metadata = vec![
        (
            "general.architecture".to_string(),
            Meta::Str("llama".into()),
        ),
        u("llama.embedding_length", 8),
        u("llama.attention.head_count", 2),
        u("llama.attention.head_count_kv", 1),
        u("llama.feed_forward_length", 12),
        u("llama.block_count", 1),
        u("llama.context_length", 64),
        u("tokenizer.ggml.eos_token_id", 1),
        (
            "tokenizer.ggml.tokens".to_string(),
            Meta::Strs(["a", "b", "c", "d", "e", "f"].map(String::from).to_vec()),
        ),
    ];
    // GGUF dimensions are innermost first: an HF [out, in] weight is written [in, out].
    let shapes: [(&str, &[u64]); 11] = [
        ("token_embd.weight", &[8, 6]),
        ("output_norm.weight", &[8]),
        ("blk.0.attn_norm.weight", &[8]),
        ("blk.0.attn_q.weight", &[8, 8]),
        ("blk.0.attn_k.weight", &[8, 4]),
        ("blk.0.attn_v.weight", &[8, 4]),
        ("blk.0.attn_output.weight", &[8, 8]),
        ("blk.0.ffn_norm.weight", &[8]),
        ("blk.0.ffn_gate.weight", &[8, 12]),
        ("blk.0.ffn_up.weight", &[8, 12]),
        ("blk.0.ffn_down.weight", &[12, 8]),
    ];
    let mut offset = 0u64;
    let mut tensors = Vec::new();
    for (name, dims) in shapes {
        tensors.push(TensorSpec {
            name: name.into(),
            dims: dims.to_vec(),
            type_code: 0,
            offset,
        });
        offset += (dims.iter().product::<u64>() * 4).next_multiple_of(32);
    }
    let mut spec = GgufSpec {
        version: 3,
        metadata,
        tensors,
        data_bytes: 0,
    };
    let header = spec.bytes().len();
    spec.data_bytes = header.next_multiple_of(32) - header + offset as usize;
    spec
}

fn load_bytes(bytes: &[u8], path: &std::path::Path) -> Result<(), String> {
    std::fs::write(path, bytes).unwrap();
    load_gguf(path, DType::F32, &Device::Cpu)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn the_tiny_gguf_loads() {
    let dir = scratch("tiny");
    let p = dir.join("tiny.gguf");
    load_bytes(&tiny_llama().bytes(), &p).unwrap();
    let h = parse_header(&tiny_llama().bytes()).unwrap();
    assert_eq!(h.tensors.len(), 11);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Tensor dimensions whose product overflows used to reach candle's reader and panic with
/// "capacity overflow"; an absurd `block_count` used to build the parameter list before
/// failing. Both are errors now, naming the tensor or key.
#[test]
fn overflowing_dims_and_absurd_counts_are_errors() {
    let dir = scratch("hostile");
    let p = dir.join("x.gguf");
    let mut s = tiny_llama();
    s.tensors[3].dims = vec![1 << 32, 1 << 32];
    let e = load_bytes(&s.bytes(), &p).unwrap_err();
    assert!(
        e.contains("blk.0.attn_q.weight") && e.contains("x.gguf"),
        "{e}"
    );
    let mut s = tiny_llama();
    s.metadata[5] = ("llama.block_count".into(), Meta::U32(1_000_000_000));
    let e = load_bytes(&s.bytes(), &p).unwrap_err();
    assert!(e.contains("`llama.block_count`"), "{e}");
    let mut s = tiny_llama();
    s.metadata.push(("general.alignment".into(), Meta::U32(0)));
    let e = load_bytes(&s.bytes(), &p).unwrap_err();
    assert!(e.contains("general.alignment"), "{e}");
    let mut s = tiny_llama();
    s.metadata[1] = ("llama.embedding_length".into(), Meta::I32(-8));
    let e = load_bytes(&s.bytes(), &p).unwrap_err();
    assert!(e.contains("llama.embedding_length"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A `config.json` with 10^9 layers next to a (one-tensor) weight file: the parameter list
/// used to be built before any check and grew until the allocation failed.
#[test]
fn absurd_hf_config_is_refused_before_allocating() {
    let dir = scratch("hf");
    std::fs::write(
        dir.join("config.json"),
        r#"{"model_type": "llama", "vocab_size": 32, "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 1000000000,
            "num_attention_heads": 4}"#,
    )
    .unwrap();
    // safetensors: header length, JSON header, data (one f32)
    let header = br#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut st = (header.len() as u64).to_le_bytes().to_vec();
    st.extend_from_slice(header);
    st.extend_from_slice(&[0; 4]);
    std::fs::write(dir.join("model.safetensors"), st).unwrap();
    let e = load_hf_dir(&dir, DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("config.json") && e.contains("`num_hidden_layers`"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A value for a metadata key: mostly plausible sizes, sometimes extreme or of another type.
fn meta_value() -> impl Strategy<Value = Meta> {
    prop_oneof![
        4 => (0u32..64).prop_map(Meta::U32),
        2 => any::<u32>().prop_map(Meta::U32),
        1 => any::<i32>().prop_map(Meta::I32),
        1 => any::<f32>().prop_map(Meta::F32),
        1 => ".{0,8}".prop_map(Meta::Str),
        1 => prop::collection::vec(".{0,4}", 0..8).prop_map(Meta::Strs),
        1 => (any::<u32>(), prop::collection::vec(any::<u8>(), 0..24))
            .prop_map(|(t, b)| Meta::Raw(t, b)),
    ]
}

/// One change to the tiny file's header.
#[derive(Debug, Clone)]
enum HeaderEdit {
    Dims(usize, Vec<u64>),
    Type(usize, u32),
    Offset(usize, u64),
    Name(usize, String),
    Meta(usize, Meta),
    AddMeta(String, Meta),
    DropTensor(usize),
    Version(u32),
    DataBytes(usize),
}

fn header_edit() -> impl Strategy<Value = HeaderEdit> {
    let dim = prop_oneof![4 => 0u64..16, 1 => any::<u64>(), 1 => Just(1u64 << 32)];
    prop_oneof![
        3 => (0usize..11, prop::collection::vec(dim, 0..6)).prop_map(|(i, d)| HeaderEdit::Dims(i, d)),
        2 => (0usize..11, prop_oneof![0u32..32, any::<u32>()]).prop_map(|(i, t)| HeaderEdit::Type(i, t)),
        2 => (0usize..11, prop_oneof![0u64..4096, any::<u64>()]).prop_map(|(i, o)| HeaderEdit::Offset(i, o)),
        1 => (0usize..11, prop::sample::select(&[
            "token_embd.weight", "output.weight", "blk.0.attn_q.bias", "blk.1.attn_q.weight",
            "blk.99999999999.ffn_up.weight", "blk.0.attn_q.weight", "", "blk..x",
        ][..])).prop_map(|(i, n)| HeaderEdit::Name(i, n.to_string())),
        3 => (0usize..9, meta_value()).prop_map(|(i, m)| HeaderEdit::Meta(i, m)),
        1 => (prop::sample::select(&[
            "general.alignment", "llama.attention.key_length", "tokenizer.ggml.merges",
            "tokenizer.ggml.token_type", "tokenizer.ggml.bos_token_id", "tokenizer.chat_template",
            "llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon", "tokenizer.ggml.pre",
        ][..]), meta_value()).prop_map(|(k, m)| HeaderEdit::AddMeta(k.to_string(), m)),
        1 => (0usize..11).prop_map(HeaderEdit::DropTensor),
        1 => (0u32..5).prop_map(HeaderEdit::Version),
        1 => (0usize..4096).prop_map(HeaderEdit::DataBytes),
    ]
}

fn apply(spec: &mut GgufSpec, e: &HeaderEdit) {
    match e.clone() {
        HeaderEdit::Dims(i, d) => {
            if let Some(t) = spec.tensors.get_mut(i) {
                t.dims = d;
            }
        }
        HeaderEdit::Type(i, x) => {
            if let Some(t) = spec.tensors.get_mut(i) {
                t.type_code = x;
            }
        }
        HeaderEdit::Offset(i, o) => {
            if let Some(t) = spec.tensors.get_mut(i) {
                t.offset = o;
            }
        }
        HeaderEdit::Name(i, n) => {
            if let Some(t) = spec.tensors.get_mut(i) {
                t.name = n;
            }
        }
        HeaderEdit::Meta(i, m) => {
            if let Some(kv) = spec.metadata.get_mut(i) {
                kv.1 = m;
            }
        }
        HeaderEdit::AddMeta(k, m) => spec.metadata.push((k, m)),
        HeaderEdit::DropTensor(i) => {
            if i < spec.tensors.len() {
                spec.tensors.remove(i);
            }
        }
        HeaderEdit::Version(v) => spec.version = v,
        HeaderEdit::DataBytes(n) => spec.data_bytes = n,
    }
}

proptest! {
    #![proptest_config(config(FUZZ_CASES))]

    #[test]
    fn gguf_header_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_header(&bytes);
        let mut with_magic = b"GGUF\x03\0\0\0".to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = parse_header(&with_magic);
    }

    #[test]
    fn gguf_load_header_fields(edits in prop::collection::vec(header_edit(), 1..5)) {
        let mut spec = tiny_llama();
        for e in &edits {
            apply(&mut spec, e);
        }
        let bytes = spec.bytes();
        let _ = parse_header(&bytes);
        let dir = scratch("fields");
        let _ = load_bytes(&bytes, &dir.join("f.gguf"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn gguf_load_flipped_and_truncated(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = tiny_llama().bytes();
        for (at, b) in flips {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        if let Some(c) = cut {
            let n = c.index(bytes.len());
            bytes.truncate(n);
        }
        let _ = parse_header(&bytes);
        let dir = scratch("flip");
        let _ = load_bytes(&bytes, &dir.join("f.gguf"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn hf_config_values(
        key in prop::sample::select(&[
            "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
            "num_attention_heads", "num_key_value_heads", "head_dim", "rms_norm_eps",
            "rope_theta", "tie_word_embeddings", "eos_token_id", "bos_token_id", "model_type",
            "rope_scaling", "max_position_embeddings", "hidden_act",
        ][..]),
        value in prop_oneof![
            any::<u64>().prop_map(serde_json::Value::from),
            (0u64..64).prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(|f| serde_json::json!(f)),
            ".{0,6}".prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
            Just(serde_json::json!([1, -2, "x"])),
            Just(serde_json::json!({"rope_type": "default"})),
        ],
        second in prop::option::of((0usize..4, any::<u64>())),
    ) {
        let mut v = serde_json::json!({
            "model_type": "llama", "vocab_size": 32, "hidden_size": 16,
            "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "eos_token_id": 1
        });
        v[key] = value;
        if let Some((k, x)) = second {
            let keys = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers"];
            v[keys[k]] = serde_json::Value::from(x);
        }
        if let Ok(c) = ModelConfig::from_hf_json(&v, "fuzz") {
            let _ = spear_model::load::memory::check_fits(
                &c, 4, &Device::Cpu, "fuzz", spear_model::load::memory::KeyStyle::Hf,
            );
        }
        let dir = scratch("hfcfg");
        std::fs::write(dir.join("config.json"), v.to_string()).unwrap();
        let _ = load_hf_dir(&dir, DType::F32, &Device::Cpu);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
