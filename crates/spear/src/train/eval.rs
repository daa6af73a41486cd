//! Held-out evaluation (spec §5.4): `episodes` episodes of one split, one environment per
//! task (G = 1), sampling at the evaluation temperature; success = the episode was won,
//! per task type as ALFWorld reports it, with a 95 % Wilson interval.

use std::collections::BTreeMap;
use std::time::Instant;

use spear_envs::household::{GameSet, HouseholdEnv};
use spear_envs::webshop::Split as WebshopSplit;
use spear_model::{Policy, SamplingParams};

use super::setup::{webshop_group, WebshopTasks};
use crate::rollout::agent::{mix_seed, rollout_agent, AgentEnv, AgentRolloutParams};
use crate::run_dir::{wilson_interval, EpisodeRecord, EvalRecord};

/// Settings of one evaluation.
#[derive(Debug, Clone)]
pub struct EvalSettings {
    /// Episodes (tasks `0..episodes` of the split, cycling when the split is smaller).
    pub episodes: usize,
    /// Turn cap.
    pub max_turns: usize,
    /// History pairs in the prompt.
    pub history_length: usize,
    /// Sampling (temperature 0.4 in the paper).
    pub sampling: SamplingParams,
    /// Seed.
    pub seed: u64,
    /// Iteration the evaluation belongs to.
    pub iteration: u64,
    /// Environments rolled out in one batch (memory bound); results do not depend on it.
    pub batch: usize,
}

/// Success statistics of a list of episodes.
pub fn summarize(
    split: &str,
    iteration: u64,
    temperature: f64,
    episodes: &[EpisodeRecord],
) -> EvalRecord {
    let n = episodes.len() as u64;
    let won = episodes.iter().filter(|e| e.won).count() as u64;
    let (lo, hi) = wilson_interval(won, n);
    let mut by_type: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for e in episodes {
        let x = by_type.entry(e.task_type.clone()).or_default();
        x.0 += e.won as u64;
        x.1 += 1;
    }
    EvalRecord {
        iteration,
        split: split.to_string(),
        episodes: n,
        success_rate: if n == 0 { 0.0 } else { won as f64 / n as f64 },
        ci_low: lo,
        ci_high: hi,
        success_by_type: by_type
            .iter()
            .map(|(k, (w, c))| (k.clone(), *w as f64 / *c as f64))
            .collect(),
        episodes_by_type: by_type.iter().map(|(k, (_, c))| (k.clone(), *c)).collect(),
        episode_length: if n == 0 {
            0.0
        } else {
            episodes.iter().map(|e| e.turns.len() as f64).sum::<f64>() / n as f64
        },
        task_score: if n == 0 {
            0.0
        } else {
            episodes
                .iter()
                .map(EpisodeRecord::task_score_or_won)
                .sum::<f64>()
                / n as f64
        },
        temperature,
        math: None,
    }
}

/// Evaluates `policy` on `episodes` tasks of a split with `n_tasks` tasks (cycling), on
/// environments made by `make_envs(n)`, in batches of `s.batch`.
pub fn eval_agent<E: AgentEnv>(
    policy: &Policy,
    split: &str,
    n_tasks: usize,
    make_envs: impl Fn(usize) -> Vec<E>,
    s: &EvalSettings,
) -> anyhow::Result<(EvalRecord, Vec<EpisodeRecord>, f64)> {
    anyhow::ensure!(n_tasks > 0, "the {split} split has no tasks");
    let start = Instant::now();
    let tasks: Vec<usize> = (0..s.episodes).map(|i| i % n_tasks).collect();
    let mut episodes = Vec::with_capacity(tasks.len());
    for (b, chunk) in tasks.chunks(s.batch.max(1)).enumerate() {
        let mut envs = make_envs(chunk.len());
        let p = AgentRolloutParams {
            group_size: 1,
            max_turns: s.max_turns,
            history_length: s.history_length,
            sampling: s.sampling.clone(),
            // Per-episode seeds depend on the chunk only through `b`; keep chunks fixed.
            seed: mix_seed(&[s.seed, 0xE7A1, b as u64]),
            iteration: s.iteration,
            keep_prompts: false,
        };
        let out = rollout_agent(policy, &mut envs, chunk, &p)?;
        episodes.extend(out.episodes);
    }
    let rec = summarize(split, s.iteration, s.sampling.temperature, &episodes);
    Ok((rec, episodes, start.elapsed().as_secs_f64()))
}

/// Evaluates `policy` on a household split.
pub fn eval_household(
    policy: &Policy,
    split: &str,
    games: &GameSet,
    s: &EvalSettings,
) -> anyhow::Result<(EvalRecord, Vec<EpisodeRecord>, f64)> {
    eval_agent(
        policy,
        split,
        games.games.len(),
        |n| HouseholdEnv::group(games.games.clone(), n, s.max_turns),
        s,
    )
}

/// Evaluates `policy` on WebShop's evaluation goals (`0..500`, verl-agent's validation).
pub fn eval_webshop(
    policy: &Policy,
    split: &str,
    tasks: &WebshopTasks,
    s: &EvalSettings,
) -> anyhow::Result<(EvalRecord, Vec<EpisodeRecord>, f64)> {
    let n = tasks
        .evals
        .iter()
        .find(|(name, _)| name == split)
        .map_or(0, |(_, n)| *n);
    eval_agent(
        policy,
        split,
        n,
        |k| webshop_group(&tasks.catalog, WebshopSplit::Eval, k, s.max_turns),
        s,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(t: &str, won: bool, turns: usize) -> EpisodeRecord {
        EpisodeRecord {
            task_type: t.into(),
            won,
            turns: vec![Default::default(); turns],
            ..Default::default()
        }
    }

    #[test]
    fn summary_by_hand() {
        let eps = [
            ep("pick_and_place", true, 3),
            ep("pick_and_place", false, 5),
            ep("look_at_obj_in_light", true, 4),
            ep("pick_and_place", true, 2),
        ];
        let r = summarize("valid_seen", 5, 0.4, &eps);
        assert_eq!(r.episodes, 4);
        assert_eq!(r.success_rate, 0.75);
        assert!((r.success_by_type["pick_and_place"] - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(r.success_by_type["look_at_obj_in_light"], 1.0);
        assert_eq!(r.episodes_by_type["pick_and_place"], 3);
        assert_eq!(r.episode_length, 3.5); // (3 + 5 + 4 + 2) / 4
        let (lo, hi) = wilson_interval(3, 4);
        assert_eq!((r.ci_low, r.ci_high), (lo, hi));
    }
}
