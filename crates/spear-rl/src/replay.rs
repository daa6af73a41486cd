//! The SPEAR self-imitation replay buffer, `TrajectoryBufferBatch` of the
//! official code (spec §2.3), with the D_R baseline history and the advantage
//! recalibration (spec §2.4).
//!
//! Per training step t the trainer calls (spec §2.8):
//! 1. [`ReplayBuffer::maybe_replay`] before the actor update: if the fill
//!    measure exceeds 1.5 × 2048, draw the replay batch (recalibrated Ã) and
//!    clear the buffer;
//! 2. [`ReplayBuffer::update`] after the actor update: `remove_old`, then append
//!    the per-group means/stds to D_R and store the samples with A > 0.
//!
//! **float32.** Upstream keeps the scores in a `torch.float32` reward tensor (verl-agent
//! `EpisodeRewardManager`: `torch.zeros_like(responses, dtype=torch.float32)`, the score on
//! the last response token), while the D_R percentiles are numpy float64
//! (`np.percentile` over Python floats from `rm_score.item()`). Read in
//! `verl-agent/verl/trainer/ppo/ray_trainer_hybrid.py` (`TrajectoryBufferBatch`) and
//! `verl-agent/verl/trainer/ppo/core_algos.py` (`compute_grpo_outcome_advantage`),
//! TencentYoutuResearch/SPEAR @ 7e8431513165640b4b1f78d09ebaae8807ee4f85. The port matches
//! each point where the precision shows:
//! * D_R is built from the stored scores rounded to f32 ([`stored_score`]), widened to f64
//!   (`rm_score.item()`), then averaged in f64;
//! * the fill measure compares f32 scores with the P50 **cast to f32** (`tensor > float`
//!   promotes the Python scalar to the tensor's float32);
//! * the recalibrated Ã is computed in f32: `f32(s) − f32(P50)`, divided by
//!   `f32(P50_std + 1e-6)` with `norm_by_std` (0-dim float32 tensor op a Python float), and
//!   the keep rule (`advantages.mean(-1) >= 0`, `> 0` in the math fork) reads that value.
//!
//! So a score equal to the P50 in f32 but above it in f64 is neither counted towards the
//! trigger nor given Ã > 0, as upstream.

use crate::config::{RecalibratedKeep, ReplayAdvantage, ReplayConfig};
use crate::sample::{group_samples, Batch, GroupIndex, StepSample};
use crate::stats::{largest_power_of_two_at_most, mean, percentile_linear, std_population};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// The official code caps `trajectory_tolerate_steps` at 10 (spec §2.3).
pub const MAX_TOLERATE_STEPS: u64 = 10;

/// ε of the std-normalised recalibration (spec §2.4).
const RECALIBRATION_EPS: f64 = 1e-6;

/// A stored score as upstream holds it: the sum of its float32 reward tensor, which carries
/// the score on one token, i.e. the score rounded to f32 (module docs).
pub fn stored_score(s: &StepSample) -> f32 {
    s.score as f32
}

/// One `update_batch` call's stored samples (`[batch, reward_tensor, infos, global_step]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BufferEntry {
    /// Training step at which the samples were inserted.
    pub step: u64,
    /// The stored samples; `score` is the stored score s_j (sum of the reward
    /// tensor), `advantage` the on-policy advantage at insertion.
    pub samples: Vec<StepSample>,
}

/// What one `update` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InsertReport {
    /// Entries dropped by the staleness filter.
    pub entries_removed: usize,
    /// Group entries appended to D_R.
    pub groups_recorded: usize,
    /// Samples stored (A > 0, not masked, [tool call]).
    pub samples_stored: usize,
}

/// The replay batch of one step and the statistics it was built with.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayDraw {
    /// Samples to replay, `advantage` set to the recalibrated Ã (or the decayed
    /// stored advantage). Empty when `skipped`.
    pub samples: Vec<StepSample>,
    /// P50 of the D_R group means (`reward_mean_50p`); `None` in weight-decay mode
    /// or with an empty D_R.
    pub p50_mean: Option<f64>,
    /// P50 of the D_R group stds (`reward_std_50p`).
    pub p50_std: Option<f64>,
    /// P95 of the D_R group means (logged only, spec §2.4).
    pub p95_mean: Option<f64>,
    /// Samples in the buffer before recalibration.
    pub candidates: usize,
    /// Samples left after the Ã keep rule.
    pub eligible: usize,
    /// True when the draw was smaller than `min_replay_samples` (spec §2.3 step 4).
    pub skipped: bool,
}

