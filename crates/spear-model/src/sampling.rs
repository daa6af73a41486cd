//! Batched generation with a KV cache: left padding, per-sequence RNG, prefix reuse, stop strings,
//! and the behaviour log-probs PPO needs.
//!
//! Log-probs and entropies are those of the tempered, unfiltered distribution
//! (`log_softmax(logits / T)[token]`, T = 1 for greedy decoding), whatever top-k / top-p the
//! token was drawn with. That is what verl's actor recomputes (it divides the logits by the
//! rollout temperature) and what the trainer's scoring pass computes with
//! [`crate::Policy::score_at_temperature`], so the two agree (test
//! `sampling_and_scoring_log_probs_agree`). Greedy decoding is `temperature = 0`.

use std::collections::HashMap;

use candle_core::{DType, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::decoder::{Decoder, ForwardInput, KvCache, Mode};
use crate::error::{ModelError, Result};
use crate::linear_bf16::ComputeDtype;
use crate::stop::StopScanner;
use crate::tokenizer::TextTokenizer;

/// How to sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; 0 means greedy.
    pub temperature: f64,
    /// Nucleus mass (1 = off).
    pub top_p: f64,
    /// Keep only the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Most tokens to generate per sequence.
    pub max_new_tokens: usize,
    /// Generation ends when the decoded text contains one of these (e.g. `</action>`).
    pub stop_strings: Vec<String>,
    /// Extra stop token ids, on top of the tokenizer's stop tokens.
    pub stop_token_ids: Vec<u32>,
    /// Also return the entropy of each step's tempered distribution.
    pub with_entropy: bool,
    /// Ignore the tokenizer's and config's stop tokens (benchmarks); explicit
    /// `stop_token_ids` still apply.
    pub ignore_eos: bool,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            max_new_tokens: 256,
            stop_strings: vec![],
            stop_token_ids: vec![],
            with_entropy: false,
            ignore_eos: false,
        }
    }
}

impl SamplingParams {
    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(ModelError::arg(
                "temperature",
                format!("{} is not >= 0", self.temperature),
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(ModelError::arg(
                "top_p",
                format!("{} is not in (0, 1]", self.top_p),
            ));
        }
        if self.stop_strings.iter().any(String::is_empty) {
            return Err(ModelError::arg("stop_strings", "empty stop string"));
        }
        Ok(())
    }
}

/// One sequence to continue.
#[derive(Debug, Clone, PartialEq)]
pub struct GenRequest {
    /// Prompt token ids (non-empty).
    pub prompt_ids: Vec<u32>,
    /// Seed of this sequence's RNG (results do not depend on the rest of the batch).
    pub seed: u64,
}

/// Why generation of a sequence ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    /// A stop token was sampled (it is the last of `token_ids`).
    StopToken(u32),
    /// The text reached a stop string (the token completing it is the last of `token_ids`).
    StopString(String),
    /// `max_new_tokens` reached.
    Length,
}

/// The result for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Sampled tokens (including the stop token or the token completing a stop string).
    pub token_ids: Vec<u32>,
    /// Decoded text without special tokens, cut right after a stop string if one was hit.
    pub text: String,
    /// Log-prob of each sampled token under the tempered distribution (T = 1 when greedy).
    pub logprobs: Vec<f32>,
    /// Entropy of each step's tempered distribution (if asked for).
    pub entropies: Option<Vec<f32>>,
    /// Why it stopped.
    pub finish: FinishReason,
    /// The policy version (weight updates applied) that produced it, where the engine knows
    /// it: the trainer's in-process engine and the HTTP engine set it; the bare sampler leaves
    /// `None`.
    pub policy_version: Option<u64>,
}

/// A rollout sampler. The local candle engine implements it; a vLLM/SGLang client can too.
pub trait Sampler {
    /// Generates one continuation per request.
    fn generate(&self, requests: &[GenRequest], params: &SamplingParams)
        -> Result<Vec<Generation>>;
}

/// The in-process sampler on a [`Decoder`].
#[derive(Debug, Clone, Copy)]
pub struct LocalSampler<'a> {
    /// The model.
    pub model: &'a Decoder,
    /// Tokenizer for text and stop strings (optional for id-only use).
    pub tokenizer: Option<&'a TextTokenizer>,
}

impl Sampler for LocalSampler<'_> {
    fn generate(
        &self,
        requests: &[GenRequest],
        params: &SamplingParams,
    ) -> Result<Vec<Generation>> {
        generate(self.model, self.tokenizer, requests, params)
    }
}

