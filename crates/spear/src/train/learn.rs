//! The learner's plain-data part of an iteration (spec §2.8 steps 2–5) and the iteration's
//! metrics, computed in one place. Nothing here knows the environment: a rollout is samples,
//! episode records and Dr.BoT flags ([`Collected`]).

use std::collections::{BTreeMap, HashMap};

use rand_chacha::ChaCha8Rng;
use spear_rl::advantage::compute_advantages_grouped;
use spear_rl::config::RlConfig;
use spear_rl::drbot::{apply_response_filters, select_groups_by_std, FilterStats};
use spear_rl::reward::{
    apply_invalid_action_penalty, assign_episode_scores, compute_step_returns_grouped,
};
use spear_rl::sample::{group_samples, restrict_groups, Batch, GroupIndex};

use super::update::{Mismatch, UpdateStats};
use crate::run_dir::{EpisodeRecord, IterationMetrics, PhaseTimes};
use crate::tasks::{Collected, SampleTurns};

/// What the trajectory records need of a sample that was not trained on.
#[derive(Debug, Clone, Copy)]
pub struct SampleMark {
    /// Its episode.
    pub traj: u64,
    /// Its step.
    pub step: u32,
    /// Masked out of the loss by a Dr.BoT response filter.
    pub masked: bool,
}

/// One iteration's samples after rewards, filters and advantages. The rollout's samples are
/// grouped once; the std group filter selects indices, and the kept samples are moved (not
/// copied) into `kept`, then into the replay buffer.
#[derive(Debug, Clone)]
pub struct Iteration {
    /// Every sample of the rollout, as the trajectory records need it.
    pub marks: Vec<SampleMark>,
    /// The samples trained on (after the std group filter), with advantages.
    pub kept: Batch,
    /// The grouping of `kept`.
    pub kept_groups: Vec<GroupIndex>,
    /// How many samples were trained on (`kept` moves into the replay buffer afterwards).
    pub trained: usize,
    /// The episode records (scores, and after [`record_advantages`] advantages per turn).
    pub episodes: Vec<EpisodeRecord>,
    /// What the response filters masked.
    pub filter_stats: FilterStats,
    /// Fraction of samples whose output parsed into a valid action.
    pub valid_rate: f64,
    /// The tool-call weight μ(t) the scores used.
    pub toolcall_coef: f64,
}

/// Asynchronous collection's staleness bound: drops the samples whose generating weights
/// are more than `max_staleness` policy versions older than `current` (the version about to
/// be updated), with their Dr.BoT flags; returns how many. Episode records stay (the viewer
/// shows whole episodes). Dropping biases the batch toward short episodes: a long episode's
/// early turns are generated longest before the update, so they are the ones that fall out of
/// the window, while a short episode is kept whole (hence the logged count,
/// `async_dropped_samples`; docs/training.md).
pub fn drop_stale(c: &mut Collected, current: u64, max_staleness: u64) -> u64 {
    let oldest = current.saturating_sub(max_staleness);
    let keep: Vec<bool> = c
        .out
        .samples
        .iter()
        .map(|s| s.policy_version >= oldest)
        .collect();
    let dropped = keep.iter().filter(|k| !**k).count();
    if dropped == 0 {
        return 0;
    }
    let mut k = keep.iter();
    c.out
        .samples
        .retain(|_| *k.next().expect("one flag per sample"));
    let mut k = keep.iter();
    c.flags.retain(|_| *k.next().expect("one flag per sample"));
    dropped as u64
}

