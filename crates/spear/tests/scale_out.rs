//! Scale-out end to end with real processes and sockets: two `spear serve` started without a
//! model, and `spear train` (the orchestrator and trainer) sending every rollout to them through
//! the HTTP engine (`rollout.engine = "http"`, `rollout.api = "spear"`). The servers get the
//! policy from the trainer's first weight sync and a new one after every update; the trainer
//! recomputes the behaviour log-probs, so the mismatch metrics compare the servers with the
//! trainer. Killing one server mid-run makes the pool route around it; with every server down
//! the run fails with an error that names them (and keeps its completed iterations).

mod common;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{lines, spear, tiny_sets, tmp};

/// A running `spear serve` (no model), killed on drop.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Server {
    let (child, base) = common::spawn_serve(&[], Stdio::null());
    Server { child, base }
}

impl Server {
    /// A counter of the server's `/metrics`.
    fn metric(&self, name: &str) -> u64 {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let text = agent
            .get(format!("{}/metrics", self.base))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    }
}

/// Waits until `metrics` holds one iteration (the run is past its first weight sync).
fn wait_for_iteration(child: &mut Child, metrics: &Path) {
    let t = Instant::now();
    while std::fs::read_to_string(metrics).map_or(0, |s| s.lines().count()) < 1 {
        assert!(
            t.elapsed() < Duration::from_secs(600),
            "no iteration finished in 10 minutes"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("spear train ended early: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn http_sets(out: &Path, name: &str, iterations: u64, servers: &[&str]) -> Vec<String> {
    let mut s = tiny_sets(out, name, iterations);
    let list: Vec<String> = servers.iter().map(|b| format!("{b:?}")).collect();
    s.push("rollout.engine=\"http\"".into());
    s.push("rollout.api=\"spear\"".into());
    s.push(format!("rollout.endpoints=[{}]", list.join(", ")));
    s.push("rollout.request_timeout_s=120".into());
    s.push("rollout.max_retries=2".into());
    s
}

fn train(sets: &[String]) -> Command {
    let mut c = spear();
    c.arg("train");
    for s in sets {
        c.arg("--set").arg(s);
    }
    c
}

#[test]
fn two_servers_serve_the_rollouts_and_agree_with_the_trainer() {
    let out = tmp("two-servers");
    let (a, b) = (start_server(), start_server());
    let o = train(&http_sets(&out, "run", 2, &[&a.base, &b.base]))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "spear train failed:\n{stderr}");
    let m = lines(&out.join("run/metrics.jsonl"));
    assert_eq!(m.len(), 2, "{m:?}");
    for x in &m {
        let d = x["rollout_logprob_abs_diff_max"].as_f64().unwrap();
        assert!(
            d < 1e-4,
            "served and recomputed log-probs differ by {d}: {x}"
        );
        assert_eq!(
            x["rollout_ratio_outside_frac"].as_f64().unwrap(),
            0.0,
            "{x}"
        );
    }
    // Both servers took requests and every weight sync (version 0 before the first rollout,
    // then one per update).
    for s in [&a, &b] {
        assert!(
            s.metric("spear_requests_total") > 0,
            "{} served nothing",
            s.base
        );
        assert!(s.metric("spear_reloads_total") >= 2, "{}", s.base);
    }
    let weights = out.join("run/weights");
    let mut steps: Vec<String> = std::fs::read_dir(&weights)
        .unwrap_or_else(|e| panic!("{}: {e}", weights.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("step_"))
        .collect();
    steps.sort();
    assert!(!steps.is_empty());
    let last = weights.join(steps.last().unwrap());
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "STABLE",
    ] {
        assert!(last.join(f).is_file(), "{} lacks {f}", last.display());
    }
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn a_server_killed_mid_run_is_routed_around_and_none_left_is_a_clear_error() {
    let out = tmp("kill-server");
    let (mut a, b) = (start_server(), start_server());
    let mut child = train(&http_sets(&out, "run", 4, &[&a.base, &b.base]))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let metrics = out.join("run/metrics.jsonl");
    wait_for_iteration(&mut child, &metrics);
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success(),
        "the run did not survive losing one of two servers:\n{stderr}"
    );
    assert_eq!(lines(&metrics).len(), 4);
    assert!(b.metric("spear_requests_total") > 0);

    // The last server goes down mid-run too: a clear error naming it, no panic, and the
    // run keeps its completed iterations (resumable once a server is back).
    let mut child = train(&http_sets(&out, "alone", 4, &[&b.base]))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let metrics = out.join("alone/metrics.jsonl");
    wait_for_iteration(&mut child, &metrics);
    let url = b.base.clone();
    drop(b);
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains(&url),
        "the error should name the endpoint:\n{stderr}"
    );
    assert!(!lines(&metrics).is_empty());
    std::fs::remove_dir_all(&out).ok();
}
