//! `spear serve`: our candle engine behind the subset of vLLM's HTTP API that RL rollouts use,
//! so the trainer's HTTP rollout client can talk to `spear serve` and to vLLM alike.
//!
//! Endpoints (vLLM 0.32.0 names and bodies; the admin ones are vLLM's `VLLM_SERVER_DEV_MODE`
//! routes):
//!
//! | endpoint | what |
//! |---|---|
//! | `GET /health` | 200; the JSON body says `"ok"` or `"no model"` |
//! | `GET /v1/models` | `{"object":"list","data":[{"id","object":"model","max_model_len",...}]}` |
//! | `POST /v1/completions` | token ids in; `choices[0].token_ids`, `.prompt_token_ids`, `.logprobs.token_logprobs`, `.finish_reason` (`stop`/`length`/`abort`), plus `weight_version` (ours) |
//! | `POST /pause?mode=abort\|wait\|keep`, `POST /resume`, `GET /is_paused` | as vLLM |
//! | `POST /collective_rpc` | `{"method":"reload_weights","kwargs":{"weights_path":DIR}}` → `{"results":[null]}` |
//! | `GET /weight_info`, `POST /update_weight_version {"new_version"}` | the policy version (an integer here; vLLM's is a string) |
//! | `POST /reset_prefix_cache` | no-op: the engine keeps no KV cache between requests |
//! | `GET /metrics` | Prometheus text: requests, batch joins, decode steps, tokens |
//!
//! Requests are parsed on HTTP threads and decoded by one engine thread ([`engine`]) with
//! continuous batching: a request arriving while a batch decodes joins it at the next step.
//! Errors are vLLM's JSON error body with 400 for bad requests, 404 for unknown routes or a
//! wrong `model`, 503 while no model is loaded.
//!
//! Safety: `/collective_rpc reload_weights` reads any directory the server can read, so the
//! server binds to loopback unless `--allow-remote` is given (like vLLM's dev mode, which its
//! security guide calls dangerous on a public interface).

pub mod engine;
pub mod protocol;

use std::io::Read;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use candle_core::{DType, Device};
use serde_json::{json, Value};
use spear_model::{FinishReason, Policy, SamplingParams};
use tiny_http::{Header, Method, Request, Response, Server};

use engine::{Cmd, Done, Engine, Job, Loaded, Shared};
use protocol::{ApiError, CompletionRequest, Prompt};

/// Largest request body read (a prompt of a million token ids fits).
pub const MAX_BODY_BYTES: u64 = 16 << 20;

/// How to run the server.
#[derive(Debug)]
pub struct ServeOptions {
    /// Interface to bind (loopback unless `allow_remote`).
    pub host: String,
    /// Port (0 = any free port; the bound address is printed).
    pub port: u16,
    /// Name answered by `/v1/models` and required of `model` in requests.
    pub served_model_name: String,
    /// Most sequences decoded together.
    pub max_batch: usize,
    /// HTTP worker threads (each holds one request at a time, so this bounds concurrency).
    pub http_threads: usize,
    /// Allow a non-loopback `host`.
    pub allow_remote: bool,
    /// Cap on `max_model_len` (default: the model's `max_position_embeddings`).
    pub max_model_len: Option<usize>,
    /// Seed of the stream that seeds requests sent without a `seed`.
    pub seed: u64,
    /// The first policy, if any (else the server waits for `reload_weights`).
    pub initial: Option<Loaded>,
}

/// Checks that `host` is loopback unless remote binding is allowed; returns the address.
pub fn bind_address(host: &str, port: u16, allow_remote: bool) -> anyhow::Result<SocketAddr> {
    let addr = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("--host {host:?} is not an address or resolvable name"))?
        .next()
        .with_context(|| format!("--host {host:?} resolves to no address"))?;
    let ip: IpAddr = addr.ip();
    if !ip.is_loopback() && !allow_remote {
        bail!(
            "--host {host} is not a loopback address: the reload endpoint reads any directory \
             the server can read, so spear serve listens on 127.0.0.1 unless --allow-remote is \
             given (use it only on a private network)"
        );
    }
    Ok(addr)
}

