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
    toolcall_mode_weight,
};
use spear_rl::sample::{group_samples, restrict_groups, Batch, GroupIndex};
use spear_rl::schedule::replay_weight;

use super::update::UpdateStats;
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
    assign_episode_scores(&mut batch, t, &rl.reward);
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
    let (keep, _report) = select_groups_by_std(&batch, &groups, &rl.drbot, rng)?;
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
    /// The learner's config.
    pub rl: &'a RlConfig,
    /// Samples stored in the replay buffer after the update.
    pub buffer_samples: u64,
    /// Replay samples trained on.
    pub replay_samples: u64,
    /// The replay's P50 baseline, when it fired.
    pub replay_p50: Option<f64>,
    /// (generate seconds, environment seconds, generated tokens) of the rollout.
    pub rollout_times: (f64, f64, u64),
    /// Seconds of rewards, filters, advantages and buffer bookkeeping.
    pub adv_secs: f64,
    /// Seconds of evaluation.
    pub eval_secs: f64,
    /// The environment's own metrics.
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// The `metrics.jsonl` line of an iteration (wall times `save`, `total` and `elapsed` are
/// filled by the caller).
pub fn iteration_metrics(x: &IterationInputs<'_>) -> IterationMetrics {
    let (it, stats, rl, t) = (x.iteration, x.stats, x.rl, x.t);
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
        toolcall_coef: toolcall_mode_weight(
            rl.reward.toolcall_reward,
            t,
            rl.reward.max_toolcall_steps,
        ),
        sil_weight: if rl.replay.enabled {
            replay_weight(
                t,
                rl.replay.max_replay_loss_steps,
                rl.replay.replay_loss_coef,
            )
        } else {
            0.0
        },
        buffer_samples: x.buffer_samples,
        replay_samples: x.replay_samples,
        replay_p50: x.replay_p50,
        gen_tokens_per_s: generated_tokens as f64 / generate.max(1e-9),
        train_tokens_per_s: stats.tokens as f64 / stats.secs.max(1e-9),
        time: PhaseTimes {
            generate,
            env,
            advantage: x.adv_secs,
            update: stats.secs,
            eval: x.eval_secs,
            save: 0.0,
            total: 0.0,
        },
        elapsed: 0.0,
        extra: x.extra.clone(),
    }
}