/// Samples one token from `logits` (f32 row); returns (token, log p_T(token), entropy of p_T)
/// where p_T = softmax(logits / T) before top-k / top-p, and T = 1 for greedy decoding.
pub fn sample_token(logits: &[f32], p: &SamplingParams, rng: &mut ChaCha8Rng) -> (u32, f32, f32) {
    // Statistics of the tempered distribution in f64.
    let inv_t = if p.temperature > 0.0 {
        1.0 / p.temperature
    } else {
        1.0
    };
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let sum: f64 = logits
        .iter()
        .map(|&x| ((x as f64 - max) * inv_t).exp())
        .sum();
    let lse = sum.ln();
    let entropy = -logits
        .iter()
        .map(|&x| {
            let lp = (x as f64 - max) * inv_t - lse;
            lp.exp() * lp
        })
        .sum::<f64>();
    let tok = if p.temperature == 0.0 {
        argmax(logits)
    } else {
        let mut cand: Vec<(u32, f64)> = logits
            .iter()
            .enumerate()
            .map(|(i, &x)| (i as u32, (x as f64 - max) / p.temperature))
            .collect();
        if p.top_k > 0 && p.top_k < cand.len() {
            cand.select_nth_unstable_by(p.top_k - 1, |a, b| {
                b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
            });
            cand.truncate(p.top_k);
        }
        let m = cand.iter().fold(f64::NEG_INFINITY, |m, c| m.max(c.1));
        for c in cand.iter_mut() {
            c.1 = (c.1 - m).exp();
        }
        if p.top_p < 1.0 {
            cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let total: f64 = cand.iter().map(|c| c.1).sum();
            let mut acc = 0.0;
            let mut keep = cand.len();
            for (i, c) in cand.iter().enumerate() {
                acc += c.1;
                if acc >= p.top_p * total {
                    keep = i + 1;
                    break;
                }
            }
            cand.truncate(keep);
        } else {
            cand.sort_by_key(|c| c.0);
        }
        let total: f64 = cand.iter().map(|c| c.1).sum();
        let u: f64 = rng.random::<f64>() * total;
        let mut acc = 0.0;
        let mut chosen = cand.last().map_or(0, |c| c.0);
        for c in &cand {
            acc += c.1;
            if u < acc {
                chosen = c.0;
                break;
            }
        }
        chosen
    };
    let lp = (logits[tok as usize] as f64 - max) * inv_t - lse;
    (tok, lp as f32, entropy as f32)
}

fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best as u32
}

struct Row {
    req: usize,
    rng: ChaCha8Rng,
    key_valid: Vec<bool>,
    next_pos: u32,
    out: Generation,
    stop: StopScanner,
    done: bool,
}

/// Bytes of one layer's f32 attention scores (prompts × heads × length²) that one prefill may
/// hold: a batch whose scores would exceed it is generated in several sub-batches. A prefill's
/// peak memory is about five times its scores (the softmax, the mask and the projections):
/// 128 WebShop prompts of ≈ 1500 tokens with 4 heads (4.6 GB of scores) were killed at 24 GB.
pub const PREFILL_SCORES_BUDGET: usize = 2 << 30;

/// The distinct prompts of `requests` in order of first appearance, and each request's index
/// into them (a GRPO group's identical prompts share one).
fn distinct_prompts(requests: &[GenRequest]) -> (Vec<&[u32]>, Vec<usize>) {
    let mut uniq: Vec<&[u32]> = vec![];
    let mut index: HashMap<&[u32], usize> = HashMap::new();
    let map = requests
        .iter()
        .map(|r| {
            *index.entry(r.prompt_ids.as_slice()).or_insert_with(|| {
                uniq.push(&r.prompt_ids);
                uniq.len() - 1
            })
        })
        .collect();
    (uniq, map)
}

