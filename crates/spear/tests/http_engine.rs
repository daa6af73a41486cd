//! The HTTP rollout engine against protocol-exact mock servers (tiny_http on 127.0.0.1:0).
//!
//! The mocks check request bodies field by field against the upstream protocol definitions
//! and answer in the upstream response shapes:
//! * vLLM `POST /v1/completions`: `CompletionRequest` / `CompletionResponseChoice` in
//!   `vllm/entrypoints/openai/completion/protocol.py` at vLLM commit
//!   `002032ee2b18e1f7bd924ec47b62504ba3866063`; the development endpoints (`/pause?mode=`,
//!   `/collective_rpc`, `/reset_prefix_cache`, `/resume`) as measured against vLLM 0.32.0
//!   (shared/docs/scale-out.md §8).
//! * SGLang `POST /generate`: `GenerateReqInput` in `python/sglang/srt/managers/io_struct.py`
//!   at SGLang commit `001067fffe33427bee0ed2f007fb7551a1d76b44`, the sampling fields of
//!   `python/sglang/srt/sampling/sampling_params.py` at `00c17cafcb9e289d5ca97c50e44ada54e4fd5b03`,
//!   and the routes (`/health`, `/v1/models` with `max_model_len`, `/get_model_info`,
//!   `/pause_generation`, `/update_weights_from_disk` → `{success, message,
//!   num_paused_requests}`, `/flush_cache`, `/continue_generation`) of
//!   `python/sglang/srt/entrypoints/http_server.py` at `0025436eab0556737d615b36a4dd3e1e26e82f3d`.
//!   SGLang is tested only against this documented contract (no SGLang server runs here).

mod common;

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};
use spear::rollout::http::dialect::Wire;
use spear::rollout::http::{EndpointPool, HttpEngine, PoolOptions};
use spear::train::config::ApiKind;
use spear_model::{FinishReason, GenRequest, SamplingParams};

/// A reply: status, JSON body, delay before answering.
struct Resp {
    status: u16,
    body: Value,
    delay: Duration,
}

fn ok(body: Value) -> Resp {
    Resp {
        status: 200,
        body,
        delay: Duration::ZERO,
    }
}

type Handler = Arc<dyn Fn(&str, &Value) -> Resp + Send + Sync>;

/// A mock server: every request (`METHOD /path?query`, JSON body) is logged, then answered by
/// the handler on its own thread (so requests overlap).
struct Mock {
    url: String,
    log: Arc<Mutex<Vec<(String, Value)>>>,
    server: Arc<tiny_http::Server>,
    acceptor: Option<JoinHandle<()>>,
}

impl Mock {
    fn start(handler: Handler) -> Mock {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let url = format!("http://{}", server.server_addr().to_ip().unwrap());
        let log: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let (s, l) = (server.clone(), log.clone());
        let acceptor = std::thread::spawn(move || {
            while let Ok(mut rq) = s.recv() {
                let mut text = String::new();
                let _ = std::io::Read::read_to_string(rq.as_reader(), &mut text);
                let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let key = format!("{} {}", rq.method(), rq.url());
                l.lock().unwrap().push((key.clone(), body.clone()));
                let h = handler.clone();
                std::thread::spawn(move || {
                    let r = h(&key, &body);
                    std::thread::sleep(r.delay);
                    let resp = tiny_http::Response::from_string(r.body.to_string())
                        .with_status_code(r.status)
                        .with_header(
                            "Content-Type: application/json"
                                .parse::<tiny_http::Header>()
                                .unwrap(),
                        )
                        // tiny_http 0.12 serves each connection as a task of its thread pool;
                        // a keep-alive connection idle in the client's pool holds a thread in
                        // recv, and with several of them queued tasks can starve (seen with 9
                        // concurrent requests). Closing after each reply keeps the mock simple.
                        .with_header("Connection: close".parse::<tiny_http::Header>().unwrap());
                    let _ = rq.respond(resp);
                });
            }
        });
        Mock {
            url,
            log,
            server,
            acceptor: Some(acceptor),
        }
    }

    /// The logged requests whose key starts with `prefix`.
    fn requests(&self, prefix: &str) -> Vec<Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// Every logged `METHOD /path`.
    fn keys(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|(k, _)| k.clone())
            .collect()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

/// A URL nothing listens on.
fn dead_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    format!("http://{a}")
}

