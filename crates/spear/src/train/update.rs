//! The actor update (spec §2.7, §2.8 step 7): execute an [`UpdatePlan`] with the policy —
//! teacher-forced scoring of each micro-batch, the actor loss of its phase (on-policy or
//! replay Clip-Cov parameters), `backward` of `loss · loss_scale`, gradient accumulation,
//! global-norm clipping and one AdamW step per mini-batch, the same optimizer and moments for
//! both phases.
//!
//! # Memory: what `optim.token_budget` bounds
//!
//! A micro-batch is scored in forward passes ("sub-batches") of at most `token_budget` padded
//! tokens ([`plan_micro_batches`]; a row longer than the budget goes alone). The actor loss needs
//! the whole micro-batch at once (token-mean normalisers; Clip-Cov and KL-Cov select tokens by
//! a covariance over all its tokens, and Clip-Cov draws from the RNG), so:
//!
//! * **One sub-batch** (the micro-batch fits the budget): one forward with the graph, the loss,
//!   one `backward` — the historical path, bit for bit.
//! * **Several sub-batches**: (a) every sub-batch is scored without a graph (`Mode::Infer` with
//!   the same unfused kernels as training, so the `[B, T]` log-probs and entropies are bitwise
//!   those a training forward gives); (b) they become leaf variables, the actor loss runs once on
//!   them (same RNG draws, same metrics) and its `backward` gives `g = ∂(loss·loss_scale)/∂logp`
//!   and `∂/∂entropy` (`[B, T]`, no model graph); (c) each sub-batch is scored again with the
//!   graph and `Σ logp·g_logp + Σ entropy·g_entropy` (g constant) is back-propagated into the
//!   accumulated gradient, then that graph is dropped. By the chain rule this is the gradient of
//!   the micro-batch loss; only the summation order of the parameter gradients differs (f32
//!   rounding). The cost is one extra forward without graph per split micro-batch.
//!
//! So `token_budget` bounds the activations (and autograd graph) alive at any time to one
//! sub-batch of at most `token_budget` padded tokens (or one over-long row), plus the `[B, T]`
//! matrices of the micro-batch; parameters, gradients and AdamW moments come on top.
//!
//! The per-token inputs of the loss (behaviour log-probs, advantages, response mask) are packed
//! once per mini-batch into `[B, T]` tensors on the model's device ([`PackedBatch`]); each
//! micro-batch takes row (and column) views of them.

use std::ops::Range;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use rand_chacha::ChaCha8Rng;
use spear_model::{plan_micro_batches, AdamW, Decoder, Grads, Mode, Policy, ScoreItem, Scored};
use spear_rl::config::RlConfig;
use spear_rl::loss::{
    actor_loss, ActorLossInputs, ActorLossParams, AggOptions, LossMetrics, LossPass, PolicyInputs,
};
use spear_rl::sample::StepSample;
use spear_rl::update_plan::{Phase, UpdatePlan};

/// Running means of the loss metrics of one phase, weighted by valid tokens.
#[derive(Debug, Clone, Default)]
pub struct PhaseStats {
    /// Micro-batches that had at least one trained token.
    pub micro_batches: u64,
    /// Σ valid tokens.
    pub tokens: f64,
    /// Token-weighted sums of the metrics.
    sums: LossMetrics,
}

impl PhaseStats {
    fn add(&mut self, m: &LossMetrics) {
        let w = m.valid_tokens;
        self.micro_batches += 1;
        self.tokens += w;
        let s = &mut self.sums;
        s.pg_loss += m.pg_loss * w;
        s.pg_clipfrac += m.pg_clipfrac * w;
        s.dual_clipfrac += m.dual_clipfrac * w;
        s.ppo_kl += m.ppo_kl * w;
        s.clip_cov_frac += m.clip_cov_frac * w;
        s.entropy += m.entropy * w;
        s.kl_loss += m.kl_loss * w;
        s.tis_weight += m.tis_weight * w;
        s.tis_capped_frac += m.tis_capped_frac * w;
    }

    /// Token-weighted mean of the metrics (zeros when nothing was trained).
    pub fn mean(&self) -> LossMetrics {
        if self.tokens == 0.0 {
            return LossMetrics::default();
        }
        let s = &self.sums;
        let n = self.tokens;
        LossMetrics {
            pg_loss: s.pg_loss / n,
            pg_clipfrac: s.pg_clipfrac / n,
            dual_clipfrac: s.dual_clipfrac / n,
            ppo_kl: s.ppo_kl / n,
            clip_cov_frac: s.clip_cov_frac / n,
            entropy: s.entropy / n,
            kl_loss: s.kl_loss / n,
            tis_weight: s.tis_weight / n,
            tis_capped_frac: s.tis_capped_frac / n,
            valid_tokens: n,
            ..LossMetrics::default()
        }
    }
}

/// What one update did.
#[derive(Debug, Clone, Default)]
pub struct UpdateStats {
    /// On-policy phase.
    pub on_policy: PhaseStats,
    /// Replay phase.
    pub replay: PhaseStats,
    /// Gradient norms before clipping, one per optimizer step.
    pub grad_norms: Vec<f64>,
    /// Learning rate of the last step.
    pub lr: f64,
    /// Tokens (prompt + response) that went through forward and backward.
    pub tokens: u64,
    /// Seconds.
    pub secs: f64,
    /// Micro-batches that did not fit one forward pass of `token_budget` tokens and took the
    /// split path (module docs); 0 means every micro-batch took the single-pass path.
    pub split_micro_batches: u64,
}

/// Teacher-forced log-probs (and entropies) of `rows` under softmax(logits / `temperature`)
/// (the rollout temperature, as verl's actor), padded to `[B, T]` with `T` the longest
/// response, in forward passes of at most `token_budget` padded tokens. `Mode::Train` keeps
/// the graph of every forward pass until the result is dropped.
pub fn score_padded(
    policy: &Policy,
    rows: &[&StepSample],
    token_budget: usize,
    with_entropy: bool,
    temperature: f64,
    mode: Mode,
) -> anyhow::Result<(Tensor, Option<Tensor>)> {
    let groups = plan_micro_batches(&total_lengths(rows), token_budget);
    score_groups(
        &policy.model,
        rows,
        &groups,
        with_entropy,
        temperature,
        mode,
    )
}

/// Prompt + response length of each row (what a forward pass costs).
fn total_lengths(rows: &[&StepSample]) -> Vec<usize> {
    rows.iter()
        .map(|s| s.prompt_tokens.len() + s.response_tokens.len())
        .collect()
}

/// Longest response of `rows` (at least 1): the `T` of their `[B, T]` matrices.
fn response_width<'a>(rows: impl IntoIterator<Item = &'a StepSample>) -> usize {
    rows.into_iter()
        .map(|s| s.response_tokens.len())
        .max()
        .unwrap_or(0)
        .max(1)
}

