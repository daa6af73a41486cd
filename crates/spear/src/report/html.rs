//! The page: HTML escaping, embedded JSON, and the sections (run cards, curves, evaluation,
//! config, trajectory viewer). Styles and scripts are inline (`assets/report.css`,
//! `assets/report.js`), so the file opens offline.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::config_diff::{config_rows, ConfigRow};
use super::metrics::{describe, ordered_groups, y_axis};
use super::svg::{run_colour, Chart, Frame, Point, Series, YAxis};
use super::RunData;

const CSS: &str = include_str!("assets/report.css");
const JS: &str = include_str!("assets/report.js");

/// Escapes text for HTML content and attribute values (`& < > " '`).
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON text safe inside `<script type="application/json">`: every `<` is written as the
/// JSON escape `\u003c`, so neither `</script>` nor `<!--` can occur. (`<` appears in JSON
/// only inside strings, where the escape means the same character.)
pub fn json_for_script(value: &serde_json::Value) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|_| "null".to_string())
        .replace('<', "\\u003c")
}

/// A rate as a percentage with one decimal (`0.625` → `62.5 %`).
pub fn fmt_pct(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

/// Seconds as `12.3 s`, `4 min 05 s` or `1 h 02 min`.
pub fn fmt_duration(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.1} s")
    } else if secs < 3600.0 {
        let s = secs.round() as u64;
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        let m = (secs / 60.0).round() as u64;
        format!("{} h {:02} min", m / 60, m % 60)
    }
}

/// Charts accumulate here with their hover data, so ids match the JSON array index.
struct Charts {
    hover: Vec<serde_json::Value>,
}

