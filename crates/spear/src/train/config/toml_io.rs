//! Reading and editing the config as TOML: errors that keep the file's line and column, keys
//! that earlier versions wrote and nothing reads (dropped with a warning), and `--set`'s
//! dotted-key edits.

use spear_rl::config::ConfigError;

/// Keys that earlier versions wrote to `config.toml` and nothing reads: a file that has them
/// still loads (`--resume`, `--config`); each is dropped with a warning saying why.
pub const IGNORED_KEYS: &[(&str, &str)] = &[(
    "rl.seed",
    "the seed of a run is run.seed (rl.seed was written but never read)",
)];

/// Removes [`IGNORED_KEYS`] from `doc`, warning for each one found; returns the keys removed.
pub(super) fn drop_ignored_keys(doc: &mut toml::Table) -> Vec<&'static str> {
    let mut dropped = vec![];
    for &(key, why) in IGNORED_KEYS {
        let (parent, last) = key.rsplit_once('.').unwrap_or(("", key));
        let mut table = Some(&mut *doc);
        for part in parent.split('.').filter(|p| !p.is_empty()) {
            table = table
                .and_then(|t| t.get_mut(part))
                .and_then(|v| v.as_table_mut());
        }
        if let Some(value) = table.and_then(|t| t.remove(last)) {
            tracing::warn!("config: {key} = {value} is ignored: {why}");
            dropped.push(key);
        }
    }
    dropped
}

/// 1-based line and column (in characters) of byte `offset` in `text`, and the line's text.
fn position(text: &str, offset: usize) -> (usize, usize, &str) {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[..start].matches('\n').count() + 1;
    let column = text[start..offset].chars().count() + 1;
    (line, column, text[start..end].trim_end_matches('\r'))
}

/// `line L, column C:` and, below it, the line with a caret under column C.
fn located(text: &str, offset: usize) -> String {
    let (line, column, src) = position(text, offset);
    let gutter = " ".repeat(line.to_string().len());
    let pad: String = src
        .chars()
        .take(column - 1)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    format!("line {line}, column {column}:\n {gutter} |\n {line} | {src}\n {gutter} | {pad}^")
}

/// A TOML syntax error: what is wrong, then where (line, column, the line itself).
pub(super) fn syntax_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let what = e.message().trim().replace('\n', "; ");
    let message = match e.span() {
        Some(span) => format!("not valid TOML: {what}, at {}", located(text, span.start)),
        None => format!("not valid TOML: {what}"),
    };
    ConfigError::new("(file)", message)
}

/// Adds where `e.key` is in `text` (its line and column, and the line) to the message, when
/// the file spells the key out: the key itself when it is unknown, else its value.
pub(super) fn with_position(text: &str, e: ConfigError) -> ConfigError {
    let at = if e.message.starts_with("unknown field") {
        At::Key
    } else {
        At::Value
    };
    match key_offset(text, &e.key, at) {
        Some(offset) => {
            let message = format!("{}, at {}", e.message, located(text, offset));
            ConfigError::new(e.key, message)
        }
        None => e,
    }
}

/// Which part of a `key = value` line an error points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Key,
    Value,
}

/// Byte offset of the dotted `key` (e.g. `rl.replay.tolerate_steps`) in `text`: of the key, or
/// of its value (a table's value is its header). `None` if the file does not spell the key
/// out (a default, or a key made by `--set`).
fn key_offset(text: &str, key: &str, at: At) -> Option<usize> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut item = doc.as_item();
    let mut offset = None;
    for part in key.split('.') {
        let (k, v) = item.as_table_like()?.get_key_value(part)?;
        let key_at = k.span().map(|s| s.start);
        offset = match at {
            At::Key => key_at,
            At::Value => v.span().map(|s| s.start).or(key_at),
        }
        .or(offset);
        item = v;
    }
    offset
}

/// `eval.splits[1]` → `eval.splits`: errors name the key, not the element.
pub(super) fn without_indices(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut depth = 0usize;
    for c in key.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// `unknown field `x`, expected ...` → `x`.
pub(super) fn unknown_field(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

/// Parses an override value: TOML syntax (`3`, `1e-4`, `true`, `"x"`, `["a","b"]`), else a
/// bare string.
fn parse_value(raw: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// Sets the dotted `key` of `root` to `raw` (`--set key=raw`); unknown keys are errors listing
/// the keys that exist there.
pub(super) fn set_dotted(root: &mut toml::Value, key: &str, raw: &str) -> Result<(), ConfigError> {
    let parts: Vec<&str> = key.split('.').collect();
    let mut cur = root;
    for (i, p) in parts.iter().enumerate() {
        let here = parts[..i].join(".");
        let table = cur
            .as_table_mut()
            .ok_or_else(|| ConfigError::new(key, format!("`{here}` is a value, not a table")))?;
        if !table.contains_key(*p) {
            let known: Vec<&str> = table.keys().map(String::as_str).collect();
            let place = if here.is_empty() {
                "at the top level".to_string()
            } else {
                format!("under `{here}`")
            };
            return Err(ConfigError::new(
                key,
                format!("unknown key; keys {place}: {}", known.join(", ")),
            ));
        }
        if i + 1 == parts.len() {
            let old = &table[*p];
            let mut v = parse_value(raw);
            // `--set run.name=3` means the string "3" where a string is expected.
            if old.is_str() && !v.is_str() {
                v = toml::Value::String(raw.trim_matches('"').to_string());
            }
            // Integers where floats are expected.
            if let (toml::Value::Float(_), toml::Value::Integer(n)) = (old, &v) {
                v = toml::Value::Float(*n as f64);
            }
            table.insert((*p).to_string(), v);
            return Ok(());
        }
        cur = table.get_mut(*p).expect("checked");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters_from_one() {
        let text = "[run]\nname = \"é\" x\n";
        let off = text.find('x').unwrap();
        assert_eq!(position(text, off), (2, 12, "name = \"é\" x"));
        assert_eq!(position(text, 0), (1, 1, "[run]"));
        assert_eq!(position(text, text.len()), (3, 1, ""));
    }

    #[test]
    fn keys_are_found_in_the_file() {
        let text =
            "[run]\niterations = 3\n\n[rl.replay]\ntolerate_steps = 50\n[eval]\nsplits = [\"a\"]\n";
        let at = |k: &str, at| key_offset(text, k, at).map(|o| position(text, o));
        assert_eq!(
            at("run.iterations", At::Key),
            Some((2, 1, "iterations = 3"))
        );
        assert_eq!(
            at("run.iterations", At::Value),
            Some((2, 14, "iterations = 3"))
        );
        assert_eq!(at("rl.replay.tolerate_steps", At::Key).unwrap().0, 5);
        assert_eq!(at("eval.splits", At::Value).unwrap().1, 10);
        assert_eq!(at("model.name", At::Value), None);
        assert_eq!(at("rl.replay.nope", At::Key), None);
    }

    #[test]
    fn ignored_keys_are_dropped() {
        let mut doc: toml::Table =
            toml::from_str("[rl]\nseed = 3\n[rl.replay]\nenabled = true\n").unwrap();
        assert_eq!(drop_ignored_keys(&mut doc), vec!["rl.seed"]);
        assert!(!doc["rl"].as_table().unwrap().contains_key("seed"));
        assert!(drop_ignored_keys(&mut doc).is_empty());
    }
}
