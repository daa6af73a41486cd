//! `spear report` end to end on synthetic run directories: the file, its contents, the
//! default output paths, the errors, and a headless Chromium render (no console errors,
//! the trajectory viewer filled in by the page's script).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use spear::run_dir::{EpisodeRecord, EvalRecord, IterationMetrics, PhaseTimes, RunDir, TurnRecord};

/// A fresh temporary directory for one test.
fn temp_dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("spear-report-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_jsonl<T: serde::Serialize>(path: &Path, records: &[T]) {
    let text: String = records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    std::fs::write(path, text).unwrap();
}

/// Text that would break the page if it were not escaped.
const HOSTILE: &str = "</script><script>alert('x')</script><!-- & <b>bold</b>";

/// The thinking of the first turn of the first episode of iteration `it` of run `name`.
fn first_thought(name: &str, it: u64) -> String {
    format!("{name} at iteration {it}: the mug is probably in cabinet 2")
}

/// Writes a synthetic run: `iterations` lines of metrics (success rising towards `final`),
/// an eval every 5 iterations on two splits, trajectories every 5 iterations (and the first),
/// and a config whose `algorithm.adv_estimator` is `estimator`.
fn synthetic_run(root: &Path, name: &str, estimator: &str, lr: f64, final_rate: f64) -> PathBuf {
    let iterations = 20u64;
    let dir = root.join(name);
    let rd = RunDir::new(&dir);
    std::fs::create_dir_all(rd.trajectories_dir()).unwrap();
    std::fs::write(
        rd.config(),
        format!(
            "seed = 7\nname = \"{name}\"\n\n[algorithm]\nadv_estimator = \"{estimator}\"\nclip_ratio_high = 0.28\n\n[optim]\nlr = {lr}\n\n[env]\nmax_turns = 30\ntask_types = [\"pick_and_place\", \"clean\"]\n"
        ),
    )
    .unwrap();
    let mut metrics = Vec::new();
    for t in 1..=iterations {
        let frac = t as f64 / iterations as f64;
        let wiggle = 0.05 * ((t as f64) * 1.7).sin();
        let sr = (0.1 + (final_rate - 0.1) * frac + wiggle).clamp(0.0, 1.0);
        let m = IterationMetrics {
            iteration: t,
            success_rate: sr,
            success_by_type: [
                ("pick_and_place".to_string(), (sr + 0.1).min(1.0)),
                ("clean".to_string(), (sr - 0.1).max(0.0)),
            ]
            .into_iter()
            .collect(),
            episode_reward: sr * 10.0,
            episode_length: 30.0 - 15.0 * sr,
            score: sr * 10.0 - 0.5,
            entropy: 1.2 - 0.5 * frac,
            approx_kl: 0.002 + 0.001 * wiggle,
            clip_frac: 0.01 + 0.1 * wiggle.abs(),
            clip_cov_frac: 0.002,
            toolcall_coef: 1.0 - frac,
            sil_weight: frac,
            buffer_samples: 64 * t,
            replay_samples: if t % 2 == 0 { 32 } else { 0 },
            replay_p50: (t % 2 == 0).then_some(0.4),
            gen_tokens_per_s: 1500.0 + 10.0 * t as f64,
            rollout_logprob_abs_diff_mean: 1e-3 * frac,
            rollout_logprob_abs_diff_max: 2e-2 * frac,
            time: PhaseTimes {
                generate: 20.0,
                env: 2.0,
                update: 10.0,
                total: 33.0,
                ..Default::default()
            },
            elapsed: 33.0 * t as f64,
            ..Default::default()
        };
        // an extra field the report has never heard of must still be plotted
        let mut v = serde_json::to_value(&m).unwrap();
        v["custom_metric"] = serde_json::json!(t as f64 * 0.5);
        metrics.push(v);
    }
    write_jsonl(&rd.metrics(), &metrics);
    let mut eval = Vec::new();
    for t in (0..=iterations).step_by(5) {
        for (split, shift) in [("valid_seen", 0.0), ("valid_unseen", -0.1)] {
            let n = 32u64;
            let k = ((0.1 + (final_rate - 0.1) * t as f64 / 20.0 + shift).max(0.0) * n as f64)
                .round() as u64;
            let (lo, hi) = spear::run_dir::wilson_interval(k, n);
            eval.push(EvalRecord {
                iteration: t,
                split: split.into(),
                episodes: n,
                success_rate: k as f64 / n as f64,
                ci_low: lo,
                ci_high: hi,
                ..Default::default()
            });
        }
    }
    write_jsonl(&rd.eval(), &eval);
    for t in [1u64, 5, 10, 15, 20] {
        let episodes: Vec<EpisodeRecord> = (0..6u64)
            .map(|e| {
                let won = (e + t) % 3 == 0;
                let turns = (0..3)
                    .map(|k| TurnRecord {
                        prompt: format!(
                            "You are an expert agent operating in the ALFRED Embodied Environment.\nYour task is to: put a clean mug in coffeemachine.\nTurn {k}."
                        ),
                        response: format!(
                            "<think>{}</think><action>go to cabinet {}</action>",
                            if e == 0 && k == 0 {
                                first_thought(name, t)
                            } else {
                                format!("step {k} of episode {e}")
                            },
                            k + 1
                        ),
                        action: format!("go to cabinet {}", k + 1),
                        valid: k != 1 || e % 2 == 0,
                        observation: if k == 2 {
                            format!("You arrive at cabinet 3. {HOSTILE}")
                        } else {
                            format!("You arrive at cabinet {}. The cabinet is closed.", k + 1)
                        },
                        reward: if won && k == 2 { 10.0 } else { 0.0 },
                        advantage: (k != 1).then_some(if won { 0.8 } else { -0.4 }),
                        masked: k == 1 && e == 1,
                    })
                    .collect();
                EpisodeRecord {
                    iteration: t,
                    task: 100 + e / 2,
                    task_type: if e % 2 == 0 { "pick_and_place" } else { "clean" }.into(),
                    goal: format!("put a clean mug in coffeemachine (task {})", 100 + e / 2),
                    group: e / 2,
                    traj: e,
                    won,
                    episode_reward: if won { 10.0 } else { 0.0 },
                    score: if won { 10.0 } else { -0.3 },
                    task_score: None,
                    policy_version: None,
                    turns,
                }
            })
            .collect();
        write_jsonl(&rd.trajectories(t), &episodes);
    }
    dir
}

