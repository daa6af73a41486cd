//! Text tokenizers: HF `tokenizer.json` directories, byte-level BPE built from GGUF metadata, and a
//! word-level tokenizer built from a corpus (for small from-scratch policies).
//!
//! Tokenizers are built as HF `tokenizer.json` documents and parsed by the `tokenizers` crate, so
//! what we build is exactly what `save_hf` writes and transformers loads.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use serde_json::{json, Value};

use crate::error::{ModelError, Result};

/// The default ChatML chat template (used when a model ships none).
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// A tokenizer plus the special tokens and chat template of its model.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    /// Beginning-of-sequence token text, if the model has one.
    pub bos_token: Option<String>,
    /// End-of-sequence token text.
    pub eos_token: Option<String>,
    /// Padding token text.
    pub pad_token: Option<String>,
    /// Token ids that end generation (eos plus e.g. `<|im_end|>`, `<|endoftext|>`).
    pub stop_token_ids: Vec<u32>,
    /// The Jinja chat template.
    pub chat_template: Option<String>,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("eos_token", &self.eos_token)
            .field("stop_token_ids", &self.stop_token_ids)
            .finish()
    }
}

fn tok_err(context: &str, e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer {
        context: context.to_string(),
        reason: e.to_string(),
    }
}

/// Text of a token entry in `tokenizer_config.json` (a string or `{"content": ...}`).
fn token_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => m.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

fn added_token(id: u32, content: &str) -> Value {
    json!({"id": id, "content": content, "single_word": false, "lstrip": false,
           "rstrip": false, "normalized": false, "special": true})
}

impl TextTokenizer {
    /// Wraps a parsed `tokenizers::Tokenizer`.
    pub fn from_tokenizer(inner: tokenizers::Tokenizer) -> Self {
        TextTokenizer {
            inner,
            bos_token: None,
            eos_token: None,
            pad_token: None,
            stop_token_ids: vec![],
            chat_template: None,
        }
    }

