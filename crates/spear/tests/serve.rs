//! `spear serve` end to end: the real binary on a loopback port, real sockets, the request and
//! response bodies of vLLM 0.32.0 (`vllm/entrypoints/openai/completion/protocol.py`, the dev
//! routes `/pause?mode=`, `/resume`, `/is_paused`, `/collective_rpc`, `/reset_prefix_cache`;
//! shared/docs/scale-out.md §8 lists what was verified against the real server).

mod common;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use spear_model::{Arch, GenRequest, Policy, SamplingParams};

const CORPUS: &[&str] = &[
    "go to the kitchen and take the apple from the table",
    "open the fridge then put the cold apple in the box",
    "look around the room , find a mug , clean it in the sink",
    "you are in the middle of a room . think step by step",
];

/// Positions of the tiny policy: long enough that a long request is still decoding while the
/// test (on a loaded machine) sends the next calls.
const MAX_LEN: usize = 4096;

/// A tiny from-scratch policy (word-level tokenizer) exported as an HF dir `dir/step_<v>`.
fn export_tiny(dir: &Path, seed: u64, version: u64) -> (PathBuf, Policy) {
    let policy = Policy::from_scratch(
        Arch::Qwen2,
        CORPUS,
        |c| c.max_position_embeddings = MAX_LEN,
        seed,
    )
    .unwrap();
    let out = dir.join(format!("step_{version}"));
    spear_model::checkpoint::export_hf(&out, &policy.model, Some(&policy.tokenizer)).unwrap();
    std::fs::write(out.join("STABLE"), b"").unwrap();
    (out, policy)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("spear-serve-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A running `spear serve`, killed on drop.
struct Server {
    child: Child,
    base: String,
    agent: ureq::Agent,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

fn start(args: &[&str]) -> Server {
    let (child, base) = common::spawn_serve(args, Stdio::inherit());
    Server {
        child,
        base,
        agent: agent(),
    }
}

impl Server {
    fn get(&self, path: &str) -> (u16, String) {
        let mut r = self
            .agent
            .get(format!("{}{path}", self.base))
            .call()
            .unwrap();
        let s = r.status().as_u16();
        (s, r.body_mut().read_to_string().unwrap())
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, body.to_string().as_bytes())
    }

    fn post_raw(&self, path: &str, body: &[u8]) -> (u16, Value) {
        let mut r = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json")
            .send(body)
            .unwrap();
        let s = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap();
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text:?}"));
        (s, v)
    }

    fn json(&self, path: &str) -> Value {
        let (s, t) = self.get(path);
        assert_eq!(s, 200, "{path}: {t}");
        serde_json::from_str(&t).unwrap()
    }

    fn metric(&self, name: &str) -> u64 {
        let (s, t) = self.get("/metrics");
        assert_eq!(s, 200);
        t.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {t}"))
    }

    fn reload(&self, dir: &Path) -> (u16, Value) {
        self.post(
            "/collective_rpc",
            &json!({"method": "reload_weights", "kwargs": {"weights_path": dir}}),
        )
    }

    /// Waits until `cond` holds (polling), or panics after a minute.
    fn until(&self, what: &str, cond: impl Fn(&Server) -> bool) {
        let t = Instant::now();
        while !cond(self) {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn completion(prompt: &[u32], max_tokens: usize, temperature: f64, seed: u64) -> Value {
    json!({"model": "policy", "prompt": prompt, "max_tokens": max_tokens,
           "temperature": temperature, "top_p": 1.0, "top_k": -1, "min_p": 0.0,
           "presence_penalty": 0.0, "frequency_penalty": 0.0, "repetition_penalty": 1.0,
           "return_token_ids": true, "logprobs": 0, "skip_special_tokens": false,
           "include_stop_str_in_output": true, "seed": seed, "n": 1})
}

fn ids_of(v: &Value, key: &str) -> Vec<u32> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn logprobs_of(choice: &Value) -> Vec<f32> {
    choice["logprobs"]["token_logprobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// Tokens equal and log-probs within 1e-4 of the in-process `Policy::generate`; returns the
/// largest log-prob difference.
fn assert_matches_in_process(
    policy: &Policy,
    prompt: &[u32],
    params: &SamplingParams,
    seed: u64,
    choice: &Value,
) -> f32 {
    let want = policy
        .generate(
            &[GenRequest {
                prompt_ids: prompt.to_vec(),
                seed,
            }],
            params,
        )
        .unwrap()
        .remove(0);
    assert_eq!(ids_of(choice, "token_ids"), want.token_ids, "seed {seed}");
    assert_eq!(ids_of(choice, "prompt_token_ids"), prompt);
    let got = logprobs_of(choice);
    assert_eq!(got.len(), want.logprobs.len());
    let diff = got
        .iter()
        .zip(&want.logprobs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(diff <= 1e-4, "seed {seed}: log-probs differ by {diff}");
    diff
}

fn params(max: usize, t: f64) -> SamplingParams {
    SamplingParams {
        temperature: t,
        max_new_tokens: max,
        ..Default::default()
    }
}

#[test]
fn no_model_then_reload_then_completion_matches_in_process() {
    let dir = tmp("reload");
    let (step3, original) = export_tiny(&dir, 11, 3);
    let s = start(&[]);
    let h = s.json("/health");
    assert_eq!(h["status"], "no model");
    assert_eq!(s.json("/v1/models")["data"], json!([]));
    let prompt = original.tokenizer.encode("go to the kitchen").unwrap();
    let (st, e) = s.post("/v1/completions", &completion(&prompt, 5, 1.0, 1));
    assert_eq!(st, 503, "{e}");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("reload_weights"));

    // A missing or non-model directory is an error and the server keeps serving.
    let (st, e) = s.reload(&dir.join("missing"));
    assert_eq!(st, 400, "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("missing"),
        "{e}"
    );
    let (st, e) = s.reload(&dir);
    assert_eq!(st, 400, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("config.json"),
        "{e}"
    );
    assert_eq!(s.json("/health")["status"], "no model");

    let (st, r) = s.reload(&step3);
    assert_eq!((st, r), (200, json!({"results": [null]})));
    assert_eq!(s.json("/health")["status"], "ok");
    let models = s.json("/v1/models");
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "policy");
    assert_eq!(models["data"][0]["max_model_len"], MAX_LEN);

    // The exported directory reloads to the same policy (tokenizer included) ...
    let loaded = Policy::load(
        step3.to_str().unwrap(),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert_eq!(
        loaded.tokenizer.encode("go to the kitchen").unwrap(),
        prompt
    );
    assert_eq!(
        loaded.tokenizer.stop_token_ids,
        original.tokenizer.stop_token_ids
    );
    // ... and the server samples what the in-process engine samples, for several seeds and
    // temperatures (one at a time: bit for bit).
    for (seed, t) in [(1u64, 1.0), (2, 0.7), (3, 0.0), (4, 1.3)] {
        let (st, r) = s.post("/v1/completions", &completion(&prompt, 24, t, seed));
        assert_eq!(st, 200, "{r}");
        assert_eq!(r["weight_version"], 3);
        assert_eq!(r["model"], "policy");
        let c = &r["choices"][0];
        assert!(["stop", "length"].contains(&c["finish_reason"].as_str().unwrap()));
        let d = assert_matches_in_process(&original, &prompt, &params(24, t), seed, c);
        assert_eq!(d, 0.0, "a lone request is decoded exactly as in process");
        let n = c["token_ids"].as_array().unwrap().len();
        assert_eq!(r["usage"]["completion_tokens"], n);
    }
    // Same seed, same answer.
    let a = s
        .post("/v1/completions", &completion(&prompt, 24, 1.0, 9))
        .1;
    let b = s
        .post("/v1/completions", &completion(&prompt, 24, 1.0, 9))
        .1;
    assert_eq!(a["choices"][0]["token_ids"], b["choices"][0]["token_ids"]);
    // The server is still alive after everything above.
    assert_eq!(s.json("/health")["status"], "ok");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stop_strings_stop_tokens_and_text_prompts() {
    let dir = tmp("stops");
    let (step, policy) = export_tiny(&dir, 5, 0);
    let s = start(&["--model", step.to_str().unwrap()]);
    let prompt = policy.tokenizer.encode("you are in the middle").unwrap();
    // Find what greedy decoding says, then stop on its third token (id and text).
    let (_, r) = s.post("/v1/completions", &completion(&prompt, 8, 0.0, 0));
    let toks = ids_of(&r["choices"][0], "token_ids");
    assert!(toks.len() >= 3, "{r}");
    let mut body = completion(&prompt, 8, 0.0, 0);
    body["stop_token_ids"] = json!([toks[2]]);
    let (_, r) = s.post("/v1/completions", &body);
    let c = &r["choices"][0];
    let first = toks.iter().position(|&t| t == toks[2]).unwrap();
    assert_eq!(ids_of(c, "token_ids"), toks[..=first].to_vec());
    assert_eq!(c["finish_reason"], "stop");
    assert_eq!(c["stop_reason"], toks[2]);
    let word = policy.tokenizer.decode(&toks[2..3], true).unwrap();
    let mut p = params(8, 0.0);
    p.stop_strings = vec![word.clone()];
    let mut body = completion(&prompt, 8, 0.0, 0);
    body["stop"] = json!([word]);
    let (_, r) = s.post("/v1/completions", &body);
    let c = &r["choices"][0];
    assert_eq!(c["finish_reason"], "stop");
    assert_eq!(c["stop_reason"], json!(word));
    assert_matches_in_process(&policy, &prompt, &p, 0, c);
    assert!(c["text"].as_str().unwrap().ends_with(&word));
    // A text prompt is tokenized with the served tokenizer.
    let mut body = completion(&prompt, 8, 0.0, 0);
    body["prompt"] = json!("you are in the middle");
    let (st, r) = s.post("/v1/completions", &body);
    assert_eq!(st, 200, "{r}");
    assert_eq!(ids_of(&r["choices"][0], "prompt_token_ids"), prompt);
    assert_eq!(ids_of(&r["choices"][0], "token_ids"), toks);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn concurrent_requests_are_all_answered_and_late_ones_join_the_running_batch() {
    let dir = tmp("concurrent");
    let (step, policy) = export_tiny(&dir, 21, 1);
    let s = start(&["--model", step.to_str().unwrap()]);
    let prompts: Vec<Vec<u32>> = CORPUS
        .iter()
        .cycle()
        .take(8)
        .enumerate()
        .map(|(i, c)| {
            let words: Vec<&str> = c.split(' ').take(2 + i).collect();
            policy.tokenizer.encode(&words.join(" ")).unwrap()
        })
        .collect();
    // A long request first; the others arrive while it decodes.
    const LONG: usize = 4000;
    let mut long = completion(&prompts[0], LONG, 1.0, 100);
    long["ignore_eos"] = json!(true);
    let long_thread = {
        let (agent, url) = (s.agent.clone(), format!("{}/v1/completions", s.base));
        std::thread::spawn(move || {
            agent
                .post(url)
                .send_json(long)
                .unwrap()
                .body_mut()
                .read_json::<Value>()
                .unwrap()
        })
    };
    s.until("the long request to decode", |s| {
        s.metric("spear_decode_steps_total") >= 3
    });
    let handles: Vec<_> = (1..8)
        .map(|i| {
            let (agent, url) = (s.agent.clone(), format!("{}/v1/completions", s.base));
            let body = completion(&prompts[i], 12 + i, 0.5 + 0.1 * i as f64, 100 + i as u64);
            std::thread::spawn(move || {
                let mut r = agent.post(url).send_json(body).unwrap();
                assert_eq!(r.status().as_u16(), 200);
                r.body_mut().read_json::<Value>().unwrap()
            })
        })
        .collect();
    let answers: Vec<Value> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    // The short ones joined the batch the long one was decoding (they were sent after it had
    // decoded 3 steps). Whether it is still running once they are answered depends on the
    // machine's speed, so only the join is asserted.
    assert!(
        s.metric("spear_joined_running_batch_total") >= 1,
        "no request joined the running batch"
    );
    assert!(s.metric("spear_max_batch_seen") >= 2);
    let long = long_thread.join().unwrap();
    assert_eq!(long["choices"][0]["finish_reason"], "length");
    assert_eq!(
        long["choices"][0]["token_ids"].as_array().unwrap().len(),
        LONG
    );
    // In a batch the numbers agree with in-process generation up to matmul rounding.
    let mut p0 = params(LONG, 1.0);
    p0.ignore_eos = true;
    let mut worst = assert_matches_in_process(&policy, &prompts[0], &p0, 100, &long["choices"][0]);
    for (i, a) in (1..8).zip(&answers) {
        let d = assert_matches_in_process(
            &policy,
            &prompts[i],
            &params(12 + i, 0.5 + 0.1 * i as f64),
            100 + i as u64,
            &a["choices"][0],
        );
        worst = worst.max(d);
    }
    eprintln!("largest served vs in-process log-prob difference in a batch: {worst:e}");
    assert_eq!(s.metric("spear_completed_total"), 8);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts a long request on its own thread; returns its join handle.
fn spawn_long(s: &Server, prompt: &[u32], max: usize, seed: u64) -> std::thread::JoinHandle<Value> {
    let mut body = completion(prompt, max, 1.0, seed);
    body["ignore_eos"] = json!(true);
    let (agent, url) = (s.agent.clone(), format!("{}/v1/completions", s.base));
    std::thread::spawn(move || {
        agent
            .post(url)
            .send_json(body)
            .unwrap()
            .body_mut()
            .read_json::<Value>()
            .unwrap()
    })
}

#[test]
fn pause_abort_wait_keep_and_resume() {
    let dir = tmp("pause");
    let (step, policy) = export_tiny(&dir, 31, 2);
    let s = start(&["--model", step.to_str().unwrap()]);
    let prompt = policy.tokenizer.encode("open the fridge").unwrap();
    let mut full = params(3000, 1.0);
    full.ignore_eos = true;

    // abort: the in-flight request ends now with what it has.
    let h = spawn_long(&s, &prompt, 3000, 1);
    s.until("decoding", |s| {
        s.metric("spear_running") == 1 && s.metric("spear_decode_steps_total") >= 2
    });
    assert_eq!(s.post("/pause?mode=abort", &json!({})).0, 200);
    assert_eq!(s.json("/is_paused")["is_paused"], true);
    let r = h.join().unwrap();
    let c = &r["choices"][0];
    assert_eq!(c["finish_reason"], "abort");
    let n = c["token_ids"].as_array().unwrap().len();
    assert!(n < 3000, "aborted after {n} tokens");
    // The partial output is a prefix of the full one.
    let want = policy
        .generate(
            &[GenRequest {
                prompt_ids: prompt.clone(),
                seed: 1,
            }],
            &full,
        )
        .unwrap()
        .remove(0);
    assert_eq!(ids_of(c, "token_ids"), want.token_ids[..n].to_vec());
    assert_eq!(s.metric("spear_aborted_total"), 1);

    // Requests sent while paused wait for /resume.
    let h = spawn_long(&s, &prompt, 20, 2);
    s.until("the request to queue", |s| s.metric("spear_waiting") == 1);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!h.is_finished(), "answered while paused");
    assert_eq!(s.metric("spear_running"), 0);
    assert_eq!(s.post("/resume", &json!({})).0, 200);
    assert_eq!(s.json("/is_paused")["is_paused"], false);
    let r = h.join().unwrap();
    assert_eq!(r["choices"][0]["finish_reason"], "length");

    // wait: /pause returns once the in-flight request is done; it is not cut.
    let h = spawn_long(&s, &prompt, 300, 3);
    s.until("decoding", |s| s.metric("spear_running") == 1);
    assert_eq!(s.post("/pause?mode=wait", &json!({})).0, 200);
    assert_eq!(s.metric("spear_running"), 0);
    let r = h.join().unwrap();
    assert_eq!(r["choices"][0]["finish_reason"], "length");
    assert_eq!(r["choices"][0]["token_ids"].as_array().unwrap().len(), 300);
    assert_eq!(s.post("/resume", &json!({})).0, 200);

    // keep: in-flight requests freeze and continue after /resume with the same result.
    let h = spawn_long(&s, &prompt, 3000, 1);
    s.until("decoding", |s| {
        s.metric("spear_running") == 1 && s.metric("spear_decode_steps_total") >= 2
    });
    assert_eq!(s.post("/pause?mode=keep", &json!({})).0, 200);
    let steps = s.metric("spear_decode_steps_total");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        s.metric("spear_decode_steps_total"),
        steps,
        "decoded while paused"
    );
    assert!(!h.is_finished());
    assert_eq!(s.post("/reset_prefix_cache", &json!({})).0, 200);
    assert_eq!(s.post("/resume", &json!({})).0, 200);
    let r = h.join().unwrap();
    assert_eq!(r["choices"][0]["finish_reason"], "length");
    assert_matches_in_process(&policy, &prompt, &full, 1, &r["choices"][0]);
    // Bad modes are refused.
    let (st, e) = s.post("/pause?mode=sleep", &json!({}));
    assert_eq!(st, 400, "{e}");
    assert_eq!(s.json("/is_paused")["is_paused"], false);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reload_moves_log_probs_and_the_old_weights_restore_them() {
    let dir = tmp("versions");
    let (a, pa) = export_tiny(&dir, 41, 1);
    let (b, _) = export_tiny(&dir, 42, 2);
    let s = start(&["--model", a.to_str().unwrap()]);
    let prompt = pa.tokenizer.encode("take the apple").unwrap();
    let ask = || {
        let (st, r) = s.post("/v1/completions", &completion(&prompt, 10, 1.0, 5));
        assert_eq!(st, 200, "{r}");
        r
    };
    let r1 = ask();
    assert_eq!(r1["weight_version"], 1);
    for (path, want) in [(&b, 2), (&a, 1)] {
        assert_eq!(s.post("/pause?mode=wait", &json!({})).0, 200);
        assert_eq!(s.reload(path).0, 200);
        assert_eq!(s.post("/reset_prefix_cache", &json!({})).0, 200);
        assert_eq!(s.post("/resume", &json!({})).0, 200);
        let r = ask();
        assert_eq!(r["weight_version"], want);
        assert_eq!(
            r["choices"][0]["weight_versions"],
            json!([{"weight_version": want, "start": 0, "end": r["choices"][0]["token_ids"].as_array().unwrap().len()}])
        );
        if want == 2 {
            assert_ne!(
                logprobs_of(&r["choices"][0]),
                logprobs_of(&r1["choices"][0])
            );
        } else {
            assert_eq!(
                r["choices"][0], r1["choices"][0],
                "old weights restore the answer"
            );
        }
    }
    // A version in kwargs wins over the directory name.
    let (st, _) = s.post(
        "/collective_rpc",
        &json!({"method": "reload_weights", "kwargs": {"weights_path": b, "weight_version": 7}}),
    );
    assert_eq!(st, 200);
    assert_eq!(ask()["weight_version"], 7);
    assert_eq!(s.json("/weight_info"), json!({"weight_version": 7}));
    // vLLM's relabel call (a string version there).
    let (st, r) = s.post("/update_weight_version", &json!({"new_version": "8"}));
    assert_eq!(st, 200, "{r}");
    assert_eq!(ask()["weight_version"], 8);
    assert_eq!(
        s.post("/update_weight_version", &json!({"new_version": "v8"}))
            .0,
        400
    );
    assert_eq!(s.metric("spear_reloads_total"), 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn malformed_requests_get_json_errors_and_never_kill_the_server() {
    let dir = tmp("malformed");
    let (step, _) = export_tiny(&dir, 51, 0);
    let s = start(&["--model", step.to_str().unwrap(), "--max-model-len", "64"]);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("/v1/completions", b"".to_vec(), 400),
        ("/v1/completions", b"{".to_vec(), 400),
        ("/v1/completions", b"null".to_vec(), 400),
        ("/v1/completions", b"[]".to_vec(), 400),
        ("/v1/completions", b"\xff\xfe\x00".to_vec(), 400),
        (
            "/v1/completions",
            br#"{"prompt": "x", "n": 3}"#.to_vec(),
            400,
        ),
        (
            "/v1/completions",
            br#"{"prompt": [1, 2], "max_tokens": -1}"#.to_vec(),
            400,
        ),
        (
            "/v1/completions",
            br#"{"prompt": [1, 2], "max_tokens": 1e400}"#.to_vec(),
            400,
        ),
        (
            "/v1/completions",
            br#"{"prompt": [99999999]}"#.to_vec(),
            400,
        ),
        (
            "/v1/completions",
            br#"{"prompt": [1], "max_tokens": 100}"#.to_vec(),
            400,
        ),
        (
            "/v1/completions",
            br#"{"prompt": [1], "temperature": -1}"#.to_vec(),
            400,
        ),
        (
            "/v1/completions",
            br#"{"prompt": [1], "stop": [""]}"#.to_vec(),
            400,
        ),
        (
            "/v1/completions",
            br#"{"prompt": [1], "model": "other"}"#.to_vec(),
            404,
        ),
        (
            "/v1/completions",
            br#"{"prompt": [[1], [2]]}"#.to_vec(),
            400,
        ),
        (
            "/collective_rpc",
            br#"{"method": "reload_weights", "kwargs": {"weights_path": 3}}"#.to_vec(),
            400,
        ),
        ("/collective_rpc", br#"{"method": "rm_rf"}"#.to_vec(), 400),
        ("/collective_rpc", b"{{{".to_vec(), 400),
        ("/no/such/route", b"{}".to_vec(), 404),
    ];
    for (path, body, want) in &cases {
        let (st, e) = s.post_raw(path, body);
        assert_eq!(st, *want, "{path} {:?}: {e}", String::from_utf8_lossy(body));
        let err = &e["error"];
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{e}"
        );
        assert_eq!(err["code"], *want);
        assert!(err["type"].is_string());
    }
    // Wrong method.
    let (st, _) = s.get("/v1/completions");
    assert_eq!(st, 405);
    // Fuzz-ish: byte flips and truncations of a valid body (seeded) are 200 or 400, never a
    // crash or a 5xx.
    let valid = completion(&[1, 2, 3], 4, 1.0, 0).to_string().into_bytes();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..150 {
        let mut b = valid.clone();
        if i % 3 == 0 {
            b.truncate((next() as usize) % b.len());
        } else {
            for _ in 0..1 + i % 4 {
                let j = (next() as usize) % b.len();
                b[j] = (next() % 256) as u8;
            }
        }
        let (st, e) = s.post_raw("/v1/completions", &b);
        assert!(
            st == 200 || (400..500).contains(&st),
            "{st}: {e} for {:?}",
            String::from_utf8_lossy(&b)
        );
    }
    assert_eq!(s.json("/health")["status"], "ok");
    let (st, r) = s.post("/v1/completions", &completion(&[1, 2, 3], 4, 1.0, 0));
    assert_eq!(st, 200, "{r}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_non_loopback_host_needs_allow_remote() {
    let out = Command::new(env!("CARGO_BIN_EXE_spear"))
        .args(["serve", "--port", "0", "--host", "0.0.0.0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--allow-remote"), "{err}");
}