/// `TrajectoryBufferBatch` (spec §2.3, §2.4). Serialisable (with its RNG) so a resumed
/// run continues exactly where a checkpoint left it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplayBuffer {
    cfg: ReplayConfig,
    entries: Vec<BufferEntry>,
    /// D_R means: `(global_step, per-group means)`, oldest first.
    mean_history: VecDeque<(u64, Vec<f64>)>,
    /// D_R stds, parallel to `mean_history`.
    std_history: VecDeque<(u64, Vec<f64>)>,
    /// Σ of group entries in `mean_history`.
    history_len: usize,
    rng: ChaCha8Rng,
}

impl ReplayBuffer {
    /// An empty buffer; `seed` fixes the replay draws.
    pub fn new(cfg: &ReplayConfig, seed: u64) -> Self {
        Self {
            cfg: cfg.clone(),
            entries: Vec::new(),
            mean_history: VecDeque::new(),
            std_history: VecDeque::new(),
            history_len: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Effective staleness tolerance `min(tolerate_steps, 10)` (spec §2.3).
    pub fn tolerate_steps(&self) -> u64 {
        self.cfg.tolerate_steps.min(MAX_TOLERATE_STEPS)
    }

    /// The stored entries, oldest first.
    pub fn entries(&self) -> &[BufferEntry] {
        &self.entries
    }

    /// Number of stored samples.
    pub fn stored_samples(&self) -> usize {
        self.entries.iter().map(|e| e.samples.len()).sum()
    }

    /// D_R mean history `(step, group means)`, oldest first.
    pub fn baseline_means(&self) -> impl Iterator<Item = &(u64, Vec<f64>)> {
        self.mean_history.iter()
    }

    /// Number of group entries in D_R.
    pub fn baseline_len(&self) -> usize {
        self.history_len
    }

    /// `np.percentile(flatten(reward_mean_history), q)`.
    pub fn baseline_mean_percentile(&self, q: f64) -> Option<f64> {
        let flat: Vec<f64> = self
            .mean_history
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .collect();
        percentile_linear(&flat, q)
    }

    /// `np.percentile(flatten(reward_std_history), q)`.
    pub fn baseline_std_percentile(&self, q: f64) -> Option<f64> {
        let flat: Vec<f64> = self
            .std_history
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .collect();
        percentile_linear(&flat, q)
    }

    /// `remove_old` (spec §2.3): drop every entry with |step − step_latest| >
    /// tolerate, where step_latest is the step of the newest entry.
    ///
    /// The reference is the newest *stored* entry, not the current training
    /// step: as in the official code (called just before insertion), an entry
    /// can outlive the tolerance by the steps that stored nothing.
    pub fn remove_old(&mut self) -> usize {
        let Some(latest) = self.entries.last().map(|e| e.step) else {
            return 0;
        };
        let tol = self.tolerate_steps();
        let before = self.entries.len();
        self.entries.retain(|e| e.step.abs_diff(latest) <= tol);
        before - self.entries.len()
    }

    /// `update_batch` (spec §2.3 insertion, §2.4 D_R update), without `remove_old`.
    ///
    /// 1. D_R: for each group (uid) of `batch`, the per-trajectory mean scores m;
    ///    append mean(m) and `np.std(m)` (ddof 0). Before the append, pop the
    ///    oldest step while D_R holds more than `baseline_buffer_size` group
    ///    entries (so it can overshoot by one step's worth).
    /// 2. Store the samples with A > 0 that still have loss tokens (the code's
    ///    `advantages.mean(-1) > 0` on masked advantages); with
    ///    `require_tool_call` also `tool_calls > 0` (math fork). No entry is
    ///    appended when nothing qualifies.
    pub fn update_batch(&mut self, batch: &Batch, step: u64) -> InsertReport {
        let groups = group_samples(&batch.samples);
        self.record_groups(batch, &groups, step);
        let kept: Vec<StepSample> = batch
            .samples
            .iter()
            .filter(|s| self.qualifies(s))
            .cloned()
            .collect();
        self.store(kept, groups.len(), step)
    }

    /// [`Self::update`] on a batch the caller gives away, with its grouping computed once by
    /// the caller: the qualifying samples are moved into the buffer, not cloned.
    pub fn update_owned(&mut self, batch: Batch, groups: &[GroupIndex], step: u64) -> InsertReport {
        let removed = self.remove_old();
        self.record_groups(&batch, groups, step);
        let kept: Vec<StepSample> = batch
            .samples
            .into_iter()
            .filter(|s| self.qualifies(s))
            .collect();
        let mut rep = self.store(kept, groups.len(), step);
        rep.entries_removed = removed;
        rep
    }

    /// Step 2 of [`Self::update_batch`]: a sample is stored when it has A > 0, loss tokens and
    /// (with `require_tool_call`) a tool call.
    fn qualifies(&self, s: &StepSample) -> bool {
        s.advantage > 0.0
            && s.has_loss_tokens()
            && (!self.cfg.require_tool_call || s.tool_calls > 0)
    }

    /// Step 1 of [`Self::update_batch`]: the D_R entries of the batch's groups.
    fn record_groups(&mut self, batch: &Batch, groups: &[GroupIndex], step: u64) {
        let mut means = Vec::with_capacity(groups.len());
        let mut stds = Vec::with_capacity(groups.len());
        for g in groups {
            // `reward_traj_rwscore`: per-trajectory np.mean of the f32 sums widened to f64.
            let m: Vec<f64> = g
                .trajectories
                .iter()
                .map(|(_, idx)| {
                    let v: Vec<f64> = idx
                        .iter()
                        .map(|&i| stored_score(&batch.samples[i]) as f64)
                        .collect();
                    mean(&v)
                })
                .collect();
            means.push(mean(&m));
            stds.push(std_population(&m));
        }
        while self.history_len > self.cfg.baseline_buffer_size as usize {
            match (self.mean_history.pop_front(), self.std_history.pop_front()) {
                (Some((_, m)), _) => self.history_len -= m.len(),
                _ => break,
            }
        }
        self.history_len += means.len();
        self.mean_history.push_back((step, means));
        self.std_history.push_back((step, stds));
    }

    /// Appends the qualifying samples as one entry of `step` (none when empty).
    fn store(&mut self, kept: Vec<StepSample>, groups_recorded: usize, step: u64) -> InsertReport {
        let samples_stored = kept.len();
        if !kept.is_empty() {
            self.entries.push(BufferEntry {
                step,
                samples: kept,
            });
        }
        InsertReport {
            entries_removed: 0,
            groups_recorded,
            samples_stored,
        }
    }

    /// The trainer's end-of-step call (spec §2.8 step 8): `remove_old()` then
    /// `update_batch(batch, step)`. `batch` is the filtered batch with its
    /// advantages.
    pub fn update(&mut self, batch: &Batch, step: u64) -> InsertReport {
        let removed = self.remove_old();
        let mut rep = self.update_batch(batch, step);
        rep.entries_removed = removed;
        rep
    }

    /// `get_buffer_size` (spec §2.3): in P50 mode, the number of stored samples
    /// whose stored score is strictly above P50 of the D_R means (with an empty
    /// D_R, above their own entry's mean score, as the code does); in
    /// weight-decay mode, the raw sample count. Compared in f32 as upstream
    /// (module docs): the f32 score against the P50 cast to f32.
    pub fn fill_measure(&self) -> usize {
        match self.cfg.advantage {
            ReplayAdvantage::WeightDecay(_) => self.stored_samples(),
            ReplayAdvantage::P50Baseline => {
                let p50 = self.baseline_mean_percentile(50.0).map(|p| p as f32);
                self.entries
                    .iter()
                    .map(|e| {
                        // `reward_tensor_sum.mean()`: a float32 mean
                        let threshold = p50.unwrap_or_else(|| {
                            e.samples.iter().map(stored_score).sum::<f32>() / e.samples.len() as f32
                        });
                        e.samples
                            .iter()
                            .filter(|s| stored_score(s) > threshold)
                            .count()
                    })
                    .sum()
            }
        }
    }

    /// `is_full_capacity` (spec §2.3): fill measure > trigger_factor·buffer_size
    /// (1.5·2048 = 3072).
    pub fn is_full(&self) -> bool {
        self.fill_measure() as f64 > self.cfg.trigger_factor * self.cfg.buffer_size as f64
    }

    /// Recalibrated advantage of a stored score (spec §2.4): Ã = s − P50_mean,
    /// or (s − P50_mean)/(P50_std + 1e-6) with `norm_by_std`. In f32 as upstream
    /// (module docs): `f32(s) − f32(P50_mean)`, divided by `f32(P50_std + 1e-6)`
    /// (the sum in f64, as Python adds the two floats first).
    pub fn recalibrate(score: f64, p50_mean: f64, p50_std: f64, norm_by_std: bool) -> f64 {
        let d = score as f32 - p50_mean as f32;
        if norm_by_std {
            (d / (p50_std + RECALIBRATION_EPS) as f32) as f64
        } else {
            d as f64
        }
    }

    /// `get_buffer` + the size check + `reset_buffer` (spec §2.3 consumption):
    ///
    /// 1. concatenate all entries;
    /// 2. P50 mode: Ã_j = recalibrate(s_j) replaces the stored advantage
    ///    (episode-level even under GiGPO, spec §8 item 7); keep Ã ≥ 0 (or Ã
    ///    strictly positive); samples and their scores are filtered together
    ///    (the first commit's behaviour, spec §2.3 "known defect").
    ///    Weight-decay mode: A ← w·A, nothing dropped;
    /// 3. n = min(largest power of two ≤ count, buffer_size) (count ≤ 1 → 0),
    ///    drawn uniformly without replacement (seeded), batch order kept;
    /// 4. n < `min_replay_samples` → skipped, empty replay batch;
    /// 5. the whole buffer is cleared in every case; D_R is kept.
    pub fn take_replay(&mut self) -> ReplayDraw {
        let mut all: Vec<StepSample> = std::mem::take(&mut self.entries)
            .into_iter()
            .flat_map(|e| e.samples)
            .collect();
        let candidates = all.len();
        let (p50_mean, p50_std, p95_mean) = match self.cfg.advantage {
            ReplayAdvantage::WeightDecay(_) => (None, None, None),
            ReplayAdvantage::P50Baseline => (
                self.baseline_mean_percentile(50.0),
                self.baseline_std_percentile(50.0),
                self.baseline_mean_percentile(95.0),
            ),
        };
        match self.cfg.advantage {
            ReplayAdvantage::WeightDecay(w) => all.iter_mut().for_each(|s| s.advantage *= w),
            ReplayAdvantage::P50Baseline => match (p50_mean, p50_std) {
                (Some(pm), Some(ps)) => {
                    for s in &mut all {
                        s.advantage = Self::recalibrate(s.score, pm, ps, self.cfg.norm_by_std);
                    }
                    let keep = self.cfg.keep;
                    all.retain(|s| match keep {
                        RecalibratedKeep::NonNegative => s.advantage >= 0.0,
                        RecalibratedKeep::Positive => s.advantage > 0.0,
                    });
                }
                // No baseline yet (cannot happen after an `update`): nothing to replay.
                _ => all.clear(),
            },
        }
        let eligible = all.len();
        let n = largest_power_of_two_at_most(eligible).min(self.cfg.buffer_size as usize);
        let mut idx: Vec<usize> = (0..eligible).collect();
        idx.shuffle(&mut self.rng);
        idx.truncate(n);
        idx.sort_unstable();
        let mut chosen = Vec::with_capacity(n);
        let mut it = idx.into_iter().peekable();
        for (i, s) in all.into_iter().enumerate() {
            if it.peek() == Some(&i) {
                it.next();
                chosen.push(s);
            }
        }
        let skipped = (chosen.len() as u64) < self.cfg.min_replay_samples;
        if skipped {
            chosen.clear();
        }
        ReplayDraw {
            samples: chosen,
            p50_mean,
            p50_std,
            p95_mean,
            candidates,
            eligible,
            skipped,
        }
    }

    /// The trainer's pre-update call (spec §2.8 step 6): `Some(draw)` (and the
    /// buffer cleared) when [`is_full`](Self::is_full), else `None`.
    pub fn maybe_replay(&mut self) -> Option<ReplayDraw> {
        if self.is_full() {
            Some(self.take_replay())
        } else {
            None
        }
    }

    /// `reset_buffer`: drops every stored sample (D_R is kept).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::test_util::sample;

    fn cfg() -> ReplayConfig {
        ReplayConfig::default()
    }

    fn s(uid: u64, traj: u64, score: f64, adv: f64) -> StepSample {
        let mut x = sample(uid, traj, 0, score);
        x.advantage = adv;
        x
    }

    #[test]
    fn insertion_keeps_positive_unmasked_samples_and_records_dr() {
        let mut b = ReplayBuffer::new(&cfg(), 0);
        let mut masked = s(0, 1, 10.0, 2.0);
        masked.mask_out();
        let batch = Batch::new(vec![
            s(0, 0, 10.0, 2.0),
            s(0, 0, 9.9, 1.9), // same traj, penalised step
            masked,
            s(0, 2, 0.0, -3.0),
            s(1, 3, 4.0, 0.0),
        ]);
        let rep = b.update(&batch, 1);
        assert_eq!(rep.samples_stored, 2);
        assert_eq!(rep.groups_recorded, 2);
        // group 0: traj means [ (10 + 9.9)/2 = 9.95, 10, 0 ] → mean 19.95/3 = 6.65
        //   np.std: deviations 3.3, 3.35, −6.65 → sqrt((10.89+11.2225+44.2225)/3) = sqrt(22.1117) = 4.70230
        // group 1: [4] → mean 4, std 0
        let (step, means) = b.baseline_means().next().unwrap();
        assert_eq!(*step, 1);
        // (the scores are read as f32, as upstream: 9.9 is 9.899999618530273)
        // ((10 + 9.899999618530273)/2 + 10 + 0)/3 = 6.6499999364
        assert!((means[0] - 6.649_999_936_4).abs() < 1e-9);
        assert_eq!(means[1], 4.0);
        assert!((b.baseline_std_percentile(0.0).unwrap() - 0.0).abs() < 1e-12);
        assert!((b.baseline_std_percentile(100.0).unwrap() - 4.702_304).abs() < 1e-5);
        // nothing positive → no entry
        let rep = b.update(&Batch::new(vec![s(0, 0, 0.0, -1.0)]), 2);
        assert_eq!(rep.samples_stored, 0);
        assert_eq!(b.entries().len(), 1);
    }

    #[test]
    fn tool_call_requirement() {
        let c = ReplayConfig {
            require_tool_call: true,
            ..cfg()
        };
        let mut b = ReplayBuffer::new(&c, 0);
        let mut with_call = s(0, 0, 1.0, 1.0);
        with_call.tool_calls = 2;
        b.update(&Batch::new(vec![with_call, s(0, 1, 1.0, 1.0)]), 1);
        assert_eq!(b.stored_samples(), 1);
    }

    #[test]
    fn staleness_is_relative_to_newest_entry() {
        let mut b = ReplayBuffer::new(&cfg(), 0);
        for t in 1..=7 {
            b.update(&Batch::new(vec![s(0, t, 1.0, 1.0)]), t);
        }
        // update at 7 removed relative to latest 6: keep |step − 6| ≤ 5 → steps 1..6, then 7 appended
        let steps: Vec<u64> = b.entries().iter().map(|e| e.step).collect();
        assert_eq!(steps, vec![1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(b.remove_old(), 1); // |1 − 7| = 6 > 5
        assert_eq!(b.entries()[0].step, 2);
        // cap at 10
        let wide = ReplayBuffer::new(
            &ReplayConfig {
                tolerate_steps: 50,
                ..cfg()
            },
            0,
        );
        assert_eq!(wide.tolerate_steps(), 10);
    }

    #[test]
    fn baseline_trim_happens_before_append() {
        let c = ReplayConfig {
            baseline_buffer_size: 3,
            ..cfg()
        };
        let mut b = ReplayBuffer::new(&c, 0);
        let two_groups =
            |t: u64| Batch::new(vec![s(0, 2 * t, 1.0, 0.0), s(1, 2 * t + 1, 1.0, 0.0)]);
        b.update(&two_groups(1), 1); // 2 entries
        b.update(&two_groups(2), 2); // 2 ≤ 3, no trim → 4 (overshoot)
        assert_eq!(b.baseline_len(), 4);
        b.update(&two_groups(3), 3); // 4 > 3 → pop step 1 → 2, append → 4
        assert_eq!(b.baseline_len(), 4);
        let steps: Vec<u64> = b.baseline_means().map(|(t, _)| *t).collect();
        assert_eq!(steps, vec![2, 3]);
    }

    #[test]
    fn fill_measure_trigger_and_recalibrated_draw() {
        let c = ReplayConfig {
            buffer_size: 4,
            ..cfg()
        };
        let mut b = ReplayBuffer::new(&c, 7);
        // step 1: one group, trajectories with scores 0, 2, 4, 6, 8, 10, 12, 14 (one step each).
        // D_R mean = 56/8 = 7 → P50 = 7.
        let batch = Batch::new(
            (0..8)
                .map(|k| s(0, k, 2.0 * k as f64, 2.0 * k as f64 - 7.0))
                .collect(),
        );
        b.update(&batch, 1);
        // stored: A > 0 → scores 8, 10, 12, 14 (4 samples); fill = #(score > 7) = 4
        assert_eq!(b.stored_samples(), 4);
        assert_eq!(b.fill_measure(), 4);
        // trigger: 4 > 1.5·4 = 6? no
        assert!(!b.is_full());
        assert!(b.maybe_replay().is_none());
        // step 2: same → D_R [7, 7], P50 = 7; stored 8; fill 8 > 6 → full
        let batch2 = Batch::new(
            (0..8)
                .map(|k| s(0, 10 + k, 2.0 * k as f64, 2.0 * k as f64 - 7.0))
                .collect(),
        );
        b.update(&batch2, 2);
        assert!(b.is_full());
        let d = b.maybe_replay().unwrap();
        assert_eq!(d.p50_mean, Some(7.0));
        assert_eq!(d.candidates, 8);
        assert_eq!(d.eligible, 8); // all Ã = s − 7 ≥ 1
                                   // n = min(pow2 ≤ 8 = 8, buffer_size 4) = 4
        assert_eq!(d.samples.len(), 4);
        for x in &d.samples {
            assert_eq!(x.advantage, x.score - 7.0); // Ã = s − P50, no std
        }
        assert!(!d.skipped);
        // buffer cleared, D_R kept
        assert_eq!(b.stored_samples(), 0);
        assert_eq!(b.baseline_len(), 2);
    }

    #[test]
    fn recalibration_keep_rules_and_std_norm() {
        // Ã with std: (9 − 7)/(2 + 1e-6) = 0.999999500, in f32
        assert_eq!(
            ReplayBuffer::recalibrate(9.0, 7.0, 2.0, true),
            (2.0f32 / 2.000_001f32) as f64
        );
        assert!((ReplayBuffer::recalibrate(9.0, 7.0, 2.0, true) - 2.0 / 2.000_001).abs() < 1e-7);
        assert_eq!(ReplayBuffer::recalibrate(9.0, 7.0, 2.0, false), 2.0);
        // a stored sample exactly at P50 is kept with ≥ 0 and dropped with > 0
        for (keep, expect) in [
            (RecalibratedKeep::NonNegative, 1),
            (RecalibratedKeep::Positive, 0),
        ] {
            let c = ReplayConfig { keep, ..cfg() };
            let mut b = ReplayBuffer::new(&c, 0);
            // one group: traj scores 2 and 4 → D_R mean 3 = P50
            b.update(&Batch::new(vec![s(0, 0, 2.0, -1.0), s(0, 1, 4.0, 1.0)]), 1);
            b.update(&Batch::new(vec![s(0, 2, 3.0, 0.5), s(0, 3, 3.0, 0.5)]), 2); // D_R [3, 3]
                                                                                  // stored: score 4 (Ã = 1), 3 (Ã = 0), 3 (Ã = 0)
            let d = b.take_replay();
            let eligible = if expect == 1 { 3 } else { 1 };
            assert_eq!(d.eligible, eligible);
        }
    }

    /// Upstream compares the float32 stored score with the P50 cast to float32: a score
    /// above the P50 in f64 but equal to it in f32 is not counted towards the trigger and
    /// gets Ã = 0 (kept by `>= 0`, dropped by `> 0`).
    #[test]
    fn score_equal_to_the_p50_in_f32_is_not_above_it() {
        let above = 1.0 + 2f64.powi(-25); // half an f32 ulp of 1.0 is 2^-24: rounds to 1.0
        assert!(above > 1.0 && above as f32 == 1.0f32);
        for (keep, eligible) in [
            (RecalibratedKeep::NonNegative, 1),
            (RecalibratedKeep::Positive, 0),
        ] {
            let c = ReplayConfig {
                keep,
                buffer_size: 1,
                trigger_factor: 0.0,
                ..cfg()
            };
            let mut b = ReplayBuffer::new(&c, 0);
            // one group: trajectories scored 1 + 2^-25 (A > 0, stored) and 1.0
            b.update(
                &Batch::new(vec![s(0, 0, above, 1.0), s(0, 1, 1.0, -1.0)]),
                1,
            );
            // D_R from the f32 scores: mean(1.0, 1.0) = 1.0 (in f64 it would be 1 + 2^-26)
            assert_eq!(b.baseline_mean_percentile(50.0), Some(1.0));
            assert_eq!(b.fill_measure(), 0);
            assert!(!b.is_full()); // 0 > 0·1 is false: not one step early
            let d = b.take_replay();
            assert_eq!(d.eligible, eligible, "{keep:?}");
        }
        assert_eq!(ReplayBuffer::recalibrate(above, 1.0, 0.0, false), 0.0);
        // a P50 that rounds to the score in f32 compares equal too
        assert_eq!(ReplayBuffer::recalibrate(1.0, above, 0.0, false), 0.0);
    }

    #[test]
    fn small_draws_are_skipped_and_buffer_cleared() {
        let c = ReplayConfig {
            min_replay_samples: 4,
            ..cfg()
        };
        let mut b = ReplayBuffer::new(&c, 0);
        b.update(
            &Batch::new(vec![
                s(0, 0, 0.0, -1.0),
                s(0, 1, 4.0, 1.0),
                s(0, 2, 5.0, 1.0),
            ]),
            1,
        );
        // P50 of [3] = 3; eligible 2 → n = 2 < 4 → skipped
        let d = b.take_replay();
        assert!(d.skipped);
        assert!(d.samples.is_empty());
        assert_eq!(b.stored_samples(), 0);
        // a single eligible sample gives n = 0 (official nearest_lower_power_of_2(1) = 0)
        let mut b = ReplayBuffer::new(&cfg(), 0);
        b.update(&Batch::new(vec![s(0, 0, 0.0, -1.0), s(0, 1, 4.0, 1.0)]), 1);
        let d = b.take_replay();
        assert_eq!(d.eligible, 1);
        assert!(d.samples.is_empty() && d.skipped);
    }

    #[test]
    fn weight_decay_mode() {
        let c = ReplayConfig {
            advantage: ReplayAdvantage::WeightDecay(0.5),
            buffer_size: 2,
            ..cfg()
        };
        let mut b = ReplayBuffer::new(&c, 0);
        b.update(
            &Batch::new(vec![
                s(0, 0, 0.0, 2.0),
                s(0, 1, 0.0, 4.0),
                s(0, 2, 9.0, 6.0),
            ]),
            1,
        );
        // fill = raw count 3 > 1.5·2 = 3? no
        assert_eq!(b.fill_measure(), 3);
        assert!(!b.is_full());
        let d = b.take_replay();
        // no recalibration: A ← 0.5·A ∈ {1, 2, 3}; n = min(2, 2) = 2
        assert_eq!(d.samples.len(), 2);
        assert!(d
            .samples
            .iter()
            .all(|x| [1.0, 2.0, 3.0].contains(&x.advantage)));
        assert_eq!(d.p50_mean, None);
    }

    #[test]
    fn draws_are_seeded() {
        let run = |seed| {
            let c = ReplayConfig {
                buffer_size: 4,
                ..cfg()
            };
            let mut b = ReplayBuffer::new(&c, seed);
            b.update(
                &Batch::new((0..16).map(|k| s(0, k, k as f64, 1.0)).collect()),
                1,
            );
            b.take_replay()
                .samples
                .iter()
                .map(|x| x.traj_uid.0)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_eq!(run(3).len(), 4);
    }
}
