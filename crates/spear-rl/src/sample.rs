//! The step-level data model (spec §2.1): one [`StepSample`] is one environment
//! turn of one trajectory; a [`Batch`] is every step-sample of one training step.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Task group id (`uid` in verl-agent): the G trajectories of one task from the
/// same initial state share it. An index, not a UUID (determinism, style guide).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupId(pub u64);

/// Trajectory id (`traj_uid` in verl-agent), unique within a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TrajId(pub u64);

/// One environment step of one trajectory, as verl-agent trains on it (spec §2.1).
///
/// The scalar fields `score`, `step_return` and `advantage` are filled by the
/// pipeline of spec §2.8 (rewards → filters → penalty → advantages); the token
/// vectors are what the loss needs. The token-level advantage is
/// `advantage × response_mask` ([`StepSample::token_advantages`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepSample {
    /// Task group (`uid`).
    pub uid: GroupId,
    /// Trajectory (`traj_uid`).
    pub traj_uid: TrajId,
    /// 0-based index of this step within its trajectory.
    pub step_index: u32,
    /// Templated prompt (observation with history) token ids.
    pub prompt_tokens: Vec<u32>,
    /// Generated response token ids (for math: assistant turns and tool output).
    pub response_tokens: Vec<u32>,
    /// 1 for tokens the loss sees, 0 otherwise (tool output in math; every
    /// token of a sample flagged by a Dr.BoT filter, spec §3).
    pub response_mask: Vec<u8>,
    /// Behaviour log-probs per response token (`old_log_probs`, spec §2.5): the rollout
    /// engine's until the trainer recomputes them with its own weights before the update
    /// (verl's `recompute_log_prob`, `old_log_prob`); the replay ratio uses the recomputed
    /// values unchanged.
    pub old_log_probs: Vec<f32>,
    /// The rollout engine's own log-probs of the response tokens as it sampled them (verl's
    /// `rollout_log_probs`): the reference of the trainer/engine mismatch metrics and of
    /// truncated importance sampling (`rl.loss.tis_cap`). Empty when unknown (a sample stored
    /// by an older version): then the recomputed `old_log_probs` stand in for them.
    #[serde(default)]
    pub rollout_log_probs: Vec<f32>,
    /// Policy version (completed updates) of the weights that generated the sample; async
    /// collection drops samples older than `current − rollout.max_staleness`.
    #[serde(default)]
    pub policy_version: u64,
    /// Raw environment reward of this step (10 at the winning step, spec §2.2).
    pub step_reward: f64,
    /// Sum of the trajectory's step rewards over active steps (spec §2.2).
    pub episode_reward: f64,
    /// Number of active environment steps of the trajectory (spec §2.2).
    pub episode_length: u32,
    /// Number of tool calls counted for the intrinsic reward. Agent tasks:
    /// every env action is a call, so the reward module uses `episode_length`;
    /// math: assistant messages with `tool_calls` (spec §2.2).
    pub tool_calls: u32,
    /// Output parsed into a valid action (`is_action_valid`, spec §2.2, §7).
    pub is_action_valid: bool,
    /// Anchor observation for GiGPO step groups: exact string equality within a
    /// task group (spec §4.2).
    pub anchor_obs: String,
    /// Training step (`global_steps`, 1-based) at which the sample was collected.
    pub collected_at: u64,
    /// Episode score s_i, the sum of the token-level reward tensor: extrinsic +
    /// μ(t)·r_tc − invalid penalty (spec §2.2, §2.8).
    pub score: f64,
    /// GiGPO discounted step return R_k (minus this step's invalid penalty), spec §4.2.
    pub step_return: f64,
    /// Scalar advantage of this sample (broadcast over the response mask).
    pub advantage: f64,
}

impl StepSample {
    /// True when at least one response token is trained on.
    pub fn has_loss_tokens(&self) -> bool {
        self.response_mask.iter().any(|&m| m != 0)
    }

    /// Token-level advantages `A_i · mask_t` (spec §4.1 "broadcast × response mask").
    pub fn token_advantages(&self) -> Vec<f32> {
        self.response_mask
            .iter()
            .map(|&m| if m != 0 { self.advantage as f32 } else { 0.0 })
            .collect()
    }

