//! A pool of inference servers: least-outstanding-requests routing with episode stickiness,
//! per-request timeouts, bounded retries with exponential backoff, servers marked down after
//! their retries (traffic goes around them), `finish_reason: abort` answered by sending the
//! request again once the pool is not paused, and administrative calls (pause, reload, cache
//! reset, resume) sent to every server directly.
//!
//! Blocking I/O: one `ureq` agent (connection reuse) and, per batch, a few scoped threads that
//! take requests in order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use spear_model::{GenRequest, Generation};

use super::dialect::{self, Reply, Wire};
use crate::train::config::{ApiKind, RolloutSection};

/// Most requests in flight from one batch at once (threads of a `generate` call).
pub const MAX_CONCURRENCY: usize = 64;
/// How often one request is sent again after `finish_reason: abort` before giving up.
pub const MAX_ABORT_RESUBMITS: u32 = 8;

/// How the pool behaves (from `[rollout]`).
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Dialect.
    pub api: ApiKind,
    /// Base URLs (`http://host:port`, no trailing slash).
    pub endpoints: Vec<String>,
    /// Served model name.
    pub model_name: String,
    /// Timeout of one generation request.
    pub request_timeout: Duration,
    /// Timeout of one administrative call (a weight reload reads the whole model).
    pub admin_timeout: Duration,
    /// Retries on one server before it is marked down.
    pub max_retries: u32,
    /// First backoff; doubles on every retry.
    pub backoff: Duration,
}

impl PoolOptions {
    /// From the config section.
    pub fn from_config(r: &RolloutSection) -> Self {
        Self {
            api: r.api,
            endpoints: r
                .endpoints
                .iter()
                .map(|e| e.trim_end_matches('/').to_string())
                .collect(),
            model_name: r.model_name.clone(),
            request_timeout: Duration::from_secs(r.request_timeout_s),
            admin_timeout: Duration::from_secs(r.request_timeout_s.saturating_mul(10)),
            max_retries: r.max_retries as u32,
            backoff: Duration::from_millis(500),
        }
    }
}

/// One server.
#[derive(Debug)]
struct Endpoint {
    url: String,
    outstanding: AtomicUsize,
    down: AtomicBool,
    warned: AtomicBool,
    last_error: Mutex<String>,
}

/// How a call to one server failed.
#[derive(Debug)]
enum CallError {
    /// The server is unreachable, timed out or answered 5xx on every try: route around it.
    Down(String),
    /// The server answered that the request itself is wrong (4xx), or with a body the dialect
    /// does not explain: no retry can help; the run stops with this message.
    Fatal(String),
}

/// What `GET /v1/models` (or SGLang's `/get_model_info`) told about each server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerInfo {
    /// Base URL.
    pub url: String,
    /// Its context length, where it says.
    pub max_model_len: Option<usize>,
}

/// The pool. `Sync`: one batch's threads share it.
#[derive(Debug)]
pub struct EndpointPool {
    opts: PoolOptions,
    endpoints: Vec<Endpoint>,
    agent: ureq::Agent,
    sticky: Mutex<HashMap<u64, usize>>,
    paused: Mutex<bool>,
    resumed: Condvar,
    /// Smallest `max_model_len` any server reported.
    max_model_len: Mutex<Option<usize>>,
    /// Administrative calls made, in order (`url path`), for the logs and the tests.
    admin_log: Mutex<Vec<String>>,
}

