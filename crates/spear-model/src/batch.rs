//! Step-wise batched decoding for a server: sequences join a running batch between decoding
//! steps (continuous batching) and leave it when they finish.
//!
//! [`DecodeBatch`] does what [`crate::sampling::generate`] does, one step at a time and with
//! per-sequence sampling parameters: each joining group of prompts is prefilled (identical
//! prompts once, left-padded as `generate` pads), its KV cache rows are stacked under the batch's
//! (the shorter side left-padded with masked keys), and every [`DecodeBatch::step`] samples one
//! token per sequence with [`sample_token`] and the sequence's own RNG, then runs one decoding
//! forward pass for the sequences still going. A sequence decoded alone therefore gives exactly
//! the tokens and log-probs of `generate` with the same seed (test
//! `decode_batch_matches_generate_bit_for_bit`); in a batch with others the numbers agree up to
//! the float rounding of batched matmuls, as they do in `generate`.

use std::collections::HashMap;

use candle_core::{DType, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::decoder::{Decoder, ForwardInput, KvCache, Mode};
use crate::error::{ModelError, Result};
use crate::sampling::{first_stop, sample_token, FinishReason, Generation, SamplingParams};
use crate::stop::StopScanner;
use crate::tokenizer::TextTokenizer;

/// One sequence to add to a [`DecodeBatch`].
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRequest {
    /// The caller's id for this sequence (returned with its result).
    pub id: u64,
    /// Prompt token ids (non-empty, each below the vocabulary size).
    pub prompt_ids: Vec<u32>,
    /// Seed of this sequence's RNG.
    pub seed: u64,
    /// How to sample this sequence.
    pub params: SamplingParams,
}

struct Row {
    id: u64,
    params: SamplingParams,
    stop_ids: Vec<u32>,
    rng: ChaCha8Rng,
    key_valid: Vec<bool>,
    next_pos: u32,
    out: Generation,
    stop: StopScanner,
    /// The logits the next token is sampled from (f32, one vocabulary row).
    logits: Vec<f32>,
}

/// A batch of sequences being decoded with one shared KV cache.
pub struct DecodeBatch {
    rows: Vec<Row>,
    cache: KvCache,
}

impl std::fmt::Debug for DecodeBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodeBatch")
            .field("rows", &self.len())
            .field("cached_positions", &self.cache.len())
            .finish()
    }
}

impl Default for DecodeBatch {
    fn default() -> Self {
        Self::new()
    }
}

fn empty_generation(with_entropy: bool) -> Generation {
    Generation {
        token_ids: vec![],
        text: String::new(),
        logprobs: vec![],
        entropies: with_entropy.then(Vec::new),
        finish: FinishReason::Length,
        policy_version: None,
    }
}

impl DecodeBatch {
    /// An empty batch.
    pub fn new() -> Self {
        DecodeBatch {
            rows: vec![],
            cache: KvCache::new(0),
        }
    }

    /// Number of sequences being decoded.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no sequence is being decoded.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Number of cached key positions (padding included), for diagnostics.
    pub fn cached_positions(&self) -> usize {
        self.cache.len()
    }

    /// The ids of the sequences being decoded.
    pub fn ids(&self) -> Vec<u64> {
        self.rows.iter().map(|r| r.id).collect()
    }

    /// `(id, tokens generated so far)` of every sequence being decoded.
    pub fn progress(&self) -> Vec<(u64, usize)> {
        self.rows
            .iter()
            .map(|r| (r.id, r.out.token_ids.len()))
            .collect()
    }

    /// Checks one request against the model and tokenizer without touching the batch, so a
    /// server can refuse a bad request alone.
    pub fn check(
        model: &Decoder,
        tokenizer: Option<&TextTokenizer>,
        req: &BatchRequest,
    ) -> Result<()> {
        req.params.validate()?;
        if req.prompt_ids.is_empty() {
            return Err(ModelError::arg("prompt_ids", "empty prompt"));
        }
        let vocab = model.config().vocab_size;
        if let Some(bad) = req.prompt_ids.iter().find(|&&t| t as usize >= vocab) {
            return Err(ModelError::arg(
                "prompt_ids",
                format!("token id {bad} >= vocab size {vocab}"),
            ));
        }
        if !req.params.stop_strings.is_empty() && tokenizer.is_none() {
            return Err(ModelError::arg(
                "stop_strings",
                "stop strings need a tokenizer",
            ));
        }
        Ok(())
    }

