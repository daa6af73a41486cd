//! `[rollout]`: which engine generates the rollouts — the in-process policy (`local`) or a pool
//! of inference servers over HTTP (`http`: vLLM, SGLang or `spear serve`) — and, for `http`,
//! the endpoints, the dialect, and where the weights are written for the servers to load.

use std::fmt;

use serde::{Deserialize, Serialize};
use spear_rl::config::ConfigError;

use super::check::check_pos;

/// `rollout.engine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    /// The trainer's own policy, in this process.
    #[default]
    Local,
    /// Inference servers at `rollout.endpoints`, spoken to in `rollout.api`'s dialect.
    Http,
}

/// `rollout.api`: the HTTP dialect of the servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiKind {
    /// vLLM's OpenAI server: `POST /v1/completions` with token-id prompts; weights reloaded
    /// through its development endpoints (`VLLM_SERVER_DEV_MODE=1`).
    #[default]
    Vllm,
    /// SGLang's native `POST /generate`; weights through `/update_weights_from_disk`.
    Sglang,
    /// `spear serve`: the vLLM subset, the same calls.
    Spear,
}

impl ApiKind {
    /// The TOML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiKind::Vllm => "vllm",
            ApiKind::Sglang => "sglang",
            ApiKind::Spear => "spear",
        }
    }
}

impl fmt::Display for ApiKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[rollout]`: the rollout engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutSection {
    /// `local` (the trainer's policy generates, in this process) or `http` (inference servers
    /// at `rollout.endpoints` generate; the trainer writes its weights to `rollout.sync_dir`
    /// and tells every server to load them after each update). Default `local`.
    pub engine: EngineKind,
    /// The servers' dialect: `vllm`, `sglang` or `spear` (`spear serve`). Default `vllm`.
    pub api: ApiKind,
    /// Base URLs of the servers, `http://host:port` (no TLS, no path), one per server; requests
    /// are spread over them (least outstanding requests, one episode sticks to one server).
    /// Required with `engine = "http"`. Default `[]`.
    pub endpoints: Vec<String>,
    /// The model name the servers serve (vLLM `--served-model-name`), sent as `model`.
    /// Default `policy`.
    pub model_name: String,
    /// Directory the weights are written to for the servers (`step_N/` + `STABLE`); it must be
    /// readable by every server at the same path. Empty: `<run dir>/weights`. Default empty.
    pub sync_dir: String,
    /// How many exported weight directories (`step_N`) to keep, at least 1. Default 2.
    pub keep_weights: u64,
    /// Seconds one generation request may take before it is retried (weight reloads get ten
    /// times as long). Default 600.
    pub request_timeout_s: u64,
    /// Retries of a failed request on the same server (exponential backoff from 0.5 s) before
    /// the server is marked down and traffic goes to the others. Default 3.
    pub max_retries: u64,
}

impl Default for RolloutSection {
    fn default() -> Self {
        Self {
            engine: EngineKind::Local,
            api: ApiKind::Vllm,
            endpoints: vec![],
            model_name: "policy".into(),
            sync_dir: String::new(),
            keep_weights: 2,
            request_timeout_s: 600,
            max_retries: 3,
        }
    }
}

impl RolloutSection {
    /// Checks the endpoints (with `engine = "http"`) and the ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_pos("rollout.keep_weights", self.keep_weights)?;
        check_pos("rollout.request_timeout_s", self.request_timeout_s)?;
        if self.model_name.trim().is_empty() {
            return Err(ConfigError::new(
                "rollout.model_name",
                "empty; the name the servers serve the policy under (vLLM \
                 --served-model-name), e.g. rollout.model_name=policy",
            ));
        }
        for e in &self.endpoints {
            check_endpoint(e)?;
        }
        if self.engine == EngineKind::Http && self.endpoints.is_empty() {
            return Err(ConfigError::new(
                "rollout.endpoints",
                "empty with rollout.engine = \"http\": list the inference servers, e.g. \
                 --set 'rollout.endpoints=[\"http://127.0.0.1:8000\"]' (or use \
                 rollout.engine=local)",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for e in &self.endpoints {
            if !seen.insert(e.trim_end_matches('/')) {
                return Err(ConfigError::new(
                    "rollout.endpoints",
                    format!("{e} is listed twice"),
                ));
            }
        }
        Ok(())
    }
}

/// `http://host:port` with an explicit port, no path, query or credentials.
fn check_endpoint(e: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| {
        ConfigError::new(
            "rollout.endpoints",
            format!("{e:?} is not a server URL: {why}; expected http://HOST:PORT, e.g. http://127.0.0.1:8000"),
        )
    };
    let Some(rest) = e.strip_prefix("http://") else {
        if e.starts_with("https://") {
            return Err(bad("https is not supported (the client has no TLS)"));
        }
        return Err(bad("it must start with http://"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) || rest.chars().any(|c| c.is_whitespace()) {
        return Err(bad("no path, query, credentials or spaces"));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => (h, p),
        _ => return Err(bad("it needs a host and a port")),
    };
    if host.starts_with('[') != host.ends_with(']') {
        return Err(bad("unbalanced brackets around an IPv6 host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(bad(&format!("port {port:?} is not in 1..=65535"))),
    }
}