impl EndpointPool {
    /// A pool over `opts.endpoints` (nothing is sent yet: see [`Self::check`]).
    pub fn new(opts: PoolOptions) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !opts.endpoints.is_empty(),
            "rollout.endpoints is empty: list the inference servers"
        );
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            // One connection per request: next to a generation it costs nothing, and a pooled
            // connection the server has since closed (uvicorn's keep-alive limit is 5 s;
            // tiny_http's thread pool starves on idle keep-alive connections) would fail or
            // stall instead.
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .build();
        let endpoints = opts
            .endpoints
            .iter()
            .map(|u| Endpoint {
                url: u.trim_end_matches('/').to_string(),
                outstanding: AtomicUsize::new(0),
                down: AtomicBool::new(false),
                warned: AtomicBool::new(false),
                last_error: Mutex::new(String::new()),
            })
            .collect();
        Ok(Self {
            agent: config.into(),
            endpoints,
            opts,
            sticky: Mutex::new(HashMap::new()),
            paused: Mutex::new(false),
            resumed: Condvar::new(),
            max_model_len: Mutex::new(None),
            admin_log: Mutex::new(vec![]),
        })
    }

    /// The options.
    pub fn options(&self) -> &PoolOptions {
        &self.opts
    }

    /// The smallest context any server reported at [`Self::check`].
    pub fn max_model_len(&self) -> Option<usize> {
        *lock(&self.max_model_len)
    }

    /// Servers currently marked down.
    pub fn down_endpoints(&self) -> Vec<String> {
        self.endpoints
            .iter()
            .filter(|e| e.down.load(Ordering::SeqCst))
            .map(|e| e.url.clone())
            .collect()
    }

    /// The administrative calls made so far (`URL PATH`), in order.
    pub fn admin_log(&self) -> Vec<String> {
        lock(&self.admin_log).clone()
    }

    /// Start-up check of every server: `GET /health`, then the served model and its context
    /// (`GET /v1/models`; SGLang falls back to `/get_model_info`, which has no context). A
    /// server that does not answer, serves another model name, or holds fewer than
    /// `need_context` positions is refused with the flag to set.
    pub fn check(&self, need_context: usize) -> anyhow::Result<Vec<ServerInfo>> {
        let mut infos = vec![];
        for e in &self.endpoints {
            let health = self.get(e, "/health").map_err(|err| {
                anyhow::anyhow!(
                    "inference server {} does not answer GET /health: {err}. Start it (see \
                     docs/scale-out.md) or fix rollout.endpoints",
                    e.url
                )
            })?;
            // `spear serve` started without a model waits for the first weight sync, which
            // brings this policy (its config, so its context, too).
            if self.opts.api == ApiKind::Spear && health["status"] == "no model" {
                infos.push(ServerInfo {
                    url: e.url.clone(),
                    max_model_len: None,
                });
                continue;
            }
            let models = self.get(e, "/v1/models");
            let max_len = match (models, self.opts.api) {
                (Ok(v), _) => dialect::model_card(&v, &self.opts.model_name)
                    .map_err(|m| anyhow::anyhow!("inference server {}: {m}", e.url))?,
                (Err(_), ApiKind::Sglang) => {
                    self.get(e, "/get_model_info").map_err(|err| {
                        anyhow::anyhow!(
                            "SGLang server {} answers neither /v1/models nor \
                             /get_model_info: {err}",
                            e.url
                        )
                    })?;
                    tracing::warn!(
                        "{}: no /v1/models, so its context length is not checked",
                        e.url
                    );
                    None
                }
                (Err(err), _) => anyhow::bail!(
                    "inference server {} does not answer GET /v1/models: {err}",
                    e.url
                ),
            };
            if let Some(len) = max_len {
                if len < need_context {
                    let flag = match self.opts.api {
                        ApiKind::Sglang => "--context-length",
                        _ => "--max-model-len",
                    };
                    anyhow::bail!(
                        "inference server {} serves {:?} with a context of {len} tokens, but \
                         the run needs at least {need_context} (a prompt plus \
                         sampling.max_new_tokens; longer prompts are refused per request): \
                         restart it with {flag} {need_context} or more",
                        e.url,
                        self.opts.model_name
                    );
                }
                let mut m = lock(&self.max_model_len);
                *m = Some(m.map_or(len, |x| x.min(len)));
            }
            infos.push(ServerInfo {
                url: e.url.clone(),
                max_model_len: max_len,
            });
        }
        Ok(infos)
    }

    fn get(&self, e: &Endpoint, path: &str) -> Result<Value, String> {
        let resp = self
            .agent
            .get(format!("{}{path}", e.url))
            .config()
            .timeout_global(Some(self.opts.request_timeout))
            .build()
            .call();
        read_reply(resp)
    }

    /// One continuation per request; `sessions[i]` (an episode key) keeps an episode on one
    /// server while it is up, for prefix-cache hits. Results in request order.
    pub fn generate(
        &self,
        requests: &[GenRequest],
        sessions: &[u64],
        wire: &Wire<'_>,
    ) -> anyhow::Result<Vec<Generation>> {
        anyhow::ensure!(sessions.len() == requests.len(), "one session per request");
        let n = requests.len();
        let next = AtomicUsize::new(0);
        let results: Vec<Mutex<Option<anyhow::Result<Generation>>>> =
            (0..n).map(|_| Mutex::new(None)).collect();
        let failed = AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..n.min(MAX_CONCURRENCY) {
                s.spawn(|| loop {
                    if failed.load(Ordering::SeqCst) {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n {
                        return;
                    }
                    let r = self.generate_one(&requests[i], sessions[i], wire);
                    if r.is_err() {
                        failed.store(true, Ordering::SeqCst);
                    }
                    *lock(&results[i]) = Some(r);
                });
            }
        });
        let mut out = Vec::with_capacity(n);
        for r in results {
            // `None`: not started because another request failed; that error is reported.
            if let Some(g) = r.into_inner().unwrap_or_else(|p| p.into_inner()) {
                out.push(g?);
            }
        }
        if out.len() != n {
            anyhow::bail!("generation stopped after an error");
        }
        Ok(out)
    }

    fn generate_one(
        &self,
        req: &GenRequest,
        session: u64,
        wire: &Wire<'_>,
    ) -> anyhow::Result<Generation> {
        let body = dialect::request_body(self.opts.api, req, wire);
        let path = dialect::generate_path(self.opts.api);
        let mut aborts = 0;
        loop {
            self.wait_while_paused();
            let idx = self.pick(session)?;
            let e = &self.endpoints[idx];
            let r = self.post_with_retries(e, path, &body, self.opts.request_timeout);
            e.outstanding.fetch_sub(1, Ordering::SeqCst);
            match r {
                Ok(v) => match dialect::parse_reply(self.opts.api, &v) {
                    Ok(Reply::Done(g)) => return Ok(g),
                    Ok(Reply::Aborted) => {
                        aborts += 1;
                        anyhow::ensure!(
                            aborts <= MAX_ABORT_RESUBMITS,
                            "inference server {} aborted the same request {aborts} times \
                             (finish_reason \"abort\"); not training on a partial sample",
                            e.url
                        );
                        tracing::debug!("{}: request aborted; sending it again", e.url);
                        std::thread::sleep(self.opts.backoff.min(Duration::from_millis(100)));
                    }
                    Err(m) => anyhow::bail!(
                        "inference server {} ({} dialect) answered {path} with a body it \
                         does not explain: {m}. Is rollout.api right?",
                        e.url,
                        self.opts.api
                    ),
                },
                Err(CallError::Fatal(m)) => anyhow::bail!("{m}"),
                Err(CallError::Down(m)) => self.mark_down(idx, &m),
            }
        }
    }

    /// The server for a request of `session`: the session's server while it is up, else the
    /// up server with the fewest requests in flight (the first such in list order). Its
    /// in-flight count is raised under the same lock, so concurrent picks see each other.
    fn pick(&self, session: u64) -> anyhow::Result<usize> {
        let mut sticky = lock(&self.sticky);
        if let Some(&i) = sticky.get(&session) {
            if !self.endpoints[i].down.load(Ordering::SeqCst) {
                self.endpoints[i].outstanding.fetch_add(1, Ordering::SeqCst);
                return Ok(i);
            }
        }
        let best = self
            .endpoints
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.down.load(Ordering::SeqCst))
            .min_by_key(|(i, e)| (e.outstanding.load(Ordering::SeqCst), *i))
            .map(|(i, _)| i);
        match best {
            Some(i) => {
                sticky.insert(session, i);
                self.endpoints[i].outstanding.fetch_add(1, Ordering::SeqCst);
                Ok(i)
            }
            None => Err(self.all_down_error()),
        }
    }

    fn all_down_error(&self) -> anyhow::Error {
        let detail: Vec<String> = self
            .endpoints
            .iter()
            .map(|e| format!("{}: {}", e.url, lock(&e.last_error)))
            .collect();
        anyhow::anyhow!(
            "every inference server in rollout.endpoints is down after {} retries each — {}. \
             Restart them (the trainer resumes with `spear train --resume RUN`, and \
             rollout.endpoints may be changed with --set)",
            self.opts.max_retries,
            detail.join("; ")
        )
    }

    fn mark_down(&self, idx: usize, why: &str) {
        let e = &self.endpoints[idx];
        *lock(&e.last_error) = why.to_string();
        e.down.store(true, Ordering::SeqCst);
        if !e.warned.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                "inference server {} is down ({why}); routing around it",
                e.url
            );
        }
    }

    fn mark_up(&self, idx: usize) {
        let e = &self.endpoints[idx];
        if e.down.swap(false, Ordering::SeqCst) {
            e.warned.store(false, Ordering::SeqCst);
            tracing::info!("inference server {} is back", e.url);
        }
    }

    /// POST with bounded retries (exponential backoff) on connection errors, timeouts and 5xx.
    fn post_with_retries(
        &self,
        e: &Endpoint,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        let url = format!("{}{path}", e.url);
        let mut last = String::new();
        for attempt in 0..=self.opts.max_retries {
            if attempt > 0 {
                std::thread::sleep(self.opts.backoff * 2u32.saturating_pow(attempt - 1));
            }
            let resp = self
                .agent
                .post(&url)
                .config()
                .timeout_global(Some(timeout))
                .build()
                .send_json(body);
            match resp {
                Ok(mut r) => {
                    let status = r.status().as_u16();
                    let text = r.body_mut().read_to_string().unwrap_or_default();
                    if (200..300).contains(&status) {
                        if text.trim().is_empty() {
                            return Ok(Value::Null);
                        }
                        // Some administrative routes answer plain text.
                        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
                        return Ok(v);
                    }
                    let short: String = text.chars().take(400).collect();
                    last = format!("HTTP {status} from POST {url}: {short}");
                    if status >= 500 || status == 408 || status == 429 {
                        continue;
                    }
                    return Err(CallError::Fatal(format!(
                        "inference server {} refused POST {path} with HTTP {status}: {short}",
                        e.url
                    )));
                }
                Err(err) => {
                    last = format!("POST {url}: {err}");
                }
            }
        }
        Err(CallError::Down(last))
    }

    fn wait_while_paused(&self) {
        let mut p = lock(&self.paused);
        while *p {
            p = self.resumed.wait(p).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn set_paused(&self, v: bool) {
        *lock(&self.paused) = v;
        if !v {
            self.resumed.notify_all();
        }
    }

    /// Weight sync v1: every server loads the HF directory `dir` (version `version`). Phase
    /// by phase over all servers — pause (vLLM/spear: `/pause?mode=wait`; SGLang:
    /// `/pause_generation`), reload (`/collective_rpc reload_weights` /
    /// `/update_weights_from_disk`), cache reset (`/reset_prefix_cache` / `/flush_cache`),
    /// resume (`/resume` / `/continue_generation`). Requests of this pool wait meanwhile. A
    /// server that fails is marked down (and one marked down that succeeds is up again);
    /// an error when none succeeds.
    pub fn sync_weights(&self, dir: &std::path::Path, version: u64) -> anyhow::Result<()> {
        let path = dir
            .canonicalize()
            .unwrap_or_else(|_| dir.to_path_buf())
            .to_string_lossy()
            .to_string();
        let phases: Vec<(&str, Value)> = match self.opts.api {
            ApiKind::Vllm | ApiKind::Spear => vec![
                ("/pause?mode=wait", Value::Null),
                (
                    "/collective_rpc",
                    json!({"method": "reload_weights", "kwargs": {"weights_path": path}}),
                ),
                ("/reset_prefix_cache", Value::Null),
                ("/resume", Value::Null),
            ],
            ApiKind::Sglang => vec![
                ("/pause_generation", json!({})),
                (
                    "/update_weights_from_disk",
                    json!({"model_path": path, "weight_version": version.to_string()}),
                ),
                ("/flush_cache", Value::Null),
                ("/continue_generation", json!({})),
            ],
        };
        self.set_paused(true);
        let mut ok: Vec<bool> = vec![true; self.endpoints.len()];
        for (phase, (route, body)) in phases.iter().enumerate() {
            for (i, e) in self.endpoints.iter().enumerate() {
                // A server that failed an earlier phase is skipped, except that every
                // server is told to resume.
                if !ok[i] && phase + 1 < phases.len() {
                    continue;
                }
                lock(&self.admin_log).push(format!("{} {route}", e.url));
                let r = self.admin_post(e, route, body);
                match r {
                    Ok(()) => {}
                    Err(m) => {
                        if ok[i] {
                            self.mark_down(i, &m);
                        }
                        ok[i] = false;
                    }
                }
            }
        }
        self.set_paused(false);
        for (i, good) in ok.iter().enumerate() {
            if *good {
                self.mark_up(i);
            }
        }
        if !ok.iter().any(|&g| g) {
            return Err(self
                .all_down_error()
                .context(format!("loading weights version {version} from {path}")));
        }
        Ok(())
    }

    fn admin_post(&self, e: &Endpoint, route: &str, body: &Value) -> Result<(), String> {
        let body = if body.is_null() {
            json!({})
        } else {
            body.clone()
        };
        // Administrative calls are not idempotent in general (a reload twice is harmless, a
        // pause/resume pair is): retried like requests.
        match self.post_with_retries(e, route, &body, self.opts.admin_timeout) {
            Ok(v) => {
                // SGLang's weight-loading answer carries a success flag.
                if v.get("success").and_then(Value::as_bool) == Some(false) {
                    return Err(format!(
                        "POST {route} failed: {}",
                        v.get("message").and_then(Value::as_str).unwrap_or("")
                    ));
                }
                Ok(())
            }
            Err(CallError::Down(m)) | Err(CallError::Fatal(m)) => Err(m),
        }
    }
}

fn read_reply(
    resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Value, String> {
    let mut r = resp.map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
    if !(200..300).contains(&status) {
        let short: String = text.chars().take(300).collect();
        return Err(format!("HTTP {status}: {short}"));
    }
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