    /// Prefills `reqs` and adds them to the batch; their first token is sampled by the next
    /// [`DecodeBatch::step`]. Requests with `max_new_tokens == 0` finish at once and are
    /// returned. Every request is checked first; on an error nothing is added.
    pub fn add(
        &mut self,
        model: &Decoder,
        tokenizer: Option<&TextTokenizer>,
        reqs: Vec<BatchRequest>,
    ) -> Result<Vec<(u64, Generation)>> {
        for r in &reqs {
            Self::check(model, tokenizer, r)?;
        }
        let (done, reqs): (Vec<_>, Vec<_>) =
            reqs.into_iter().partition(|r| r.params.max_new_tokens == 0);
        let done = done
            .into_iter()
            .map(|r| (r.id, empty_generation(r.params.with_entropy)))
            .collect();
        if reqs.is_empty() {
            return Ok(done);
        }
        let cfg = model.config();
        let (dtype, device) = (model.dtype(), model.device());
        // Prefill each distinct prompt once, left-padded (as `generate` does).
        let mut uniq: Vec<&[u32]> = vec![];
        let mut index: HashMap<&[u32], usize> = HashMap::new();
        let map: Vec<usize> = reqs
            .iter()
            .map(|r| {
                *index.entry(r.prompt_ids.as_slice()).or_insert_with(|| {
                    uniq.push(&r.prompt_ids);
                    uniq.len() - 1
                })
            })
            .collect();
        let lmax = uniq.iter().map(|p| p.len()).max().unwrap_or(0);
        let pad = tokenizer.map_or(0, TextTokenizer::pad_id);
        let mut ids = vec![];
        let mut pos = vec![];
        let mut valid = vec![];
        for p in &uniq {
            let np = lmax - p.len();
            let mut r = vec![pad; np];
            r.extend_from_slice(p);
            ids.push(r);
            pos.push(
                (0..lmax)
                    .map(|j| j.saturating_sub(np) as u32)
                    .collect::<Vec<_>>(),
            );
            valid.push((0..lmax).map(|j| j >= np).collect::<Vec<_>>());
        }
        let max_new = reqs
            .iter()
            .map(|r| r.params.max_new_tokens)
            .max()
            .unwrap_or(0);
        let input = ForwardInput::new(cfg, &ids, &pos, &valid, dtype, &device)?;
        let mut cache = KvCache::with_capacity(cfg.num_layers, lmax + max_new);
        let h = model.forward_hidden(&input, Some(&mut cache), Mode::Infer)?;
        let last = h.narrow(1, lmax - 1, 1)?.squeeze(1)?;
        let mut logits = model.logits(&last, Mode::Infer)?;
        if uniq.len() != reqs.len() || map.iter().enumerate().any(|(i, &m)| i != m) {
            cache = cache.select_rows(&map)?;
            let idx = Tensor::from_vec(
                map.iter().map(|&m| m as u32).collect::<Vec<_>>(),
                map.len(),
                &device,
            )?;
            logits = logits.index_select(&idx, 0)?;
        }
        let lg: Vec<Vec<f32>> = logits.to_dtype(DType::F32)?.to_vec2()?;
        let mut new_rows: Vec<Row> = reqs
            .into_iter()
            .zip(lg)
            .enumerate()
            .map(|(i, (r, l))| {
                let mut stop_ids = r.params.stop_token_ids.clone();
                if !r.params.ignore_eos {
                    if let Some(t) = tokenizer {
                        stop_ids.extend(&t.stop_token_ids);
                    }
                    stop_ids.extend(&cfg.eos_token_ids);
                }
                Row {
                    id: r.id,
                    rng: ChaCha8Rng::seed_from_u64(r.seed),
                    key_valid: valid[map[i]].clone(),
                    next_pos: r.prompt_ids.len() as u32,
                    out: empty_generation(r.params.with_entropy),
                    stop: StopScanner::new(&r.params.stop_strings),
                    stop_ids,
                    params: r.params,
                    logits: l,
                }
            })
            .collect();
        if self.rows.is_empty() {
            self.cache = cache;
        } else {
            let (stacked, pad_old, pad_new) = self.cache.stack_rows_left_padded(&cache)?;
            self.cache = stacked;
            for (rows, pad) in [(&mut self.rows, pad_old), (&mut new_rows, pad_new)] {
                if pad > 0 {
                    for r in rows.iter_mut() {
                        let mut kv = vec![false; pad];
                        kv.append(&mut r.key_valid);
                        r.key_valid = kv;
                    }
                }
            }
        }
        self.rows.append(&mut new_rows);
        Ok(done)
    }

