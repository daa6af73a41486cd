//! GiGPO advantage (spec §4.2): episode-level group advantage plus a
//! step-level advantage over anchor-state groups.

use super::grpo::{grpo_advantages_grouped, AdvNorm};
use crate::sample::{group_samples, GroupIndex, StepSample};
use crate::stats::{mean, std_unbiased};
use std::collections::HashMap;

/// The three parts of the GiGPO advantage, one value per step-sample.
#[derive(Debug, Clone, PartialEq)]
pub struct GigpoAdvantages {
    /// A^E: the GRPO-style episode advantage with the GiGPO mode (spec §4.2).
    pub episode: Vec<f64>,
    /// A^S: the step advantage of the discounted return within the anchor group.
    pub step: Vec<f64>,
    /// A = A^E + ω·A^S.
    pub combined: Vec<f64>,
}

/// Anchor-state groups (spec §4.2, `build_step_group`): inside each task group
/// `uid`, the step-samples whose `anchor_obs` are exactly equal. Returned as
/// lists of sample indices, in first-appearance order.
pub fn anchor_groups(samples: &[StepSample]) -> Vec<Vec<usize>> {
    anchor_groups_grouped(samples, &group_samples(samples))
}

/// [`anchor_groups`] with the grouping of `samples` computed once by the caller.
pub fn anchor_groups_grouped(samples: &[StepSample], groups: &[GroupIndex]) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    for group in groups {
        let mut pos: HashMap<&str, usize> = HashMap::new();
        let mut clusters: Vec<Vec<usize>> = Vec::new();
        for &i in &group.samples {
            let c = *pos
                .entry(samples[i].anchor_obs.as_str())
                .or_insert_with(|| {
                    clusters.push(Vec::new());
                    clusters.len() - 1
                });
            clusters[c].push(i);
        }
        out.extend(clusters);
    }
    out
}

/// GiGPO advantage (spec §4.2):
///
/// * A^E_i: [`grpo_advantages`](super::grpo_advantages) of the episode scores s_i with `norm`
///   (`mean_std_norm` → MeanStd, `mean_norm` → Mean), step-weighted by default.
/// * A^S_i: in the anchor group of i, μ = mean(R), σ = unbiased std(R) of the
///   step returns R (`step_return`: discounted raw env rewards, γ = 0.95, minus
///   this step's invalid penalty); a group of one has μ = R itself and σ = 1,
///   so A^S = 0. MeanStd: (R − μ)/(σ + ε); Mean: R − μ.
/// * A_i = A^E_i + ω·A^S_i (ω = `step_advantage_w` = 1).
pub fn gigpo_advantages(
    samples: &[StepSample],
    norm: AdvNorm,
    omega: f64,
    step_weighted: bool,
    eps: f64,
) -> GigpoAdvantages {
    let groups = group_samples(samples);
    gigpo_advantages_grouped(samples, &groups, norm, omega, step_weighted, eps)
}

/// [`gigpo_advantages`] with the grouping of `samples` computed once by the caller.
pub fn gigpo_advantages_grouped(
    samples: &[StepSample],
    groups: &[GroupIndex],
    norm: AdvNorm,
    omega: f64,
    step_weighted: bool,
    eps: f64,
) -> GigpoAdvantages {
    let episode = grpo_advantages_grouped(samples, groups, norm, step_weighted, eps);
    let mut step = vec![0.0; samples.len()];
    for cluster in anchor_groups_grouped(samples, groups) {
        let returns: Vec<f64> = cluster.iter().map(|&i| samples[i].step_return).collect();
        let (mu, sigma) = if returns.len() == 1 {
            (returns[0], 1.0)
        } else {
            (mean(&returns), std_unbiased(&returns))
        };
        for (&i, &r) in cluster.iter().zip(&returns) {
            step[i] = match norm {
                AdvNorm::MeanStd => (r - mu) / (sigma + eps),
                AdvNorm::Mean => r - mu,
            };
        }
    }
    let combined = episode
        .iter()
        .zip(&step)
        .map(|(e, s)| e + omega * s)
        .collect();
    GigpoAdvantages {
        episode,
        step,
        combined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::test_util::sample;

    fn with(mut s: StepSample, anchor: &str, ret: f64) -> StepSample {
        s.anchor_obs = anchor.to_string();
        s.step_return = ret;
        s
    }

    /// One task group, two trajectories:
    /// traj 0 (won, s = 10): steps at anchors "A" (R = 9.5) and "B" (R = 10)
    /// traj 1 (lost, s = 0): steps at anchors "A" (R = 0) and "C" (R = 0)
    fn batch() -> Vec<StepSample> {
        vec![
            with(sample(0, 0, 0, 10.0), "A", 9.5),
            with(sample(0, 0, 1, 10.0), "B", 10.0),
            with(sample(0, 1, 0, 0.0), "A", 0.0),
            with(sample(0, 1, 1, 0.0), "C", 0.0),
        ]
    }

    #[test]
    fn anchor_groups_are_exact_matches_within_uid() {
        let mut s = batch();
        // same anchor text in another uid must not join group "A"
        s.push(with(sample(1, 2, 0, 0.0), "A", 1.0));
        assert_eq!(
            anchor_groups(&s),
            vec![vec![0, 2], vec![1], vec![3], vec![4]]
        );
    }

    #[test]
    fn gigpo_mean_std_by_hand() {
        let a = gigpo_advantages(&batch(), AdvNorm::MeanStd, 1.0, true, 1e-6);
        // A^E over [10, 10, 0, 0]: μ = 5, σ = sqrt(4·25/3) = 5.7735 → ±0.866025
        assert!((a.episode[0] - 0.866_025_4).abs() < 1e-6);
        assert!((a.episode[3] + 0.866_025_4).abs() < 1e-6);
        // anchor "A": R = [9.5, 0]: μ = 4.75, σ = sqrt(2·4.75²/1) = 6.7175 → ±0.707107
        assert!((a.step[0] - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert!((a.step[2] + std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        // "B" and "C" are singletons: A^S = 0
        assert_eq!(a.step[1], 0.0);
        assert_eq!(a.step[3], 0.0);
        // combined (ω = 1): 0.866025 + 0.707107 = 1.573132 ; −0.866025 − 0.707107 = −1.573132
        assert!((a.combined[0] - 1.573_132_2).abs() < 1e-6);
        assert!((a.combined[2] + 1.573_132_2).abs() < 1e-6);
        assert!((a.combined[1] - a.episode[1]).abs() < 1e-15);
    }

    #[test]
    fn gigpo_mean_norm_by_hand() {
        let a = gigpo_advantages(&batch(), AdvNorm::Mean, 0.5, true, 1e-6);
        // A^E = s − 5 = ±5 ; A^S("A") = R − 4.75 = ±4.75 ; ω = 0.5
        // combined[0] = 5 + 0.5·4.75 = 7.375 ; combined[2] = −5 − 2.375 = −7.375
        assert!((a.combined[0] - 7.375).abs() < 1e-12);
        assert!((a.combined[2] + 7.375).abs() < 1e-12);
        assert!((a.combined[1] - 5.0).abs() < 1e-12);
    }
}