/// Loads an HF model directory for `reload_weights`.
pub fn load_weights_dir(path: &str, version: Option<u64>) -> Result<Loaded, ApiError> {
    let p = Path::new(path);
    if !p.is_dir() {
        return Err(ApiError::bad(
            "kwargs.weights_path",
            format!("weights_path {path:?} is not a directory (an HF model directory with config.json, model.safetensors, tokenizer.json)"),
        ));
    }
    for f in ["config.json", "tokenizer.json"] {
        if !p.join(f).is_file() {
            return Err(ApiError::bad(
                "kwargs.weights_path",
                format!("{} is missing: weights_path must be an HF model directory (spear_model::checkpoint::export_hf writes one)", p.join(f).display()),
            ));
        }
    }
    let policy = Policy::load(path, DType::F32, &Device::Cpu)
        .map_err(|e| ApiError::bad("kwargs.weights_path", format!("loading {path}: {e}")))?;
    Ok(Loaded {
        policy,
        version,
        source: path.to_string(),
    })
}

struct Ctx {
    tx: Mutex<Sender<Cmd>>,
    shared: Arc<Mutex<Shared>>,
    name: String,
    /// Tokenizer of the current policy for text prompts and per-token strings, swapped on reload.
    tokenizer: Mutex<Option<spear_model::TextTokenizer>>,
    counter: std::sync::atomic::AtomicU64,
}

impl Ctx {
    fn send(&self, c: Cmd) -> Result<(), ApiError> {
        self.tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(c)
            .map_err(|_| ApiError::status(500, "the engine thread has stopped"))
    }