/// Spec §2.8 steps 2–5: step returns, episode scores s_i (with SPEAR's tool-call bonus at
/// step `t`), Dr.BoT's response filters (loss masks), the std group filter (which draws from
/// `rng`), the invalid-action penalty and the advantages.
pub fn prepare(
    collected: Collected,
    t: u64,
    rl: &RlConfig,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<Iteration> {
    let Collected { out, flags, .. } = collected;
    let mut episodes = out.episodes;
    let mut batch = Batch::new(out.samples);
    let groups = group_samples(&batch.samples);
    compute_step_returns_grouped(&mut batch, &groups, rl.gigpo.gamma);
    let toolcall_coef = assign_episode_scores(&mut batch, t, &rl.reward);
    for e in &mut episodes {
        if let Some(s) = batch.samples.iter().find(|s| s.traj_uid.0 == e.traj) {
            e.score = s.score;
        }
    }
    let filter_stats = apply_response_filters(&mut batch, &flags, &rl.drbot);
    let valid_rate = if batch.is_empty() {
        0.0
    } else {
        batch.samples.iter().filter(|s| s.is_action_valid).count() as f64 / batch.len() as f64
    };
    // Nothing to filter when the staleness bound of async collection dropped every sample.
    let keep = if groups.is_empty() {
        vec![]
    } else {
        select_groups_by_std(&batch, &groups, &rl.drbot, rng)?.0
    };
    let kept_groups = restrict_groups(&groups, &keep);
    let marks = batch
        .samples
        .iter()
        .map(|s| SampleMark {
            traj: s.traj_uid.0,
            step: s.step_index,
            masked: !s.has_loss_tokens(),
        })
        .collect();
    // Move the kept samples out of the batch (ascending indices).
    let mut keep_iter = keep.iter().peekable();
    let mut kept = Batch::new(
        batch
            .samples
            .into_iter()
            .enumerate()
            .filter_map(|(i, s)| {
                (keep_iter.peek() == Some(&&i)).then(|| {
                    keep_iter.next();
                    s
                })
            })
            .collect(),
    );
    apply_invalid_action_penalty(&mut kept, rl.reward.invalid_action_penalty);
    compute_advantages_grouped(&mut kept, &kept_groups, &rl.advantage, &rl.gigpo);
    Ok(Iteration {
        toolcall_coef,
        marks,
        trained: kept.len(),
        kept,
        kept_groups,
        episodes,
        filter_stats,
        valid_rate,
    })
}

/// Writes each sample's loss mask and advantage into the turns it covers (one turn per
/// sample, or every turn of the episode for a whole-conversation sample).
pub fn record_advantages(it: &mut Iteration, shape: SampleTurns) {
    let adv: HashMap<(u64, u32), f64> = it
        .kept
        .samples
        .iter()
        .map(|s| ((s.traj_uid.0, s.step_index), s.advantage))
        .collect();
    for s in &it.marks {
        let ep = &mut it.episodes[s.traj as usize];
        let turns = match shape {
            SampleTurns::WholeEpisode => &mut ep.turns[..],
            SampleTurns::OnePerStep => std::slice::from_mut(&mut ep.turns[s.step as usize]),
        };
        for turn in turns {
            turn.masked = s.masked;
            if let Some(&a) = adv.get(&(s.traj, s.step)) {
                turn.advantage = Some(a);
            }
        }
    }
}

/// What the metrics of an iteration are computed from.
pub struct IterationInputs<'a> {
    /// Training step t.
    pub t: u64,
    /// The iteration's samples and episodes.
    pub iteration: &'a Iteration,
    /// The update's statistics.
    pub stats: &'a UpdateStats,
    /// Samples stored in the replay buffer after the update.
    pub buffer_samples: u64,
    /// Replay samples trained on.
    pub replay_samples: u64,
    /// The replay's P50 baseline, when it fired.
    pub replay_p50: Option<f64>,
    /// The replay loss weight γ(t) of the update plan (0 without replay).
    pub sil_weight: f64,
    /// (generate seconds, environment seconds, generated tokens) of the rollout.
    pub rollout_times: (f64, f64, u64),
    /// Seconds of rewards, filters, advantages and buffer bookkeeping.
    pub adv_secs: f64,
    /// Seconds of evaluation.
    pub eval_secs: f64,
    /// The environment's own metrics.
    pub extra: BTreeMap<String, serde_json::Value>,
    /// The trainer/engine log-prob mismatch of the on-policy samples.
    pub mismatch: Mismatch,
    /// Seconds recomputing the behaviour log-probs.
    pub old_log_prob_secs: f64,
    /// Samples dropped by the async staleness bound.
    pub async_dropped: u64,
}