    /// Samples one token for every sequence, returns the sequences that finished (stop token,
    /// stop string or length) and runs the next decoding forward pass for the others.
    pub fn step(
        &mut self,
        model: &Decoder,
        tokenizer: Option<&TextTokenizer>,
    ) -> Result<Vec<(u64, Generation)>> {
        if self.rows.is_empty() {
            return Ok(vec![]);
        }
        let mut done = vec![false; self.rows.len()];
        for (row, d) in self.rows.iter_mut().zip(done.iter_mut()) {
            let (tok, lp, ent) = sample_token(&row.logits, &row.params, &mut row.rng);
            row.out.token_ids.push(tok);
            row.out.logprobs.push(lp);
            if let Some(e) = row.out.entropies.as_mut() {
                e.push(ent);
            }
            if row.stop_ids.contains(&tok) {
                row.out.finish = FinishReason::StopToken(tok);
                *d = true;
            }
            if !row.params.stop_strings.is_empty() && !*d {
                let tok = tokenizer.ok_or_else(|| {
                    ModelError::arg("stop_strings", "stop strings need a tokenizer")
                })?;
                let hit = row
                    .stop
                    .push(&row.out.token_ids, |ids| tok.decode(ids, true))?;
                if let Some(hit) = hit {
                    let text = tok.decode(&row.out.token_ids, true)?;
                    let (cut, s) =
                        first_stop(&text, &row.params.stop_strings).unwrap_or((hit.end, hit.stop));
                    row.out.text = text.get(..cut).unwrap_or(&text).to_string();
                    row.out.finish = FinishReason::StopString(s);
                    *d = true;
                }
            }
            if row.out.token_ids.len() >= row.params.max_new_tokens {
                *d = true;
            }
        }
        let mut finished = vec![];
        if done.iter().any(|&d| d) {
            let keep: Vec<usize> = (0..self.rows.len()).filter(|&i| !done[i]).collect();
            let old = std::mem::take(&mut self.rows);
            for (r, d) in old.into_iter().zip(&done) {
                if *d {
                    finished.push((r.id, finish_text(r.out, tokenizer)?));
                } else {
                    self.rows.push(r);
                }
            }
            if self.rows.is_empty() {
                self.cache = KvCache::new(0);
                return Ok(finished);
            }
            self.cache = self.cache.select_rows(&keep)?;
            // Padding no remaining row attends to is dropped, so the cache does not grow
            // with the history of the batch.
            let lead = self
                .rows
                .iter()
                .map(|r| r.key_valid.iter().take_while(|v| !**v).count())
                .min()
                .unwrap_or(0);
            if lead > 0 {
                self.cache = self.cache.drop_front(lead)?;
                for r in self.rows.iter_mut() {
                    r.key_valid.drain(..lead);
                }
            }
        }
        let cfg = model.config();
        let ids: Vec<Vec<u32>> = self
            .rows
            .iter()
            .map(|r| r.out.token_ids.last().map(|&t| vec![t]))
            .collect::<Option<_>>()
            .ok_or_else(|| ModelError::arg("batch", "a sequence without a sampled token"))?;
        let pos: Vec<Vec<u32>> = self.rows.iter().map(|r| vec![r.next_pos]).collect();
        for r in self.rows.iter_mut() {
            r.key_valid.push(true);
            r.next_pos += 1;
        }
        let valid: Vec<Vec<bool>> = self.rows.iter().map(|r| r.key_valid.clone()).collect();
        let input = ForwardInput::new(cfg, &ids, &pos, &valid, model.dtype(), &model.device())?;
        let h = model.forward_hidden(&input, Some(&mut self.cache), Mode::Infer)?;
        let logits = model.logits(&h.squeeze(1)?, Mode::Infer)?;
        let lg: Vec<Vec<f32>> = logits.to_dtype(DType::F32)?.to_vec2()?;
        for (r, l) in self.rows.iter_mut().zip(lg) {
            r.logits = l;
        }
        Ok(finished)
    }

