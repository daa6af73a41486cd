//! Property-based fuzz targets (docs/fuzzing.md): the action projection and the trainer's TOML
//! config loader must not panic on any input.
//!
//! Inputs: random strings and bytes; structure-aware mutations of valid inputs (a
//! `<think>…</think><action>…</action>` reply with spliced tags, case changes and CJK; every
//! preset's TOML with lines replaced, deleted or spliced, and `--set` overrides with random
//! values). CI runs `FUZZ_CASES` cases per target; `PROPTEST_CASES=100000` runs the long
//! campaign.

use proptest::prelude::*;
use spear::agent::projection::{project, ProjectionRules};
use spear::train::config::TrainConfig;
use spear::train::presets::{preset, PRESETS};

const FUZZ_CASES: u32 = 256;

fn config(default: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = default;
    }
    c
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(any::<u8>(), 0..400)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

type Edit = (f64, usize, String);

fn edits(tokens: &'static [&'static str]) -> impl Strategy<Value = Vec<Edit>> {
    let token = prop_oneof![
        3 => prop::sample::select(tokens).prop_map(str::to_string),
        1 => any::<String>(),
    ];
    prop::collection::vec((0.0f64..1.0, 0usize..10, token), 0..8)
}

fn splice(base: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = base.chars().collect();
    for (at, del, ins) in edits {
        let i = ((*at * chars.len() as f64) as usize).min(chars.len());
        let j = (i + del).min(chars.len());
        chars.splice(i..j, ins.chars());
    }
    chars.into_iter().collect()
}

const REPLY_TOKENS: &[&str] = &[
    "<think>",
    "</think>",
    "<action>",
    "</action>",
    "<ACTION>",
    "</Action>",
    "<THINK>",
    "中",
    "\u{9fff}",
    "\u{4e00}",
    "İ",
    "ẞ",
    "\u{130}",
    " ",
    "\n",
    "<",
    ">",
    "/",
];

fn check_projection(text: &str) -> Result<(), TestCaseError> {
    for rules in [ProjectionRules::Household, ProjectionRules::Webshop] {
        let p = project(text, rules);
        if p.valid {
            prop_assert!(text.contains("<think>") && text.contains("</think>"));
        } else if !text.to_lowercase().contains("<action>") {
            prop_assert!(p.action.chars().count() <= rules.fallback_chars());
        }
    }
    Ok(())
}

/// A random TOML value, plausible or not.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|x| x.to_string()),
        (0i64..10).prop_map(|x| x.to_string()),
        any::<f64>().prop_map(|x| format!("{x:?}")),
        prop::sample::select(&["nan", "inf", "-inf", "-0.0", "1e308", "true", "false"][..])
            .prop_map(str::to_string),
        "[a-z_]{0,8}".prop_map(|s| format!("\"{s}\"")),
        Just("[]".to_string()),
        Just("[1, \"x\"]".to_string()),
        Just("{ a = 1 }".to_string()),
        "[a-z_]{1,8}",
    ]
}

/// One change to a preset's TOML text.
#[derive(Debug, Clone)]
enum TomlEdit {
    /// Replace the value of the i-th `key = value` line.
    Value(prop::sample::Index, String),
    /// Delete a line.
    Delete(prop::sample::Index),
    /// Splice tokens into the text.
    Splice(Vec<Edit>),
}

const TOML_TOKENS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "=",
    "\"",
    "'",
    "\n",
    "#",
    ".",
    "[run]",
    "[env]",
    "[rl.replay]",
    "{",
    "}",
    ",",
    "\"\"\"",
    "\\",
    "x = 1\n",
];

fn toml_edit() -> impl Strategy<Value = TomlEdit> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), toml_value()).prop_map(|(i, v)| TomlEdit::Value(i, v)),
        1 => any::<prop::sample::Index>().prop_map(TomlEdit::Delete),
        1 => edits(TOML_TOKENS).prop_map(TomlEdit::Splice),
    ]
}

fn apply(text: &str, e: &TomlEdit) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    match e {
        TomlEdit::Value(i, v) => {
            let keyed: Vec<usize> = (0..lines.len())
                .filter(|&k| lines[k].contains(" = "))
                .collect();
            if !keyed.is_empty() {
                let k = keyed[i.index(keyed.len())];
                let key = lines[k].split(" = ").next().unwrap_or("").to_string();
                lines[k] = format!("{key} = {v}");
            }
            lines.join("\n")
        }
        TomlEdit::Delete(i) => {
            if !lines.is_empty() {
                let k = i.index(lines.len());
                lines.remove(k);
            }
            lines.join("\n")
        }
        TomlEdit::Splice(s) => splice(text, s),
    }
}

/// The dotted keys of a preset, for `--set` overrides.
fn dotted_keys(v: &toml::Value, prefix: &str, out: &mut Vec<String>) {
    if let toml::Value::Table(t) = v {
        for (k, x) in t {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match x {
                toml::Value::Table(_) => dotted_keys(x, &key, out),
                _ => out.push(key),
            }
        }
    }
}

proptest! {
    #![proptest_config(config(FUZZ_CASES))]

    #[test]
    fn projection_random(text in any_text()) {
        check_projection(&text)?;
    }

    #[test]
    fn projection_mutated(e in edits(REPLY_TOKENS)) {
        let base = "<think>the mug is on the desk</think><action>take mug 1 from desk 1</action>";
        check_projection(&splice(base, &e))?;
    }

    #[test]
    fn toml_config_random(text in any_text()) {
        let _ = TrainConfig::from_toml_str(&text);
    }

    #[test]
    fn toml_config_mutated_presets(
        name in prop::sample::select(PRESETS.iter().map(|p| p.name).collect::<Vec<_>>()),
        e in prop::collection::vec(toml_edit(), 1..4),
    ) {
        let mut text = preset(name).expect("preset").to_toml_string();
        for x in &e {
            text = apply(&text, x);
        }
        let _ = TrainConfig::from_toml_str(&text);
    }

    #[test]
    fn config_overrides(
        name in prop::sample::select(PRESETS.iter().map(|p| p.name).collect::<Vec<_>>()),
        sets in prop::collection::vec((any::<prop::sample::Index>(), toml_value()), 1..4),
    ) {
        let cfg = preset(name).expect("preset");
        let value = toml::Value::try_from(&cfg).expect("serialises");
        let mut keys = Vec::new();
        dotted_keys(&value, "", &mut keys);
        let sets: Vec<String> = sets
            .iter()
            .map(|(i, v)| format!("{}={v}", keys[i.index(keys.len())]))
            .collect();
        let _ = cfg.with_overrides(&sets);
    }
}