/// Splits requests into sub-batches whose prefill scores fit `budget` bytes (`num_heads` ×
/// unique prompts × longest² × 4). Requests with identical prompts (a GRPO group) stay
/// together, so their prompt is prefilled once; each sub-batch lists requests in order.
pub fn plan_generation_batches(
    requests: &[GenRequest],
    num_heads: usize,
    budget: usize,
) -> Vec<Vec<usize>> {
    let (uniq, map) = distinct_prompts(requests);
    let mut members: Vec<Vec<usize>> = vec![vec![]; uniq.len()];
    for (i, &k) in map.iter().enumerate() {
        members[k].push(i);
    }
    let scores = |n: usize, l: usize| n * num_heads.max(1) * l * l * 4;
    let mut out: Vec<Vec<usize>> = vec![];
    let (mut cur, mut n, mut longest) = (vec![], 0usize, 0usize);
    for (p, reqs) in uniq.into_iter().zip(members) {
        let l = longest.max(p.len());
        if n > 0 && scores(n + 1, l) > budget {
            out.push(std::mem::take(&mut cur));
            (n, longest) = (0, 0);
        }
        cur.extend(reqs);
        n += 1;
        longest = longest.max(p.len());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    for b in &mut out {
        b.sort_unstable();
    }
    out
}

/// Generates continuations for all requests: one batch, or sub-batches where one prefill would
/// exceed [`PREFILL_SCORES_BUDGET`] ([`plan_generation_batches`]).
pub fn generate(
    model: &Decoder,
    tokenizer: Option<&TextTokenizer>,
    requests: &[GenRequest],
    params: &SamplingParams,
) -> Result<Vec<Generation>> {
    let plan = plan_generation_batches(requests, model.config().num_heads, PREFILL_SCORES_BUDGET);
    if plan.len() <= 1 {
        return generate_batch(model, tokenizer, requests, params);
    }
    let mut out: Vec<Option<Generation>> = vec![None; requests.len()];
    for b in plan {
        let sub: Vec<GenRequest> = b.iter().map(|&i| requests[i].clone()).collect();
        for (i, g) in b
            .into_iter()
            .zip(generate_batch(model, tokenizer, &sub, params)?)
        {
            out[i] = Some(g);
        }
    }
    Ok(out
        .into_iter()
        .map(|g| g.expect("every request planned"))
        .collect())
}

/// Generates continuations for all requests in one batch.
///
/// Identical prompts (a GRPO group) are prefilled once and their KV cache rows copied. Prompts of
/// different lengths are left-padded; padding keys are masked and positions start at 0 at each
/// prompt's first real token, so a sequence gets the same numbers alone or in any batch (up to
/// float rounding of batched matmuls). Finished sequences leave the batch.
fn generate_batch(
    model: &Decoder,
    tokenizer: Option<&TextTokenizer>,
    requests: &[GenRequest],
    params: &SamplingParams,
) -> Result<Vec<Generation>> {
    params.validate()?;
    if requests.is_empty() {
        return Ok(vec![]);
    }
    if requests.iter().any(|r| r.prompt_ids.is_empty()) {
        return Err(ModelError::arg("prompt_ids", "empty prompt"));
    }
    if !params.stop_strings.is_empty() && tokenizer.is_none() {
        return Err(ModelError::arg(
            "stop_strings",
            "stop strings need a tokenizer",
        ));
    }
    let cfg = model.config();
    let (dtype, device) = (model.dtype(), model.device());
    let mut stop_ids: Vec<u32> = params.stop_token_ids.clone();
    if !params.ignore_eos {
        if let Some(t) = tokenizer {
            stop_ids.extend(&t.stop_token_ids);
        }
        stop_ids.extend(&cfg.eos_token_ids);
    }

    // Prefill each distinct prompt once.
    let (uniq, map) = distinct_prompts(requests);
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
    let input = ForwardInput::new(cfg, &ids, &pos, &valid, dtype, &device)?;
    let mut cache = KvCache::with_capacity(cfg.num_layers, lmax + params.max_new_tokens);
    if model.compute_dtype == ComputeDtype::Bf16 && device.is_cpu() {
        // Each weight rounded (and packed) once for this call, not at every step.
        cache = cache.with_prepared_weights();
    }
    let h = model.forward_hidden(&input, Some(&mut cache), Mode::Infer)?;
    let last = h.narrow(1, lmax - 1, 1)?.squeeze(1)?;
    let mut logits = model.logits_decoding(&last, &cache)?;
    if uniq.len() != requests.len() || map.iter().enumerate().any(|(i, &m)| i != m) {
        cache = cache.select_rows(&map)?;
        let idx = Tensor::from_vec(
            map.iter().map(|&m| m as u32).collect::<Vec<_>>(),
            map.len(),
            &device,
        )?;
        logits = logits.index_select(&idx, 0)?;
    }
    let mut rows: Vec<Row> = requests
        .iter()
        .enumerate()
        .map(|(i, r)| Row {
            req: i,
            rng: ChaCha8Rng::seed_from_u64(r.seed),
            key_valid: valid[map[i]].clone(),
            next_pos: r.prompt_ids.len() as u32,
            out: Generation {
                token_ids: vec![],
                text: String::new(),
                logprobs: vec![],
                entropies: params.with_entropy.then(Vec::new),
                finish: FinishReason::Length,
                policy_version: None,
            },
            stop: StopScanner::new(&params.stop_strings),
            done: false,
        })
        .collect();
    let mut finished: Vec<Option<Generation>> = vec![None; requests.len()];
    if params.max_new_tokens == 0 {
        return Ok(rows.into_iter().map(|r| r.out).collect());
    }
    loop {
        let lg: Vec<Vec<f32>> = logits.to_dtype(DType::F32)?.to_vec2()?;
        for (row, l) in rows.iter_mut().zip(&lg) {
            let (tok, lp, ent) = sample_token(l, params, &mut row.rng);
            row.out.token_ids.push(tok);
            row.out.logprobs.push(lp);
            if let Some(e) = row.out.entropies.as_mut() {
                e.push(ent);
            }
            if stop_ids.contains(&tok) {
                row.out.finish = FinishReason::StopToken(tok);
                row.done = true;
            }
            if !params.stop_strings.is_empty() && !row.done {
                // Incremental: only a short tail of tokens is decoded per step (stop.rs).
                let tok = tokenizer.expect("checked above");
                let hit = row
                    .stop
                    .push(&row.out.token_ids, |ids| tok.decode(ids, true))?;
                if let Some(hit) = hit {
                    // Once per sequence: the text is cut from the full decode, as before.
                    let text = tok.decode(&row.out.token_ids, true)?;
                    let (cut, s) =
                        first_stop(&text, &params.stop_strings).unwrap_or((hit.end, hit.stop));
                    row.out.text = text.get(..cut).unwrap_or(&text).to_string();
                    row.out.finish = FinishReason::StopString(s);
                    row.done = true;
                }
            }
            if row.out.token_ids.len() >= params.max_new_tokens {
                row.done = true;
            }
        }
        let keep: Vec<usize> = (0..rows.len()).filter(|&i| !rows[i].done).collect();
        if keep.len() != rows.len() {
            let mut old = std::mem::take(&mut rows);
            for (i, r) in old.iter_mut().enumerate() {
                if r.done {
                    finished[r.req] = Some(std::mem::replace(
                        &mut r.out,
                        Generation {
                            token_ids: vec![],
                            text: String::new(),
                            logprobs: vec![],
                            entropies: None,
                            finish: FinishReason::Length,
                            policy_version: None,
                        },
                    ));
                    let _ = i;
                }
            }
            rows = old.into_iter().filter(|r| !r.done).collect();
            if rows.is_empty() {
                break;
            }
            cache = cache.select_rows(&keep)?;
        }
        let ids: Vec<Vec<u32>> = rows
            .iter()
            .map(|r| vec![*r.out.token_ids.last().expect("sampled")])
            .collect();
        let pos: Vec<Vec<u32>> = rows.iter().map(|r| vec![r.next_pos]).collect();
        for r in rows.iter_mut() {
            r.key_valid.push(true);
            r.next_pos += 1;
        }
        let valid: Vec<Vec<bool>> = rows.iter().map(|r| r.key_valid.clone()).collect();
        let input = ForwardInput::new(cfg, &ids, &pos, &valid, dtype, &device)?;
        let h = model.forward_hidden(&input, Some(&mut cache), Mode::Infer)?;
        logits = model.logits_decoding(&h.squeeze(1)?, &cache)?;
    }
    let mut out: Vec<Generation> = finished
        .into_iter()
        .map(|g| g.expect("every row finishes"))
        .collect();
    if let Some(t) = tokenizer {
        for g in out.iter_mut() {
            if !matches!(g.finish, FinishReason::StopString(_)) {
                g.text = t.decode(&g.token_ids, true)?;
            }
        }
    }
    Ok(out)
}

/// The end (byte index) of the earliest stop string in `text`, and which one.
pub(crate) fn first_stop(text: &str, stops: &[String]) -> Option<(usize, String)> {
    stops
        .iter()
        .filter_map(|s| text.find(s.as_str()).map(|i| (i + s.len(), i, s.clone())))
        .min_by_key(|(_, start, _)| *start)
        .map(|(end, _, s)| (end, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_token_statistics_by_hand() {
        // logits [0, ln 3]: p = [1/4, 3/4]; entropy = -(0.25 ln 0.25 + 0.75 ln 0.75) = 0.562335.
        let l = [0.0f32, 3f32.ln()];
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let greedy = SamplingParams {
            temperature: 0.0,
            ..Default::default()
        };
        let (t, lp, ent) = sample_token(&l, &greedy, &mut rng);
        assert_eq!(t, 1);
        assert!((lp - 0.75f32.ln()).abs() < 1e-6);
        assert!((ent - 0.562335).abs() < 1e-5);
        // Frequencies at temperature 1 follow p; top_k = 1 is greedy but log-probs stay those
        // of the unfiltered distribution.
        let p = SamplingParams::default();
        let n = 20000;
        let ones = (0..n)
            .filter(|_| sample_token(&l, &p, &mut rng).0 == 1)
            .count();
        assert!((ones as f64 / n as f64 - 0.75).abs() < 0.015);
        let k1 = SamplingParams {
            top_k: 1,
            ..Default::default()
        };
        let (t, lp, _) = sample_token(&l, &k1, &mut rng);
        assert_eq!((t, (lp - 0.75f32.ln()).abs() < 1e-6), (1, true));
        // top_p = 0.5 keeps only the 0.75 token.
        let tp = SamplingParams {
            top_p: 0.5,
            ..Default::default()
        };
        assert!((0..200).all(|_| sample_token(&l, &tp, &mut rng).0 == 1));
        // Temperature 2 flattens: p ∝ [1, sqrt 3] -> p1 = 0.634.
        let t2 = SamplingParams {
            temperature: 2.0,
            ..Default::default()
        };
        let ones = (0..n)
            .filter(|_| sample_token(&l, &t2, &mut rng).0 == 1)
            .count();
        assert!((ones as f64 / n as f64 - 0.634).abs() < 0.015);
        // ... and log-probs / entropy are those of p_T: p_T = [1, √3]/(1 + √3) = [0.366025,
        // 0.633975]; entropy = −(0.366025 ln 0.366025 + 0.633975 ln 0.633975) = 0.656807.
        let (t, lp, ent) = sample_token(&l, &t2, &mut rng);
        let want = if t == 1 { 0.633975f32 } else { 0.366025 }.ln();
        assert!((lp - want).abs() < 1e-5, "{lp} vs {want}");
        assert!((ent - 0.656807).abs() < 1e-5, "{ent}");
    }

    #[test]
    fn first_stop_picks_earliest() {
        let s = vec!["</action>".to_string(), "b".to_string()];
        assert_eq!(
            first_stop("a</action>b", &s),
            Some((10, "</action>".into()))
        );
        assert_eq!(first_stop("xyz", &s), None);
    }

    /// Groups stay together, every request is planned once, a sub-batch fits the budget
    /// unless one prompt alone exceeds it, and a batch within the budget is not split.
    #[test]
    fn generation_batches_fit_the_prefill_budget() {
        let req = |len: usize, tag: u32, seed: u64| GenRequest {
            prompt_ids: vec![tag; len],
            seed,
        };
        // Prompts: A (100 tokens) ×3, B (200) ×2, C (50), D (400); 2 heads.
        let reqs = vec![
            req(100, 1, 0),
            req(200, 2, 0),
            req(100, 1, 1),
            req(50, 3, 0),
            req(200, 2, 1),
            req(400, 4, 0),
            req(100, 1, 2),
        ];
        let all = plan_generation_batches(&reqs, 2, usize::MAX);
        assert_eq!(all, vec![(0..7).collect::<Vec<_>>()]);
        // Budget for 2 unique prompts of 200: 2 × 2 × 200² × 4 = 640 000 bytes.
        let plan = plan_generation_batches(&reqs, 2, 640_000);
        assert_eq!(plan, vec![vec![0, 1, 2, 4, 6], vec![3], vec![5]]);
        let mut seen: Vec<usize> = plan.iter().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..7).collect::<Vec<_>>());
        // One prompt over the budget goes alone.
        assert_eq!(
            plan_generation_batches(&reqs, 2, 1000).len(),
            4,
            "one sub-batch per distinct prompt"
        );
    }

    #[test]
    fn invalid_params_are_rejected() {
        let p = SamplingParams {
            top_p: 0.0,
            ..Default::default()
        };
        assert!(p.validate().unwrap_err().to_string().contains("top_p"));
    }
}