fn spear(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spear"))
        .arg("report")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run spear")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "spear report failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn err(out: &Output) -> String {
    assert!(!out.status.success(), "spear report should have failed");
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Two synthetic runs (`grpo`, `spear`) under `<tmp>/runs` and their report.
fn two_run_report(test: &str) -> (PathBuf, PathBuf) {
    let tmp = temp_dir(test);
    let runs = tmp.join("runs");
    synthetic_run(&runs, "grpo", "grpo", 1e-6, 0.55);
    synthetic_run(&runs, "spear", "gigpo", 2e-6, 0.8);
    let out = tmp.join("out/report.html");
    let stdout = ok(&spear(
        &["runs/grpo", "runs/spear", "--out", "out/report.html"],
        &tmp,
    ));
    assert!(stdout.contains("out/report.html"), "{stdout}");
    (tmp, out)
}

#[test]
fn two_runs_make_one_self_contained_page() {
    let (tmp, out) = two_run_report("two");
    let html = std::fs::read_to_string(&out).expect("report written");
    assert!(html.starts_with("<!DOCTYPE html>"));
    for needle in [
        "grpo",
        "spear",
        "<svg",
        // every known metric group and the unknown field
        ">success_rate<",
        ">success_by_type.pick_and_place<",
        ">time.generate<",
        ">clip_cov_frac<",
        ">rollout_logprob_abs_diff_mean<",
        "Rollout engine: log-prob mismatch",
        ">custom_metric<",
        // eval charts per split
        "eval success: valid_seen",
        "eval success: valid_unseen",
        r#"class="band""#,
        // the differing config keys; identical ones only in the full table
        "algorithm.adv_estimator",
        "optim.lr",
        "3 of 7 keys differ",
        r#"id="trajectory-data""#,
    ] {
        assert!(html.contains(needle), "report lacks {needle:?}");
    }
    // no external resource of any kind
    assert!(!html.contains("http://"), "report references http://");
    assert!(!html.contains("https://"), "report references https://");
    assert!(!html.contains("<link"));
    assert!(!html.contains("src="));
    // hostile text from the files is escaped: the only </script> are our 4 script tags
    assert_eq!(html.matches("</script>").count(), 4);
    assert!(!html.contains("alert('x')</script>"));
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn default_output_paths() {
    let tmp = temp_dir("default");
    let runs = tmp.join("runs");
    synthetic_run(&runs, "a", "grpo", 1e-6, 0.5);
    synthetic_run(&runs, "b", "gigpo", 1e-6, 0.6);
    let stdout = ok(&spear(&["runs/a"], &tmp));
    assert!(runs.join("a/report.html").is_file());
    assert!(stdout.contains("runs/a/report.html"), "{stdout}");
    let stdout = ok(&spear(&["runs/a", "runs/b"], &tmp));
    assert!(runs.join("report-a-vs-b.html").is_file());
    assert!(stdout.contains("runs/report-a-vs-b.html"), "{stdout}");
    // one run: no diff table, all keys in a collapsed <details>
    let html = std::fs::read_to_string(runs.join("a/report.html")).unwrap();
    assert!(html.contains("<summary>All 7 keys</summary>"));
    assert!(!html.contains("keys differ"));
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn missing_optional_parts_say_none_recorded() {
    let tmp = temp_dir("optional");
    let dir = tmp.join("bare");
    std::fs::create_dir_all(&dir).unwrap();
    // iteration 2 written twice, as a resume after a kill may do: the later line wins
    std::fs::write(
        dir.join("metrics.jsonl"),
        "{\"iteration\": 1, \"success_rate\": 0.5}\n{\"iteration\": 2, \"success_rate\": 0.1}\n{\"iteration\": 2, \"success_rate\": 0.75}\n",
    )
    .unwrap();
    ok(&spear(&["bare"], &tmp));
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("1 repeated record(s) replaced by later ones"));
    assert!(html.contains("<dt>final success</dt><dd><b>75.0 %</b>"));
    assert!(html.contains("<dt>iterations</dt><dd>2 "));
    // the page without viewer, eval or config renders without script errors
    let (_, stderr) = chromium(
        &dir.join("report.html"),
        &tmp.join("chromium-profile"),
        &["--dump-dom".into()],
    );
    let errors = page_errors(&stderr);
    assert!(errors.is_empty(), "console errors:\n{}", errors.join("\n"));
    assert!(html.contains("No evaluation recorded"));
    assert!(html.contains("No trajectories recorded"));
    assert!(html.contains("No config recorded"));
    assert!(html.contains(">success_rate<"));
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn bad_inputs_are_clear_errors() {
    let tmp = temp_dir("errors");
    // no such directory
    let e = err(&spear(&["runs/nope"], &tmp));
    assert!(e.contains("runs/nope") && e.contains("spear train"), "{e}");
    // a directory without metrics.jsonl
    std::fs::create_dir_all(tmp.join("runs/empty")).unwrap();
    let e = err(&spear(&["runs/empty"], &tmp));
    assert!(
        e.contains("runs/empty/metrics.jsonl") && e.contains("spear train"),
        "{e}"
    );
    // a malformed metrics line names file and line
    let runs = tmp.join("runs");
    let dir = synthetic_run(&runs, "broken", "grpo", 1e-6, 0.5);
    let m = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let mut lines: Vec<&str> = m.lines().collect();
    lines[2] = "{\"iteration\": 3, oops";
    std::fs::write(dir.join("metrics.jsonl"), lines.join("\n")).unwrap();
    let e = err(&spear(&["runs/broken"], &tmp));
    assert!(e.contains("metrics.jsonl:3"), "{e}");
    // a malformed eval line
    std::fs::write(dir.join("metrics.jsonl"), &m).unwrap();
    std::fs::write(dir.join("eval.jsonl"), "{\"iteration\": 0}\nnot json\n").unwrap();
    let e = err(&spear(&["runs/broken"], &tmp));
    assert!(e.contains("eval.jsonl:2"), "{e}");
    // a malformed trajectory line
    std::fs::remove_file(dir.join("eval.jsonl")).unwrap();
    std::fs::write(dir.join("trajectories/iter_000005.jsonl"), "{\"won\": 3}\n").unwrap();
    let e = err(&spear(&["runs/broken"], &tmp));
    assert!(e.contains("iter_000005.jsonl:1"), "{e}");
    // invalid TOML names the file
    std::fs::remove_dir_all(dir.join("trajectories")).unwrap();
    std::fs::write(dir.join("config.toml"), "seed = = 1\n").unwrap();
    let e = err(&spear(&["runs/broken"], &tmp));
    assert!(
        e.contains("config.toml") && e.contains("invalid TOML"),
        "{e}"
    );
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// NaN and ±Infinity (as Python's `json` writes them) and values at the edge of f64 are read,
/// left out of the charts as gaps, and never written into the SVG as NaN/inf coordinates.
#[test]
fn non_finite_and_huge_values_leave_gaps_not_nan_coordinates() {
    let tmp = temp_dir("nonfinite");
    let runs = tmp.join("runs");
    let dir = synthetic_run(&runs, "wild", "grpo", 1e-6, 0.5);
    let m = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let mut lines: Vec<String> = m.lines().map(String::from).collect();
    lines[1] = r#"{"iteration": 2, "grad_norm": NaN, "pg_loss": Infinity, "entropy": -Infinity, "note": "NaN in a string stays"}"#.into();
    lines[2] =
        r#"{"iteration": 3, "grad_norm": 1.7e308, "pg_loss": -1.7e308, "entropy": 1e-320}"#.into();
    std::fs::write(dir.join("metrics.jsonl"), lines.join("\n")).unwrap();
    let out = tmp.join("r.html");
    ok(&spear(&["runs/wild", "--out", "r.html"], &tmp));
    let html = std::fs::read_to_string(&out).unwrap();
    for bad in ["NaN", "inf\"", "=\"inf", "-inf"] {
        let svg_attrs: Vec<&str> = html
            .match_indices(bad)
            .map(|(i, _)| &html[i.saturating_sub(40)..(i + 40).min(html.len())])
            .filter(|ctx| ctx.contains("=\"") && !ctx.contains("NaN in a string"))
            .collect();
        assert!(svg_attrs.is_empty(), "{bad} in the page: {svg_attrs:?}");
    }
    assert!(html.contains("grad_norm"));
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn trajectory_caps_are_stated_in_the_page() {
    let tmp = temp_dir("caps");
    synthetic_run(&tmp, "r", "grpo", 1e-6, 0.5);
    ok(&spear(
        &["r", "--max-trajectory-files", "2", "--max-episodes", "4"],
        &tmp,
    ));
    let html = std::fs::read_to_string(tmp.join("r/report.html")).unwrap();
    assert!(
        html.contains("2 of 5 iteration files kept (evenly spaced, first and last included)"),
        "caps not stated"
    );
    assert!(html.contains("at most the first 4 episodes of each iteration file kept"));
    // the first and the last iteration are the two kept
    let data = embedded_json(&html, "trajectory-data");
    let its: Vec<u64> = data[0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["iteration"].as_u64().unwrap())
        .collect();
    assert_eq!(its, [1, 20]);
    assert_eq!(data[0]["files"][0]["episodes"].as_array().unwrap().len(), 4);
    assert_eq!(data[0]["files"][0]["total"], 6);
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// The JSON of `<script type="application/json" id="{id}">`.
fn embedded_json(html: &str, id: &str) -> serde_json::Value {
    let start_tag = format!(r#"<script type="application/json" id="{id}">"#);
    let start = html.find(&start_tag).expect("script block") + start_tag.len();
    let end = start + html[start..].find("</script>").unwrap();
    serde_json::from_str(&html[start..end]).expect("valid JSON")
}

#[test]
fn embedded_trajectory_json_round_trips_hostile_text() {
    let (tmp, out) = two_run_report("json");
    let html = std::fs::read_to_string(&out).unwrap();
    let data = embedded_json(&html, "trajectory-data");
    let turn = &data[0]["files"][0]["episodes"][0]["turns"][0];
    assert_eq!(turn["think"], first_thought("grpo", 1));
    let obs = data[0]["files"][0]["episodes"][0]["turns"][2]["observation"]
        .as_str()
        .unwrap();
    assert!(obs.ends_with(HOSTILE), "{obs}");
    std::fs::remove_dir_all(&tmp).unwrap();
}

const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs headless Chromium on `page` with `extra` arguments; returns (stdout, stderr).
fn chromium(page: &Path, profile: &Path, extra: &[String]) -> (String, String) {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} not found: the report render test needs Chromium; install it with \
         `sudo apt-get install -y chromium` (Debian package)"
    );
    let out = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.canonicalize().unwrap().display()))
        .output()
        .expect("run chromium");
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The page's console messages and uncaught errors in Chromium's log.
fn page_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect()
}

#[test]
fn renders_in_headless_chromium_without_console_errors() {
    let (tmp, out) = two_run_report("chromium");
    let profile = tmp.join("chromium-profile");
    // The check itself must be able to fail: a page with a script error is reported.
    let broken = tmp.join("broken.html");
    std::fs::write(
        &broken,
        "<!DOCTYPE html><html><body><p>x</p><script>undefinedFunction();</script></body></html>",
    )
    .unwrap();
    let (_, stderr) = chromium(&broken, &profile, &["--dump-dom".into()]);
    assert!(
        page_errors(&stderr)
            .iter()
            .any(|l| l.contains("undefinedFunction")),
        "Chromium did not report the deliberate script error; its log:\n{stderr}"
    );

    let (dom, stderr) = chromium(&out, &profile, &["--dump-dom".into()]);
    let errors = page_errors(&stderr);
    assert!(errors.is_empty(), "console errors:\n{}", errors.join("\n"));
    // the viewer's script filled in the episode list of the last iteration of the first run
    // (6 rows) and the first episode's turns
    assert_eq!(
        dom.matches("data-episode=").count(),
        6,
        "episode list not rendered"
    );
    assert!(
        dom.contains(r#"<span class="turn-n">Turn 1</span>"#),
        "turns not rendered"
    );
    assert_eq!(dom.matches(r#"<div class="turn "#).count(), 3);
    assert!(
        dom.contains(&first_thought("grpo", 20)),
        "thinking not shown"
    );
    assert!(dom.contains("go to cabinet 1"));
    assert!(
        dom.contains(r#"<option value="4">iteration 20 (2/6 won)</option>"#),
        "{}",
        &dom[dom.find("tv-iter").unwrap_or(0)..][..400]
    );
    // the hostile observation is text, not markup
    assert!(dom.contains("&lt;/script&gt;&lt;script&gt;alert"));
    // hovering the first chart (success_rate, iterations 1..20) shows a tooltip with both
    // runs' values at the nearest iteration: the plot spans x 56..464 of the 480-wide viewBox,
    // so x = 250 is iteration 1 + (250 − 56)/408 · 19 = 10.03, nearest 10
    let hover = tmp.join("hover.html");
    let html = std::fs::read_to_string(&out).unwrap();
    let probe = r#"<script>(function () {
        var svg = document.querySelector('svg.chart');
        var r = svg.getBoundingClientRect();
        svg.dispatchEvent(new MouseEvent('mousemove', {bubbles: true,
            clientX: r.left + r.width * 250 / 480, clientY: r.top + r.height / 2}));
    })();</script></body>"#;
    std::fs::write(&hover, html.replacen("</body>", probe, 1)).unwrap();
    let (dom, stderr) = chromium(&hover, &profile, &["--dump-dom".into()]);
    let errors = page_errors(&stderr);
    assert!(errors.is_empty(), "console errors:\n{}", errors.join("\n"));
    // smoothing 0.9: each training curve gets a smoothed copy of its line, the raw one fades
    let probe = r#"<script>(function () {
        var s = document.getElementById('smoothing');
        s.value = '0.9';
        s.dispatchEvent(new Event('input'));
    })();</script></body>"#;
    std::fs::write(&hover, html.replacen("</body>", probe, 1)).unwrap();
    let (smoothed, stderr) = chromium(&hover, &profile, &["--dump-dom".into()]);
    let errors = page_errors(&stderr);
    assert!(errors.is_empty(), "console errors:\n{}", errors.join("\n"));
    let curves = &smoothed[..smoothed.find(r#"id="eval""#).unwrap()];
    let raw = curves.matches(r#"class="line faded""#).count();
    assert!(raw > 20, "{raw} faded lines");
    assert_eq!(curves.matches(r#"class="line smooth""#).count(), raw);
    assert!(smoothed.contains(r#"<span id="smoothing-value" class="num">0.90</span>"#));
    let tip_at = dom.find(r#"id="tooltip""#).expect("tooltip element");
    let tip = &dom[tip_at..][..dom[tip_at..].find("</div></div>").unwrap_or(600).min(2000)];
    assert!(!tip.contains("hidden"), "tooltip not shown: {tip}");
    assert!(tip.contains("iteration 10<"), "{tip}");
    assert!(tip.contains(">grpo<") && tip.contains(">spear<"), "{tip}");
    // filtering by task: task 101 holds episodes 2 and 3 (task = 100 + e/2) of the 6
    let probe = r#"<script>(function () {
        var t = document.getElementById('tv-task');
        t.value = '101';
        t.dispatchEvent(new Event('change'));
    })();</script></body>"#;
    std::fs::write(&hover, html.replacen("</body>", probe, 1)).unwrap();
    let (filtered, stderr) = chromium(&hover, &profile, &["--dump-dom".into()]);
    let errors = page_errors(&stderr);
    assert!(errors.is_empty(), "console errors:\n{}", errors.join("\n"));
    assert_eq!(filtered.matches("data-episode=").count(), 2);
    assert!(filtered.contains(r#"<option value="101">task 101 (pick_and_place)</option>"#));
    assert!(filtered.contains("2 of 6 episodes"));
    // a screenshot renders
    let png = tmp.join("report.png");
    let (_, stderr) = chromium(
        &out,
        &profile,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1400,2400".into(),
            "--hide-scrollbars".into(),
        ],
    );
    let errors = page_errors(&stderr);
    assert!(errors.is_empty(), "console errors:\n{}", errors.join("\n"));
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000);
    std::fs::remove_dir_all(&tmp).unwrap();
}
