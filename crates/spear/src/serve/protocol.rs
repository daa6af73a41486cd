//! The vLLM-compatible request and response bodies of `spear serve`.
//!
//! Field names follow vLLM 0.32.0's OpenAI completion protocol
//! (`vllm/entrypoints/openai/completion/protocol.py` in the installed wheel: `CompletionRequest`,
//! `CompletionResponse`, `CompletionLogProbs`) and its error body (`ErrorResponse`:
//! `{"error": {"message", "type", "param", "code"}}`). Only what an RL client needs is
//! implemented; fields that would change the sampled distribution in a way we do not support
//! (penalties, min_p, logit bias, n > 1, streaming) are refused with a 400 naming the field
//! instead of being silently ignored.

use serde_json::{json, Map, Value};

/// An error answered as vLLM's JSON error body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Human-readable message (names the field and what to do).
    pub message: String,
    /// The offending request field, if one.
    pub param: Option<String>,
}

impl ApiError {
    /// A 400 about `param`.
    pub fn bad(param: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            message: message.into(),
            param: Some(param.to_string()),
        }
    }

    /// A 400 about the request as a whole.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            message: message.into(),
            param: None,
        }
    }

    /// Any status.
    pub fn status(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            param: None,
        }
    }

    /// vLLM's error type names per status.
    pub fn kind(&self) -> &'static str {
        match self.status {
            400 => "BadRequestError",
            404 => "NotFoundError",
            405 => "MethodNotAllowed",
            413 => "PayloadTooLarge",
            503 => "ServiceUnavailableError",
            _ => "InternalServerError",
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind(),
                         "param": self.param, "code": self.status}})
    }
}

/// A parsed `POST /v1/completions` body.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionRequest {
    /// `model` (checked against the served name when given).
    pub model: Option<String>,
    /// Prompt token ids, or text to tokenize.
    pub prompt: Prompt,
    /// `max_tokens` (vLLM's default is 16).
    pub max_tokens: usize,
    /// `temperature` (default 1; 0 is greedy).
    pub temperature: f64,
    /// `top_p` (default 1).
    pub top_p: f64,
    /// `top_k` (0 or -1 = off).
    pub top_k: usize,
    /// `seed`; `None` draws one from the server's seeded stream.
    pub seed: Option<u64>,
    /// `stop_token_ids`.
    pub stop_token_ids: Vec<u32>,
    /// `stop` (strings).
    pub stop: Vec<String>,
    /// `include_stop_str_in_output` (default false, as in vLLM).
    pub include_stop_str_in_output: bool,
    /// `skip_special_tokens` (default true).
    pub skip_special_tokens: bool,
    /// `ignore_eos`.
    pub ignore_eos: bool,
    /// `logprobs`: `None` = no log-probs in the answer, `Some(0)` = the sampled token's.
    pub logprobs: Option<u32>,
}

/// The prompt of a completion request.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// Token ids.
    Ids(Vec<u32>),
    /// Text, tokenized with the served model's tokenizer.
    Text(String),
}

fn num(v: &Value, field: &str) -> Result<f64, ApiError> {
    v.as_f64()
        .filter(|x| x.is_finite())
        .ok_or_else(|| ApiError::bad(field, format!("`{field}` must be a finite number, got {v}")))
}

fn int(v: &Value, field: &str) -> Result<i64, ApiError> {
    v.as_i64()
        .ok_or_else(|| ApiError::bad(field, format!("`{field}` must be an integer, got {v}")))
}

fn bool_field(v: &Value, field: &str) -> Result<bool, ApiError> {
    v.as_bool()
        .ok_or_else(|| ApiError::bad(field, format!("`{field}` must be true or false, got {v}")))
}

fn token_ids(v: &Value, field: &str) -> Result<Vec<u32>, ApiError> {
    let arr = v
        .as_array()
        .ok_or_else(|| ApiError::bad(field, format!("`{field}` must be a list of token ids")))?;
    arr.iter()
        .map(|x| {
            x.as_u64()
                .filter(|&t| t <= u32::MAX as u64)
                .map(|t| t as u32)
                .ok_or_else(|| {
                    ApiError::bad(
                        field,
                        format!("`{field}` must hold non-negative integer token ids, got {x}"),
                    )
                })
        })
        .collect()
}