/// Checks a vLLM `/v1/completions` body field by field (protocol.py `CompletionRequest`).
fn check_vllm_body(b: &Value) -> Result<(), String> {
    let want = |k: &str, v: Value| {
        if b.get(k) == Some(&v) {
            Ok(())
        } else {
            Err(format!("{k} = {:?}, want {v}", b.get(k)))
        }
    };
    want("model", json!("policy"))?;
    let prompt = b["prompt"].as_array().ok_or("prompt is not a list")?;
    if prompt.is_empty() || !prompt.iter().all(|x| x.is_u64()) {
        return Err("prompt is not a non-empty list of token ids".into());
    }
    if !b["max_tokens"].is_u64() {
        return Err("max_tokens missing (vLLM's default is 16)".into());
    }
    if !b["temperature"].is_number() || !b["top_p"].is_number() {
        return Err("temperature/top_p must be sent".into());
    }
    if !b["top_k"].is_i64() {
        return Err("top_k must be sent".into());
    }
    want("min_p", json!(0.0))?;
    want("presence_penalty", json!(0.0))?;
    want("frequency_penalty", json!(0.0))?;
    want("repetition_penalty", json!(1.0))?;
    want("n", json!(1))?;
    want("return_token_ids", json!(true))?;
    want("logprobs", json!(0))?;
    want("include_stop_str_in_output", json!(true))?;
    want("skip_special_tokens", json!(false))?;
    want("stream", json!(false))?;
    let seed = b["seed"].as_i64().ok_or("seed is not an int64")?;
    if seed < 0 {
        return Err("seed is negative".into());
    }
    if !b["stop_token_ids"].is_array() || !b["stop"].is_array() {
        return Err("stop_token_ids / stop must be lists".into());
    }
    Ok(())
}

/// Checks an SGLang `/generate` body (io_struct.py `GenerateReqInput`, sampling_params.py).
fn check_sglang_body(b: &Value) -> Result<(), String> {
    let ids = b["input_ids"].as_array().ok_or("input_ids is not a list")?;
    if ids.is_empty() || !ids.iter().all(|x| x.is_u64()) {
        return Err("input_ids is not a list of token ids".into());
    }
    if b.get("text").is_some() || b.get("prompt").is_some() {
        return Err("text prompt sent alongside input_ids".into());
    }
    if b["return_logprob"] != json!(true) || b["logprob_start_len"] != json!(-1) {
        return Err("return_logprob / logprob_start_len".into());
    }
    let sp = &b["sampling_params"];
    for k in [
        "max_new_tokens",
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "sampling_seed",
    ] {
        if !sp[k].is_number() {
            return Err(format!("sampling_params.{k} missing"));
        }
    }
    if sp["no_stop_trim"] != json!(true) || sp["skip_special_tokens"] != json!(false) {
        return Err("no_stop_trim / skip_special_tokens".into());
    }
    if sp.get("max_tokens").is_some() {
        return Err("max_tokens is vLLM's name; SGLang's is max_new_tokens".into());
    }
    Ok(())
}

/// The mock's generation: three tokens derived from the prompt (so a test can tell which
/// request a reply answers), cut at `max_tokens`.
fn fake_tokens(prompt: &[Value], max: usize) -> (Vec<u32>, &'static str) {
    let first = 10 + prompt.len() as u32;
    let toks = vec![first, first + 1, 2];
    if max < toks.len() {
        (toks[..max].to_vec(), "length")
    } else {
        (toks, "stop")
    }
}

fn vllm_reply(prompt: &[Value], max: usize, reason_override: Option<&str>) -> Value {
    let (toks, reason) = fake_tokens(prompt, max);
    let reason = reason_override.unwrap_or(reason);
    let lps: Vec<f64> = toks.iter().map(|&t| -(t as f64) / 100.0).collect();
    json!({
        "id": "cmpl-1", "object": "text_completion", "created": 0, "model": "policy",
        "choices": [{
            "index": 0, "text": "ignored",
            "logprobs": {"text_offset": [], "token_logprobs": lps, "tokens": [], "top_logprobs": []},
            "finish_reason": reason, "stop_reason": null,
            "token_ids": toks, "prompt_token_ids": prompt,
        }],
        "usage": {"prompt_tokens": prompt.len(), "completion_tokens": 3, "total_tokens": 3}
    })
}

fn sglang_reply(ids: &[Value], max: usize, reason_override: Option<&str>) -> Value {
    let (toks, reason) = fake_tokens(ids, max);
    let reason = reason_override.unwrap_or(reason);
    let lps: Vec<Value> = toks
        .iter()
        .map(|&t| json!([-(t as f64) / 100.0, t, null]))
        .collect();
    let fr = if reason == "stop" {
        json!({"type": "stop", "matched": 2})
    } else {
        json!({"type": reason})
    };
    json!({
        "text": "ignored", "output_ids": toks,
        "meta_info": {"id": "x", "finish_reason": fr, "prompt_tokens": ids.len(),
                      "completion_tokens": toks.len(), "output_token_logprobs": lps,
                      "weight_version": "default"}
    })
}