impl Charts {
    fn figure(&mut self, title: &str, note: Option<&str>, y: YAxis, series: Vec<Series>) -> String {
        let chart = Chart {
            id: self.hover.len(),
            label: title.to_string(),
            y_axis: y,
            series,
            frame: Frame::default(),
        };
        self.hover.push(chart.hover_json());
        let note = note
            .map(|n| format!(r#"<span class="desc">{}</span>"#, escape_html(n)))
            .unwrap_or_default();
        format!(
            r#"<figure class="chart-box"><figcaption><span class="key">{}</span>{note}</figcaption>{}</figure>"#,
            escape_html(title),
            chart.to_svg()
        )
    }
}

/// The whole report page for `runs` (in legend order).
pub fn render_page(runs: &[RunData]) -> String {
    let mut charts = Charts { hover: Vec::new() };
    let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    let title = format!("spear report: {}", names.join(" vs "));
    let mut body = String::new();
    let _ = write!(
        body,
        r##"<header class="top"><div class="title"><h1>spear report</h1><nav><a href="#runs">Runs</a><a href="#curves">Curves</a><a href="#eval">Evaluation</a><a href="#config">Config</a><a href="#trajectories">Trajectories</a></nav></div><div class="legend">{}</div></header><main>"##,
        legend(runs)
    );
    body.push_str(&run_cards(runs));
    body.push_str(&curves_section(runs, &mut charts));
    body.push_str(&eval_section(runs, &mut charts));
    body.push_str(&config_section(runs));
    body.push_str(&trajectory_section(runs));
    body.push_str(r#"</main><footer>Written by <code>spear report</code>; self-contained (no network). Hover a chart for exact values.</footer><div id="tooltip" class="tooltip" hidden></div>"#);

    let runs_json: Vec<serde_json::Value> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| serde_json::json!({"name": r.name, "color": run_colour(i)}))
        .collect();
    let traj_json: Vec<serde_json::Value> = runs
        .iter()
        .map(|r| serde_json::to_value(&r.trajectories).unwrap_or(serde_json::Value::Null))
        .collect();
    let _ = write!(
        body,
        r#"<script type="application/json" id="report-runs">{}</script><script type="application/json" id="chart-data">{}</script><script type="application/json" id="trajectory-data">{}</script><script>{JS}</script>"#,
        json_for_script(&serde_json::json!(runs_json)),
        json_for_script(&serde_json::json!(charts.hover)),
        json_for_script(&serde_json::json!(traj_json)),
    );
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{CSS}</style></head><body>{body}</body></html>\n",
        escape_html(&title)
    )
}

fn swatch(i: usize) -> String {
    format!(
        r#"<span class="swatch" style="background:{}"></span>"#,
        run_colour(i)
    )
}

fn legend(runs: &[RunData]) -> String {
    runs.iter()
        .enumerate()
        .map(|(i, r)| {
            format!(
                r#"<span class="legend-item">{}{}</span>"#,
                swatch(i),
                escape_html(&r.name)
            )
        })
        .collect()
}

fn run_cards(runs: &[RunData]) -> String {
    let mut s = String::from(r#"<section id="runs"><h2>Runs</h2><div class="cards">"#);
    for (i, r) in runs.iter().enumerate() {
        let mut dl = String::new();
        let mut item = |k: &str, v: String| {
            let _ = write!(dl, "<dt>{}</dt><dd>{v}</dd>", escape_html(k));
        };
        item(
            "final success",
            r.last("success_rate")
                .map(|v| format!("<b>{}</b>", fmt_pct(v)))
                .unwrap_or_else(|| "–".into()),
        );
        item(
            "best success",
            r.best("success_rate")
                .map(|(v, it)| format!("{} <small>(iteration {it})</small>", fmt_pct(v)))
                .unwrap_or_else(|| "–".into()),
        );
        let iters = match (r.metrics.first(), r.metrics.last()) {
            (Some(a), Some(b)) => format!(
                "{} <small>({} – {})</small>",
                r.metrics.len(),
                a.iteration,
                b.iteration
            ),
            _ => "0 <small>(metrics.jsonl is empty)</small>".into(),
        };
        item("iterations", iters);
        item(
            "wall time",
            r.wall_seconds()
                .map(fmt_duration)
                .unwrap_or_else(|| "–".into()),
        );
        if let Some(eval) = &r.eval {
            let mut last: BTreeMap<&str, &crate::run_dir::EvalRecord> = BTreeMap::new();
            for e in eval {
                last.insert(&e.split, e);
            }
            for (split, e) in last {
                item(
                    &format!("eval {split}"),
                    format!(
                        r#"{} <small title="95 % Wilson interval, episodes, iteration">[{:.1}, {:.1}] · n = {} · it {}</small>"#,
                        fmt_pct(e.success_rate),
                        e.ci_low * 100.0,
                        e.ci_high * 100.0,
                        e.episodes,
                        e.iteration
                    ),
                );
            }
        }
        if r.replaced_records > 0 {
            item(
                "note",
                format!(
                    "<small>{} repeated record(s) replaced by later ones (resumed run)</small>",
                    r.replaced_records
                ),
            );
        }
        let _ = write!(
            s,
            r#"<div class="card" style="border-top-color:{}"><h3>{}{}</h3><div class="path">{}</div><dl>{dl}</dl></div>"#,
            run_colour(i),
            swatch(i),
            escape_html(&r.name),
            escape_html(&r.dir.root.display().to_string())
        );
    }
    s.push_str("</div></section>");
    s
}

fn curves_section(runs: &[RunData], charts: &mut Charts) -> String {
    let mut s = String::from(concat!(
        r#"<section id="curves"><h2>Training curves</h2>"#,
        r#"<div class="controls"><label>Smoothing (EMA, as TensorBoard) <input type="range" id="smoothing" min="0" max="0.99" step="0.01" value="0"></label> <span id="smoothing-value" class="num">0</span></div>"#,
    ));
    let keys: BTreeSet<String> = runs
        .iter()
        .flat_map(|r| r.metrics.iter().flat_map(|m| m.values.keys().cloned()))
        .collect();
    let groups = ordered_groups(&keys);
    if groups.is_empty() {
        s.push_str(r#"<p class="none">No metrics recorded yet (metrics.jsonl is empty).</p>"#);
    }
    for (group, keys) in groups {
        let _ = write!(s, r#"<h3>{}</h3><div class="grid">"#, escape_html(&group));
        for key in keys {
            let series: Vec<Series> = runs
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    let mut points: Vec<Point> = r
                        .metrics
                        .iter()
                        .filter_map(|m| {
                            m.values.get(&key).map(|y| Point {
                                x: m.iteration,
                                y: *y,
                                band: None,
                            })
                        })
                        .collect();
                    points.sort_by(|a, b| a.x.total_cmp(&b.x));
                    (!points.is_empty()).then(|| Series {
                        run: i,
                        name: r.name.clone(),
                        points,
                    })
                })
                .collect();
            s.push_str(&charts.figure(&key, describe(&key), y_axis(&key), series));
        }
        s.push_str("</div>");
    }
    s.push_str("</section>");
    s
}

fn eval_section(runs: &[RunData], charts: &mut Charts) -> String {
    let mut s = String::from(r#"<section id="eval"><h2>Evaluation</h2>"#);
    let splits: BTreeSet<&str> = runs
        .iter()
        .flat_map(|r| r.eval.iter().flatten().map(|e| e.split.as_str()))
        .collect();
    if splits.is_empty() {
        s.push_str(r#"<p class="none">No evaluation recorded (no eval.jsonl, or it is empty).</p></section>"#);
        return s;
    }
    let missing: Vec<&str> = runs
        .iter()
        .filter(|r| r.eval.is_none())
        .map(|r| r.name.as_str())
        .collect();
    if !missing.is_empty() {
        let _ = write!(
            s,
            r#"<p class="note">No eval.jsonl in: {}.</p>"#,
            escape_html(&missing.join(", "))
        );
    }
    s.push_str(r#"<p class="note">Success rate per split; the band and bars are the 95 % Wilson interval.</p><div class="grid">"#);
    for split in &splits {
        let series: Vec<Series> = runs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let mut points: Vec<Point> = r
                    .eval
                    .iter()
                    .flatten()
                    .filter(|e| e.split == *split)
                    .map(|e| Point {
                        x: e.iteration as f64,
                        y: e.success_rate,
                        band: Some((e.ci_low, e.ci_high)),
                    })
                    .collect();
                points.sort_by(|a, b| a.x.total_cmp(&b.x));
                (!points.is_empty()).then(|| Series {
                    run: i,
                    name: r.name.clone(),
                    points,
                })
            })
            .collect();
        s.push_str(&charts.figure(
            &format!("eval success: {split}"),
            Some("success rate with 95 % Wilson interval"),
            YAxis::AtLeast(0.0, 1.0),
            series,
        ));
    }
    s.push_str("</div>");
    s.push_str(r#"<h3>Last evaluation</h3><table class="data"><thead><tr><th>run</th><th>split</th><th>iteration</th><th>episodes</th><th>success</th><th>95 % CI</th><th>by task type</th></tr></thead><tbody>"#);
    for (i, r) in runs.iter().enumerate() {
        let mut last: BTreeMap<&str, &crate::run_dir::EvalRecord> = BTreeMap::new();
        for e in r.eval.iter().flatten() {
            last.insert(&e.split, e);
        }
        for (split, e) in last {
            let by_type: Vec<String> = e
                .success_by_type
                .iter()
                .map(|(t, v)| {
                    let n = e
                        .episodes_by_type
                        .get(t)
                        .map(|n| format!(" of {n}"))
                        .unwrap_or_default();
                    format!("{} {}{n}", escape_html(t), fmt_pct(*v))
                })
                .collect();
            let _ = write!(
                s,
                "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td><b>{}</b></td><td>[{:.1} %, {:.1} %]</td><td class=\"small\">{}</td></tr>",
                swatch(i),
                escape_html(&r.name),
                escape_html(split),
                e.iteration,
                e.episodes,
                fmt_pct(e.success_rate),
                e.ci_low * 100.0,
                e.ci_high * 100.0,
                by_type.join(" · ")
            );
        }
    }
    s.push_str("</tbody></table></section>");
    s
}

fn config_table(runs: &[RunData], rows: &[&ConfigRow]) -> String {
    let mut s = String::from(r#"<table class="data config"><thead><tr><th>key</th>"#);
    for (i, r) in runs.iter().enumerate() {
        let _ = write!(s, "<th>{}{}</th>", swatch(i), escape_html(&r.name));
    }
    s.push_str("</tr></thead><tbody>");
    for row in rows {
        let _ = write!(
            s,
            r#"<tr{}><td class="key">{}</td>"#,
            if row.differs {
                r#" class="differs""#
            } else {
                ""
            },
            escape_html(&row.key)
        );
        for v in &row.values {
            match v {
                Some(v) => {
                    let _ = write!(s, "<td><code>{}</code></td>", escape_html(v));
                }
                None => s.push_str(r#"<td class="absent">—</td>"#),
            }
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

fn config_section(runs: &[RunData]) -> String {
    let mut s = String::from(r#"<section id="config"><h2>Config</h2>"#);
    let configs: Vec<Option<BTreeMap<String, String>>> =
        runs.iter().map(|r| r.config.clone()).collect();
    let missing: Vec<&str> = runs
        .iter()
        .filter(|r| r.config.is_none())
        .map(|r| r.name.as_str())
        .collect();
    if !missing.is_empty() {
        let _ = write!(
            s,
            r#"<p class="note">No config.toml in: {}.</p>"#,
            escape_html(&missing.join(", "))
        );
    }
    let rows = config_rows(&configs);
    if rows.is_empty() {
        s.push_str(r#"<p class="none">No config recorded.</p></section>"#);
        return s;
    }
    let all: Vec<&ConfigRow> = rows.iter().collect();
    let with_config = configs.iter().filter(|c| c.is_some()).count();
    if with_config > 1 {
        let differing: Vec<&ConfigRow> = rows.iter().filter(|r| r.differs).collect();
        if differing.is_empty() {
            let _ = write!(
                s,
                r#"<p class="note">The configs are identical ({} keys).</p>"#,
                rows.len()
            );
        } else {
            let _ = write!(
                s,
                r#"<p class="note">{} of {} keys differ.</p>{}"#,
                differing.len(),
                rows.len(),
                config_table(runs, &differing)
            );
        }
    }
    let _ = write!(
        s,
        r#"<details class="all-config"><summary>All {} keys</summary>{}</details></section>"#,
        rows.len(),
        config_table(runs, &all)
    );
    s
}

fn trajectory_section(runs: &[RunData]) -> String {
    let mut s = String::from(r#"<section id="trajectories"><h2>Trajectories</h2>"#);
    let any = runs
        .iter()
        .any(|r| r.trajectories.as_ref().is_some_and(|t| !t.files.is_empty()));
    let missing: Vec<&str> = runs
        .iter()
        .filter(|r| r.trajectories.as_ref().is_none_or(|t| t.files.is_empty()))
        .map(|r| r.name.as_str())
        .collect();
    if !any {
        s.push_str(r#"<p class="none">No trajectories recorded (no trajectories/iter_*.jsonl files).</p></section>"#);
        return s;
    }
    if !missing.is_empty() {
        let _ = write!(
            s,
            r#"<p class="note">No trajectories recorded in: {}.</p>"#,
            escape_html(&missing.join(", "))
        );
    }
    for r in runs {
        if let Some(t) = &r.trajectories {
            for n in &t.notes {
                let _ = write!(
                    s,
                    r#"<p class="note">{}: {}.</p>"#,
                    escape_html(&r.name),
                    escape_html(n)
                );
            }
        }
    }
    s.push_str(concat!(
        r#"<div id="viewer" class="viewer"><div class="controls">"#,
        r#"<label>Run <select id="tv-run"></select></label>"#,
        r#"<label>Iteration <select id="tv-iter"></select></label>"#,
        r#"<label>Task type <select id="tv-type"></select></label>"#,
        r#"<label>Task <select id="tv-task"></select></label>"#,
        r#"<label>Outcome <select id="tv-outcome"><option value="all">all</option><option value="won">won</option><option value="lost">lost</option></select></label>"#,
        r#"<span id="tv-count" class="count"></span></div>"#,
        r#"<div class="tv-body"><div class="tv-list"><table class="data episodes"><thead><tr><th>#</th><th>task</th><th>type</th><th>goal</th><th>won</th><th>reward</th><th>score</th><th>turns</th></tr></thead><tbody id="tv-episodes"></tbody></table></div>"#,
        r#"<div id="tv-episode" class="tv-episode"></div></div></div>"#,
        r#"<noscript><p class="none">The trajectory viewer needs JavaScript.</p></noscript></section>"#,
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            escape_html(r#"<b a="1">Tom & 'Jerry'</b>"#),
            "&lt;b a=&quot;1&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/b&gt;"
        );
        assert_eq!(escape_html("plain ü"), "plain ü");
    }

    #[test]
    fn script_json_cannot_close_the_script() {
        let v = serde_json::json!({"obs": "</script><script>alert(1)</script><!-- x"});
        let s = json_for_script(&v);
        assert!(!s.contains('<'), "{s}");
        // and it still parses back to the same text
        let back: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_pct(0.625), "62.5 %");
        assert_eq!(fmt_duration(12.34), "12.3 s");
        // 245 s = 4 min 05 s
        assert_eq!(fmt_duration(245.0), "4 min 05 s");
        // 3725 s = 62.08 min → 62 min = 1 h 02 min
        assert_eq!(fmt_duration(3725.0), "1 h 02 min");
    }
}
