//! Incremental stop-string detection for the sampler.
//!
//! Decoding the whole response after every token costs O(n) per step (O(n²) per sequence). The
//! scanner decodes only a short tail window of tokens, the way vLLM's incremental detokenizer
//! does: `prefix_offset..read_offset` are the tokens whose text is already committed (decoded
//! again only as context, so decoders that strip a leading space or merge bytes across tokens
//! still give the right new text), and `read_offset..` are the new tokens. Text that ends in an
//! incomplete UTF-8 sequence (`U+FFFD`) is searched but not committed until it completes.
//! Only the last `longest stop - 1` bytes of committed text plus the new text are searched, so
//! a stop string spanning token boundaries is caught at the same step as a full decode would.

use crate::error::Result;

/// Finds stop strings in a growing token sequence, one new token at a time.
#[derive(Debug, Clone)]
pub struct StopScanner {
    stops: Vec<String>,
    longest: usize,
    text: String,
    prefix_offset: usize,
    read_offset: usize,
}

/// A stop string found in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopHit {
    /// Byte index just after the stop string in the decoded text.
    pub end: usize,
    /// Which stop string.
    pub stop: String,
}

impl StopScanner {
    /// A scanner for `stops` (non-empty strings).
    pub fn new(stops: &[String]) -> Self {
        StopScanner {
            stops: stops.to_vec(),
            longest: stops.iter().map(String::len).max().unwrap_or(0),
            text: String::new(),
            prefix_offset: 0,
            read_offset: 0,
        }
    }

    /// The committed text so far (the decoded tokens up to the last complete character).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Checks the text after `tokens` grew (by one or more tokens) with `decode`. Returns the
    /// earliest stop string of the decoded text if there is one (stop strings already present
    /// before this call were reported by an earlier call).
    pub fn push<F>(&mut self, tokens: &[u32], decode: F) -> Result<Option<StopHit>>
    where
        F: Fn(&[u32]) -> Result<String>,
    {
        if self.stops.is_empty() || tokens.len() <= self.read_offset {
            return Ok(None);
        }
        let prefix = decode(&tokens[self.prefix_offset..self.read_offset])?;
        let full = decode(&tokens[self.prefix_offset..])?;
        // Decoders give the same leading text for both windows, so the new text is the tail.
        let Some(new) = full
            .get(prefix.len()..)
            .filter(|_| full.starts_with(&prefix))
        else {
            return Ok(None);
        };
        let mut from = self
            .text
            .len()
            .saturating_sub(self.longest.saturating_sub(1));
        while !self.text.is_char_boundary(from) {
            from -= 1;
        }
        let hit = {
            let tail = [&self.text[from..], new].concat();
            self.stops
                .iter()
                .filter_map(|s| tail.find(s.as_str()).map(|i| (from + i, s)))
                .min_by_key(|(start, _)| *start)
                .map(|(start, s)| StopHit {
                    end: start + s.len(),
                    stop: s.clone(),
                })
        };
        if !new.is_empty() && !new.ends_with('\u{FFFD}') {
            self.text.push_str(new);
            self.prefix_offset = self.read_offset;
            self.read_offset = tokens.len();
        }
        Ok(hit)
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// The reference: decode everything, earliest stop.
    fn naive(text: &str, stops: &[String]) -> Option<StopHit> {
        stops
            .iter()
            .filter_map(|s| text.find(s.as_str()).map(|i| (i, s)))
            .min_by_key(|(i, _)| *i)
            .map(|(i, s)| StopHit {
                end: i + s.len(),
                stop: s.clone(),
            })
    }

    /// Runs scanner and reference over `tokens`; both must stop at the same step with the same
    /// hit and, at the hit, the scanner's committed text must be a prefix of the full text.
    fn compare(tokens: &[u32], stops: &[String], decode: &dyn Fn(&[u32]) -> Result<String>) {
        let mut sc = StopScanner::new(stops);
        for k in 1..=tokens.len() {
            let full = decode(&tokens[..k]).unwrap();
            let want = naive(&full, stops);
            let got = sc.push(&tokens[..k], decode).unwrap();
            assert_eq!(got, want, "step {k}, text {full:?}");
            assert!(full.starts_with(sc.text()), "{:?} vs {full:?}", sc.text());
            if want.is_some() {
                return;
            }
        }
    }

    const PIECES: &[&[u8]] = &[
        b"</",
        b"act",
        b"ion",
        b">",
        b"a",
        b" ",
        b"<",
        b"/action>",
        b"</action",
        b"x",
        // The euro sign split over two tokens (an incomplete UTF-8 sequence in between).
        b"\xE2\x82",
        b"\xAC",
        b"\xE2",
        b"\x82\xAC",
        b"\xF0\x9F",
        b"\x98\x80",
    ];

    fn byte_level(ids: &[u32]) -> Result<String> {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&i| PIECES[i as usize].to_vec())
            .collect();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// SentencePiece-style: `▁` is a space and one leading space is stripped per decode call.
    fn metaspace(ids: &[u32]) -> Result<String> {
        const P: &[&str] = &["▁</", "act", "ion>", "▁a", "▁", "</", "ion", ">▁x", "€"];
        let s: String = ids.iter().map(|&i| P[i as usize]).collect();
        let s = s.replace('▁', " ");
        Ok(s.strip_prefix(' ').map(str::to_string).unwrap_or(s))
    }

    #[test]
    fn stop_spanning_token_boundaries_is_caught() {
        // "</" + "act" + "ion" + ">" spells the stop across four tokens.
        let stops = vec!["</action>".to_string()];
        let toks = [4, 5, 0, 1, 2, 3, 9];
        let mut sc = StopScanner::new(&stops);
        let mut hit_at = None;
        for k in 1..=toks.len() {
            if let Some(h) = sc.push(&toks[..k], byte_level).unwrap() {
                hit_at = Some((k, h));
                break;
            }
        }
        // "a " (2 bytes) + "</action>" (9 bytes): the stop ends at byte 11, at token 6.
        assert_eq!(
            hit_at,
            Some((
                6,
                StopHit {
                    end: 11,
                    stop: "</action>".into()
                }
            ))
        );
        // A stop ending in a multi-byte character split over two tokens.
        let stops = vec!["a€".to_string()];
        compare(&[4, 10, 11, 9], &stops, &byte_level);
    }

    #[test]
    fn agrees_with_full_decoding_on_random_sequences() {
        let stops = vec!["</action>".to_string(), "€x".to_string(), "a a".to_string()];
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for _ in 0..400 {
            let n = rng.random_range(1..40);
            let t: Vec<u32> = (0..n)
                .map(|_| rng.random_range(0..PIECES.len() as u32))
                .collect();
            compare(&t, &stops, &byte_level);
            let t: Vec<u32> = (0..n).map(|_| rng.random_range(0..9u32)).collect();
            compare(
                &t,
                &["</action>".to_string(), "a x".into(), " €".into()],
                &metaspace,
            );
        }
    }
}