    /// Parses a `tokenizer.json` document.
    pub fn from_json_str(json: &str, context: &str) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_str(json).map_err(|e| tok_err(context, e))?;
        Ok(Self::from_tokenizer(inner))
    }

    /// Loads `tokenizer.json` and (if present) `tokenizer_config.json` and
    /// `generation_config.json` from an HF model directory.
    pub fn from_hf_dir(dir: &Path) -> Result<Self> {
        let tj = dir.join("tokenizer.json");
        let text = std::fs::read_to_string(&tj).map_err(|e| ModelError::io(&tj, e))?;
        let mut t = Self::from_json_str(&text, &tj.display().to_string())?;
        let read_json = |name: &str| -> Result<Option<Value>> {
            let p = dir.join(name);
            if !p.exists() {
                return Ok(None);
            }
            let s = std::fs::read_to_string(&p).map_err(|e| ModelError::io(&p, e))?;
            serde_json::from_str(&s)
                .map(Some)
                .map_err(|e| ModelError::Json { path: p, source: e })
        };
        if let Some(cfg) = read_json("tokenizer_config.json")? {
            t.bos_token = token_text(cfg.get("bos_token"));
            t.eos_token = token_text(cfg.get("eos_token"));
            t.pad_token = token_text(cfg.get("pad_token"));
            t.chat_template = match cfg.get("chat_template") {
                Some(Value::String(s)) => Some(s.clone()),
                // A list of named templates: take "default".
                Some(Value::Array(a)) => a
                    .iter()
                    .find(|x| x.get("name").and_then(Value::as_str) == Some("default"))
                    .or_else(|| a.first())
                    .and_then(|x| x.get("template"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                _ => None,
            };
        }
        if t.chat_template.is_none() {
            let p = dir.join("chat_template.jinja");
            if p.exists() {
                t.chat_template =
                    Some(std::fs::read_to_string(&p).map_err(|e| ModelError::io(&p, e))?);
            }
        }
        let mut stops = vec![];
        if let Some(e) = t.eos_token.as_deref().and_then(|e| t.token_id(e)) {
            stops.push(e);
        }
        for name in ["generation_config.json", "config.json"] {
            if let Some(g) = read_json(name)? {
                match g.get("eos_token_id") {
                    Some(Value::Number(n)) => stops.extend(n.as_u64().map(|x| x as u32)),
                    Some(Value::Array(a)) => {
                        stops.extend(a.iter().filter_map(Value::as_u64).map(|x| x as u32))
                    }
                    _ => {}
                }
            }
        }
        t.set_stop_tokens(stops);
        Ok(t)
    }

    /// Sets the stop tokens (deduplicated, order kept); ChatML's `<|im_end|>` is added when the
    /// vocabulary has it and the chat template uses it.
    pub fn set_stop_tokens(&mut self, ids: Vec<u32>) {
        let mut out: Vec<u32> = vec![];
        let im_end = self
            .chat_template
            .as_deref()
            .filter(|t| t.contains("<|im_end|>"))
            .and_then(|_| self.token_id("<|im_end|>"));
        for id in ids.into_iter().chain(im_end) {
            if !out.contains(&id) {
                out.push(id);
            }
        }
        self.stop_token_ids = out;
    }

    /// A byte-level BPE tokenizer from GGUF metadata (`tokenizer.ggml.*`).
    ///
    /// Tokens of type 3 (control) become special added tokens. The pre-tokenizer follows
    /// `tokenizer.ggml.pre`: `qwen2` uses Qwen's split regex, everything else (SmolLM2's
    /// `smollm`, `gpt2`, ...) individual digits then GPT-2 byte-level splitting.
    pub fn from_gguf_metadata(
        tokens: &[String],
        merges: &[String],
        token_types: &[i32],
        pre: &str,
        bos_id: Option<u32>,
        eos_id: Option<u32>,
        chat_template: Option<String>,
    ) -> Result<Self> {
        let vocab: BTreeMap<&str, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i as u32))
            .collect();
        let added: Vec<Value> = tokens
            .iter()
            .enumerate()
            .filter(|(i, _)| token_types.get(*i) == Some(&3))
            .map(|(i, t)| added_token(i as u32, t))
            .collect();
        let pre_tokenizer = if pre == "qwen2" {
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
                 "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}]})
        } else {
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}]})
        };
        let doc = json!({
            "version": "1.0", "truncation": null, "padding": null,
            "added_tokens": added, "normalizer": null,
            "pre_tokenizer": pre_tokenizer,
            "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {"type": "BPE", "dropout": null, "unk_token": null,
                      "continuing_subword_prefix": null, "end_of_word_suffix": null,
                      "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": vocab, "merges": merges}
        });
        let mut t = Self::from_json_str(&doc.to_string(), "GGUF tokenizer metadata")?;
        let text_of = |id: Option<u32>| id.and_then(|i| tokens.get(i as usize).cloned());
        t.bos_token = text_of(bos_id);
        t.eos_token = text_of(eos_id);
        t.chat_template = chat_template;
        t.set_stop_tokens(eos_id.into_iter().collect());
        Ok(t)
    }

    /// A word-level tokenizer from a corpus: words and punctuation runs (split as `\w+|[^\w\s]+`)
    /// seen at least `min_count` times, most frequent first (ties alphabetical), after the special
    /// tokens `<pad>`, `<unk>`, `<|im_start|>`, `<|im_end|>` and `extra_special`. ChatML template,
    /// `<|im_end|>` is the eos token. Decoding joins words with single spaces.
    pub fn word_level(corpus: &[&str], min_count: usize, extra_special: &[&str]) -> Result<Self> {
        Self::word_level_with(corpus, min_count, extra_special, false)
    }

    /// [`TextTokenizer::word_level`] that also keeps every whitespace character as a token of
    /// its own and decodes by concatenation, so `decode(encode(s)) == s` for text made of
    /// vocabulary words: `search[long battery]` comes back unchanged instead of
    /// `search [ long battery ]`. Sequences are about twice as long.
    pub fn word_level_exact(
        corpus: &[&str],
        min_count: usize,
        extra_special: &[&str],
    ) -> Result<Self> {
        Self::word_level_with(corpus, min_count, extra_special, true)
    }

    fn word_level_with(
        corpus: &[&str],
        min_count: usize,
        extra_special: &[&str],
        keep_spaces: bool,
    ) -> Result<Self> {
        let mut specials: Vec<&str> = vec!["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"];
        specials.extend_from_slice(extra_special);
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for doc in corpus {
            // Special tokens in the corpus are not words.
            let mut text = doc.to_string();
            for s in &specials {
                text = text.replace(s, " ");
            }
            for w in split_words(&text) {
                *counts.entry(w.to_string()).or_default() += 1;
            }
        }
        // Newline is a word of its own so chat transcripts keep their structure.
        counts.entry("\n".into()).or_insert(min_count.max(1));
        if keep_spaces {
            for w in [" ", "\t"] {
                counts.entry(w.into()).or_insert(min_count.max(1));
            }
        }
        let mut words: Vec<(String, usize)> = counts
            .into_iter()
            .filter(|(_, c)| *c >= min_count)
            .collect();
        words.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut vocab: BTreeMap<String, u32> = BTreeMap::new();
        for s in &specials {
            let id = vocab.len() as u32;
            vocab.insert(s.to_string(), id);
        }
        for (w, _) in words {
            if !vocab.contains_key(&w) {
                let id = vocab.len() as u32;
                vocab.insert(w, id);
            }
        }
        let added: Vec<Value> = specials
            .iter()
            .enumerate()
            .map(|(i, s)| added_token(i as u32, s))
            .collect();
        let doc = if keep_spaces {
            json!({
                "version": "1.0", "truncation": null, "padding": null,
                "added_tokens": added, "normalizer": null,
                // Words, punctuation runs and each whitespace character; decoding fuses them.
                "pre_tokenizer": {"type": "Split",
                    "pattern": {"Regex": "\\w+|[^\\w\\s]+|\\s"},
                    "behavior": "Isolated", "invert": false},
                "post_processor": null, "decoder": {"type": "Fuse"},
                "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
            })
        } else {
            json!({
                "version": "1.0", "truncation": null, "padding": null,
                "added_tokens": added, "normalizer": null,
                // Drop spaces (a Split that keeps its delimiters would turn every space into
                // `<unk>`), then cut the rest into words, punctuation runs and newlines.
                "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                    {"type": "Split", "pattern": {"Regex": "[^\\S\\n]+"},
                     "behavior": "Removed", "invert": false},
                    {"type": "Split", "pattern": {"Regex": "\\w+|[^\\w\\s]+|\\n"},
                     "behavior": "Isolated", "invert": false}]},
                "post_processor": null, "decoder": null,
                "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
            })
        };
        let mut t = Self::from_json_str(&doc.to_string(), "word-level tokenizer")?;
        t.eos_token = Some("<|im_end|>".into());
        t.pad_token = Some("<pad>".into());
        t.chat_template = Some(CHATML_TEMPLATE.to_string());
        t.set_stop_tokens(vec![3]);
        Ok(t)
    }

    /// Encodes text (special tokens written in the text are recognised).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| tok_err("encode", e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Decodes ids; `skip_special` drops special tokens from the text.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| tok_err("decode", e))
    }

    /// The id of a token string.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// A short fingerprint of the vocabulary, `SIZE:HASH` (64-bit FNV-1a over the tokens in id
    /// order, added tokens included). Two tokenizers with the same fingerprint map every token to
    /// the same id; checkpoints record it so that weights are never paired with a vocabulary
    /// other than the one they were trained on (a tiny policy's vocabulary is built from the
    /// run's text, so different settings can give the same size but other ids).
    pub fn fingerprint(&self) -> String {
        let mut entries: Vec<(u32, String)> = self
            .inner
            .get_vocab(true)
            .into_iter()
            .map(|(t, id)| (id, t))
            .collect();
        entries.sort();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (id, t) in &entries {
            for b in id
                .to_le_bytes()
                .iter()
                .chain(t.as_bytes())
                .chain(std::iter::once(&0xffu8))
            {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        format!("{}:{h:016x}", entries.len())
    }

    /// Id used to pad batches (pad, else eos, else 0).
    pub fn pad_id(&self) -> u32 {
        self.pad_token
            .as_deref()
            .or(self.eos_token.as_deref())
            .and_then(|t| self.token_id(t))
            .unwrap_or(0)
    }

    /// The wrapped `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Writes `tokenizer.json` and `tokenizer_config.json` into `dir`.
    pub fn save_hf(&self, dir: &Path) -> Result<()> {
        let tj = dir.join("tokenizer.json");
        self.inner
            .save(&tj, true)
            .map_err(|e| tok_err(&format!("saving {}", tj.display()), e))?;
        let mut cfg = json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "clean_up_tokenization_spaces": false,
            "model_max_length": 131072,
        });
        let obj = cfg.as_object_mut().expect("object literal");
        for (k, v) in [
            ("bos_token", &self.bos_token),
            ("eos_token", &self.eos_token),
            ("pad_token", &self.pad_token),
        ] {
            obj.insert(k.into(), v.clone().map_or(Value::Null, Value::String));
        }
        if let Some(t) = &self.chat_template {
            obj.insert("chat_template".into(), Value::String(t.clone()));
        }
        let p = dir.join("tokenizer_config.json");
        let text = serde_json::to_string_pretty(&cfg).expect("json");
        std::fs::write(&p, text).map_err(|e| ModelError::io(&p, e))
    }
}

