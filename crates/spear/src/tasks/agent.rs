//! The agent loop's side of the environment door, shared by the text environments
//! (household, WebShop): one training iteration's collection (G environments per task, the
//! agent loop, Dr.BoT's response flags per step) and the held-out evaluation (spec §5.4:
//! `episodes` episodes of one split, one environment per task, the evaluation temperature;
//! success = the episode was won, per task type as ALFWorld reports it, with a 95 % Wilson
//! interval).

use std::collections::BTreeMap;

use spear_rl::drbot::response_flags;

use super::{CollectSettings, Collected, EvalSettings, SampleTurns};
use crate::rollout::agent::{rollout_agent, AgentEnv, AgentRolloutParams};
use crate::rollout::ChatSampler;
use crate::run_dir::{wilson_interval, EpisodeRecord, EvalRecord};
use crate::seed::mix_seed;

/// One training iteration's rollout of an agent environment: `envs` holds `tasks.len() · G`
/// environments (from the suite), group `i` plays `tasks[i]`; one sample per step, with
/// Dr.BoT's response flags.
pub fn collect_agent<E: AgentEnv>(
    sampler: &dyn ChatSampler,
    mut envs: Vec<E>,
    tasks: &[usize],
    s: &CollectSettings,
) -> anyhow::Result<Collected> {
    let params = AgentRolloutParams {
        group_size: s.group_size,
        max_turns: s.max_turns,
        history_length: s.history_length,
        sampling: s.sampling.clone(),
        seed: s.seed,
        iteration: s.iteration,
        keep_prompts: s.keep_prompts,
        concurrent: s.concurrent_episodes,
        policy_version: s.policy_version,
    };
    let out = rollout_agent(sampler, &mut envs, tasks, &params)?;
    let flags = out
        .samples
        .iter()
        .map(|x| {
            let text = &out.episodes[x.traj_uid.0 as usize].turns[x.step_index as usize].response;
            response_flags(&x.response_tokens, text, &s.drbot)
        })
        .collect();
    let valid = if out.samples.is_empty() {
        0.0
    } else {
        out.samples.iter().filter(|x| x.is_action_valid).count() as f64 / out.samples.len() as f64
    };
    Ok(Collected {
        out,
        flags,
        sample_turns: SampleTurns::OnePerStep,
        extra: BTreeMap::new(),
        headline: format!("valid {valid:.2}"),
    })
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
    sampler: &dyn ChatSampler,
    split: &str,
    n_tasks: usize,
    make_envs: impl Fn(usize) -> Vec<E>,
    s: &EvalSettings,
) -> anyhow::Result<(EvalRecord, Vec<EpisodeRecord>)> {
    anyhow::ensure!(n_tasks > 0, "the {split} split has no tasks");
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
            concurrent: false,
            policy_version: 0,
        };
        let out = rollout_agent(sampler, &mut envs, chunk, &p)?;
        episodes.extend(out.episodes);
    }
    let rec = summarize(split, s.iteration, s.sampling.temperature, &episodes);
    Ok((rec, episodes))
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