/// Scores the rows of one sub-batch (`group`: indices into `rows`) in one forward pass.
fn score_group(
    model: &Decoder,
    rows: &[&StepSample],
    group: &[usize],
    with_entropy: bool,
    temperature: f64,
    mode: Mode,
) -> anyhow::Result<Scored> {
    let items: Vec<ScoreItem<'_>> = group
        .iter()
        .map(|&i| ScoreItem {
            prompt: &rows[i].prompt_tokens,
            response: &rows[i].response_tokens,
        })
        .collect();
    Ok(spear_model::score_at_temperature(
        model,
        &items,
        mode,
        with_entropy,
        temperature,
    )?)
}

/// [`score_padded`] with the sub-batches given: one forward pass per group, rows padded
/// (zeros) to the longest response and stacked in `rows` order.
fn score_groups(
    model: &Decoder,
    rows: &[&StepSample],
    groups: &[Vec<usize>],
    with_entropy: bool,
    temperature: f64,
    mode: Mode,
) -> anyhow::Result<(Tensor, Option<Tensor>)> {
    let t = response_width(rows.iter().copied());
    let mut lp_rows: Vec<Option<Tensor>> = vec![None; rows.len()];
    let mut ent_rows: Vec<Option<Tensor>> = vec![None; rows.len()];
    for group in groups {
        let scored = score_group(model, rows, group, with_entropy, temperature, mode)?;
        for (k, &i) in group.iter().enumerate() {
            let (s, n) = scored.spans[k];
            let pad = |x: &Tensor| -> anyhow::Result<Tensor> {
                let r = x.narrow(0, s, n)?;
                Ok(if n < t {
                    Tensor::cat(&[r, Tensor::zeros(t - n, x.dtype(), x.device())?], 0)?
                } else {
                    r
                })
            };
            lp_rows[i] = Some(pad(&scored.logprobs)?);
            if let Some(e) = &scored.entropy {
                ent_rows[i] = Some(pad(e)?);
            }
        }
    }
    let lp: Vec<Tensor> = lp_rows.into_iter().map(|x| x.expect("scored")).collect();
    let lp = Tensor::stack(&lp, 0)?;
    let ent = if with_entropy {
        let e: Vec<Tensor> = ent_rows.into_iter().map(|x| x.expect("scored")).collect();
        Some(Tensor::stack(&e, 0)?)
    } else {
        None
    };
    Ok((lp, ent))
}

/// How far the rollout engine's log-probs are from the trainer's recomputed ones, over the
/// trained tokens (response mask 1) of one iteration's on-policy samples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Mismatch {
    /// Tokens compared.
    pub tokens: u64,
    /// Mean `|logp_trainer − logp_engine|`.
    pub abs_diff_mean: f64,
    /// Largest `|logp_trainer − logp_engine|`.
    pub abs_diff_max: f64,
    /// Fraction of the tokens whose probability ratio `exp(logp_trainer − logp_engine)` lies
    /// outside [0.5, 2].
    pub ratio_outside_frac: f64,
}

impl Mismatch {
    /// The statistics of `(trainer, engine)` log-prob pairs.
    pub fn of(pairs: impl IntoIterator<Item = (f32, f32)>) -> Self {
        let (mut n, mut sum, mut max, mut outside) = (0u64, 0f64, 0f64, 0u64);
        let bound = std::f64::consts::LN_2;
        for (trainer, engine) in pairs {
            let d = (f64::from(trainer) - f64::from(engine)).abs();
            n += 1;
            sum += d;
            max = max.max(d);
            // ratio < 0.5 or > 2  ⇔  |log ratio| > ln 2 (NaN counts as outside).
            if d.is_nan() || d > bound {
                outside += 1;
            }
        }
        if n == 0 {
            return Self::default();
        }
        Self {
            tokens: n,
            abs_diff_mean: sum / n as f64,
            abs_diff_max: max,
            ratio_outside_frac: outside as f64 / n as f64,
        }
    }
}

/// verl's `recompute_log_prob` (`compute_log_prob` before the update, `old_log_prob`): the
/// behaviour log-probs of every sample with loss tokens are recomputed with the trainer's
/// current weights at `temperature` and become its `old_log_probs` (the PPO ratio's
/// denominator), while the engine's stay in `rollout_log_probs` (a sample without them gets
/// the engine's values from its `old_log_probs` first). Scoring takes the update's path: forward
/// passes of at most `token_budget` padded tokens, without a graph, with the training
/// (unfused) kernels, so the activations alive at once are one sub-batch's, as in the update.
/// Returns the mismatch between the two over the tokens with response mask 1.
pub fn recompute_old_log_probs(
    policy: &Policy,
    samples: &mut [StepSample],
    token_budget: usize,
    temperature: f64,
) -> anyhow::Result<Mismatch> {
    let picked: Vec<usize> = (0..samples.len())
        .filter(|&i| samples[i].has_loss_tokens())
        .collect();
    let mut probe = policy.model.clone();
    probe.fused_inference = false;
    let mut fresh: Vec<Vec<f32>> = Vec::with_capacity(picked.len());
    {
        let rows: Vec<&StepSample> = picked.iter().map(|&i| &samples[i]).collect();
        let groups = plan_micro_batches(&total_lengths(&rows), token_budget);
        fresh.resize(rows.len(), vec![]);
        for group in &groups {
            let scored = score_group(&probe, &rows, group, false, temperature, Mode::Infer)?;
            let flat = scored.logprobs.to_dtype(DType::F32)?.to_vec1::<f32>()?;
            for (k, &r) in group.iter().enumerate() {
                let (start, n) = scored.spans[k];
                fresh[r] = flat[start..start + n].to_vec();
            }
        }
    }
    let mut pairs = vec![];
    for (&i, lp) in picked.iter().zip(fresh) {
        let s = &mut samples[i];
        anyhow::ensure!(
            lp.len() == s.response_tokens.len(),
            "recomputing old log-probs: {} scores for {} response tokens",
            lp.len(),
            s.response_tokens.len()
        );
        if s.rollout_log_probs.len() != s.response_tokens.len() {
            s.rollout_log_probs = std::mem::take(&mut s.old_log_probs);
        }
        if s.rollout_log_probs.len() == lp.len() {
            pairs.extend(
                s.response_mask
                    .iter()
                    .zip(lp.iter().zip(&s.rollout_log_probs))
                    .filter(|(m, _)| **m != 0)
                    .map(|(_, (&a, &b))| (a, b)),
            );
        }
        s.old_log_probs = lp;
    }
    Ok(Mismatch::of(pairs))
}

