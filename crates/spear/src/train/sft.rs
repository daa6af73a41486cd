//! Supervised warm start (`spear sft`, and `[sft] enabled` before RL): token-mean
//! cross-entropy of the demonstration responses given their prompts, AdamW with a 5 % linear
//! warmup and cosine decay to 10 % of the peak learning rate, global-norm clip 1.0.

use std::time::Instant;

use candle_core::Tensor;
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use spear_model::{AdamW, AdamWConfig, Grads, LrSchedule, Mode, Policy, ScoreItem};

use super::setup::{prompt_ids, response_ids, SftExample};

/// Settings of one SFT run.
#[derive(Debug, Clone)]
pub struct SftSettings {
    /// Passes over the examples.
    pub epochs: usize,
    /// Examples per optimizer step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Padded tokens per forward pass.
    pub token_budget: usize,
    /// Shuffling seed.
    pub seed: u64,
    /// Batches of similar length (`sft.group_by_length`, [`epoch_batches`]).
    pub group_by_length: bool,
}

/// Batches of similar length come from windows of this many batches.
const LENGTH_WINDOW_BATCHES: usize = 50;

/// One epoch's batches (indices into `lengths`): every example once, in a shuffled order.
/// With `group_by_length`, the shuffled order is cut into windows of
/// [`LENGTH_WINDOW_BATCHES`] batches, each window sorted by length (longest first) and cut
/// into batches, and the batches are shuffled, so a batch holds examples of similar length.
pub fn epoch_batches(
    lengths: &[usize],
    batch_size: usize,
    group_by_length: bool,
    rng: &mut ChaCha8Rng,
) -> Vec<Vec<usize>> {
    let batch_size = batch_size.max(1);
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.shuffle(rng);
    if !group_by_length {
        return order.chunks(batch_size).map(<[usize]>::to_vec).collect();
    }
    let mut batches: Vec<Vec<usize>> = vec![];
    for window in order.chunks(batch_size * LENGTH_WINDOW_BATCHES) {
        let mut w = window.to_vec();
        // Stable sort: ties keep the shuffled order.
        w.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
        batches.extend(w.chunks(batch_size).map(<[usize]>::to_vec));
    }
    batches.shuffle(rng);
    batches
}

/// What SFT did.
#[derive(Debug, Clone, Default)]
pub struct SftReport {
    /// Optimizer steps.
    pub steps: u64,
    /// Mean loss of the first and the last 10 % of steps.
    pub first_loss: f64,
    /// Mean loss of the last 10 % of steps.
    pub last_loss: f64,
    /// Examples.
    pub examples: usize,
    /// Tokens per second (prompt + response, forward + backward).
    pub tokens_per_s: f64,
    /// Seconds.
    pub secs: f64,
}

/// One supervised example as tokens: the response tokens with mask 1 are trained on
/// (mask 0: tool output, which the model did not write).
#[derive(Debug, Clone, PartialEq)]
pub struct SftTokens {
    /// Prompt ids (chat template applied).
    pub prompt: Vec<u32>,
    /// Response ids.
    pub response: Vec<u32>,
    /// 1 = trained on, 0 = context only; same length as `response`.
    pub mask: Vec<u8>,
}

/// The batch's loss share of one forward pass: Σ mask·(−log p) / `n_tok`, with `logprobs`
/// the flat response log-probs of the items (`spans` = (start, len) of each) and `n_tok` the
/// masked-in tokens of the whole batch. All-ones masks skip the product, so the household
/// warm start (no masks) is bit-identical to the unmasked sum.
pub fn masked_nll(
    logprobs: &Tensor,
    spans: &[(usize, usize)],
    masks: &[&[u8]],
    n_tok: usize,
) -> anyhow::Result<Tensor> {
    let summed = if masks.iter().all(|m| m.iter().all(|&x| x == 1)) {
        logprobs.sum_all()?
    } else {
        let len = logprobs.dim(0)?;
        let mut flat = vec![0f32; len];
        for (m, &(start, n)) in masks.iter().zip(spans) {
            for (j, &x) in m.iter().take(n).enumerate() {
                flat[start + j] = x as f32;
            }
        }
        let mask = Tensor::from_vec(flat, len, logprobs.device())?.to_dtype(logprobs.dtype())?;
        (logprobs * &mask)?.sum_all()?
    };
    Ok(summed.affine(-1.0 / n_tok.max(1) as f64, 0.0)?)
}