    /// Masks every response token out of the loss (Dr.BoT filters, spec §3).
    pub fn mask_out(&mut self) {
        self.response_mask.iter_mut().for_each(|m| *m = 0);
    }
}

/// Sample indices of one task group, split by trajectory, in first-appearance
/// order (the order Python dicts give the official code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupIndex {
    /// The task group.
    pub uid: GroupId,
    /// Every sample index of the group, in batch order.
    pub samples: Vec<usize>,
    /// `(traj_uid, sample indices in batch order)` per trajectory of the group.
    pub trajectories: Vec<(TrajId, Vec<usize>)>,
}

/// All step-samples of one training step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// The samples, in rollout order.
    pub samples: Vec<StepSample>,
}

impl Batch {
    /// Wraps samples.
    pub fn new(samples: Vec<StepSample>) -> Self {
        Self { samples }
    }

    /// Number of step-samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True when there is no sample.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Groups by `uid`, then by `traj_uid` inside each group; both in order of
    /// first appearance, so results never depend on hash order.
    pub fn groups(&self) -> Vec<GroupIndex> {
        group_samples(&self.samples)
    }

    /// Scores s_i of every sample.
    pub fn scores(&self) -> Vec<f64> {
        self.samples.iter().map(|s| s.score).collect()
    }

    /// Advantages of every sample.
    pub fn advantages(&self) -> Vec<f64> {
        self.samples.iter().map(|s| s.advantage).collect()
    }

    /// Writes `values[i]` into `samples[i].advantage`.
    ///
    /// # Panics
    /// If `values.len() != self.len()` (a programming error, not bad input).
    pub fn set_advantages(&mut self, values: &[f64]) {
        assert_eq!(values.len(), self.samples.len(), "one advantage per sample");
        for (s, &a) in self.samples.iter_mut().zip(values) {
            s.advantage = a;
        }
    }
}

/// Groups `samples` by `uid`, then by `traj_uid` (first-appearance order).
pub fn group_samples(samples: &[StepSample]) -> Vec<GroupIndex> {
    let mut groups: Vec<GroupIndex> = Vec::new();
    let mut group_pos: HashMap<GroupId, usize> = HashMap::new();
    let mut traj_pos: HashMap<(GroupId, TrajId), usize> = HashMap::new();
    for (i, s) in samples.iter().enumerate() {
        let g = *group_pos.entry(s.uid).or_insert_with(|| {
            groups.push(GroupIndex {
                uid: s.uid,
                samples: Vec::new(),
                trajectories: Vec::new(),
            });
            groups.len() - 1
        });
        let group = &mut groups[g];
        group.samples.push(i);
        let t = *traj_pos.entry((s.uid, s.traj_uid)).or_insert_with(|| {
            group.trajectories.push((s.traj_uid, Vec::new()));
            group.trajectories.len() - 1
        });
        group.trajectories[t].1.push(i);
    }
    groups
}

/// The grouping of the subset `keep` of a batch (ascending sample indices into the batch that
/// `groups` groups), re-indexed to the subset: equal to [`group_samples`] of the subset (groups
/// and trajectories in first-appearance order, empty ones dropped), without hashing again.
/// Lets a trainer group an iteration once (spec §2.8) and reuse it after the group filter.
pub fn restrict_groups(groups: &[GroupIndex], keep: &[usize]) -> Vec<GroupIndex> {
    let n = keep.last().map_or(0, |&i| i + 1);
    let mut new_index = vec![usize::MAX; n];
    for (j, &i) in keep.iter().enumerate() {
        new_index[i] = j;
    }
    let map = |v: &[usize]| -> Vec<usize> {
        v.iter()
            .filter_map(|&i| new_index.get(i).copied().filter(|&j| j != usize::MAX))
            .collect()
    };
    let mut out: Vec<GroupIndex> = groups
        .iter()
        .filter_map(|g| {
            let samples = map(&g.samples);
            if samples.is_empty() {
                return None;
            }
            let mut trajectories: Vec<(TrajId, Vec<usize>)> = g
                .trajectories
                .iter()
                .filter_map(|(t, idx)| {
                    let idx = map(idx);
                    (!idx.is_empty()).then_some((*t, idx))
                })
                .collect();
            trajectories.sort_by_key(|(_, idx)| idx[0]);
            Some(GroupIndex {
                uid: g.uid,
                samples,
                trajectories,
            })
        })
        .collect();
    out.sort_by_key(|g| g.samples[0]);
    out
}

