//! The request and response bodies of each dialect, as plain JSON functions (no I/O).
//!
//! * `vllm` and `spear`: `POST /v1/completions`, fields of vLLM's `CompletionRequest` /
//!   `CompletionResponseChoice` (`vllm/entrypoints/openai/completion/protocol.py`, vLLM commit
//!   `002032ee2b18e1f7bd924ec47b62504ba3866063`). Every sampling field is sent, so that the
//!   server's `--generation-config` defaults never apply and the returned log-prob (with
//!   `--logprobs-mode processed_logprobs`) is `log_softmax(logits / T)`, the trainer's number.
//! * `sglang`: `POST /generate`, fields of `GenerateReqInput`
//!   (`python/sglang/srt/managers/io_struct.py`, SGLang commit
//!   `001067fffe33427bee0ed2f007fb7551a1d76b44`) and its `sampling_params`
//!   (`python/sglang/srt/sampling/sampling_params.py`, commit
//!   `00c17cafcb9e289d5ca97c50e44ada54e4fd5b03`); the response's
//!   `meta_info.output_token_logprobs = [[logprob, token_id, text], ...]` and
//!   `meta_info.finish_reason.type`.
//!
//! Token ids go in and come out: text is never re-tokenised.

use serde_json::{json, Value};
use spear_model::{FinishReason, GenRequest, Generation, SamplingParams};

use crate::train::config::ApiKind;

/// The path a dialect generates at.
pub fn generate_path(api: ApiKind) -> &'static str {
    match api {
        ApiKind::Vllm | ApiKind::Spear => "/v1/completions",
        ApiKind::Sglang => "/generate",
    }
}

/// What the engine sends for one request, besides the prompt: the sampling parameters with
/// the stop ids already merged (the request's, the tokenizer's and the model's, as the
/// in-process engine stops on them).
#[derive(Debug, Clone)]
pub struct Wire<'a> {
    /// Served model name (`model`; vLLM/spear only).
    pub model: &'a str,
    /// The sampling parameters.
    pub params: &'a SamplingParams,
    /// Every id generation stops on.
    pub stop_token_ids: &'a [u32],
}

/// A seed in vLLM's accepted range (`int64`; SGLang's `sampling_seed` is a Python int too).
pub fn wire_seed(seed: u64) -> i64 {
    (seed & (i64::MAX as u64)) as i64
}

/// The request body of `req` in dialect `api`.
pub fn request_body(api: ApiKind, req: &GenRequest, w: &Wire<'_>) -> Value {
    let p = w.params;
    match api {
        ApiKind::Vllm | ApiKind::Spear => json!({
            "model": w.model,
            "prompt": req.prompt_ids,
            "max_tokens": p.max_new_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p,
            // vLLM: 0 or -1 turns top-k off; -1 is the spelling its docs use.
            "top_k": if p.top_k == 0 { -1 } else { p.top_k as i64 },
            "min_p": 0.0,
            "presence_penalty": 0.0,
            "frequency_penalty": 0.0,
            "repetition_penalty": 1.0,
            "n": 1,
            "seed": wire_seed(req.seed),
            "stop_token_ids": w.stop_token_ids,
            "stop": p.stop_strings,
            "include_stop_str_in_output": true,
            "skip_special_tokens": false,
            "ignore_eos": p.ignore_eos,
            "return_token_ids": true,
            "logprobs": 0,
            "stream": false,
            "echo": false,
        }),
        ApiKind::Sglang => json!({
            "input_ids": req.prompt_ids,
            "sampling_params": {
                "max_new_tokens": p.max_new_tokens,
                "temperature": p.temperature,
                "top_p": p.top_p,
                // SGLang: -1 = the whole vocabulary.
                "top_k": if p.top_k == 0 { -1 } else { p.top_k as i64 },
                "min_p": 0.0,
                "presence_penalty": 0.0,
                "frequency_penalty": 0.0,
                "repetition_penalty": 1.0,
                "n": 1,
                "sampling_seed": wire_seed(req.seed),
                "stop_token_ids": w.stop_token_ids,
                "stop": p.stop_strings,
                "no_stop_trim": true,
                "skip_special_tokens": false,
                "ignore_eos": p.ignore_eos,
            },
            "return_logprob": true,
            "logprob_start_len": -1,
            "top_logprobs_num": 0,
            "stream": false,
        }),
    }
}

/// A parsed generation response.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A finished generation (`policy_version` left for the caller).
    Done(Generation),
    /// `finish_reason` `abort`: the server dropped the request (paused with `mode=abort`,
    /// or an engine abort). Whatever it generated is discarded; the request is sent again.
    Aborted,
}

/// Why a response body was not understood (a server that does not speak the dialect).
pub type ParseError = String;

fn field<'v>(v: &'v Value, path: &str) -> Result<&'v Value, ParseError> {
    let mut cur = v;
    for part in path.split('.') {
        cur = match part.parse::<usize>() {
            Ok(i) => cur.get(i),
            Err(_) => cur.get(part),
        }
        .ok_or_else(|| format!("the response has no `{path}`"))?;
    }
    Ok(cur)
}

