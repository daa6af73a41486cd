//! The config comparison: each run's flattened `config.toml` side by side.

use std::collections::{BTreeMap, BTreeSet};

/// One config key across the runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigRow {
    /// Dotted key (`algorithm.clip_ratio_high`).
    pub key: String,
    /// The value in each run (TOML text), `None` where that run's config lacks the key.
    pub values: Vec<Option<String>>,
    /// Whether the runs that have a config disagree (a key missing from one of them counts
    /// as a difference).
    pub differs: bool,
}

/// Every key of every run's flattened config (sorted), with the runs' values.
///
/// `configs[i]` is `None` when run `i` has no `config.toml`; such a run neither adds nor
/// removes differences (its column shows nothing).
pub fn config_rows(configs: &[Option<BTreeMap<String, String>>]) -> Vec<ConfigRow> {
    let keys: BTreeSet<&String> = configs.iter().flatten().flat_map(|c| c.keys()).collect();
    keys.into_iter()
        .map(|key| {
            let values: Vec<Option<String>> = configs
                .iter()
                .map(|c| c.as_ref().and_then(|c| c.get(key).cloned()))
                .collect();
            let present: Vec<Option<&String>> =
                configs.iter().flatten().map(|c| c.get(key)).collect();
            let differs = present.windows(2).any(|w| w[0] != w[1]);
            ConfigRow {
                key: key.clone(),
                values,
                differs,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn differing_and_missing_keys_are_flagged() {
        let rows = config_rows(&[
            cfg(&[("a", "1"), ("b", "\"x\""), ("only_a", "true")]),
            cfg(&[("a", "1"), ("b", "\"y\"")]),
            None,
        ]);
        let summary: Vec<(&str, bool)> = rows.iter().map(|r| (r.key.as_str(), r.differs)).collect();
        assert_eq!(summary, [("a", false), ("b", true), ("only_a", true)]);
        assert_eq!(rows[2].values, vec![Some("true".to_string()), None, None]);
    }

    #[test]
    fn single_run_has_no_differences() {
        let rows = config_rows(&[cfg(&[("a", "1"), ("b", "2")])]);
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| !r.differs));
    }
}
