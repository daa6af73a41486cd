//! GRPO and Dr.GRPO outcome advantages (spec §4.1).

use crate::sample::{group_samples, GroupIndex, StepSample, TrajId};
use crate::stats::{mean, std_unbiased};
use std::collections::HashSet;

/// Normalisation of a group-relative advantage (spec §4.1, §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdvNorm {
    /// (x − μ)/(σ + ε): GRPO, GiGPO `mean_std_norm`.
    MeanStd,
    /// x − μ: Dr.GRPO, GiGPO `mean_norm`.
    Mean,
}

/// GRPO outcome advantage (spec §4.1): A_i = (s_i − μ_g)/(σ_g + ε), or
/// s_i − μ_g with [`AdvNorm::Mean`] (Dr.GRPO).
///
/// μ_g and σ_g (unbiased, `torch.std`) are taken over the scores s_i of group
/// g = `uid`:
/// * `step_weighted = true` (`compute_mean_std_cross_all_data`, the official
///   default): every step-sample of every trajectory contributes its s_i, so
///   longer trajectories weigh more (spec §8 item 12).
/// * `step_weighted = false`: each trajectory contributes once, the score of
///   its first step-sample in batch order (the `seen_pairs` rule of the code).
///
/// A group with a single contribution gets μ = 0, σ = 1 (so A = s, or s/(1+ε)).
pub fn grpo_advantages(
    samples: &[StepSample],
    norm: AdvNorm,
    step_weighted: bool,
    eps: f64,
) -> Vec<f64> {
    grpo_advantages_grouped(samples, &group_samples(samples), norm, step_weighted, eps)
}

/// [`grpo_advantages`] with the grouping of `samples` computed once by the caller.
pub fn grpo_advantages_grouped(
    samples: &[StepSample],
    groups: &[GroupIndex],
    norm: AdvNorm,
    step_weighted: bool,
    eps: f64,
) -> Vec<f64> {
    let mut out = vec![0.0; samples.len()];
    for group in groups {
        let contributions: Vec<f64> = if step_weighted {
            group.samples.iter().map(|&i| samples[i].score).collect()
        } else {
            let mut seen: HashSet<TrajId> = HashSet::new();
            group
                .samples
                .iter()
                .filter(|&&i| seen.insert(samples[i].traj_uid))
                .map(|&i| samples[i].score)
                .collect()
        };
        let (mu, sigma) = group_mean_std(&contributions);
        for &i in &group.samples {
            let s = samples[i].score;
            out[i] = match norm {
                AdvNorm::MeanStd => (s - mu) / (sigma + eps),
                AdvNorm::Mean => s - mu,
            };
        }
    }
    out
}

/// μ, σ of an episode-level group as the official code sets them: one value →
/// (0, 1); otherwise (mean, unbiased std).
pub(crate) fn group_mean_std(values: &[f64]) -> (f64, f64) {
    if values.len() <= 1 {
        (0.0, 1.0)
    } else {
        (mean(values), std_unbiased(values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::test_util::sample;

    /// Group 0: traj 0 has two steps with s = 10, traj 1 one step with s = 0.
    /// Group 1: a single sample with s = 4.
    fn batch() -> Vec<StepSample> {
        vec![
            sample(0, 0, 0, 10.0),
            sample(0, 0, 1, 10.0),
            sample(0, 1, 0, 0.0),
            sample(1, 2, 0, 4.0),
        ]
    }

    #[test]
    fn step_weighted_grpo_by_hand() {
        let a = grpo_advantages(&batch(), AdvNorm::MeanStd, true, 1e-6);
        // group 0 values [10, 10, 0]: μ = 20/3 = 6.6667; deviations 3.3333, 3.3333, −6.6667
        // σ = sqrt((11.111+11.111+44.444)/2) = sqrt(33.333) = 5.7735
        // A = 3.3333/5.7735 = 0.57735 for traj 0, −6.6667/5.7735 = −1.1547 for traj 1
        assert!((a[0] - 0.577_350_2).abs() < 1e-6);
        assert!((a[1] - 0.577_350_2).abs() < 1e-6);
        assert!((a[2] + 1.154_700_4).abs() < 1e-6);
        // group 1 is a singleton: μ = 0, σ = 1 → A = 4/(1 + 1e-6)
        assert!((a[3] - 4.0 / (1.0 + 1e-6)).abs() < 1e-12);
    }

    #[test]
    fn per_trajectory_grpo_by_hand() {
        let a = grpo_advantages(&batch(), AdvNorm::MeanStd, false, 1e-6);
        // group 0 values [10, 0]: μ = 5, σ = sqrt((25+25)/1) = 7.0711
        // A = 5/7.0711 = 0.70711 and −0.70711
        assert!((a[0] - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert!((a[1] - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert!((a[2] + std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-6);
    }

    #[test]
    fn dr_grpo_by_hand() {
        let a = grpo_advantages(&batch(), AdvNorm::Mean, true, 1e-6);
        // μ = 20/3: A = 10 − 6.6667 = 3.3333 and 0 − 6.6667 = −6.6667; singleton: 4 − 0 = 4
        assert!((a[0] - 10.0 / 3.0).abs() < 1e-12);
        assert!((a[2] + 20.0 / 3.0).abs() < 1e-12);
        assert_eq!(a[3], 4.0);
    }

    #[test]
    fn equal_scores_give_zero_with_epsilon() {
        let s = vec![sample(0, 0, 0, 3.0), sample(0, 1, 0, 3.0)];
        // μ = 3, σ = 0: (3 − 3)/(0 + 1e-6) = 0
        assert_eq!(
            grpo_advantages(&s, AdvNorm::MeanStd, true, 1e-6),
            vec![0.0, 0.0]
        );
    }
}
