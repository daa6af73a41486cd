//! The actor update (spec §2.7, §2.8 step 7): execute an [`UpdatePlan`] with the policy —
//! teacher-forced scoring of each micro-batch, the actor loss of its phase (on-policy or
//! replay Clip-Cov parameters), `backward` of `loss · loss_scale`, gradient accumulation,
//! global-norm clipping and one AdamW step per mini-batch, the same optimizer and moments for
//! both phases.

use std::time::Instant;

use candle_core::{DType, Tensor};
use rand_chacha::ChaCha8Rng;
use spear_model::{plan_micro_batches, AdamW, Grads, Mode, Policy, ScoreItem};
use spear_rl::config::RlConfig;
use spear_rl::loss::{
    actor_loss, ActorLossInputs, AggOptions, LossMetrics, LossPass, PolicyInputs,
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
}

/// Teacher-forced log-probs (and entropies) of `rows` under softmax(logits / `temperature`)
/// (the rollout temperature, as verl's actor), padded to `[B, T]` with `T` the longest
/// response, in forward passes of at most `token_budget` padded tokens. `Mode::Train` keeps
/// the graph.
pub fn score_padded(
    policy: &Policy,
    rows: &[&StepSample],
    token_budget: usize,
    with_entropy: bool,
    temperature: f64,
    mode: Mode,
) -> anyhow::Result<(Tensor, Option<Tensor>)> {
    let t = rows
        .iter()
        .map(|s| s.response_tokens.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let lengths: Vec<usize> = rows
        .iter()
        .map(|s| s.prompt_tokens.len() + s.response_tokens.len())
        .collect();
    let mut lp_rows: Vec<Option<Tensor>> = vec![None; rows.len()];
    let mut ent_rows: Vec<Option<Tensor>> = vec![None; rows.len()];
    for group in plan_micro_batches(&lengths, token_budget) {
        let items: Vec<ScoreItem<'_>> = group
            .iter()
            .map(|&i| ScoreItem {
                prompt: &rows[i].prompt_tokens,
                response: &rows[i].response_tokens,
            })
            .collect();
        let scored = policy.score_at_temperature(&items, mode, with_entropy, temperature)?;
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

/// Host `[B, T]` matrix from per-row vectors (zero padded).
fn host_matrix(rows: &[Vec<f32>], t: usize, dtype: DType) -> anyhow::Result<Tensor> {
    let mut flat = Vec::with_capacity(rows.len() * t);
    for r in rows {
        flat.extend_from_slice(&r[..r.len().min(t)]);
        flat.extend(std::iter::repeat_n(0f32, t.saturating_sub(r.len())));
    }
    Ok(Tensor::from_vec(flat, (rows.len(), t), &candle_core::Device::Cpu)?.to_dtype(dtype)?)
}

/// Executes `plan` on the on-policy rows and the replay rows. `lr_at(step)` gives the learning
/// rate of the optimizer's next step; `temperature` is the rollout temperature the rows' (and
/// the replayed rows') `old_log_probs` were sampled at. `reference` is the frozen reference
/// policy of the KL loss (`rl.loss.use_kl_loss`, on-policy phase only, spec §2.5, §4.3): its
/// log-probs are computed per micro-batch, as verl's `ref_log_prob`.
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
            )?;
            let ref_lp = match (params.kl, reference) {
                (Some(_), Some(r)) => {
                    Some(score_padded(r, &rows, token_budget, false, temperature, Mode::Infer)?.0)
                }
                _ => None,
            };
            let t = lp.dim(1)?;
            let old = host_matrix(
                &rows
                    .iter()
                    .map(|s| s.old_log_probs.clone())
                    .collect::<Vec<_>>(),
                t,
                dtype,
            )?;
            let adv = host_matrix(
                &rows
                    .iter()
                    .map(|s| s.token_advantages())
                    .collect::<Vec<_>>(),
                t,
                dtype,
            )?;
            let mask = host_matrix(
                &rows
                    .iter()
                    .map(|s| s.response_mask.iter().map(|&m| m as f32).collect())
                    .collect::<Vec<_>>(),
                t,
                dtype,
            )?;
            let inputs = ActorLossInputs {
                policy: PolicyInputs {
                    log_prob: &lp,
                    old_log_prob: &old,
                    advantages: &adv,
                    response_mask: &mask,
                },
                entropy: ent.as_ref(),
                ref_log_prob: ref_lp.as_ref(),
            };
            let out = actor_loss(&inputs, &params, &agg, rng)?;
            match mb.phase {
                Phase::OnPolicy => stats.on_policy.add(&out.metrics),
                Phase::Replay => stats.replay.add(&out.metrics),
            }
            let scaled = out.loss.affine(micro.loss_scale, 0.0)?;
            let store = scaled.backward()?;
            grads.accumulate(&store, policy.model.params())?;
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
    use rand::SeedableRng;
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
}
