//! Flattening of nested records into dotted keys: JSON metrics lines (numeric leaves only) and
//! TOML configs (every leaf, rendered as TOML text).
//!
//! `{"time": {"generate": 1.5}}` becomes `time.generate = 1.5`; a run directory's
//! `metrics.jsonl` may gain fields at any time (`run_dir` module docs), so the report never
//! names them in advance.

use std::collections::BTreeMap;

/// The numeric leaves of a JSON value under dotted keys.
///
/// Objects recurse (`a.b.c`); numbers are kept when finite; booleans, strings, nulls and
/// arrays are skipped (a curve needs one number per iteration).
pub fn flatten_json_numbers(value: &serde_json::Value) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    flatten_json_into(value, String::new(), &mut out);
    out
}

fn flatten_json_into(value: &serde_json::Value, prefix: String, out: &mut BTreeMap<String, f64>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_json_into(v, key, out);
            }
        }
        serde_json::Value::Number(n) => {
            if let Some(x) = n.as_f64().filter(|x| x.is_finite()) {
                if !prefix.is_empty() {
                    out.insert(prefix, x);
                }
            }
        }
        _ => {}
    }
}

/// Every leaf of a TOML document under dotted keys, each value rendered as TOML text
/// (`"grpo"`, `0.2`, `[1, 2]`).
///
/// Tables recurse (`algorithm.clip.low`); arrays of tables are indexed (`tasks[0].name`);
/// other arrays are one leaf. An empty table is kept as the leaf `{}` so that its presence
/// still shows in a diff.
pub fn flatten_toml(table: &toml::Table) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    flatten_table_into(table, "", &mut out);
    out
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn flatten_table_into(table: &toml::Table, prefix: &str, out: &mut BTreeMap<String, String>) {
    for (k, v) in table {
        flatten_toml_value(v, join(prefix, k), out);
    }
}

fn flatten_toml_value(value: &toml::Value, key: String, out: &mut BTreeMap<String, String>) {
    match value {
        toml::Value::Table(t) if t.is_empty() => {
            out.insert(key, "{}".to_string());
        }
        toml::Value::Table(t) => flatten_table_into(t, &key, out),
        toml::Value::Array(items)
            if !items.is_empty() && items.iter().all(|v| matches!(v, toml::Value::Table(_))) =>
        {
            for (i, item) in items.iter().enumerate() {
                flatten_toml_value(item, format!("{key}[{i}]"), out);
            }
        }
        other => {
            out.insert(key, other.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_nested_objects_become_dotted_numeric_keys() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"iteration": 3, "success_rate": 0.25,
                "success_by_type": {"pick_and_place": 0.5, "clean": 0},
                "time": {"generate": 1.5, "deep": {"x": -2e-3}},
                "name": "run", "flag": true, "replay_p50": null, "list": [1, 2]}"#,
        )
        .unwrap();
        let flat = flatten_json_numbers(&v);
        let keys: Vec<&str> = flat.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "iteration",
                "success_by_type.clean",
                "success_by_type.pick_and_place",
                "success_rate",
                "time.deep.x",
                "time.generate",
            ]
        );
        assert_eq!(flat["time.deep.x"], -0.002);
        assert_eq!(flat["success_by_type.clean"], 0.0);
        // a bare number has no key: nothing to plot
        assert!(flatten_json_numbers(&serde_json::json!(5)).is_empty());
    }

    #[test]
    fn toml_tables_become_dotted_keys() {
        let t: toml::Table = toml::from_str(
            r#"
            seed = 1
            name = "tiny"
            [algo]
            kind = "gigpo"
            clip = [0.2, 0.28]
            [algo.spear]
            sil = true
            [empty]
            [[tasks]]
            n = 2
            [[tasks]]
            n = 3
            "#,
        )
        .unwrap();
        let flat = flatten_toml(&t);
        let expect: Vec<(&str, &str)> = vec![
            ("algo.clip", "[0.2, 0.28]"),
            ("algo.kind", "\"gigpo\""),
            ("algo.spear.sil", "true"),
            ("empty", "{}"),
            ("name", "\"tiny\""),
            ("seed", "1"),
            ("tasks[0].n", "2"),
            ("tasks[1].n", "3"),
        ];
        let got: Vec<(&str, &str)> = flat.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, expect);
    }
}