/// `rl.loss.bypass_mode` (verl's rollout-correction bypass): the engine's log-probs stay the
/// samples' `old_log_probs` and are copied into `rollout_log_probs`, nothing is recomputed. A
/// sample with loss tokens but no log-prob per response token is an error (an engine that did
/// not return log-probs cannot be bypassed). Returns the empty mismatch.
pub fn bypass_old_log_probs(samples: &mut [StepSample]) -> anyhow::Result<Mismatch> {
    for s in samples.iter_mut().filter(|s| s.has_loss_tokens()) {
        anyhow::ensure!(
            s.old_log_probs.len() == s.response_tokens.len(),
            "rl.loss.bypass_mode = true needs the rollout engine's log-prob of every response \
             token, but a sample has {} for {} tokens: set rl.loss.bypass_mode = false to \
             recompute them",
            s.old_log_probs.len(),
            s.response_tokens.len()
        );
        if s.rollout_log_probs.len() != s.response_tokens.len() {
            s.rollout_log_probs = s.old_log_probs.clone();
        }
    }
    Ok(Mismatch::default())
}

/// The per-token loss inputs of one mini-batch, packed once as `[B, T]` tensors (zero padded,
/// `T` the mini-batch's longest response) on the model's device in its dtype.
#[derive(Debug)]
struct PackedBatch {
    /// Index of the first row in the phase's batch.
    first_row: usize,
    /// Behaviour log-probs.
    old_log_prob: Tensor,
    /// Token advantages `A · mask`.
    advantages: Tensor,
    /// 0/1 response mask.
    mask: Tensor,
    /// The engine's log-probs, packed only when truncated importance sampling is on (a row
    /// without them takes its `old_log_probs`: weight 1).
    rollout_log_prob: Option<Tensor>,
}

/// One micro-batch's `[b, t]` views of a [`PackedBatch`].
struct MicroInputs {
    old_log_prob: Tensor,
    advantages: Tensor,
    mask: Tensor,
    rollout_log_prob: Option<Tensor>,
}

impl PackedBatch {
    /// Packs `data[rows]` (read in place, nothing cloned per row); the engine's log-probs
    /// too when `with_rollout` (truncated importance sampling).
    fn new(
        data: &[StepSample],
        rows: Range<usize>,
        device: &Device,
        dtype: DType,
        with_rollout: bool,
    ) -> anyhow::Result<Self> {
        let samples = &data[rows.clone()];
        let (b, t) = (samples.len(), response_width(samples));
        let mut old = vec![0f32; b * t];
        let mut adv = vec![0f32; b * t];
        let mut mask = vec![0f32; b * t];
        let mut rollout = if with_rollout {
            vec![0f32; b * t]
        } else {
            vec![]
        };
        for (r, s) in samples.iter().enumerate() {
            let row = r * t;
            let n = s.old_log_probs.len().min(t);
            old[row..row + n].copy_from_slice(&s.old_log_probs[..n]);
            if with_rollout {
                // A sample stored without engine log-probs (an older buffer) weighs 1.
                let src = if s.rollout_log_probs.len() == s.old_log_probs.len() {
                    &s.rollout_log_probs
                } else {
                    &s.old_log_probs
                };
                rollout[row..row + n].copy_from_slice(&src[..n]);
            }
            // `StepSample::token_advantages` without the per-row vector.
            let a = s.advantage as f32;
            for (k, &m) in s.response_mask.iter().take(t).enumerate() {
                mask[row + k] = f32::from(m);
                if m != 0 {
                    adv[row + k] = a;
                }
            }
        }
        let put = |v: Vec<f32>| -> anyhow::Result<Tensor> {
            Ok(Tensor::from_vec(v, (b, t), device)?.to_dtype(dtype)?)
        };
        Ok(PackedBatch {
            first_row: rows.start,
            old_log_prob: put(old)?,
            advantages: put(adv)?,
            mask: put(mask)?,
            rollout_log_prob: if with_rollout {
                Some(put(rollout)?)
            } else {
                None
            },
        })
    }

    /// Views of the rows `rows` (of the phase's batch), `t` columns wide.
    fn micro(&self, rows: &Range<usize>, t: usize) -> anyhow::Result<MicroInputs> {
        let view = |x: &Tensor| -> anyhow::Result<Tensor> {
            Ok(x.narrow(0, rows.start - self.first_row, rows.len())?
                .narrow(1, 0, t)?)
        };
        Ok(MicroInputs {
            old_log_prob: view(&self.old_log_prob)?,
            advantages: view(&self.advantages)?,
            mask: view(&self.mask)?,
            rollout_log_prob: self.rollout_log_prob.as_ref().map(view).transpose()?,
        })
    }
}

/// What the loss of one micro-batch needs besides its rows.
struct MicroStep<'a> {
    policy: &'a Policy,
    reference: Option<&'a Policy>,
    params: ActorLossParams,
    agg: AggOptions,
    token_budget: usize,
    with_entropy: bool,
    temperature: f64,
}