    fn shared(&self) -> Shared {
        self.shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Runs the server until the process is killed. Prints `listening on http://ADDR` (with the
/// bound port) to stdout once it accepts connections.
pub fn run(opts: ServeOptions) -> anyhow::Result<()> {
    let addr = bind_address(&opts.host, opts.port, opts.allow_remote)?;
    let server = Server::http(addr)
        .map_err(|e| anyhow::anyhow!("binding {addr}: {e} (is the port in use?)"))?;
    let bound = server
        .server_addr()
        .to_ip()
        .context("the server is not bound to an IP address")?;
    let shared = Arc::new(Mutex::new(Shared::default()));
    let tokenizer = opts.initial.as_ref().map(|l| l.policy.tokenizer.clone());
    let loaded_from = opts.initial.as_ref().map(|l| l.source.clone());
    let engine = Engine::new(
        opts.initial,
        opts.max_batch,
        opts.max_model_len,
        opts.seed,
        shared.clone(),
    );
    let (tx, rx) = channel();
    std::thread::Builder::new()
        .name("spear-engine".into())
        .spawn(move || engine.run(rx))?;
    let ctx = Arc::new(Ctx {
        tx: Mutex::new(tx),
        shared,
        name: opts.served_model_name,
        tokenizer: Mutex::new(tokenizer),
        counter: Default::default(),
    });
    let server = Arc::new(server);
    let mut handles = vec![];
    for i in 0..opts.http_threads.max(1) {
        let (server, ctx) = (server.clone(), ctx.clone());
        handles.push(
            std::thread::Builder::new()
                .name(format!("spear-http-{i}"))
                .spawn(move || {
                    while let Ok(rq) = server.recv() {
                        handle(&ctx, rq);
                    }
                })?,
        );
    }
    match loaded_from {
        Some(s) => println!("spear serve: model {s} as {:?}", ctx.name),
        None => {
            println!("spear serve: no model yet; waiting for POST /collective_rpc reload_weights")
        }
    }
    println!("spear serve: listening on http://{bound}");
    use std::io::Write;
    std::io::stdout().flush()?;
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

fn json_response(status: u16, v: &Value) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_data(v.to_string().into_bytes())
        .with_status_code(status)
        .with_header(
            Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..])
                .expect("static header"),
        )
}

fn handle(ctx: &Ctx, mut rq: Request) {
    let url = rq.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
    let method = rq.method().clone();
    let result = read_body(&mut rq).and_then(|body| route(ctx, &method, path, query, &body));
    let resp = match result {
        Ok(Reply::Json(v)) => json_response(200, &v),
        Ok(Reply::Text(t)) => Response::from_data(t.into_bytes()).with_header(
            Header::from_bytes(&b"Content-Type"[..], &b"text/plain; version=0.0.4"[..])
                .expect("static header"),
        ),
        Err(e) => json_response(e.status, &e.body()),
    };
    let _ = rq.respond(resp);
}

fn read_body(rq: &mut Request) -> Result<Vec<u8>, ApiError> {
    let mut body = vec![];
    rq.as_reader()
        .take(MAX_BODY_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
    if body.len() as u64 > MAX_BODY_BYTES {
        return Err(ApiError::status(
            413,
            format!("the request body exceeds {MAX_BODY_BYTES} bytes"),
        ));
    }
    Ok(body)
}

enum Reply {
    Json(Value),
    Text(String),
}

fn route(
    ctx: &Ctx,
    method: &Method,
    path: &str,
    query: &str,
    body: &[u8],
) -> Result<Reply, ApiError> {
    if path == "/metrics" {
        if *method != Method::Get {
            return Err(ApiError::status(
                405,
                format!("{path} takes GET, not {method}"),
            ));
        }
        return Ok(Reply::Text(metrics_text(&ctx.shared())));
    }
    route_json(ctx, method, path, query, body).map(Reply::Json)
}

fn route_json(
    ctx: &Ctx,
    method: &Method,
    path: &str,
    query: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    let want = |m: Method| -> Result<(), ApiError> {
        if *method == m {
            Ok(())
        } else {
            Err(ApiError::status(
                405,
                format!("{path} takes {m}, not {method}"),
            ))
        }
    };
    match path {
        "/health" => {
            want(Method::Get)?;
            let s = ctx.shared();
            Ok(json!({"status": if s.model_loaded { "ok" } else { "no model" }}))
        }
        "/v1/models" => {
            want(Method::Get)?;
            let s = ctx.shared();
            let data = if s.model_loaded {
                vec![json!({"id": ctx.name, "object": "model", "created": now(),
                            "owned_by": "spear", "root": s.source, "parent": null,
                            "max_model_len": s.max_model_len, "weight_version": s.version})]
            } else {
                vec![]
            };
            Ok(json!({"object": "list", "data": data}))
        }
        "/is_paused" => {
            want(Method::Get)?;
            Ok(json!({"is_paused": ctx.shared().paused.is_some()}))
        }
        "/pause" => {
            want(Method::Post)?;
            let mode = protocol::pause_mode(query)?;
            let (tx, rx) = channel();
            ctx.send(Cmd::Pause(mode, tx))?;
            rx.recv()
                .map_err(|_| ApiError::status(500, "the engine thread has stopped"))?;
            Ok(json!({"status": "paused"}))
        }
        "/resume" => {
            want(Method::Post)?;
            let (tx, rx) = channel();
            ctx.send(Cmd::Resume(tx))?;
            rx.recv()
                .map_err(|_| ApiError::status(500, "the engine thread has stopped"))?;
            Ok(json!({"status": "resumed"}))
        }
        "/weight_info" => {
            want(Method::Get)?;
            Ok(json!({"weight_version": ctx.shared().version}))
        }
        "/update_weight_version" => {
            want(Method::Post)?;
            let v = protocol::parse_new_version(body)?;
            let (tx, rx) = channel();
            ctx.send(Cmd::SetVersion(v, tx))?;
            rx.recv()
                .map_err(|_| ApiError::status(500, "the engine thread has stopped"))?;
            Ok(json!({"success": true, "new_version": v}))
        }
        "/reset_prefix_cache" => {
            want(Method::Post)?;
            Ok(json!({}))
        }
        "/collective_rpc" => {
            want(Method::Post)?;
            let r = protocol::parse_collective_rpc(body)?;
            let loaded = load_weights_dir(&r.weights_path, r.weight_version)?;
            let tok = loaded.policy.tokenizer.clone();
            let (tx, rx) = channel();
            ctx.send(Cmd::Swap(Box::new(loaded), tx))?;
            rx.recv()
                .map_err(|_| ApiError::status(500, "the engine thread has stopped"))?;
            *ctx.tokenizer.lock().unwrap_or_else(|p| p.into_inner()) = Some(tok);
            tracing::info!(path = %r.weights_path, version = ?r.weight_version, "reloaded weights");
            Ok(json!({"results": [null]}))
        }
        "/v1/completions" => {
            want(Method::Post)?;
            completion(ctx, body)
        }
        _ => Err(ApiError::status(404, format!("no route {path}"))),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn metrics_text(s: &Shared) -> String {
    let mut t = String::new();
    for (k, v) in [
        ("spear_requests_total", s.requests),
        ("spear_completed_total", s.completed),
        ("spear_aborted_total", s.aborted),
        ("spear_joined_running_batch_total", s.joined_running_batch),
        ("spear_decode_steps_total", s.decode_steps),
        ("spear_generated_tokens_total", s.generated_tokens),
        ("spear_reloads_total", s.reloads),
        ("spear_max_batch_seen", s.max_batch_seen as u64),
        ("spear_running", s.running as u64),
        ("spear_waiting", s.waiting as u64),
        ("spear_paused", s.paused.is_some() as u64),
        ("spear_model_loaded", s.model_loaded as u64),
    ] {
        t.push_str(&format!("{k} {v}\n"));
    }
    t
}

fn completion(ctx: &Ctx, body: &[u8]) -> Result<Value, ApiError> {
    let req = CompletionRequest::parse(body)?;
    if let Some(m) = &req.model {
        if *m != ctx.name {
            return Err(ApiError::status(
                404,
                format!(
                    "The model `{m}` does not exist (this server serves `{}`).",
                    ctx.name
                ),
            ));
        }
    }
    let shared = ctx.shared();
    if !shared.model_loaded {
        return Err(ApiError::status(
            503,
            "no model loaded yet: POST /collective_rpc {\"method\":\"reload_weights\",\"kwargs\":{\"weights_path\":DIR}} first, or start spear serve with --model",
        ));
    }
    let tok = ctx
        .tokenizer
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let prompt_ids = match &req.prompt {
        Prompt::Ids(ids) => ids.clone(),
        Prompt::Text(t) => tok
            .as_ref()
            .ok_or_else(|| ApiError::bad("prompt", "no tokenizer for a text prompt"))?
            .encode(t)
            .map_err(|e| ApiError::bad("prompt", e.to_string()))?,
    };
    if prompt_ids.is_empty() {
        return Err(ApiError::bad("prompt", "the prompt tokenizes to no tokens"));
    }
    let params = SamplingParams {
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        max_new_tokens: req.max_tokens,
        stop_strings: req.stop.clone(),
        stop_token_ids: req.stop_token_ids.clone(),
        with_entropy: false,
        ignore_eos: req.ignore_eos,
    };
    let (tx, rx) = channel();
    ctx.send(Cmd::Generate(Job {
        prompt_ids,
        seed: req.seed,
        params,
        reply: tx,
    }))?;
    let done = rx
        .recv()
        .map_err(|_| ApiError::status(500, "the engine thread has stopped"))??;
    let id = ctx
        .counter
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(completion_body(&req, &done, tok.as_ref(), &ctx.name, id))
}

fn completion_body(
    req: &CompletionRequest,
    done: &Done,
    tok: Option<&spear_model::TextTokenizer>,
    name: &str,
    id: u64,
) -> Value {
    let g = &done.generation;
    let (finish, stop_reason) = if done.aborted {
        ("abort", Value::Null)
    } else {
        match &g.finish {
            FinishReason::StopToken(t) => ("stop", json!(t)),
            FinishReason::StopString(s) => ("stop", json!(s)),
            FinishReason::Length => ("length", Value::Null),
        }
    };
    let mut text = match tok {
        Some(t) if !req.skip_special_tokens && !matches!(g.finish, FinishReason::StopString(_)) => {
            t.decode(&g.token_ids, false)
                .unwrap_or_else(|_| g.text.clone())
        }
        _ => g.text.clone(),
    };
    if let (FinishReason::StopString(s), false) = (&g.finish, req.include_stop_str_in_output) {
        if let Some(stripped) = text.strip_suffix(s.as_str()) {
            text = stripped.to_string();
        }
    }
    let logprobs = req.logprobs.map(|_| {
        let tokens: Vec<String> = g
            .token_ids
            .iter()
            .map(|&t| {
                tok.and_then(|k| k.decode(&[t], false).ok())
                    .unwrap_or_else(|| format!("token_id:{t}"))
            })
            .collect();
        json!({"tokens": tokens, "token_logprobs": g.logprobs, "top_logprobs": null,
               "text_offset": null})
    });
    let spans: Vec<Value> = done
        .versions
        .iter()
        .enumerate()
        .map(|(i, (v, start))| {
            let end = done.versions.get(i + 1).map_or(g.token_ids.len(), |n| n.1);
            json!({"weight_version": v, "start": start, "end": end})
        })
        .collect();
    let version = done.versions.last().and_then(|v| v.0);
    let n_prompt = done.prompt_ids.len();
    let n_out = g.token_ids.len();
    json!({
        "id": format!("cmpl-spear-{id}"),
        "object": "text_completion",
        "created": now(),
        "model": name,
        "choices": [{
            "index": 0,
            "text": text,
            "logprobs": logprobs,
            "finish_reason": finish,
            "stop_reason": stop_reason,
            "token_ids": g.token_ids,
            "prompt_token_ids": done.prompt_ids,
            "weight_versions": spans,
        }],
        "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_out,
                  "total_tokens": n_prompt + n_out},
        "weight_version": version,
    })
}