/// Whether `v` is absent, null, or equal to the neutral value.
fn neutral(o: &Map<String, Value>, field: &str, neutral: f64) -> Result<(), ApiError> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(()),
        Some(v) => {
            let x = num(v, field)?;
            if x == neutral {
                Ok(())
            } else {
                Err(ApiError::bad(
                    field,
                    format!(
                        "`{field}` = {x} is not supported by spear serve (only {neutral}): the \
                         trainer's log-probs are those of softmax(logits / temperature)"
                    ),
                ))
            }
        }
    }
}

impl CompletionRequest {
    /// Parses and checks a request body (a JSON object).
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
        let o = v
            .as_object()
            .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
        let get = |k: &str| o.get(k).filter(|v| !v.is_null());
        let model = match get("model") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => {
                return Err(ApiError::bad(
                    "model",
                    format!("`model` must be a string, got {v}"),
                ))
            }
        };
        let prompt = match get("prompt") {
            None => {
                return Err(ApiError::bad(
                    "prompt",
                    "`prompt` is required (a list of token ids)",
                ))
            }
            Some(Value::String(s)) => Prompt::Text(s.clone()),
            Some(Value::Array(a)) if a.first().is_some_and(Value::is_array) => {
                if a.len() != 1 {
                    return Err(ApiError::bad(
                        "prompt",
                        format!(
                            "{} prompts in one request: spear serve takes one prompt per request",
                            a.len()
                        ),
                    ));
                }
                Prompt::Ids(token_ids(&a[0], "prompt")?)
            }
            Some(v @ Value::Array(_)) => Prompt::Ids(token_ids(v, "prompt")?),
            Some(v) => {
                return Err(ApiError::bad(
                    "prompt",
                    format!("`prompt` must be a list of token ids or a string, got {v}"),
                ))
            }
        };
        match &prompt {
            Prompt::Ids(ids) if ids.is_empty() => {
                return Err(ApiError::bad("prompt", "`prompt` is empty"))
            }
            Prompt::Text(t) if t.is_empty() => {
                return Err(ApiError::bad("prompt", "`prompt` is empty"))
            }
            _ => {}
        }
        let max_tokens = match get("max_tokens") {
            None => 16,
            Some(v) => {
                let n = int(v, "max_tokens")?;
                if n < 1 {
                    return Err(ApiError::bad(
                        "max_tokens",
                        format!("`max_tokens` = {n} must be at least 1"),
                    ));
                }
                n as usize
            }
        };
        let temperature = match get("temperature") {
            None => 1.0,
            Some(v) => num(v, "temperature")?,
        };
        if temperature < 0.0 {
            return Err(ApiError::bad(
                "temperature",
                format!("`temperature` = {temperature} must be >= 0"),
            ));
        }
        let top_p = match get("top_p") {
            None => 1.0,
            Some(v) => num(v, "top_p")?,
        };
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ApiError::bad(
                "top_p",
                format!("`top_p` = {top_p} must be in (0, 1]"),
            ));
        }
        let top_k = match get("top_k") {
            None => 0,
            Some(v) => match int(v, "top_k")? {
                -1 | 0 => 0,
                k if k > 0 => k as usize,
                k => {
                    return Err(ApiError::bad(
                        "top_k",
                        format!("`top_k` = {k} must be -1, 0 (off) or positive"),
                    ))
                }
            },
        };
        neutral(o, "min_p", 0.0)?;
        neutral(o, "presence_penalty", 0.0)?;
        neutral(o, "frequency_penalty", 0.0)?;
        neutral(o, "repetition_penalty", 1.0)?;
        let seed = match get("seed") {
            None => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                ApiError::bad(
                    "seed",
                    format!("`seed` must be a non-negative integer, got {v}"),
                )
            })?),
        };
        let stop_token_ids = match get("stop_token_ids") {
            None => vec![],
            Some(v) => token_ids(v, "stop_token_ids")?,
        };
        let stop = match get("stop") {
            None => vec![],
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .map(|s| {
                    s.as_str().map(str::to_string).ok_or_else(|| {
                        ApiError::bad("stop", format!("`stop` must hold strings, got {s}"))
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(v) => {
                return Err(ApiError::bad(
                    "stop",
                    format!("`stop` must be a string or a list of strings, got {v}"),
                ))
            }
        };
        if stop.iter().any(String::is_empty) {
            return Err(ApiError::bad("stop", "`stop` holds an empty string"));
        }
        let flag = |k: &str, default: bool| -> Result<bool, ApiError> {
            get(k).map_or(Ok(default), |v| bool_field(v, k))
        };
        let include_stop_str_in_output = flag("include_stop_str_in_output", false)?;
        let skip_special_tokens = flag("skip_special_tokens", true)?;
        let ignore_eos = flag("ignore_eos", false)?;
        let _ = flag("return_token_ids", false)?;
        if flag("stream", false)? {
            return Err(ApiError::bad(
                "stream",
                "`stream` = true is not supported by spear serve",
            ));
        }
        if flag("echo", false)? {
            return Err(ApiError::bad(
                "echo",
                "`echo` = true is not supported by spear serve",
            ));
        }
        for k in ["n", "best_of"] {
            if let Some(v) = get(k) {
                let n = int(v, k)?;
                if n != 1 {
                    return Err(ApiError::bad(k, format!("`{k}` = {n}: spear serve returns one completion per request (send n requests with different seeds)")));
                }
            }
        }
        if let Some(v) = get("logit_bias") {
            if v.as_object().is_none_or(|m| !m.is_empty()) {
                return Err(ApiError::bad(
                    "logit_bias",
                    "`logit_bias` is not supported by spear serve",
                ));
            }
        }
        if get("prompt_logprobs").is_some() {
            return Err(ApiError::bad(
                "prompt_logprobs",
                "`prompt_logprobs` is not supported by spear serve",
            ));
        }
        let logprobs = match get("logprobs") {
            None => None,
            Some(v) => match int(v, "logprobs")? {
                0 => Some(0),
                n => {
                    return Err(ApiError::bad(
                        "logprobs",
                        format!("`logprobs` = {n}: spear serve returns only the sampled token's log-prob (`logprobs: 0`)"),
                    ))
                }
            },
        };
        Ok(CompletionRequest {
            model,
            prompt,
            max_tokens,
            temperature,
            top_p,
            top_k,
            seed,
            stop_token_ids,
            stop,
            include_stop_str_in_output,
            skip_special_tokens,
            ignore_eos,
            logprobs,
        })
    }
}

/// The JSON body of a `POST /collective_rpc` call we understand.
#[derive(Debug, Clone, PartialEq)]
pub struct ReloadRequest {
    /// `kwargs.weights_path`.
    pub weights_path: String,
    /// `kwargs.weight_version`, else the `N` of a `step_N` directory name.
    pub weight_version: Option<u64>,
}

/// Parses `{"method": "reload_weights", "kwargs": {"weights_path": DIR}}`.
pub fn parse_collective_rpc(body: &[u8]) -> Result<ReloadRequest, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    let o = v
        .as_object()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    let method = o
        .get("method")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad("method", "`method` (a string) is required"))?;
    if method != "reload_weights" {
        return Err(ApiError::bad(
            "method",
            format!(
                "method `{method}` is not supported by spear serve (supported: reload_weights)"
            ),
        ));
    }
    let kwargs = match o.get("kwargs") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(v) => {
            return Err(ApiError::bad(
                "kwargs",
                format!("`kwargs` must be an object, got {v}"),
            ))
        }
    };
    let weights_path = kwargs
        .get("weights_path")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::bad(
                "kwargs.weights_path",
                "`kwargs.weights_path` (an HF model directory) is required",
            )
        })?
        .to_string();
    let weight_version = match kwargs.get("weight_version") {
        None | Some(Value::Null) => step_of(&weights_path),
        Some(v) => Some(v.as_u64().ok_or_else(|| {
            ApiError::bad(
                "kwargs.weight_version",
                format!("`kwargs.weight_version` must be a non-negative integer, got {v}"),
            )
        })?),
    };
    Ok(ReloadRequest {
        weights_path,
        weight_version,
    })
}