fn ids_of(v: &Value, path: &str) -> Result<Vec<u32>, ParseError> {
    field(v, path)?
        .as_array()
        .ok_or_else(|| format!("`{path}` is not a list"))?
        .iter()
        .map(|x| {
            x.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("`{path}` holds {x}, not a token id"))
        })
        .collect()
}

/// How a sequence that stopped (not for length) ended, from the stop cause the server names:
/// a stop string, a stop token id, or nothing (the model's end-of-sequence token, which is
/// the last generated id).
fn stop_finish(token_ids: &[u32], cause: &Value) -> FinishReason {
    match cause {
        Value::String(s) => FinishReason::StopString(s.clone()),
        Value::Number(n) => match n.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(t) => FinishReason::StopToken(t),
            None => FinishReason::StopToken(token_ids.last().copied().unwrap_or_default()),
        },
        _ => FinishReason::StopToken(token_ids.last().copied().unwrap_or_default()),
    }
}

/// Parses a generation response of dialect `api`. `text` is left empty: the rollouts decode
/// the ids with the policy's tokenizer (never the server's text).
pub fn parse_reply(api: ApiKind, v: &Value) -> Result<Reply, ParseError> {
    let (token_ids, logprobs, reason, cause) = match api {
        ApiKind::Vllm | ApiKind::Spear => {
            let reason = field(v, "choices.0.finish_reason")?
                .as_str()
                .unwrap_or_default()
                .to_string();
            if reason == "abort" {
                return Ok(Reply::Aborted);
            }
            let ids = ids_of(v, "choices.0.token_ids").map_err(|e| {
                format!("{e} (is the server vLLM >= 0.10 and was `return_token_ids` honoured?)")
            })?;
            let lps = field(v, "choices.0.logprobs.token_logprobs")?
                .as_array()
                .ok_or("`choices.0.logprobs.token_logprobs` is not a list")?
                .iter()
                .map(|x| {
                    x.as_f64()
                        .map(|f| f as f32)
                        .ok_or_else(|| format!("a token log-prob is {x}, not a number"))
                })
                .collect::<Result<Vec<f32>, _>>()?;
            let cause = v
                .pointer("/choices/0/stop_reason")
                .cloned()
                .unwrap_or(Value::Null);
            (ids, lps, reason, cause)
        }
        ApiKind::Sglang => {
            let fr = field(v, "meta_info.finish_reason")?;
            let reason = fr
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if reason == "abort" {
                return Ok(Reply::Aborted);
            }
            let ids = ids_of(v, "output_ids")?;
            let entries = field(v, "meta_info.output_token_logprobs")?
                .as_array()
                .ok_or("`meta_info.output_token_logprobs` is not a list")?;
            let mut lps = Vec::with_capacity(entries.len());
            for (k, e) in entries.iter().enumerate() {
                let lp = e.get(0).and_then(Value::as_f64);
                let id = e.get(1).and_then(Value::as_u64);
                match (lp, id) {
                    (Some(lp), Some(id)) if ids.get(k).map(|&t| t as u64) == Some(id) => {
                        lps.push(lp as f32)
                    }
                    (Some(_), Some(id)) => {
                        return Err(format!(
                            "output_token_logprobs[{k}] is for token {id}, output_ids[{k}] is \
                             {:?}",
                            ids.get(k)
                        ))
                    }
                    _ => {
                        return Err(format!(
                            "output_token_logprobs[{k}] = {e} is not [logprob, token_id, text]"
                        ))
                    }
                }
            }
            let cause = fr.get("matched").cloned().unwrap_or(Value::Null);
            (ids, lps, reason, cause)
        }
    };
    if logprobs.len() != token_ids.len() {
        return Err(format!(
            "{} token ids but {} log-probs",
            token_ids.len(),
            logprobs.len()
        ));
    }
    let finish = match reason.as_str() {
        "length" => FinishReason::Length,
        "stop" => stop_finish(&token_ids, &cause),
        other => return Err(format!("unknown finish reason {other:?}")),
    };
    Ok(Reply::Done(Generation {
        token_ids,
        text: String::new(),
        logprobs,
        entropies: None,
        finish,
        policy_version: None,
    }))
}

/// What `GET /v1/models` says about the served model `name`: its `max_model_len` where given.
/// Errors name the models the server serves.
pub fn model_card(v: &Value, name: &str) -> Result<Option<usize>, String> {
    let data = v
        .get("data")
        .and_then(Value::as_array)
        .ok_or("the /v1/models reply has no `data` list")?;
    let ids: Vec<&str> = data
        .iter()
        .filter_map(|m| m.get("id").and_then(Value::as_str))
        .collect();
    let card = data
        .iter()
        .find(|m| m.get("id").and_then(Value::as_str) == Some(name))
        .ok_or_else(|| {
            format!(
                "it serves {ids:?}, not {name:?}: start it with --served-model-name {name} \
                 (SGLang: --served-model-name too), or set rollout.model_name"
            )
        })?;
    Ok(card
        .get("max_model_len")
        .and_then(Value::as_u64)
        .map(|n| n as usize))
}
