//! Typed errors of the model engine. Every error that comes from a file names the file and the key.

use std::path::PathBuf;

/// Errors of `spear-model`.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor operation failed (shape mismatch, unsupported dtype, device error, ...).
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    /// Reading or writing a file failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file could not be parsed.
    #[error("cannot parse JSON in {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// A configuration value is missing or invalid.
    #[error("invalid model config ({source_name}): key `{key}`: {reason}")]
    Config {
        /// Where the configuration came from (a file path or a description).
        source_name: String,
        /// The offending key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A weight file lacks a tensor or has one of the wrong shape.
    #[error("weights in {file}: tensor `{name}`: {reason}")]
    Weights {
        /// The weight file (or directory).
        file: String,
        /// The tensor name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Tokenizer construction, loading or encoding failed.
    #[error("tokenizer error ({context}): {reason}")]
    Tokenizer {
        /// What was being done.
        context: String,
        /// What went wrong.
        reason: String,
    },
    /// A chat template could not be compiled or rendered.
    #[error("chat template error: {0}")]
    Template(String),
    /// Fetching a pretrained model or a runtime library failed (pip missing, checksum
    /// mismatch, ...).
    #[error("cannot fetch `{model}`: {reason}")]
    Fetch {
        /// The model's (or library's) name.
        model: String,
        /// What went wrong and what to do.
        reason: String,
    },
    /// An argument given by the caller is invalid.
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument {
        /// The argument.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint file is malformed.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, ModelError>;

impl ModelError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.into(),
            source,
        }
    }

    /// An invalid argument.
    pub fn arg(name: &str, reason: impl Into<String>) -> Self {
        ModelError::InvalidArgument {
            name: name.to_string(),
            reason: reason.into(),
        }
    }
}