fn split_words(s: &str) -> Vec<&str> {
    // Mirrors the pre-tokenizer regex `\w+|[^\w\s]+|\n`.
    let mut out = vec![];
    let mut start = None;
    let mut kind = 0u8; // 1 word, 2 punct
    let cls = |c: char| {
        if c.is_alphanumeric() || c == '_' {
            1
        } else if c.is_whitespace() {
            0
        } else {
            2
        }
    };
    for (i, c) in s.char_indices() {
        let k = cls(c);
        if start.is_some() && k != kind {
            out.push(&s[start.unwrap()..i]);
            start = None;
        }
        if c == '\n' {
            out.push("\n");
        } else if k != 0 && start.is_none() {
            start = Some(i);
            kind = k;
        }
    }
    if let Some(st) = start {
        out.push(&s[st..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_tells_vocabularies_with_other_ids_apart() {
        let a = TextTokenizer::word_level(&["go north. go south!", "take key"], 1, &[]).unwrap();
        let again =
            TextTokenizer::word_level(&["go north. go south!", "take key"], 1, &[]).unwrap();
        assert_eq!(a.fingerprint(), again.fingerprint());
        // The same words with other frequencies: same size, other ids.
        let b = TextTokenizer::word_level(&["take take key. go north south !"], 1, &[]).unwrap();
        assert_eq!(a.vocab_size(), b.vocab_size());
        assert_ne!(a.token_id("go"), b.token_id("go"));
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert!(a.fingerprint().starts_with(&format!("{}:", a.vocab_size())));
        // Checkpoints store it: the function must not change between versions.
        assert_eq!(a.fingerprint(), "12:90933bc7aa6ca36a");
    }

    #[test]
    fn word_level_round_trip_and_order() {
        let t = TextTokenizer::word_level(&["go north. go south!", "take key"], 1, &[]).unwrap();
        // Specials 0..3; "go" (2 occurrences) first, then ties alphabetical: "!", ".", "\n",
        // "key", "north", "south", "take".
        assert_eq!(t.token_id("go"), Some(4));
        let ids = t.encode("<|im_start|>go north<|im_end|>").unwrap();
        assert_eq!(ids[0], 2);
        assert_eq!(*ids.last().unwrap(), 3);
        assert_eq!(t.decode(&ids, true).unwrap(), "go north");
        let unk = t.encode("fly").unwrap();
        assert_eq!(unk, vec![1]);
        // Spaces separate words and are not tokens (no `<unk>` between words).
        let ids = t.encode("take  key\ngo north.").unwrap();
        assert_eq!(ids.len(), 6, "{ids:?}");
        assert!(!ids.contains(&1), "{ids:?}");
        assert_eq!(t.decode(&ids, false).unwrap(), "take key \n go north .");
        assert_eq!(t.stop_token_ids, vec![3]);
        assert_eq!(t.pad_id(), 0);
    }

    #[test]
    fn word_level_exact_keeps_spacing() {
        let t = TextTokenizer::word_level_exact(
            &["search[long battery] click[buy now]"],
            1,
            &["<action>", "</action>"],
        )
        .unwrap();
        for text in [
            "search[long battery]",
            "<action>click[buy now]</action>",
            "click[buy now]\n\tsearch[battery]",
        ] {
            let ids = t.encode(text).unwrap();
            assert_eq!(t.decode(&ids, false).unwrap(), text);
        }
        // One token per space: "search[long battery]" = search, [, long, " ", battery, ].
        assert_eq!(t.encode("search[long battery]").unwrap().len(), 6);
        // The plain word-level tokenizer spaces every token apart.
        let w = TextTokenizer::word_level(&["search[long battery]"], 1, &[]).unwrap();
        let ids = w.encode("search[long battery]").unwrap();
        assert_eq!(w.decode(&ids, false).unwrap(), "search [ long battery ]");
    }

    #[test]
    fn word_level_saves_and_reloads_as_hf_dir() {
        let dir = std::env::temp_dir().join(format!("spear-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t = TextTokenizer::word_level(&["a b c a"], 1, &["<action>"]).unwrap();
        t.save_hf(&dir).unwrap();
        let u = TextTokenizer::from_hf_dir(&dir).unwrap();
        assert_eq!(
            u.encode("a <action> c").unwrap(),
            t.encode("a <action> c").unwrap()
        );
        assert_eq!(u.chat_template, t.chat_template);
        assert_eq!(u.stop_token_ids, vec![3]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn byte_level_bpe_from_metadata() {
        // Byte-level alphabet for "ab" plus a merge, and a control token.
        let tokens: Vec<String> = ["a", "b", "ab", "Ġ", "<|im_end|>"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let merges = vec!["a b".to_string()];
        let t = TextTokenizer::from_gguf_metadata(
            &tokens,
            &merges,
            &[1, 1, 1, 1, 3],
            "smollm",
            None,
            Some(4),
            Some(CHATML_TEMPLATE.into()),
        )
        .unwrap();
        assert_eq!(t.encode("ab<|im_end|>").unwrap(), vec![2, 4]);
        assert_eq!(t.decode(&[2, 4], true).unwrap(), "ab");
        assert_eq!(t.stop_token_ids, vec![4]);
    }
}