/// Fault injection of one mock: the first `n5xx` generation requests answer 503, the next
/// `aborts` answer `finish_reason: abort`, the next `slow` are answered after `slow_delay`.
#[derive(Default)]
struct Faults {
    n5xx: AtomicUsize,
    aborts: AtomicUsize,
    slow: AtomicUsize,
    slow_delay: Mutex<Duration>,
    max_model_len: AtomicUsize,
    delay: Mutex<Duration>,
}

fn take(a: &AtomicUsize) -> bool {
    a.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// A mock of `api` with fault injection.
fn mock(api: ApiKind, faults: Arc<Faults>) -> Mock {
    if faults.max_model_len.load(Ordering::SeqCst) == 0 {
        faults.max_model_len.store(4096, Ordering::SeqCst);
    }
    Mock::start(Arc::new(move |key, body| {
        let f = &faults;
        let path = key.split_once(' ').map(|x| x.1).unwrap_or("");
        match path {
            "/health" => ok(Value::Null),
            "/v1/models" => ok(json!({"object": "list", "data": [{
                "id": "policy", "object": "model", "owned_by": "vllm", "root": "/w/step_0",
                "max_model_len": f.max_model_len.load(Ordering::SeqCst)}]})),
            "/v1/completions" | "/generate" => {
                let check = if api == ApiKind::Sglang {
                    check_sglang_body(body)
                } else {
                    check_vllm_body(body)
                };
                if let Err(e) = check {
                    return Resp {
                        status: 400,
                        body: json!({"error": {"message": e}}),
                        delay: Duration::ZERO,
                    };
                }
                if take(&f.n5xx) {
                    return Resp {
                        status: 503,
                        body: json!({"error": "overloaded"}),
                        delay: Duration::ZERO,
                    };
                }
                let abort = take(&f.aborts).then_some("abort");
                let delay = if take(&f.slow) {
                    *f.slow_delay.lock().unwrap()
                } else {
                    *f.delay.lock().unwrap()
                };
                let body = if api == ApiKind::Sglang {
                    let max = body["sampling_params"]["max_new_tokens"].as_u64().unwrap();
                    sglang_reply(body["input_ids"].as_array().unwrap(), max as usize, abort)
                } else {
                    let max = body["max_tokens"].as_u64().unwrap();
                    vllm_reply(body["prompt"].as_array().unwrap(), max as usize, abort)
                };
                Resp {
                    status: 200,
                    body,
                    delay,
                }
            }
            "/collective_rpc" => ok(json!({"results": [null]})),
            "/update_weights_from_disk" => {
                ok(json!({"success": true, "message": "ok", "num_paused_requests": 0}))
            }
            p if p.starts_with("/pause")
                || p == "/resume"
                || p == "/reset_prefix_cache"
                || p == "/flush_cache"
                || p == "/continue_generation" =>
            {
                ok(json!({"status": "ok"}))
            }
            _ => Resp {
                status: 404,
                body: json!({"detail": "Not Found"}),
                delay: Duration::ZERO,
            },
        }
    }))
}

fn options(api: ApiKind, endpoints: Vec<String>) -> PoolOptions {
    PoolOptions {
        api,
        endpoints,
        model_name: "policy".into(),
        request_timeout: Duration::from_secs(20),
        admin_timeout: Duration::from_secs(20),
        max_retries: 2,
        backoff: Duration::from_millis(10),
    }
}

fn params(max: usize) -> SamplingParams {
    SamplingParams {
        temperature: 1.0,
        max_new_tokens: max,
        ..SamplingParams::default()
    }
}

fn req(len: usize, seed: u64) -> GenRequest {
    GenRequest {
        prompt_ids: (1..=len as u32).collect(),
        seed,
    }
}

fn run(
    pool: &EndpointPool,
    reqs: &[GenRequest],
    sessions: &[u64],
    max: usize,
) -> anyhow::Result<Vec<spear_model::Generation>> {
    let p = params(max);
    let w = Wire {
        model: "policy",
        params: &p,
        stop_token_ids: &[2],
    };
    pool.generate(reqs, sessions, &w)
}

#[test]
fn vllm_generation_reads_ids_logprobs_and_finish() {
    let m = mock(ApiKind::Vllm, Arc::default());
    let pool = EndpointPool::new(options(ApiKind::Vllm, vec![m.url.clone()])).unwrap();
    pool.check(1024).unwrap();
    let g = run(&pool, &[req(4, 7), req(6, u64::MAX)], &[1, 2], 8).unwrap();
    assert_eq!(g[0].token_ids, vec![14, 15, 2]);
    assert_eq!(g[0].logprobs, vec![-0.14, -0.15, -0.02]);
    // `stop` without a stop_reason: the model's end-of-sequence token, the last id.
    assert_eq!(g[0].finish, FinishReason::StopToken(2));
    assert_eq!(g[1].token_ids[0], 16, "results in request order");
    // Length: fewer tokens allowed than the mock would write.
    let g = run(&pool, &[req(4, 7)], &[1], 2).unwrap();
    assert_eq!(g[0].finish, FinishReason::Length);
    assert_eq!(g[0].token_ids, vec![14, 15]);
    // The request bodies (validated field by field by the mock) carry what was asked.
    let bodies = m.requests("POST /v1/completions");
    assert_eq!(bodies.len(), 3);
    let b = bodies
        .iter()
        .find(|b| b["prompt"].as_array().unwrap().len() == 6);
    let b = b.unwrap();
    assert_eq!(b["max_tokens"], 8);
    assert_eq!(b["top_k"], -1, "top-k off is -1 for vLLM");
    assert_eq!(b["top_p"], 1.0);
    assert_eq!(b["stop_token_ids"], json!([2]));
    assert_eq!(
        b["seed"],
        json!(i64::MAX),
        "u64 seeds are masked into int64"
    );
    assert_eq!(m.keys()[..2], ["GET /health", "GET /v1/models"]);
}

#[test]
fn sglang_generation_reads_output_ids_and_meta_info() {
    let m = mock(ApiKind::Sglang, Arc::default());
    let pool = EndpointPool::new(options(ApiKind::Sglang, vec![m.url.clone()])).unwrap();
    pool.check(1024).unwrap();
    let g = run(&pool, &[req(3, 1)], &[1], 8).unwrap();
    assert_eq!(g[0].token_ids, vec![13, 14, 2]);
    assert_eq!(g[0].logprobs, vec![-0.13, -0.14, -0.02]);
    // `finish_reason.matched` names the stop token.
    assert_eq!(g[0].finish, FinishReason::StopToken(2));
    let g = run(&pool, &[req(3, 1)], &[1], 1).unwrap();
    assert_eq!(g[0].finish, FinishReason::Length);
    let b = &m.requests("POST /generate")[0];
    assert_eq!(b["sampling_params"]["max_new_tokens"], 8);
    assert_eq!(b["sampling_params"]["top_k"], -1);
    assert_eq!(b["sampling_params"]["stop_token_ids"], json!([2]));
}

/// `finish_reason: abort` (a pause with mode=abort, or an engine abort): the half sample is
/// dropped and the request sent again; it never reaches the trainer.
#[test]
fn aborted_requests_are_resubmitted() {
    for api in [ApiKind::Vllm, ApiKind::Sglang] {
        let f = Arc::new(Faults::default());
        f.aborts.store(2, Ordering::SeqCst);
        let m = mock(api, f.clone());
        let pool = EndpointPool::new(options(api, vec![m.url.clone()])).unwrap();
        let g = run(&pool, &[req(5, 1)], &[1], 8).unwrap();
        assert_eq!(g[0].token_ids, vec![15, 16, 2], "{api}");
        assert_eq!(
            m.requests("POST /").len(),
            3,
            "{api}: two aborts, then the answer"
        );
        // Aborted every time: a clear error, not a partial sample.
        f.aborts.store(100, Ordering::SeqCst);
        let e = run(&pool, &[req(5, 1)], &[1], 8).unwrap_err().to_string();
        assert!(e.contains("aborted the same request"), "{e}");
    }
}

#[test]
fn server_errors_are_retried_then_succeed() {
    let f = Arc::new(Faults::default());
    f.n5xx.store(2, Ordering::SeqCst);
    let m = mock(ApiKind::Vllm, f.clone());
    let pool = EndpointPool::new(options(ApiKind::Vllm, vec![m.url.clone()])).unwrap();
    let g = run(&pool, &[req(5, 1)], &[1], 8).unwrap();
    assert_eq!(g[0].token_ids[0], 15);
    assert_eq!(m.requests("POST /v1/completions").len(), 3);
    assert!(pool.down_endpoints().is_empty());
}

/// A reply slower than `request_timeout` is abandoned and the request sent again.
#[test]
fn slow_replies_time_out_and_are_retried() {
    let f = Arc::new(Faults::default());
    f.slow.store(1, Ordering::SeqCst);
    *f.slow_delay.lock().unwrap() = Duration::from_secs(3);
    let m = mock(ApiKind::Vllm, f);
    let mut o = options(ApiKind::Vllm, vec![m.url.clone()]);
    o.request_timeout = Duration::from_millis(500);
    let pool = EndpointPool::new(o).unwrap();
    let g = run(&pool, &[req(5, 1)], &[1], 8).unwrap();
    assert_eq!(g[0].token_ids[0], 15);
    assert_eq!(m.requests("POST /v1/completions").len(), 2);
}

/// A server that fails after its retries is marked down and its requests go to the others;
/// with every server down, the error names each one and its last error.
#[test]
fn down_servers_are_routed_around_then_a_clear_error() {
    let m = mock(ApiKind::Vllm, Arc::default());
    let dead = dead_url();
    let pool =
        EndpointPool::new(options(ApiKind::Vllm, vec![dead.clone(), m.url.clone()])).unwrap();
    let g = run(&pool, &[req(3, 1), req(4, 2), req(5, 3)], &[1, 2, 3], 8).unwrap();
    assert_eq!(g.len(), 3);
    assert_eq!(m.requests("POST /v1/completions").len(), 3);
    assert_eq!(pool.down_endpoints(), vec![dead.clone()]);

    let f = Arc::new(Faults::default());
    f.n5xx.store(1000, Ordering::SeqCst);
    let failing = mock(ApiKind::Vllm, f);
    let pool = EndpointPool::new(options(
        ApiKind::Vllm,
        vec![dead.clone(), failing.url.clone()],
    ))
    .unwrap();
    let e = format!("{:#}", run(&pool, &[req(3, 1)], &[1], 8).unwrap_err());
    assert!(e.contains("every inference server"), "{e}");
    assert!(e.contains(&dead) && e.contains(&failing.url), "{e}");
    assert!(e.contains("HTTP 503"), "the last error is shown: {e}");
    // 1 try + 2 retries on the failing server.
    assert_eq!(failing.requests("POST /v1/completions").len(), 3);
}

/// New sessions go to the server with the fewest requests in flight; a session stays on its
/// server afterwards even when another is idler.
#[test]
fn least_outstanding_routing_and_stickiness() {
    let fa = Arc::new(Faults::default());
    let fb = Arc::new(Faults::default());
    *fa.delay.lock().unwrap() = Duration::from_millis(300);
    *fb.delay.lock().unwrap() = Duration::from_millis(300);
    let (a, b) = (mock(ApiKind::Vllm, fa), mock(ApiKind::Vllm, fb));
    let pool =
        EndpointPool::new(options(ApiKind::Vllm, vec![a.url.clone(), b.url.clone()])).unwrap();
    // Four concurrent sessions: two per server.
    run(
        &pool,
        &[req(1, 0), req(2, 0), req(3, 0), req(4, 0)],
        &[10, 11, 12, 13],
        8,
    )
    .unwrap();
    let (na, nb) = (
        a.requests("POST /v1/completions").len(),
        b.requests("POST /v1/completions").len(),
    );
    assert_eq!((na, nb), (2, 2));
    // Later turns of each episode: alone (both servers idle, the first would win a tie), yet
    // each goes to its episode's server.
    let prompt_lens = |m: &Mock| -> Vec<usize> {
        m.requests("POST /v1/completions")
            .iter()
            .map(|b| b["prompt"].as_array().unwrap().len())
            .collect()
    };
    let mut first_b = prompt_lens(&b);
    first_b.sort_unstable();
    for (s, len) in [(10u64, 1usize), (11, 2), (12, 3), (13, 4)] {
        run(&pool, &[req(len + 10, 0)], &[s], 8).unwrap();
    }
    let later_b: Vec<usize> = prompt_lens(&b)[2..].iter().map(|l| l - 10).collect();
    assert_eq!(later_b, first_b, "episodes stay on their server");
}

/// Weight sync: pause → reload → cache reset → resume on every server, phase by phase, with
/// the directory; SGLang's routes and bodies likewise.
#[test]
fn weight_sync_sequence_on_every_server() {
    let dir = common::tmp("http-sync");
    let w = dir.join("step_3");
    std::fs::create_dir_all(&w).unwrap();
    let canon = w.canonicalize().unwrap().display().to_string();
    for api in [ApiKind::Vllm, ApiKind::Spear, ApiKind::Sglang] {
        let (a, b) = (mock(api, Arc::default()), mock(api, Arc::default()));
        let pool = EndpointPool::new(options(api, vec![a.url.clone(), b.url.clone()])).unwrap();
        pool.sync_weights(&w, 3).unwrap();
        let expect: Vec<&str> = match api {
            ApiKind::Sglang => vec![
                "POST /pause_generation",
                "POST /update_weights_from_disk",
                "POST /flush_cache",
                "POST /continue_generation",
            ],
            _ => vec![
                "POST /pause?mode=wait",
                "POST /collective_rpc",
                "POST /reset_prefix_cache",
                "POST /resume",
            ],
        };
        for m in [&a, &b] {
            assert_eq!(m.keys(), expect, "{api}");
        }
        // Phase by phase: both servers are paused before either loads.
        let log = pool.admin_log();
        assert_eq!(log.len(), 8);
        assert!(
            log[0].starts_with(&a.url) && log[1].starts_with(&b.url),
            "{log:?}"
        );
        assert!(
            log[1].ends_with(expect[0].split(' ').nth(1).unwrap()),
            "{log:?}"
        );
        match api {
            ApiKind::Sglang => {
                let body = &a.requests("POST /update_weights_from_disk")[0];
                assert_eq!(body["model_path"], json!(canon));
                assert_eq!(body["weight_version"], json!("3"));
            }
            _ => {
                let body = &a.requests("POST /collective_rpc")[0];
                assert_eq!(
                    body,
                    &json!({"method": "reload_weights", "kwargs": {"weights_path": canon}})
                );
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A server whose context is smaller than the policy's positions is refused at start-up,
/// naming the flag; a wrong served model name names `--served-model-name`.
#[test]
fn too_small_context_or_wrong_model_is_refused() {
    let f = Arc::new(Faults::default());
    f.max_model_len.store(256, Ordering::SeqCst);
    let m = mock(ApiKind::Vllm, f);
    let pool = EndpointPool::new(options(ApiKind::Vllm, vec![m.url.clone()])).unwrap();
    let e = pool.check(1024).unwrap_err().to_string();
    assert!(e.contains("--max-model-len 1024"), "{e}");
    assert!(e.contains("context of 256"), "{e}");
    assert!(e.contains("sampling.max_new_tokens"), "{e}");
    pool.check(256).unwrap();
    assert_eq!(pool.max_model_len(), Some(256));

    let mut o = options(ApiKind::Vllm, vec![m.url.clone()]);
    o.model_name = "other".into();
    let e = EndpointPool::new(o)
        .unwrap()
        .check(16)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--served-model-name other"), "{e}");
    assert!(e.contains("rollout.model_name"), "{e}");

    let pool = EndpointPool::new(options(ApiKind::Vllm, vec![dead_url()])).unwrap();
    let e = pool.check(16).unwrap_err().to_string();
    assert!(e.contains("GET /health"), "{e}");
}

/// A server that answers 4xx (the request itself is wrong) stops the run with its message;
/// it is not retried or marked down.
#[test]
fn client_errors_are_not_retried() {
    let m = Mock::start(Arc::new(|_k: &str, _b: &Value| Resp {
        status: 400,
        body: json!({"error": {"message": "This model's maximum context length is 8"}}),
        delay: Duration::ZERO,
    }));
    let pool = EndpointPool::new(options(ApiKind::Vllm, vec![m.url.clone()])).unwrap();
    let e = run(&pool, &[req(3, 1)], &[1], 8).unwrap_err().to_string();
    assert!(
        e.contains("HTTP 400") && e.contains("maximum context length"),
        "{e}"
    );
    assert_eq!(m.requests("POST").len(), 1);
    assert!(pool.down_endpoints().is_empty());
}

/// Engine-level: the weight directory layout and the version the generations carry.
#[test]
fn engine_sync_writes_stable_directories_and_keeps_k() {
    let out = common::tmp("http-engine-sync");
    let cfg = spear::train::config::TrainConfig::default()
        .with_overrides(&[
            "model.hidden_size=16".into(),
            "model.intermediate_size=16".into(),
            "model.num_layers=1".into(),
            "model.num_heads=2".into(),
            "model.num_kv_heads=1".into(),
            "env.household.train_games=4".into(),
            "env.household.eval_games=2".into(),
        ])
        .unwrap();
    let (_suite, policy) = spear::tasks::build(&cfg).unwrap();
    let m = mock(ApiKind::Vllm, Arc::default());
    let pool = EndpointPool::new(options(ApiKind::Vllm, vec![m.url.clone()])).unwrap();
    let engine = HttpEngine::with_pool(pool, out.join("weights"), 2);
    engine.check(&policy, 64).unwrap();
    assert_eq!(engine.version(), None);
    for v in 0..3 {
        assert!(engine.sync(&policy, v).unwrap().is_some());
    }
    // The same version again: nothing written or sent.
    assert!(engine.sync(&policy, 2).unwrap().is_none());
    assert_eq!(m.requests("POST /collective_rpc").len(), 3);
    let w = out.join("weights");
    assert!(!w.join("step_0").exists(), "only the last 2 are kept");
    for v in [1, 2] {
        let d = w.join(format!("step_{v}"));
        for f in [
            "STABLE",
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "generation_config.json",
        ] {
            assert!(d.join(f).is_file(), "{}/{f}", d.display());
        }
    }
    let names: Vec<String> = std::fs::read_dir(&w)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
    // Generations through the sampler carry the version and the policy's decoding.
    use spear::rollout::ChatSampler;
    let s = engine.sampler(&policy);
    assert_eq!(s.policy_version(), Some(2));
    let g = s.generate(&[req(3, 1)], &params(8)).unwrap();
    assert_eq!(g[0].policy_version, Some(2));
    assert_eq!(
        g[0].text,
        policy.tokenizer.decode(&g[0].token_ids, true).unwrap()
    );
    std::fs::remove_dir_all(&out).ok();
}

/// A vLLM mock backed by a real in-process policy: `/collective_rpc reload_weights` loads the
/// HF directory the trainer wrote (`Policy::load`), `/v1/completions` generates with it.
fn policy_backed_vllm() -> Mock {
    let policy: Arc<Mutex<Option<Arc<spear_model::Policy>>>> = Arc::default();
    Mock::start(Arc::new(move |key, body| {
        let path = key.split_once(' ').map(|x| x.1).unwrap_or("");
        let err = |status: u16, m: String| Resp {
            status,
            body: json!({"error": {"message": m}}),
            delay: Duration::ZERO,
        };
        match path {
            "/health" => ok(Value::Null),
            "/v1/models" => ok(json!({"object": "list", "data": [{
                "id": "policy", "object": "model", "max_model_len": 1 << 20}]})),
            "/collective_rpc" => {
                if body["method"] != "reload_weights" {
                    return err(400, format!("unexpected rpc {body}"));
                }
                let dir = body["kwargs"]["weights_path"].as_str().unwrap_or_default();
                if !std::path::Path::new(dir).join("STABLE").is_file() {
                    return err(500, format!("{dir} has no STABLE marker"));
                }
                match spear_model::Policy::load(
                    dir,
                    candle_core::DType::F32,
                    &candle_core::Device::Cpu,
                ) {
                    Ok(p) => {
                        *policy.lock().unwrap() = Some(Arc::new(p));
                        ok(json!({"results": [null]}))
                    }
                    Err(e) => err(500, format!("loading {dir}: {e}")),
                }
            }
            "/v1/completions" => {
                if let Err(e) = check_vllm_body(body) {
                    return err(400, e);
                }
                let Some(p) = policy.lock().unwrap().clone() else {
                    return err(503, "no model loaded yet".into());
                };
                let top_k = body["top_k"].as_i64().unwrap();
                let params = SamplingParams {
                    temperature: body["temperature"].as_f64().unwrap(),
                    top_p: body["top_p"].as_f64().unwrap(),
                    top_k: if top_k < 0 { 0 } else { top_k as usize },
                    max_new_tokens: body["max_tokens"].as_u64().unwrap() as usize,
                    stop_strings: serde_json::from_value(body["stop"].clone()).unwrap(),
                    stop_token_ids: serde_json::from_value(body["stop_token_ids"].clone()).unwrap(),
                    ignore_eos: body["ignore_eos"].as_bool().unwrap_or(false),
                    ..SamplingParams::default()
                };
                let r = GenRequest {
                    prompt_ids: serde_json::from_value(body["prompt"].clone()).unwrap(),
                    seed: body["seed"].as_u64().unwrap(),
                };
                let g = match p.generate(&[r], &params) {
                    Ok(mut g) => g.remove(0),
                    Err(e) => return err(500, e.to_string()),
                };
                let (reason, stop_reason) = match &g.finish {
                    FinishReason::Length => ("length", Value::Null),
                    FinishReason::StopToken(t) => ("stop", json!(t)),
                    FinishReason::StopString(s) => ("stop", json!(s)),
                };
                ok(
                    json!({"id": "cmpl", "object": "text_completion", "model": "policy",
                    "choices": [{"index": 0, "text": g.text, "finish_reason": reason,
                        "stop_reason": stop_reason, "token_ids": g.token_ids,
                        "logprobs": {"token_logprobs": g.logprobs}}],
                    "usage": {}}),
                )
            }
            p if p.starts_with("/pause") || p == "/resume" || p == "/reset_prefix_cache" => {
                ok(json!({}))
            }
            _ => err(404, "Not Found".into()),
        }
    }))
}

/// `spear train --preset household-tiny` for 2 iterations with `rollout.engine = "http"`
/// against a vLLM mock that generates with the weights the trainer synced: the run completes,
/// the servers load version 0 before the first rollout and versions 1, 2 after the updates
/// (pause → reload → reset → resume each time), the sync directory keeps the last 2
/// `step_N/` with `STABLE`, and the episodes record the version that generated them.
#[test]
fn train_two_iterations_on_an_http_engine() {
    let out = common::tmp("http-train");
    let m = policy_backed_vllm();
    let mut c = common::spear();
    c.args(["train", "--preset", "household-tiny"]);
    let mut sets = common::tiny_sets(&out, "h", 2);
    sets.extend([
        "rollout.engine=http".to_string(),
        "rollout.api=vllm".to_string(),
        format!("rollout.endpoints=[\"{}\"]", m.url),
        "rollout.keep_weights=2".to_string(),
    ]);
    for s in &sets {
        c.arg("--set").arg(s);
    }
    let o = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "spear train failed:\n{stderr}");
    assert!(stderr.contains("rollouts on 1 vllm server(s)"), "{stderr}");
    let run = out.join("h");
    assert_eq!(common::lines(&run.join("metrics.jsonl")).len(), 2);

    // Admin calls and generations, in order.
    let keys = m.keys();
    let admin: Vec<&String> = keys
        .iter()
        .filter(|k| !k.contains("/v1/completions") && k.starts_with("POST"))
        .collect();
    let cycle = [
        "POST /pause?mode=wait",
        "POST /collective_rpc",
        "POST /reset_prefix_cache",
        "POST /resume",
    ];
    assert_eq!(admin.len(), 12, "{admin:?}");
    for (i, k) in admin.iter().enumerate() {
        assert_eq!(k.as_str(), cycle[i % 4], "{admin:?}");
    }
    let rpcs = m.requests("POST /collective_rpc");
    for (v, b) in rpcs.iter().enumerate() {
        let p = b["kwargs"]["weights_path"].as_str().unwrap();
        assert!(p.ends_with(&format!("weights/step_{v}")), "{p}");
    }
    // Generations happen after version 0 is loaded and between the syncs.
    let first_gen = keys.iter().position(|k| k.contains("/v1/completions"));
    let first_resume = keys.iter().position(|k| k == "POST /resume");
    assert!(first_gen.unwrap() > first_resume.unwrap(), "{keys:?}");
    assert!(m.requests("POST /v1/completions").len() >= 9);

    // The sync directory: the last 2 versions, complete.
    let w = run.join("weights");
    assert!(!w.join("step_0").exists());
    for v in [1, 2] {
        let d = w.join(format!("step_{v}"));
        assert_eq!(
            std::fs::read_to_string(d.join("STABLE")).unwrap().trim(),
            v.to_string()
        );
        let cfg: Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("config.json")).unwrap()).unwrap();
        assert!(cfg["architectures"].is_array(), "{cfg}");
        assert!(d.join("tokenizer.json").is_file() && d.join("model.safetensors").is_file());
    }
    // Episodes of iteration t were generated by version t - 1.
    for t in [1u64, 2] {
        let eps = common::lines(&run.join(format!("trajectories/iter_{t:06}.jsonl")));
        assert!(!eps.is_empty());
        for e in eps {
            assert_eq!(e["policy_version"], json!(t - 1), "{e}");
        }
    }
    std::fs::remove_dir_all(&out).ok();
}

/// With every endpoint down, `spear train` stops at start-up (before the warm start) with the
/// endpoint and what to do.
#[test]
fn train_refuses_unreachable_servers() {
    let out = common::tmp("http-down");
    let dead = dead_url();
    let mut sets = common::tiny_sets(&out, "d", 1);
    sets.extend([
        "rollout.engine=http".to_string(),
        format!("rollout.endpoints=[\"{dead}\"]"),
    ]);
    let mut c = common::spear();
    c.args(["train", "--preset", "household-tiny"]);
    for s in &sets {
        c.arg("--set").arg(s);
    }
    let o = c.output().unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains(&dead) && e.contains("GET /health"), "{e}");
    // A config without endpoints is refused by the config check, naming the key.
    let o = common::spear()
        .args(["train", "--print-config", "--set", "rollout.engine=http"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("rollout.endpoints"), "{e}");
    std::fs::remove_dir_all(&out).ok();
}
