//! RLOO advantage: a leave-one-out baseline, as a cheap extra estimator.

use crate::sample::{group_samples, trajectory_mean_scores, GroupIndex, StepSample};

/// RLOO (REINFORCE leave-one-out), trajectory-level, on step-samples.
///
/// Definition used here: in a task group with K trajectories, let S_j be the
/// mean score of trajectory j over its step-samples (= the episode score when
/// no per-step penalty applies). The baseline of trajectory k is the mean of
/// the other trajectories, b_k = (Σ_{j≠k} S_j)/(K − 1), and every step-sample
/// i of trajectory k gets A_i = s_i − b_k (its own score, so a per-step
/// invalid penalty still counts). With equal penalties this equals verl's
/// `K/(K−1)·(s − mean)`. A group of one trajectory has no baseline: b = 0 and
/// A = s, as verl's `compute_rloo_outcome_advantage` does.
pub fn rloo_advantages(samples: &[StepSample]) -> Vec<f64> {
    rloo_advantages_grouped(samples, &group_samples(samples))
}

/// [`rloo_advantages`] with the grouping of `samples` computed once by the caller.
pub fn rloo_advantages_grouped(samples: &[StepSample], groups: &[GroupIndex]) -> Vec<f64> {
    let mut out = vec![0.0; samples.len()];
    for group in groups {
        let traj_scores = trajectory_mean_scores(samples, group);
        let k = traj_scores.len();
        let total: f64 = traj_scores.iter().sum();
        for (t, (_, idx)) in group.trajectories.iter().enumerate() {
            let baseline = if k > 1 {
                (total - traj_scores[t]) / (k - 1) as f64
            } else {
                0.0
            };
            for &i in idx {
                out[i] = samples[i].score - baseline;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::test_util::sample;

    #[test]
    fn rloo_by_hand() {
        // three trajectories with scores 10, 0, 2 (traj 0 has two steps).
        let s = vec![
            sample(0, 0, 0, 10.0),
            sample(0, 0, 1, 10.0),
            sample(0, 1, 0, 0.0),
            sample(0, 2, 0, 2.0),
            sample(1, 3, 0, 5.0),
        ];
        let a = rloo_advantages(&s);
        // traj 0: b = (0 + 2)/2 = 1 → A = 10 − 1 = 9
        assert_eq!(a[0], 9.0);
        assert_eq!(a[1], 9.0);
        // traj 1: b = (10 + 2)/2 = 6 → A = −6 ; traj 2: b = (10 + 0)/2 = 5 → A = −3
        assert_eq!(a[2], -6.0);
        assert_eq!(a[3], -3.0);
        // singleton group: A = s
        assert_eq!(a[4], 5.0);
        // check against K/(K−1)(s − mean): mean = 4, 3/2·(10 − 4) = 9 ✓
    }
}