/// Per task group, the mean score of each trajectory (mean over its step
/// samples of s_i), in first-appearance order. This is `reward_traj_rwscore`
/// of the D_R update (spec §2.4) and of the Dr.BoT std group filter (spec §3).
pub fn trajectory_mean_scores(samples: &[StepSample], group: &GroupIndex) -> Vec<f64> {
    group
        .trajectories
        .iter()
        .map(|(_, idx)| {
            let scores: Vec<f64> = idx.iter().map(|&i| samples[i].score).collect();
            crate::stats::mean(&scores)
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    /// A minimal sample: 4 response tokens, all trained on.
    pub fn sample(uid: u64, traj: u64, step: u32, score: f64) -> StepSample {
        StepSample {
            uid: GroupId(uid),
            traj_uid: TrajId(traj),
            step_index: step,
            prompt_tokens: vec![1, 2, 3],
            response_tokens: vec![4, 5, 6, 7],
            response_mask: vec![1; 4],
            old_log_probs: vec![-0.5; 4],
            rollout_log_probs: vec![],
            policy_version: 0,
            step_reward: 0.0,
            episode_reward: 0.0,
            episode_length: 1,
            tool_calls: 0,
            is_action_valid: true,
            anchor_obs: format!("obs-{traj}-{step}"),
            collected_at: 1,
            score,
            step_return: 0.0,
            advantage: 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::sample;
    use super::*;

    #[test]
    fn grouping_keeps_first_appearance_order() {
        let samples = vec![
            sample(7, 1, 0, 1.0),
            sample(3, 5, 0, 0.0),
            sample(7, 2, 0, 3.0),
            sample(7, 1, 1, 2.0),
        ];
        let g = group_samples(&samples);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].uid, GroupId(7));
        assert_eq!(g[0].samples, vec![0, 2, 3]);
        assert_eq!(
            g[0].trajectories,
            vec![(TrajId(1), vec![0, 3]), (TrajId(2), vec![2])]
        );
        assert_eq!(g[1].samples, vec![1]);
        // traj 1 mean = (1 + 2)/2 = 1.5, traj 2 = 3
        assert_eq!(trajectory_mean_scores(&samples, &g[0]), vec![1.5, 3.0]);
    }

    #[test]
    fn restricted_groups_equal_grouping_the_subset() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let mut runner = TestRunner::new(Config {
            cases: 256,
            ..Config::default()
        });
        let samples = prop::collection::vec((0u64..4, 0u64..5), 0..40);
        runner
            .run(&(samples, any::<u64>()), |(pairs, mask_bits)| {
                let all: Vec<StepSample> = pairs
                    .iter()
                    .enumerate()
                    .map(|(i, &(u, t))| sample(u, u * 10 + t, i as u32, 0.0))
                    .collect();
                let keep: Vec<usize> = (0..all.len())
                    .filter(|i| mask_bits >> (i % 64) & 1 == 1)
                    .collect();
                let subset: Vec<StepSample> = keep.iter().map(|&i| all[i].clone()).collect();
                let restricted = restrict_groups(&group_samples(&all), &keep);
                prop_assert_eq!(restricted, group_samples(&subset));
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn token_advantages_follow_mask() {
        let mut s = sample(0, 0, 0, 0.0);
        s.response_mask = vec![1, 0, 1, 0];
        s.advantage = 2.5;
        assert_eq!(s.token_advantages(), vec![2.5, 0.0, 2.5, 0.0]);
        s.mask_out();
        assert!(!s.has_loss_tokens());
    }
}