/// Parses `/update_weight_version`'s `{"new_version": N}` (an integer, a string of digits as
/// vLLM sends, or null).
pub fn parse_new_version(body: &[u8]) -> Result<Option<u64>, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    match v.get("new_version") {
        None => Err(ApiError::bad("new_version", "`new_version` is required")),
        Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
        Some(Value::String(s)) if s.parse::<u64>().is_ok() => Ok(s.parse().ok()),
        Some(x) => Err(ApiError::bad(
            "new_version",
            format!("`new_version` must be a non-negative integer (spear serve versions are step numbers), got {x}"),
        )),
    }
}

/// The `N` of a path whose last component is `step_N`.
pub fn step_of(path: &str) -> Option<u64> {
    std::path::Path::new(path)
        .file_name()?
        .to_str()?
        .strip_prefix("step_")?
        .parse()
        .ok()
}

/// Parses the `mode` of `/pause?mode=...` (default `abort`, as in vLLM).
pub fn pause_mode(query: &str) -> Result<super::engine::PauseMode, ApiError> {
    use super::engine::PauseMode;
    let mut mode = PauseMode::Abort;
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if k == "mode" {
            mode = match v {
                "abort" => PauseMode::Abort,
                "wait" => PauseMode::Wait,
                "keep" => PauseMode::Keep,
                _ => {
                    return Err(ApiError::bad(
                        "mode",
                        format!("pause mode `{v}` is not one of abort, wait, keep"),
                    ))
                }
            };
        }
    }
    Ok(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_client_sends() {
        let r = CompletionRequest::parse(
            br#"{"model":"policy","prompt":[1,2,3],"max_tokens":8,"temperature":0.7,"top_p":1,
                "top_k":-1,"min_p":0,"presence_penalty":0,"frequency_penalty":0,
                "repetition_penalty":1,"return_token_ids":true,"logprobs":0,
                "stop_token_ids":[5],"stop":["</a>"],"include_stop_str_in_output":true,
                "skip_special_tokens":false,"seed":9,"n":1}"#,
        )
        .unwrap();
        assert_eq!(r.prompt, Prompt::Ids(vec![1, 2, 3]));
        assert_eq!(
            (r.max_tokens, r.top_k, r.seed, r.logprobs),
            (8, 0, Some(9), Some(0))
        );
        assert_eq!(r.stop, vec!["</a>".to_string()]);
        assert!(r.include_stop_str_in_output && !r.skip_special_tokens);
    }

    #[test]
    fn refuses_with_the_field_named() {
        for (body, field) in [
            (&br#"{"prompt":[1],"min_p":0.1}"#[..], "min_p"),
            (br#"{"prompt":[1],"n":2}"#, "n"),
            (br#"{"prompt":[-1]}"#, "prompt"),
            (br#"{"prompt":[]}"#, "prompt"),
            (br#"{"prompt":[1],"max_tokens":0}"#, "max_tokens"),
            (br#"{"prompt":[1],"temperature":"hot"}"#, "temperature"),
            (br#"{"prompt":[1],"top_p":0}"#, "top_p"),
            (br#"{"prompt":[1],"logprobs":5}"#, "logprobs"),
            (br#"{"prompt":[1],"stream":true}"#, "stream"),
            (br#"{"prompt":[1],"seed":-3}"#, "seed"),
            (br#"{"max_tokens":3}"#, "prompt"),
        ] {
            let e = CompletionRequest::parse(body).unwrap_err();
            assert_eq!(e.status, 400);
            assert_eq!(e.param.as_deref(), Some(field), "{}", e.message);
        }
        assert!(CompletionRequest::parse(b"{not json")
            .unwrap_err()
            .message
            .contains("JSON"));
        assert!(CompletionRequest::parse(b"[1,2]")
            .unwrap_err()
            .message
            .contains("object"));
    }

    #[test]
    fn reload_bodies() {
        let r = parse_collective_rpc(
            br#"{"method":"reload_weights","kwargs":{"weights_path":"/x/step_12"}}"#,
        )
        .unwrap();
        assert_eq!(
            (r.weights_path.as_str(), r.weight_version),
            ("/x/step_12", Some(12))
        );
        let r = parse_collective_rpc(
            br#"{"method":"reload_weights","kwargs":{"weights_path":"/x/y","weight_version":4}}"#,
        )
        .unwrap();
        assert_eq!(r.weight_version, Some(4));
        assert!(parse_collective_rpc(br#"{"method":"sleep"}"#).is_err());
        assert!(parse_collective_rpc(br#"{"method":"reload_weights"}"#).is_err());
        assert_eq!(step_of("/a/step_x"), None);
        assert_eq!(parse_new_version(br#"{"new_version":"12"}"#), Ok(Some(12)));
        assert_eq!(parse_new_version(br#"{"new_version":5}"#), Ok(Some(5)));
        assert!(parse_new_version(br#"{"new_version":"v1"}"#).is_err());
        assert!(parse_new_version(b"{}").is_err());
    }
}