/// Trains `policy` on `examples`; `bar` (if any) shows steps with the running loss, and
/// without one `log` (if any) gets a line at every tenth of the steps (step, loss, rate, ETA:
/// what a run writing to a file shows instead of a bar).
pub fn run_sft(
    policy: &Policy,
    examples: &[SftExample],
    s: &SftSettings,
    bar: Option<&ProgressBar>,
    log: Option<&dyn Fn(&str)>,
) -> anyhow::Result<SftReport> {
    anyhow::ensure!(!examples.is_empty(), "no demonstrations to train on");
    let encoded: Vec<SftTokens> = examples
        .iter()
        .map(|e| {
            let response = response_ids(policy, &e.response)?;
            Ok(SftTokens {
                prompt: prompt_ids(policy, &e.prompt)?,
                mask: vec![1; response.len()],
                response,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    run_sft_tokens(policy, &encoded, s, bar, log)
}

/// The line [`run_sft`] logs without a bar: `warm start: step 92/924, loss 2.345, 0.55
/// steps/s, ETA 25m 10s`.
fn progress_line(step: u64, total: u64, loss: f64, secs: f64) -> String {
    let rate = step as f64 / secs.max(1e-9);
    let eta = ((total - step.min(total)) as f64 / rate.max(1e-9)).round() as u64;
    format!(
        "warm start: step {step}/{total}, loss {loss:.3}, {rate:.2} steps/s, ETA {}m {:02}s",
        eta / 60,
        eta % 60
    )
}

/// [`run_sft`] on token examples: the loss is the mean −log p over the masked-in response
/// tokens of each batch.
pub fn run_sft_tokens(
    policy: &Policy,
    encoded: &[SftTokens],
    s: &SftSettings,
    bar: Option<&ProgressBar>,
    log: Option<&dyn Fn(&str)>,
) -> anyhow::Result<SftReport> {
    anyhow::ensure!(!encoded.is_empty(), "no demonstrations to train on");
    let start = Instant::now();
    if let Some(e) = encoded.iter().find(|e| e.mask.len() != e.response.len()) {
        anyhow::bail!(
            "a demonstration has {} response tokens but {} mask entries",
            e.response.len(),
            e.mask.len()
        );
    }
    let max_pos = policy.model.config().max_position_embeddings;
    if let Some(e) = encoded
        .iter()
        .find(|e| e.prompt.len() + e.response.len() > max_pos)
    {
        anyhow::bail!(
            "a demonstration of {} tokens exceeds the model's {max_pos} positions: raise \
             model.max_position_embeddings, or shorten the prompts (env.history_length; math: \
             env.math.system_prompt)",
            e.prompt.len() + e.response.len()
        );
    }
    let batches_per_epoch = encoded.len().div_ceil(s.batch_size);
    let total = (batches_per_epoch * s.epochs) as u64;
    let schedule = LrSchedule::Cosine {
        warmup: (total / 20).max(1),
        total,
        min_ratio: 0.1,
    };
    let mut opt = AdamW::new(AdamWConfig {
        weight_decay: s.weight_decay,
        ..AdamWConfig::default()
    });
    if let Some(b) = bar {
        b.set_length(total);
        b.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} steps {per_sec} eta {eta} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
    }
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
    let mut losses = vec![];
    let mut tokens = 0u64;
    let all_lengths: Vec<usize> = encoded
        .iter()
        .map(|e| e.prompt.len() + e.response.len())
        .collect();
    for _ in 0..s.epochs {
        for chunk in epoch_batches(&all_lengths, s.batch_size, s.group_by_length, &mut rng) {
            let n_tok: usize = chunk
                .iter()
                .map(|&i| encoded[i].mask.iter().map(|&m| m as usize).sum::<usize>())
                .sum();
            if n_tok == 0 {
                continue;
            }
            let mut grads = Grads::new();
            let mut loss_sum = 0.0;
            let lengths: Vec<usize> = chunk.iter().map(|&i| all_lengths[i]).collect();
            for group in spear_model::plan_micro_batches(&lengths, s.token_budget) {
                let items: Vec<ScoreItem<'_>> = group
                    .iter()
                    .map(|&k| ScoreItem {
                        prompt: &encoded[chunk[k]].prompt,
                        response: &encoded[chunk[k]].response,
                    })
                    .collect();
                let scored = policy.score(&items, Mode::Train, false)?;
                let masks: Vec<&[u8]> =
                    group.iter().map(|&k| &encoded[chunk[k]].mask[..]).collect();
                let loss = masked_nll(&scored.logprobs, &scored.spans, &masks, n_tok)?;
                loss_sum += loss.to_scalar::<f32>()? as f64;
                let store = loss.backward()?;
                grads.accumulate(&store, policy.model.params())?;
                tokens += group.iter().map(|&k| lengths[k] as u64).sum::<u64>();
            }
            grads.clip_global_norm(1.0)?;
            let lr = schedule.lr_at(s.lr, opt.step);
            opt.step(policy.model.params(), &grads, lr)?;
            losses.push(loss_sum);
            if let Some(b) = bar {
                b.inc(1);
                b.set_message(format!("loss {loss_sum:.3}"));
            } else if let Some(log) = log {
                let step = losses.len() as u64;
                if step % (total / 10).max(1) == 0 && step < total {
                    log(&progress_line(
                        step,
                        total,
                        loss_sum,
                        start.elapsed().as_secs_f64(),
                    ));
                }
            }
        }
    }
    anyhow::ensure!(
        !losses.is_empty(),
        "no demonstration has a trained (mask 1) response token"
    );
    let k = (losses.len() / 10).max(1);
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
    let secs = start.elapsed().as_secs_f64();
    Ok(SftReport {
        steps: losses.len() as u64,
        first_loss: mean(&losses[..k]),
        last_loss: mean(&losses[losses.len() - k..]),
        examples: encoded.len(),
        tokens_per_s: tokens as f64 / secs.max(1e-9),
        secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_has_rate_and_eta() {
        assert_eq!(
            progress_line(92, 924, 2.3456, 184.0),
            "warm start: step 92/924, loss 2.346, 0.50 steps/s, ETA 27m 44s"
        );
    }

    #[test]
    fn masked_nll_by_hand() {
        // Two items: [-1, -2] (mask 1, 0) and [-3, -4, -5] (mask 1, 1, 0); n_tok = 3.
        // Σ mask·(−log p) = 1 + 3 + 4 = 8 → 8 / 3.
        let lp = Tensor::new(&[-1f32, -2., -3., -4., -5.], &candle_core::Device::Cpu).unwrap();
        let spans = [(0, 2), (2, 3)];
        let masks: [&[u8]; 2] = [&[1, 0], &[1, 1, 0]];
        let l: f32 = masked_nll(&lp, &spans, &masks, 3)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!((l - 8.0 / 3.0).abs() < 1e-6, "{l}");
        // All ones: the plain token mean, 15 / 5 = 3.
        let ones: [&[u8]; 2] = [&[1, 1], &[1, 1, 1]];
        let l: f32 = masked_nll(&lp, &spans, &ones, 5)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!((l - 3.0).abs() < 1e-6, "{l}");
    }

    /// Plain batches are the shuffled order cut in pieces (as before the option existed);
    /// grouped batches hold every example once, each batch within one window's length range,
    /// with far less padding on a mix of short and long examples; both depend only on the seed.
    #[test]
    fn epoch_batches_group_by_length_only_when_asked() {
        // 3000 short (300) and 1200 long (1100) examples, mixed at random.
        let mut r = ChaCha8Rng::seed_from_u64(7);
        let mut lengths: Vec<usize> = (0..4200)
            .map(|i| if i < 3000 { 300 } else { 1100 })
            .collect();
        lengths.shuffle(&mut r);
        let padded = |b: &[Vec<usize>]| -> usize {
            b.iter()
                .map(|x| x.len() * x.iter().map(|&i| lengths[i]).max().unwrap())
                .sum()
        };
        let plain = epoch_batches(&lengths, 8, false, &mut ChaCha8Rng::seed_from_u64(1));
        let mut order: Vec<usize> = (0..lengths.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(1));
        let want: Vec<Vec<usize>> = order.chunks(8).map(<[usize]>::to_vec).collect();
        assert_eq!(plain, want);
        let grouped = epoch_batches(&lengths, 8, true, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(grouped.len(), plain.len());
        let mut seen: Vec<usize> = grouped.iter().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
        // Only a window's boundary batch mixes the two lengths (at most one per window).
        let mixed = grouped
            .iter()
            .filter(|b| {
                b.iter().any(|&i| lengths[i] == 300) && b.iter().any(|&i| lengths[i] == 1100)
            })
            .count();
        assert!(
            mixed <= lengths.len().div_ceil(8 * LENGTH_WINDOW_BATCHES),
            "{mixed}"
        );
        let real: usize = lengths.iter().sum();
        assert!(
            padded(&plain) as f64 > 1.8 * real as f64,
            "{} {real}",
            padded(&plain)
        );
        assert!(
            (padded(&grouped) as f64) < 1.05 * real as f64,
            "{} {real}",
            padded(&grouped)
        );
        // The batches are shuffled: long and short batches interleave.
        let long_first_half = grouped[..grouped.len() / 2]
            .iter()
            .filter(|b| lengths[b[0]] == 1100)
            .count();
        assert!((40..120).contains(&long_first_half), "{long_first_half}");
        assert_eq!(
            grouped,
            epoch_batches(&lengths, 8, true, &mut ChaCha8Rng::seed_from_u64(1))
        );
    }
}