impl MicroStep<'_> {
    /// Adds the gradient of `loss · loss_scale` of the micro-batch `rows` (rows
    /// `range` of the phase's batch, packed in `packed`) to `grads`; returns the loss metrics
    /// and whether the micro-batch took the split path (module docs).
    fn backward(
        &self,
        rows: &[&StepSample],
        packed: &PackedBatch,
        range: &Range<usize>,
        loss_scale: f64,
        grads: &mut Grads,
        rng: &mut ChaCha8Rng,
    ) -> anyhow::Result<(LossMetrics, bool)> {
        let groups = plan_micro_batches(&total_lengths(rows), self.token_budget);
        let model = &self.policy.model;
        if groups.len() <= 1 {
            let (lp, ent) = score_groups(
                model,
                rows,
                &groups,
                self.with_entropy,
                self.temperature,
                Mode::Train,
            )?;
            let ref_lp = self.reference_log_probs(rows)?;
            let x = packed.micro(range, lp.dim(1)?)?;
            let out = actor_loss(
                &inputs(&lp, ent.as_ref(), ref_lp.as_ref(), &x),
                &self.params,
                &self.agg,
                rng,
            )?;
            let store = out.loss.affine(loss_scale, 0.0)?.backward()?;
            grads.accumulate(&store, model.params())?;
            return Ok((out.metrics, false));
        }
        // (a) Log-probs and entropies without a graph, with the training kernels.
        let mut probe = model.clone();
        probe.fused_inference = false;
        let (lp, ent) = score_groups(
            &probe,
            rows,
            &groups,
            self.with_entropy,
            self.temperature,
            Mode::Infer,
        )?;
        drop(probe);
        let ref_lp = self.reference_log_probs(rows)?;
        let t = lp.dim(1)?;
        let x = packed.micro(range, t)?;
        // (b) The loss on leaf copies; its gradient with respect to them.
        let lp = Var::from_tensor(&lp)?;
        let ent = ent.map(|e| Var::from_tensor(&e)).transpose()?;
        let out = actor_loss(
            &inputs(
                lp.as_tensor(),
                ent.as_ref().map(Var::as_tensor),
                ref_lp.as_ref(),
                &x,
            ),
            &self.params,
            &self.agg,
            rng,
        )?;
        let store = out.loss.affine(loss_scale, 0.0)?.backward()?;
        let flat_grad = |v: &Var| -> anyhow::Result<Option<Tensor>> {
            store
                .get(v.as_tensor())
                .map(|g| Ok(g.detach().flatten_all()?))
                .transpose()
        };
        let g_lp = flat_grad(&lp)?;
        let g_ent = match &ent {
            Some(e) => flat_grad(e)?,
            None => None,
        };
        drop(store);
        let device = model.device();
        // (c) Per sub-batch: forward with the graph, backward of the linearised loss.
        for group in &groups {
            // Flat `[B·T]` index of every scored token, in the order of `Scored::logprobs`.
            let idx: Vec<u32> = group
                .iter()
                .flat_map(|&i| (0..rows[i].response_tokens.len()).map(move |k| (i * t + k) as u32))
                .collect();
            if idx.is_empty() {
                continue;
            }
            let scored = score_group(
                model,
                rows,
                group,
                self.with_entropy,
                self.temperature,
                Mode::Train,
            )?;
            let n = idx.len();
            let idx = Tensor::from_vec(idx, n, &device)?;
            let mut terms = vec![];
            if let Some(g) = &g_lp {
                terms.push((&scored.logprobs * g.index_select(&idx, 0)?)?.sum_all()?);
            }
            if let (Some(g), Some(e)) = (&g_ent, &scored.entropy) {
                terms.push((e * g.index_select(&idx, 0)?)?.sum_all()?);
            }
            let Some(first) = terms.pop() else { continue };
            let surrogate = terms.into_iter().try_fold(first, |acc, x| acc + x)?;
            let store = surrogate.backward()?;
            grads.accumulate(&store, model.params())?;
        }
        Ok((out.metrics, true))
    }

    /// Reference log-probs of the KL loss (no graph, per sub-batch), when it is on.
    fn reference_log_probs(&self, rows: &[&StepSample]) -> anyhow::Result<Option<Tensor>> {
        Ok(match (self.params.kl, self.reference) {
            (Some(_), Some(r)) => Some(
                score_padded(
                    r,
                    rows,
                    self.token_budget,
                    false,
                    self.temperature,
                    Mode::Infer,
                )?
                .0,
            ),
            _ => None,
        })
    }
}

/// The loss inputs of one micro-batch.
fn inputs<'a>(
    lp: &'a Tensor,
    ent: Option<&'a Tensor>,
    ref_lp: Option<&'a Tensor>,
    x: &'a MicroInputs,
) -> ActorLossInputs<'a> {
    ActorLossInputs {
        policy: PolicyInputs {
            log_prob: lp,
            old_log_prob: &x.old_log_prob,
            advantages: &x.advantages,
            response_mask: &x.mask,
        },
        entropy: ent,
        ref_log_prob: ref_lp,
        rollout_log_prob: x.rollout_log_prob.as_ref(),
    }
}