/// The `metrics.jsonl` line of an iteration (wall times `save`, `total` and `elapsed` are
/// filled by the caller).
pub fn iteration_metrics(x: &IterationInputs<'_>) -> IterationMetrics {
    let (it, stats, t) = (x.iteration, x.stats, x.t);
    let episodes = &it.episodes;
    let on = stats.on_policy.mean();
    let rp = stats.replay.mean();
    let n_ep = episodes.len().max(1) as f64;
    let mut by_type: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for e in episodes {
        let c = by_type.entry(e.task_type.clone()).or_default();
        c.0 += e.won as u8 as f64;
        c.1 += 1.0;
    }
    let (generate, env, generated_tokens) = x.rollout_times;
    IterationMetrics {
        iteration: t,
        success_rate: episodes.iter().filter(|e| e.won).count() as f64 / n_ep,
        success_by_type: by_type.into_iter().map(|(k, (w, n))| (k, w / n)).collect(),
        episode_reward: episodes.iter().map(|e| e.episode_reward).sum::<f64>() / n_ep,
        episode_length: episodes.iter().map(|e| e.turns.len() as f64).sum::<f64>() / n_ep,
        score: episodes.iter().map(|e| e.score).sum::<f64>() / n_ep,
        task_score: episodes
            .iter()
            .map(EpisodeRecord::task_score_or_won)
            .sum::<f64>()
            / n_ep,
        valid_action_rate: it.valid_rate,
        samples: it.marks.len() as u64,
        masked_samples: it.filter_stats.masked as u64,
        trained_samples: it.trained as u64,
        entropy: on.entropy,
        approx_kl: on.ppo_kl,
        kl_loss: on.kl_loss,
        clip_frac: on.pg_clipfrac,
        clip_frac_dual: on.dual_clipfrac,
        clip_cov_frac: on.clip_cov_frac,
        replay_clip_cov_frac: rp.clip_cov_frac,
        pg_loss: on.pg_loss,
        grad_norm: if stats.grad_norms.is_empty() {
            0.0
        } else {
            stats.grad_norms.iter().sum::<f64>() / stats.grad_norms.len() as f64
        },
        lr: stats.lr,
        toolcall_coef: it.toolcall_coef,
        sil_weight: x.sil_weight,
        buffer_samples: x.buffer_samples,
        replay_samples: x.replay_samples,
        replay_p50: x.replay_p50,
        gen_tokens_per_s: generated_tokens as f64 / generate.max(1e-9),
        train_tokens_per_s: stats.tokens as f64 / stats.secs.max(1e-9),
        rollout_logprob_abs_diff_mean: x.mismatch.abs_diff_mean,
        rollout_logprob_abs_diff_max: x.mismatch.abs_diff_max,
        rollout_ratio_outside_frac: x.mismatch.ratio_outside_frac,
        tis_weight: on.tis_weight,
        tis_capped_frac: on.tis_capped_frac,
        async_dropped_samples: x.async_dropped,
        time: PhaseTimes {
            generate,
            env,
            advantage: x.adv_secs,
            update: stats.secs,
            old_log_prob: x.old_log_prob_secs,
            eval: x.eval_secs,
            save: 0.0,
            total: 0.0,
        },
        elapsed: 0.0,
        extra: x.extra.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::RolloutOutput;
    use crate::run_dir::TurnRecord;
    use rand::SeedableRng;
    use spear_rl::config::Estimator;
    use spear_rl::drbot::ResponseFlags;
    use spear_rl::sample::{GroupId, StepSample, TrajId};

    /// Group g, trajectory k (global id 2g + k), `steps` steps; won trajectories get 10.
    fn rollout(steps: &[(u64, u64, u32, bool)]) -> Collected {
        let mut samples = vec![];
        let mut episodes = vec![];
        for &(g, k, n, won) in steps {
            let traj = 2 * g + k;
            for step in 0..n {
                samples.push(StepSample {
                    uid: GroupId(g),
                    traj_uid: TrajId(traj),
                    step_index: step,
                    prompt_tokens: vec![1, 2],
                    response_tokens: vec![3, 4],
                    response_mask: vec![1, 1],
                    old_log_probs: vec![-1.0, -1.0],
                    rollout_log_probs: vec![],
                    policy_version: 0,
                    step_reward: if won && step + 1 == n { 10.0 } else { 0.0 },
                    episode_reward: if won { 10.0 } else { 0.0 },
                    episode_length: n,
                    tool_calls: n,
                    is_action_valid: step != 1,
                    anchor_obs: format!("room {step}"),
                    collected_at: 1,
                    score: 0.0,
                    step_return: 0.0,
                    advantage: 0.0,
                });
            }
            episodes.push(EpisodeRecord {
                traj,
                group: g,
                task_type: if g == 0 { "a".into() } else { "b".into() },
                won,
                episode_reward: if won { 10.0 } else { 0.0 },
                turns: vec![TurnRecord::default(); n as usize],
                ..Default::default()
            });
        }
        let flags = vec![ResponseFlags::default(); samples.len()];
        Collected {
            out: RolloutOutput {
                samples,
                episodes,
                ..Default::default()
            },
            flags,
            sample_turns: SampleTurns::OnePerStep,
            extra: BTreeMap::new(),
            headline: String::new(),
        }
    }

    fn rl() -> RlConfig {
        let mut rl = RlConfig::default();
        rl.advantage.estimator = Estimator::DrGrpo;
        rl.drbot.rollout_filter_ratio = 1.0;
        rl.drbot.power_of_two_subsample = false;
        rl
    }

    #[test]
    fn prepare_scores_filters_and_advantages() {
        // Group 0: a win in 2 steps and a loss in 3; group 1: two losses.
        let c = rollout(&[
            (0, 0, 2, true),
            (0, 1, 3, false),
            (1, 0, 1, false),
            (1, 1, 1, false),
        ]);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let it = prepare(c, 1, &rl(), &mut rng).unwrap();
        assert_eq!(it.marks.len(), 7);
        assert_eq!(it.trained, 7, "filter off: every sample is trained on");
        assert_eq!(
            it.kept_groups,
            spear_rl::sample::group_samples(&it.kept.samples)
        );
        // Step 1 of each trajectory that has one is invalid: 2 of 7.
        assert!((it.valid_rate - 5.0 / 7.0).abs() < 1e-12);
        // The winner's samples have a positive advantage, the loser's in its group negative.
        for s in &it.kept.samples {
            match (s.uid.0, s.traj_uid.0) {
                (0, 0) => assert!(s.advantage > 0.0, "{s:?}"),
                (0, 1) => assert!(s.advantage < 0.0, "{s:?}"),
                _ => {}
            }
        }
        // Episode scores were written into the records (the winner's with the tool bonus).
        assert!(it.episodes[0].score >= 10.0);
        assert!(it.toolcall_coef >= 0.0);
    }

    #[test]
    fn the_std_filter_selects_whole_groups() {
        // Group 1 has no spread: with ratio 0.5 only group 0 is kept.
        let c = rollout(&[
            (0, 0, 2, true),
            (0, 1, 2, false),
            (1, 0, 1, false),
            (1, 1, 1, false),
        ]);
        let mut cfg = rl();
        cfg.drbot.rollout_filter_ratio = 0.5;
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let it = prepare(c, 1, &cfg, &mut rng).unwrap();
        assert_eq!(it.trained, 4);
        assert!(it.kept.samples.iter().all(|s| s.uid.0 == 0));
        assert_eq!(it.kept_groups.len(), 1);
        assert_eq!(it.marks.len(), 6, "the records still see every sample");
    }

    #[test]
    fn advantages_reach_the_turns_they_trained() {
        let c = rollout(&[(0, 0, 2, true), (0, 1, 2, false)]);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut it = prepare(c.clone(), 1, &rl(), &mut rng).unwrap();
        record_advantages(&mut it, SampleTurns::OnePerStep);
        for (e, ep) in it.episodes.iter().enumerate() {
            for (k, turn) in ep.turns.iter().enumerate() {
                let s = it
                    .kept
                    .samples
                    .iter()
                    .find(|s| s.traj_uid.0 == e as u64 && s.step_index == k as u32)
                    .unwrap();
                assert_eq!(turn.advantage, Some(s.advantage));
                assert!(!turn.masked);
            }
        }
        // One sample per episode (math): every turn shares the sample's advantage.
        let mut c1 = rollout(&[(0, 0, 1, true), (0, 1, 1, false)]);
        for e in &mut c1.out.episodes {
            e.turns = vec![TurnRecord::default(); 3];
        }
        let mut it = prepare(c1, 1, &rl(), &mut rng).unwrap();
        record_advantages(&mut it, SampleTurns::WholeEpisode);
        for (e, ep) in it.episodes.iter().enumerate() {
            let a = it.kept.samples[e].advantage;
            assert!(ep.turns.iter().all(|t| t.advantage == Some(a)));
        }
    }

    #[test]
    fn iteration_metrics_by_hand() {
        let c = rollout(&[
            (0, 0, 2, true),
            (0, 1, 3, false),
            (1, 0, 1, false),
            (1, 1, 1, true),
        ]);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let it = prepare(c, 1, &rl(), &mut rng).unwrap();
        let stats = UpdateStats {
            grad_norms: vec![1.0, 3.0],
            tokens: 100,
            secs: 2.0,
            ..Default::default()
        };
        let mut extra = BTreeMap::new();
        extra.insert("env".to_string(), serde_json::json!({"x": 1}));
        let m = iteration_metrics(&IterationInputs {
            t: 1,
            iteration: &it,
            stats: &stats,
            sil_weight: 0.25,
            buffer_samples: 3,
            replay_samples: 0,
            replay_p50: None,
            rollout_times: (4.0, 1.0, 80),
            adv_secs: 0.5,
            eval_secs: 0.0,
            extra,
            mismatch: Mismatch {
                tokens: 4,
                abs_diff_mean: 0.25,
                abs_diff_max: 0.75,
                ratio_outside_frac: 0.5,
            },
            old_log_prob_secs: 0.125,
            async_dropped: 3,
        });
        assert_eq!(m.rollout_logprob_abs_diff_mean, 0.25);
        assert_eq!(m.rollout_logprob_abs_diff_max, 0.75);
        assert_eq!(m.rollout_ratio_outside_frac, 0.5);
        assert_eq!(m.async_dropped_samples, 3);
        assert_eq!(m.time.old_log_prob, 0.125);
        assert_eq!(m.success_rate, 0.5);
        assert_eq!(m.success_by_type["a"], 0.5);
        assert_eq!(m.success_by_type["b"], 0.5);
        assert_eq!(m.episode_length, 7.0 / 4.0);
        assert_eq!(m.episode_reward, 5.0);
        assert_eq!(m.samples, 7);
        assert_eq!(m.grad_norm, 2.0);
        assert_eq!(m.gen_tokens_per_s, 20.0);
        assert_eq!(m.train_tokens_per_s, 50.0);
        assert_eq!(m.sil_weight, 0.25);
        // The environment's metrics land at the top level of the JSON line.
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["env"]["x"], 1);
    }

    /// The staleness bound on a constructed batch: versions 0..=3 with current version 3 and
    /// max_staleness 1 keep versions 2 and 3 (with their flags, in order) and count the rest;
    /// max_staleness ≥ current keeps everything; the episode records stay.
    #[test]
    fn stale_samples_are_dropped_and_counted() {
        let make = || {
            let mut c = rollout(&[(0, 0, 4, true), (0, 1, 2, false), (1, 0, 3, false)]);
            for (k, s) in c.out.samples.iter_mut().enumerate() {
                s.policy_version = [0, 1, 2, 3][k % 4];
            }
            for (k, f) in c.flags.iter_mut().enumerate() {
                f.repetitive = k % 2 == 0;
            }
            c
        };
        let mut c = make();
        let before: Vec<(u64, u64, u32, bool)> = c
            .out
            .samples
            .iter()
            .zip(&c.flags)
            .map(|(s, f)| (s.policy_version, s.traj_uid.0, s.step_index, f.repetitive))
            .collect();
        assert_eq!(before.len(), 9);
        let dropped = drop_stale(&mut c, 3, 1);
        let expect: Vec<_> = before.iter().filter(|x| x.0 >= 2).copied().collect();
        assert_eq!(dropped, (before.len() - expect.len()) as u64);
        assert_eq!(dropped, 5);
        let after: Vec<_> = c
            .out
            .samples
            .iter()
            .zip(&c.flags)
            .map(|(s, f)| (s.policy_version, s.traj_uid.0, s.step_index, f.repetitive))
            .collect();
        assert_eq!(after, expect);
        assert_eq!(c.out.episodes.len(), 3);
        // The kept samples still go through the learner.
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let it = prepare(c, 4, &rl(), &mut rng).unwrap();
        assert_eq!(it.marks.len(), 4);
        let mut all = make();
        assert_eq!(drop_stale(&mut all, 3, 3), 0);
        assert_eq!(drop_stale(&mut all, 3, 7), 0);
        assert_eq!(all.out.samples.len(), 9);
        assert_eq!(drop_stale(&mut all, 3, 0), 7);
        assert!(all.out.samples.iter().all(|s| s.policy_version == 3));
    }
}