    /// Ends every sequence now and returns what each generated so far (finish reason
    /// `Length`; the caller reports them as aborted).
    pub fn abort_all(&mut self, tokenizer: Option<&TextTokenizer>) -> Vec<(u64, Generation)> {
        self.cache = KvCache::new(0);
        std::mem::take(&mut self.rows)
            .into_iter()
            .map(|r| {
                let id = r.id;
                let mut g = r.out;
                if let Some(t) = tokenizer {
                    g.text = t.decode(&g.token_ids, true).unwrap_or_default();
                }
                (id, g)
            })
            .collect()
    }
}

fn finish_text(mut g: Generation, tokenizer: Option<&TextTokenizer>) -> Result<Generation> {
    if let Some(t) = tokenizer {
        if !matches!(g.finish, FinishReason::StopString(_)) {
            g.text = t.decode(&g.token_ids, true)?;
        }
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Arch, ModelConfig};
    use crate::linear_bf16::ComputeDtype;
    use crate::sampling::{generate, GenRequest};
    use candle_core::Device;

    fn model() -> Decoder {
        let mut cfg = ModelConfig::tiny(Arch::Llama, 64);
        cfg.eos_token_ids = vec![];
        Decoder::random(cfg, 3, 0.5, DType::F32, &Device::Cpu).unwrap()
    }

    fn params(max: usize, t: f64) -> SamplingParams {
        SamplingParams {
            temperature: t,
            max_new_tokens: max,
            ..Default::default()
        }
    }

    /// In f32, and in bf16, where `generate` multiplies by the bf16 forms of the weights it keeps
    /// for the call (`KvCache::with_prepared_weights`) and `DecodeBatch` converts them at every
    /// step: the same numbers either way.
    #[test]
    fn decode_batch_matches_generate_bit_for_bit() {
        for dtype in [ComputeDtype::F32, ComputeDtype::Bf16] {
            decode_batch_matches_generate(dtype);
        }
    }

    fn decode_batch_matches_generate(dtype: ComputeDtype) {
        let mut m = model();
        m.compute_dtype = dtype;
        let p = params(12, 0.9);
        let req = GenRequest {
            prompt_ids: vec![1, 5, 9, 2],
            seed: 7,
        };
        let want = generate(&m, None, std::slice::from_ref(&req), &p).unwrap();
        let mut b = DecodeBatch::new();
        b.add(
            &m,
            None,
            vec![BatchRequest {
                id: 42,
                prompt_ids: req.prompt_ids.clone(),
                seed: 7,
                params: p.clone(),
            }],
        )
        .unwrap();
        let mut got = vec![];
        while !b.is_empty() {
            got.extend(b.step(&m, None).unwrap());
        }
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 42);
        assert_eq!(got[0].1, want[0], "{dtype}");
    }

    /// A prefill of 24 rows (the packed-tile path) and decoding steps of 2 rows (the few-row
    /// path) through a cache with prepared bf16 weights give the hidden states and logits of the
    /// plain bf16 products bit for bit, and the cache holds the converted weights.
    #[test]
    fn prepared_bf16_weights_give_the_plain_numbers() {
        let mut m = model();
        m.compute_dtype = ComputeDtype::Bf16;
        let cfg = m.config().clone();
        let bits = |t: &Tensor| -> Vec<u32> {
            t.flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect()
        };
        let mut plain = KvCache::new(cfg.num_layers);
        let mut prep = KvCache::new(cfg.num_layers).with_prepared_weights();
        assert_eq!(prep.prepared_bytes(), 0);
        let ids: Vec<Vec<u32>> = vec![(1..13).collect(), (20..32).collect()];
        let mut pos: Vec<Vec<u32>> = vec![(0..12).collect(); 2];
        let mut valid = vec![vec![true; 12]; 2];
        let mut next: Vec<Vec<u32>> = ids;
        for step in 0..3 {
            let input =
                ForwardInput::new(&cfg, &next, &pos, &valid, m.dtype(), &m.device()).unwrap();
            let ha = m
                .forward_hidden(&input, Some(&mut plain), Mode::Infer)
                .unwrap();
            let hb = m
                .forward_hidden(&input, Some(&mut prep), Mode::Infer)
                .unwrap();
            assert_eq!(bits(&ha), bits(&hb), "hidden states, step {step}");
            let t = ha.dim(1).unwrap();
            let la = m
                .logits(
                    &ha.narrow(1, t - 1, 1).unwrap().squeeze(1).unwrap(),
                    Mode::Infer,
                )
                .unwrap();
            let lb = m
                .logits_decoding(&hb.narrow(1, t - 1, 1).unwrap().squeeze(1).unwrap(), &prep)
                .unwrap();
            assert_eq!(bits(&la), bits(&lb), "logits, step {step}");
            assert!(prep.prepared_bytes() > 0);
            let p0 = pos[0].last().copied().unwrap() + 1;
            next = vec![vec![(step + 40) as u32], vec![(step + 50) as u32]];
            pos = vec![vec![p0]; 2];
            for v in valid.iter_mut() {
                v.push(true);
            }
        }
        // The f32 weights still give different (f32) numbers: the bf16 products ran.
        let mut f = model();
        f.compute_dtype = ComputeDtype::F32;
        let input = ForwardInput::new(
            &cfg,
            &[vec![1, 2, 3]],
            &[vec![0, 1, 2]],
            &[vec![true; 3]],
            m.dtype(),
            &m.device(),
        )
        .unwrap();
        let a = f.forward_hidden(&input, None, Mode::Infer).unwrap();
        let b = m
            .forward_hidden(
                &input,
                Some(&mut KvCache::new(cfg.num_layers).with_prepared_weights()),
                Mode::Infer,
            )
            .unwrap();
        assert_ne!(bits(&a), bits(&b));
    }

    #[test]
    fn late_joiners_agree_with_alone_and_the_cache_stays_bounded() {
        let m = model();
        let prompts: Vec<Vec<u32>> = vec![vec![3, 4, 5, 6, 7, 8], vec![9], vec![10, 11, 12]];
        let mut b = DecodeBatch::new();
        let mut got: HashMap<u64, Generation> = HashMap::new();
        // Request 0 starts alone; 1 joins after 3 steps, 2 after 5, each with its own
        // temperature and length.
        for step in 0..40 {
            let join = match step {
                0 => Some(0usize),
                3 => Some(1),
                5 => Some(2),
                _ => None,
            };
            if let Some(i) = join {
                let done = b
                    .add(
                        &m,
                        None,
                        vec![BatchRequest {
                            id: i as u64,
                            prompt_ids: prompts[i].clone(),
                            seed: 100 + i as u64,
                            params: params(8 + 3 * i, 0.5 + 0.3 * i as f64),
                        }],
                    )
                    .unwrap();
                assert!(done.is_empty());
            }
            got.extend(b.step(&m, None).unwrap());
            // Padding no row needs is dropped: the cache is as long as the longest sequence.
            let longest = b
                .rows
                .iter()
                .map(|r| r.key_valid.iter().filter(|v| **v).count())
                .max()
                .unwrap_or(0);
            assert_eq!(b.cached_positions(), longest, "step {step}");
        }
        assert!(b.is_empty());
        for (i, p) in prompts.iter().enumerate() {
            let want = generate(
                &m,
                None,
                &[GenRequest {
                    prompt_ids: p.clone(),
                    seed: 100 + i as u64,
                }],
                &params(8 + 3 * i, 0.5 + 0.3 * i as f64),
            )
            .unwrap();
            let g = &got[&(i as u64)];
            assert_eq!(g.token_ids, want[0].token_ids, "request {i}");
            for (a, w) in g.logprobs.iter().zip(&want[0].logprobs) {
                assert!((a - w).abs() < 1e-4, "request {i}: {a} vs {w}");
            }
        }
    }

    #[test]
    fn bad_requests_are_refused_and_abort_returns_partials() {
        let m = model();
        let mut b = DecodeBatch::new();
        let bad = BatchRequest {
            id: 1,
            prompt_ids: vec![999],
            seed: 0,
            params: params(4, 1.0),
        };
        let e = b.add(&m, None, vec![bad]).unwrap_err().to_string();
        assert!(e.contains("vocab"), "{e}");
        let empty = BatchRequest {
            id: 1,
            prompt_ids: vec![],
            seed: 0,
            params: params(4, 1.0),
        };
        assert!(b.add(&m, None, vec![empty]).is_err());
        assert!(b.is_empty());
        b.add(
            &m,
            None,
            vec![BatchRequest {
                id: 5,
                prompt_ids: vec![1, 2],
                seed: 0,
                params: params(50, 1.0),
            }],
        )
        .unwrap();
        b.step(&m, None).unwrap();
        b.step(&m, None).unwrap();
        let a = b.abort_all(None);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].1.token_ids.len(), 2);
        assert!(b.is_empty());
    }
}