/// Executes `plan` on the on-policy rows and the replay rows. `lr_at(step)` gives the learning
/// rate of the optimizer's next step; `temperature` is the rollout temperature the rows' (and
/// the replayed rows') `old_log_probs` were sampled at. `reference` is the frozen reference
/// policy of the KL loss (`rl.loss.use_kl_loss`, on-policy phase only, spec §2.5, §4.3): its
/// log-probs are computed per micro-batch (in forward passes of at most `token_budget` tokens,
/// without a graph), as verl's `ref_log_prob`. `token_budget` bounds the tokens of each forward
/// pass and, through the split path of the module docs, the activations alive at once.
#[allow(clippy::too_many_arguments)]
pub fn run_update(
    policy: &Policy,
    reference: Option<&Policy>,
    opt: &mut AdamW,
    plan: &UpdatePlan,
    on_policy: &[StepSample],
    replay: &[StepSample],
    rl: &RlConfig,
    lr_at: &dyn Fn(u64) -> f64,
    token_budget: usize,
    temperature: f64,
    norm_len: usize,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<UpdateStats> {
    let start = Instant::now();
    anyhow::ensure!(
        !rl.loss.use_kl_loss || reference.is_some(),
        "rl.loss.use_kl_loss = true needs the reference policy (the weights RL started from)"
    );
    let mut stats = UpdateStats::default();
    let dtype = policy.model.dtype();
    let device = policy.model.device();
    let with_entropy = rl.loss.entropy_coeff != 0.0;
    let agg = AggOptions::with_norm_len(norm_len);
    for mb in &plan.mini_batches {
        let (data, pass) = match mb.phase {
            Phase::OnPolicy => (on_policy, LossPass::OnPolicy),
            Phase::Replay => (replay, LossPass::Replay),
        };
        if !data[mb.rows.clone()].iter().any(|s| s.has_loss_tokens()) {
            continue;
        }
        let step = MicroStep {
            policy,
            reference,
            params: rl.loss.actor_params(pass),
            agg,
            token_budget,
            with_entropy,
            temperature,
        };
        let packed = PackedBatch::new(
            data,
            mb.rows.clone(),
            &device,
            dtype,
            step.params.tis_cap.is_some(),
        )?;
        let mut grads = Grads::new();
        let mut any = false;
        for micro in &mb.micro_batches {
            let rows: Vec<&StepSample> = data[micro.rows.clone()].iter().collect();
            if !rows.iter().any(|s| s.has_loss_tokens()) {
                continue;
            }
            let (metrics, split) = step.backward(
                &rows,
                &packed,
                &micro.rows,
                micro.loss_scale,
                &mut grads,
                rng,
            )?;
            match mb.phase {
                Phase::OnPolicy => stats.on_policy.add(&metrics),
                Phase::Replay => stats.replay.add(&metrics),
            }
            stats.split_micro_batches += u64::from(split);
            stats.tokens += rows
                .iter()
                .map(|s| (s.prompt_tokens.len() + s.response_tokens.len()) as u64)
                .sum::<u64>();
            any = true;
        }
        if !any {
            continue;
        }
        let norm = grads.clip_global_norm(mb.grad_clip)?;
        stats.grad_norms.push(norm);
        if !norm.is_finite() {
            // verl skips the optimizer step when the gradient norm is not finite.
            tracing::warn!("gradient norm is {norm}; optimizer step skipped");
            continue;
        }
        let lr = lr_at(opt.step);
        stats.lr = lr;
        opt.step(policy.model.params(), &grads, lr)?;
    }
    stats.secs = start.elapsed().as_secs_f64();
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::config::TrainConfig;
    use crate::train::setup::tiny_policy;
    use rand::{RngCore, SeedableRng};
    use spear_model::AdamWConfig;
    use spear_rl::sample::{GroupId, TrajId};

    fn sample(policy: &Policy, advantage: f64) -> StepSample {
        let tok = &policy.tokenizer;
        let prompt = tok.encode("go to the sinkbasin").unwrap();
        let response = tok.encode("take the apple").unwrap();
        let n = response.len();
        let mut s = StepSample {
            uid: GroupId(0),
            traj_uid: TrajId(0),
            step_index: 0,
            prompt_tokens: prompt,
            response_tokens: response,
            response_mask: vec![1; n],
            old_log_probs: vec![],
            rollout_log_probs: vec![],
            policy_version: 0,
            step_reward: 0.0,
            episode_reward: 0.0,
            episode_length: 1,
            tool_calls: 1,
            is_action_valid: true,
            anchor_obs: String::new(),
            collected_at: 1,
            score: 0.0,
            step_return: 0.0,
            advantage,
        };
        s.old_log_probs = log_probs(policy, &s);
        s
    }

    fn log_probs(policy: &Policy, s: &StepSample) -> Vec<f32> {
        let (lp, _) = score_padded(policy, &[s], 1 << 14, false, 1.0, Mode::Infer).unwrap();
        lp.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    /// One optimizer step on a single sample moves its log-likelihood in the direction of the
    /// sign of its advantage (the whole chain: scoring, actor loss, backward, AdamW).
    #[test]
    fn update_follows_the_sign_of_the_advantage() {
        let cfg = TrainConfig::default();
        let corpus = vec!["go to the sinkbasin take the apple".to_string()];
        for sign in [1.0, -1.0] {
            let policy = tiny_policy(&cfg.model, &corpus, 3).unwrap();
            let s = sample(&policy, sign);
            let before: f32 = s.old_log_probs.iter().sum();
            let mut rl = cfg.rl.clone();
            rl.update.mini_batch_size = 1;
            rl.update.micro_batch_size = 1;
            let plan = UpdatePlan::build(1, 0, 1, &rl.update, &rl.replay);
            let mut opt = AdamW::new(AdamWConfig::default());
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let stats = run_update(
                &policy,
                None,
                &mut opt,
                &plan,
                std::slice::from_ref(&s),
                &[],
                &rl,
                &|_| 1e-2,
                1 << 14,
                1.0,
                8,
                &mut rng,
            )
            .unwrap();
            assert_eq!(stats.grad_norms.len(), 1);
            let after: f32 = log_probs(&policy, &s).iter().sum();
            assert!(
                (after - before) * sign as f32 > 0.05,
                "advantage {sign}: log-likelihood {before} -> {after}"
            );
        }
    }

    /// With the KL loss on and a zero advantage, the only force is the KL to the reference:
    /// it is 0 while the policy equals the reference, positive once they differ, and a step
    /// brings the policy back toward the reference.
    #[test]
    fn kl_loss_pulls_toward_the_reference() {
        let cfg = TrainConfig::default();
        let corpus = vec!["go to the sinkbasin take the apple".to_string()];
        let reference = tiny_policy(&cfg.model, &corpus, 3).unwrap();
        let policy = tiny_policy(&cfg.model, &corpus, 4).unwrap();
        let s = sample(&policy, 0.0);
        let mut rl = cfg.rl.clone();
        rl.update.mini_batch_size = 1;
        rl.update.micro_batch_size = 1;
        rl.loss.use_kl_loss = true;
        rl.loss.kl_loss_coef = 1.0;
        rl.loss.entropy_coeff = 0.0;
        let plan = UpdatePlan::build(1, 0, 1, &rl.update, &rl.replay);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut opt = AdamW::new(AdamWConfig::default());
        let mut step = |policy: &Policy, reference: Option<&Policy>| {
            run_update(
                policy,
                reference,
                &mut opt,
                &plan,
                std::slice::from_ref(&s),
                &[],
                &rl,
                &|_| 1e-3,
                1 << 14,
                1.0,
                8,
                &mut rng,
            )
        };
        // No reference: a clear error, not a silent zero.
        let err = step(&policy, None).unwrap_err().to_string();
        assert!(err.contains("use_kl_loss"), "{err}");
        // The policy against itself: KL 0.
        let twin = tiny_policy(&cfg.model, &corpus, 3).unwrap();
        let same = step(&twin, Some(&reference)).unwrap();
        assert!(same.on_policy.mean().kl_loss.abs() < 1e-6);
        // A different policy: KL > 0, and it shrinks after a few steps.
        let first = step(&policy, Some(&reference))
            .unwrap()
            .on_policy
            .mean()
            .kl_loss;
        assert!(first > 1e-4, "kl {first}");
        let mut last = first;
        for _ in 0..4 {
            last = step(&policy, Some(&reference))
                .unwrap()
                .on_policy
                .mean()
                .kl_loss;
        }
        assert!(last < first * 0.9, "kl {first} -> {last}");
    }

    /// `Mismatch::of` by hand: |Δ| = [0.1, 0.8, 0.0, 1.0]: mean 0.475, max 1.0, and two of the
    /// four ratios (e^0.8 ≈ 2.23, e^−1 ≈ 0.37) outside [0.5, 2].
    #[test]
    fn mismatch_by_hand() {
        let m = Mismatch::of([(-1.0, -1.1), (-2.0, -2.8), (-0.5, -0.5), (-3.0, -2.0)]);
        assert_eq!(m.tokens, 4);
        assert!((m.abs_diff_mean - 0.475).abs() < 1e-6, "{m:?}");
        assert!((m.abs_diff_max - 1.0).abs() < 1e-6, "{m:?}");
        assert_eq!(m.ratio_outside_frac, 0.5);
        assert_eq!(Mismatch::of([]), Mismatch::default());
    }

    /// The recomputation writes the trainer's teacher-forced log-probs into `old_log_probs`
    /// whatever the token budget (sub-batches of one row or all rows), keeps the engine's in
    /// `rollout_log_probs` (moving them there when a sample has none), leaves samples without
    /// loss tokens alone, and measures the mismatch over the masked-in tokens only.
    #[test]
    fn recompute_writes_the_trainer_log_probs_and_keeps_the_engine_s() {
        let policy = tiny(3);
        let mut data = rows(&policy, 6, 8);
        // rows() put trainer log-probs + offsets of ±0.05..0.5 into old_log_probs: the engine.
        for (i, s) in data.iter_mut().enumerate() {
            if i == 2 {
                s.rollout_log_probs.clear();
            } else {
                s.rollout_log_probs = s.old_log_probs.clone();
            }
        }
        let engine: Vec<Vec<f32>> = data.iter().map(|s| s.old_log_probs.clone()).collect();
        let truth: Vec<Vec<f32>> = data.iter().map(|s| log_probs(&policy, s)).collect();
        let longest = data
            .iter()
            .map(|s| s.prompt_tokens.len() + s.response_tokens.len())
            .max()
            .unwrap();
        let mut results = vec![];
        for budget in [longest, 1 << 14] {
            let mut d = data.clone();
            let m = recompute_old_log_probs(&policy, &mut d, budget, 1.0).unwrap();
            for (i, s) in d.iter().enumerate() {
                if !data[i].has_loss_tokens() {
                    assert_eq!(s, &data[i], "row {i} without loss tokens changed");
                    continue;
                }
                assert_eq!(s.rollout_log_probs, engine[i], "row {i}");
                for (a, b) in s.old_log_probs.iter().zip(&truth[i]) {
                    assert!((a - b).abs() < 1e-5, "row {i}: {a} vs {b}");
                }
            }
            // The expected statistics from the same pairs, masked-in tokens only.
            let pairs: Vec<(f32, f32)> = d
                .iter()
                .filter(|s| s.has_loss_tokens())
                .flat_map(|s| {
                    s.response_mask
                        .iter()
                        .zip(s.old_log_probs.iter().zip(&s.rollout_log_probs))
                        .filter(|(m, _)| **m != 0)
                        .map(|(_, (&a, &b))| (a, b))
                        .collect::<Vec<_>>()
                })
                .collect();
            assert_eq!(m, Mismatch::of(pairs));
            // rows() offsets are 0.05..0.5 in magnitude: all inside [0.5, 2], none below 0.04.
            assert!(
                m.abs_diff_mean > 0.04 && m.abs_diff_max <= 0.5 + 1e-4,
                "{m:?}"
            );
            assert_eq!(m.ratio_outside_frac, 0.0);
            results.push(d);
        }
        // One row per forward pass or all rows in one: the same log-probs to f32 rounding.
        for (a, b) in results[0].iter().zip(&results[1]) {
            for (x, y) in a.old_log_probs.iter().zip(&b.old_log_probs) {
                assert!((x - y).abs() < 1e-5);
            }
        }
    }

    /// `rl.loss.tis_cap` through the update: with the engine's log-probs equal to the
    /// recomputed ones (weight 1), or missing (a replayed sample stored by an older version),
    /// the update is bitwise the update without TIS (on-policy and replay phases, split and
    /// single-pass micro-batches); engine log-probs that differ change it and are reported.
    #[test]
    fn tis_with_weight_one_is_the_update_without_it() {
        let base = rows(&tiny(3), 8, 1);
        let replay = rows(&tiny(3), 4, 2);
        let mut rl = rl_config(4, 2);
        rl.replay.enabled = true;
        let plan = UpdatePlan::build(base.len(), replay.len(), 1, &rl.update, &rl.replay);
        let reference = tiny(9);
        let run = |rl: &RlConfig, data: &[StepSample], replay: &[StepSample], budget: usize| {
            let policy = tiny(3);
            let mut opt = AdamW::new(AdamWConfig::default());
            let mut rng = ChaCha8Rng::seed_from_u64(11);
            let stats = run_update(
                &policy,
                Some(&reference),
                &mut opt,
                &plan,
                data,
                replay,
                rl,
                &|_| 1e-2,
                budget,
                0.7,
                16,
                &mut rng,
            )
            .unwrap();
            (stats, params_of(&policy))
        };
        let mut on = rl.clone();
        on.loss.tis_cap = spear_rl::loss::TisCap(Some(2.0));
        let mut same = base.clone();
        for s in &mut same {
            s.rollout_log_probs = s.old_log_probs.clone();
        }
        let longest = base
            .iter()
            .map(|s| s.prompt_tokens.len() + s.response_tokens.len())
            .max()
            .unwrap();
        for budget in [1 << 14, longest] {
            let (off, p_off) = run(&rl, &base, &replay, budget);
            let (one, p_one) = run(&on, &same, &replay, budget);
            assert_eq!(off.grad_norms, one.grad_norms);
            assert_eq!(
                metric_vec(&off.on_policy.mean()),
                metric_vec(&one.on_policy.mean())
            );
            assert_eq!(p_off, p_one);
            assert_eq!(off.on_policy.mean().tis_weight, 0.0);
            assert!((one.on_policy.mean().tis_weight - 1.0).abs() < 1e-6);
            assert!((one.replay.mean().tis_weight - 1.0).abs() < 1e-6);
        }
        // The engine thought every token 0.5 less likely: weight e^0.5 ≈ 1.65 < cap 2.
        let mut shifted = same.clone();
        for s in &mut shifted {
            s.rollout_log_probs.iter_mut().for_each(|x| *x -= 0.5);
        }
        let (off, p_off) = run(&rl, &base, &replay, 1 << 14);
        let (w, p_w) = run(&on, &shifted, &replay, 1 << 14);
        assert_ne!(p_off, p_w);
        assert_ne!(off.grad_norms, w.grad_norms);
        let tw = w.on_policy.mean().tis_weight;
        assert!((tw - 0.5f64.exp()).abs() < 1e-3, "{tw}");
        assert_eq!(w.on_policy.mean().tis_capped_frac, 0.0);
    }

    // ---- The split path and the packed batch against the previous implementation ----

    /// The update as it was before the split path and the packed batch (kept verbatim as the
    /// reference): every micro-batch scored with the graph (forward passes of at most
    /// `token_budget` tokens, one `backward` of the whole micro-batch loss), loss inputs rebuilt
    /// per micro-batch from cloned row vectors on the host.
    #[allow(clippy::too_many_arguments)]
    fn previous_run_update(
        policy: &Policy,
        reference: Option<&Policy>,
        opt: &mut AdamW,
        plan: &UpdatePlan,
        on_policy: &[StepSample],
        replay: &[StepSample],
        rl: &RlConfig,
        lr_at: &dyn Fn(u64) -> f64,
        token_budget: usize,
        temperature: f64,
        norm_len: usize,
        rng: &mut ChaCha8Rng,
    ) -> UpdateStats {
        fn host_matrix(rows: &[Vec<f32>], t: usize, dtype: DType) -> Tensor {
            let mut flat = Vec::with_capacity(rows.len() * t);
            for r in rows {
                flat.extend_from_slice(&r[..r.len().min(t)]);
                flat.extend(std::iter::repeat_n(0f32, t.saturating_sub(r.len())));
            }
            Tensor::from_vec(flat, (rows.len(), t), &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap()
        }
        let mut stats = UpdateStats::default();
        let dtype = policy.model.dtype();
        let with_entropy = rl.loss.entropy_coeff != 0.0;
        let agg = AggOptions::with_norm_len(norm_len);
        for mb in &plan.mini_batches {
            let (data, pass) = match mb.phase {
                Phase::OnPolicy => (on_policy, LossPass::OnPolicy),
                Phase::Replay => (replay, LossPass::Replay),
            };
            let params = rl.loss.actor_params(pass);
            let mut grads = Grads::new();
            let mut any = false;
            for micro in &mb.micro_batches {
                let rows: Vec<&StepSample> = data[micro.rows.clone()].iter().collect();
                if !rows.iter().any(|s| s.has_loss_tokens()) {
                    continue;
                }
                let (lp, ent) = score_padded(
                    policy,
                    &rows,
                    token_budget,
                    with_entropy,
                    temperature,
                    Mode::Train,
                )
                .unwrap();
                let ref_lp = match (params.kl, reference) {
                    (Some(_), Some(r)) => Some(
                        score_padded(r, &rows, token_budget, false, temperature, Mode::Infer)
                            .unwrap()
                            .0,
                    ),
                    _ => None,
                };
                let t = lp.dim(1).unwrap();
                let old: Vec<Vec<f32>> = rows.iter().map(|s| s.old_log_probs.clone()).collect();
                let adv: Vec<Vec<f32>> = rows.iter().map(|s| s.token_advantages()).collect();
                let mask: Vec<Vec<f32>> = rows
                    .iter()
                    .map(|s| s.response_mask.iter().map(|&m| m as f32).collect())
                    .collect();
                let (old, adv, mask) = (
                    host_matrix(&old, t, dtype),
                    host_matrix(&adv, t, dtype),
                    host_matrix(&mask, t, dtype),
                );
                let inputs = ActorLossInputs {
                    policy: PolicyInputs {
                        log_prob: &lp,
                        old_log_prob: &old,
                        advantages: &adv,
                        response_mask: &mask,
                    },
                    entropy: ent.as_ref(),
                    ref_log_prob: ref_lp.as_ref(),
                    rollout_log_prob: None,
                };
                let out = actor_loss(&inputs, &params, &agg, rng).unwrap();
                match mb.phase {
                    Phase::OnPolicy => stats.on_policy.add(&out.metrics),
                    Phase::Replay => stats.replay.add(&out.metrics),
                }
                let store = out
                    .loss
                    .affine(micro.loss_scale, 0.0)
                    .unwrap()
                    .backward()
                    .unwrap();
                grads.accumulate(&store, policy.model.params()).unwrap();
                stats.tokens += rows
                    .iter()
                    .map(|s| (s.prompt_tokens.len() + s.response_tokens.len()) as u64)
                    .sum::<u64>();
                any = true;
            }
            if !any {
                continue;
            }
            let norm = grads.clip_global_norm(mb.grad_clip).unwrap();
            stats.grad_norms.push(norm);
            if !norm.is_finite() {
                continue;
            }
            let lr = lr_at(opt.step);
            stats.lr = lr;
            opt.step(policy.model.params(), &grads, lr).unwrap();
        }
        stats
    }

    const CORPUS: &str = "go to the sinkbasin take the apple from countertop put it in \
                          fridge open close drawer cabinet look examine use desklamp";

    fn tiny(seed: u64) -> Policy {
        tiny_policy(&TrainConfig::default().model, &[CORPUS.to_string()], seed).unwrap()
    }

    /// `n` rows of varied prompt / response lengths (so micro-batches of one mini-batch have
    /// different widths), some masked tokens, one fully masked row, advantages of both signs
    /// and behaviour log-probs away from the current ones (so the PPO clip and Clip-Cov act).
    fn rows(policy: &Policy, n: usize, seed: u64) -> Vec<StepSample> {
        use rand::Rng;
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        let vocab = policy.tokenizer.vocab_size() as u32;
        (0..n)
            .map(|i| {
                let p = r.random_range(3..12usize);
                let m = r.random_range(2..10usize);
                let mut s = sample(policy, 0.0);
                s.prompt_tokens = (0..p).map(|_| r.random_range(0..vocab)).collect();
                s.response_tokens = (0..m).map(|_| r.random_range(0..vocab)).collect();
                s.response_mask = (0..m).map(|k| u8::from(i == 3 || k % 4 != 3)).collect();
                if i == 5 {
                    s.mask_out();
                }
                s.advantage = if i % 3 == 0 {
                    -1.0
                } else {
                    0.5 + i as f64 * 0.25
                };
                let lp = log_probs(policy, &s);
                s.old_log_probs = lp
                    .iter()
                    .enumerate()
                    .map(|(k, x)| x + [0.4, -0.3, 0.05, -0.5][(i + k) % 4])
                    .collect();
                s
            })
            .collect()
    }

    /// The RL config of these tests: Clip-Cov with a band wide enough that tokens are dropped
    /// at random (the RNG is used), entropy bonus and KL loss on.
    fn rl_config(mini: u64, micro: u64) -> RlConfig {
        let mut rl = TrainConfig::default().rl;
        rl.update.mini_batch_size = mini;
        rl.update.micro_batch_size = micro;
        rl.loss.loss_mode = spear_rl::loss::LossMode::ClipCov;
        rl.loss.clip_cov_ratio = 0.2;
        rl.loss.clip_cov_lb = -10.0;
        rl.loss.clip_cov_ub = 10.0;
        rl.loss.entropy_coeff = 0.05;
        rl.loss.use_kl_loss = true;
        rl.loss.kl_loss_coef = 0.5;
        rl.loss.loss_agg_mode = spear_rl::loss::LossAggMode::TokenMean;
        rl
    }

    fn params_of(policy: &Policy) -> Vec<(String, Vec<f32>)> {
        policy
            .model
            .params()
            .iter()
            .map(|(n, v)| {
                (
                    n.clone(),
                    v.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                )
            })
            .collect()
    }

    fn metric_vec(m: &LossMetrics) -> [f64; 8] {
        [
            m.pg_loss,
            m.pg_clipfrac,
            m.dual_clipfrac,
            m.ppo_kl,
            m.clip_cov_frac,
            m.entropy,
            m.kl_loss,
            m.valid_tokens,
        ]
    }

    /// Runs the new and the previous update from identical policies, optimizer and RNG.
    fn both(
        rl: &RlConfig,
        data: &[StepSample],
        replay: &[StepSample],
        budget: usize,
    ) -> (
        (UpdateStats, Policy, ChaCha8Rng),
        (UpdateStats, Policy, ChaCha8Rng),
    ) {
        let plan = UpdatePlan::build(data.len(), replay.len(), 1, &rl.update, &rl.replay);
        let reference = tiny(9);
        let run = |previous: bool| {
            let policy = tiny(3);
            let mut opt = AdamW::new(AdamWConfig::default());
            let mut rng = ChaCha8Rng::seed_from_u64(11);
            let lr = |_: u64| 1e-2;
            let r = Some(&reference);
            let stats = if previous {
                previous_run_update(
                    &policy, r, &mut opt, &plan, data, replay, rl, &lr, budget, 0.7, 16, &mut rng,
                )
            } else {
                run_update(
                    &policy, r, &mut opt, &plan, data, replay, rl, &lr, budget, 0.7, 16, &mut rng,
                )
                .unwrap()
            };
            (stats, policy, rng)
        };
        (run(false), run(true))
    }

    /// (iii) When every micro-batch fits one forward pass, the update is bit for bit the
    /// previous implementation: same parameters after the AdamW steps, same metrics, gradient
    /// norms and RNG state (two mini-batches of two micro-batches of different widths, the
    /// packed batch's views against per-micro-batch host matrices, Clip-Cov, entropy, KL;
    /// then a replay phase with its own Clip-Cov parameters).
    #[test]
    fn single_sub_batch_path_is_bitwise_the_previous_implementation() {
        let data = rows(&tiny(3), 8, 1);
        let replay = rows(&tiny(3), 4, 2);
        let mut rl = rl_config(4, 2);
        rl.replay.enabled = true;
        let ((new, p_new, mut r_new), (old, p_old, mut r_old)) = both(&rl, &data, &replay, 1 << 14);
        assert_eq!(new.split_micro_batches, 0);
        assert_eq!(new.grad_norms.len(), 3);
        assert_eq!(new.grad_norms, old.grad_norms);
        assert_eq!(
            metric_vec(&new.on_policy.mean()),
            metric_vec(&old.on_policy.mean())
        );
        assert_eq!(
            metric_vec(&new.replay.mean()),
            metric_vec(&old.replay.mean())
        );
        assert!(
            new.on_policy.mean().clip_cov_frac > 0.0,
            "Clip-Cov dropped nothing"
        );
        assert!(new.on_policy.mean().kl_loss > 0.0);
        assert!(new.replay.tokens > 0.0);
        assert_eq!(new.tokens, old.tokens);
        assert_eq!(params_of(&p_new), params_of(&p_old));
        assert_eq!(r_new.next_u64(), r_old.next_u64());
    }

    /// Parameter gradients of one micro-batch through [`MicroStep::backward`].
    fn micro_grads(
        policy: &Policy,
        reference: &Policy,
        rl: &RlConfig,
        data: &[StepSample],
        budget: usize,
    ) -> (Grads, LossMetrics, bool, ChaCha8Rng) {
        let step = MicroStep {
            policy,
            reference: Some(reference),
            params: rl.loss.actor_params(LossPass::OnPolicy),
            agg: AggOptions::with_norm_len(16),
            token_budget: budget,
            with_entropy: true,
            temperature: 0.7,
        };
        let range = 0..data.len();
        let packed =
            PackedBatch::new(data, range.clone(), &Device::Cpu, DType::F32, false).unwrap();
        let refs: Vec<&StepSample> = data.iter().collect();
        let mut grads = Grads::new();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (m, split) = step
            .backward(&refs, &packed, &range, 0.5, &mut grads, &mut rng)
            .unwrap();
        (grads, m, split, rng)
    }

    /// (i) A micro-batch split into 3 forward passes by a small token budget gets the gradient
    /// of the single pass: for every parameter tensor, max |g_split − g_single| ≤ 1e-5 ·
    /// max |g_single| (f32; measured 3.1e-7 relative); (ii) identical metrics (the loss sees
    /// bitwise the same log-probs and entropies) and the same RNG draws.
    #[test]
    fn split_path_gives_the_single_pass_gradient() {
        let policy = tiny(3);
        let reference = tiny(9);
        let data = rows(&policy, 6, 4);
        let rl = rl_config(6, 6);
        let lengths: Vec<usize> = data
            .iter()
            .map(|s| s.prompt_tokens.len() + s.response_tokens.len())
            .collect();
        let longest = *lengths.iter().max().unwrap();
        let budget = 2 * longest;
        assert_eq!(plan_micro_batches(&lengths, budget).len(), 3, "{lengths:?}");
        let (g_one, m_one, split_one, mut r_one) =
            micro_grads(&policy, &reference, &rl, &data, 1 << 14);
        let (g_split, m_split, split, mut r_split) =
            micro_grads(&policy, &reference, &rl, &data, budget);
        assert!(!split_one && split);
        assert!(
            m_one.clip_cov_frac > 0.0 && m_one.pg_clipfrac > 0.0,
            "{m_one:?}"
        );
        assert_eq!(metric_vec(&m_split), metric_vec(&m_one));
        assert_eq!(m_split.total_loss, m_one.total_loss);
        assert_eq!(r_one.next_u64(), r_split.next_u64());
        assert_eq!(g_one.len(), policy.model.params().trainable().count());
        assert_eq!(g_split.len(), g_one.len());
        let mut worst = 0f32;
        for (name, a) in g_one.iter() {
            let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let b = g_split.get(name).unwrap();
            let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
            assert!(scale > 0.0, "{name}: zero gradient");
            let diff = a
                .iter()
                .zip(&b)
                .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            worst = worst.max(diff / scale);
            assert!(
                diff <= 1e-5 * scale,
                "{name}: |Δg| {diff} vs max |g| {scale}"
            );
        }
        eprintln!("worst relative gradient difference: {worst:e}");
    }

    /// Through `run_update` with a small budget: metrics bitwise those of the previous
    /// implementation at the same budget (which also split the forward passes but kept every
    /// graph), the same RNG state and the gradient norm within 1e-5 relative (one optimizer
    /// step of two split micro-batches). Parameters are not compared: AdamW's first step
    /// is ≈ lr·sign(g), so an f32-level difference in a near-zero gradient moves a weight by
    /// up to lr; the gradients themselves are compared in the test above.
    #[test]
    fn split_update_matches_the_previous_implementation() {
        let data = rows(&tiny(3), 8, 6);
        let rl = rl_config(8, 4);
        let longest = data
            .iter()
            .map(|s| s.prompt_tokens.len() + s.response_tokens.len())
            .max()
            .unwrap();
        let ((new, _, mut r_new), (old, _, mut r_old)) = both(&rl, &data, &[], longest);
        assert_eq!(new.split_micro_batches, 2);
        assert_eq!(
            metric_vec(&new.on_policy.mean()),
            metric_vec(&old.on_policy.mean())
        );
        assert_eq!(r_new.next_u64(), r_old.next_u64());
        assert_eq!(new.grad_norms.len(), 1);
        for (a, b) in new.grad_norms.iter().zip(&old.grad_norms) {
            assert!((a - b).abs() <= 1e-5 * b, "grad norm {a} vs {b}");
        }
    }
}
