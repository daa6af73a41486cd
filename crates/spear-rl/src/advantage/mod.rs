//! Advantage estimators (spec §4.1, §4.2) on step-samples, and the dispatch the
//! trainer calls ([`compute_advantages`]).
//!
//! Every estimator returns one scalar per step-sample; the token-level
//! advantage is that scalar × the response mask
//! ([`crate::StepSample::token_advantages`]). Scores are summed in f64 (the
//! official code uses float32 tensors; differences are below 1e-6 relative).

mod gigpo;
mod grpo;
mod rloo;

pub use gigpo::{
    anchor_groups, anchor_groups_grouped, gigpo_advantages, gigpo_advantages_grouped,
    GigpoAdvantages,
};
pub use grpo::{grpo_advantages, grpo_advantages_grouped, AdvNorm};
pub use rloo::{rloo_advantages, rloo_advantages_grouped};

use crate::config::{AdvantageConfig, Estimator, GigpoConfig, GigpoMode};
use crate::sample::{group_samples, Batch, GroupIndex};

/// Computes the configured estimator's advantages and writes them into
/// `batch.samples[i].advantage` (spec §2.8 step 5). GiGPO reads `step_return`,
/// so run [`crate::reward::compute_step_returns`] and the invalid penalty first.
pub fn compute_advantages(batch: &mut Batch, adv: &AdvantageConfig, gigpo: &GigpoConfig) {
    let groups = group_samples(&batch.samples);
    compute_advantages_grouped(batch, &groups, adv, gigpo);
}

/// [`compute_advantages`] with the batch's grouping computed once by the caller
/// ([`crate::sample::group_samples`], or [`crate::sample::restrict_groups`] after a filter).
pub fn compute_advantages_grouped(
    batch: &mut Batch,
    groups: &[GroupIndex],
    adv: &AdvantageConfig,
    gigpo: &GigpoConfig,
) {
    let values = match adv.estimator {
        Estimator::Grpo => grpo_advantages_grouped(
            &batch.samples,
            groups,
            AdvNorm::MeanStd,
            adv.step_weighted,
            adv.epsilon,
        ),
        Estimator::DrGrpo => grpo_advantages_grouped(
            &batch.samples,
            groups,
            AdvNorm::Mean,
            adv.step_weighted,
            adv.epsilon,
        ),
        Estimator::Gigpo => {
            let norm = match gigpo.mode {
                GigpoMode::MeanStdNorm => AdvNorm::MeanStd,
                GigpoMode::MeanNorm => AdvNorm::Mean,
            };
            gigpo_advantages_grouped(
                &batch.samples,
                groups,
                norm,
                gigpo.step_advantage_weight,
                adv.step_weighted,
                adv.epsilon,
            )
            .combined
        }
        Estimator::Rloo => rloo_advantages_grouped(&batch.samples, groups),
    };
    batch.set_advantages(&values);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::test_util::sample;

    #[test]
    fn dispatch_matches_each_estimator() {
        let mut samples = vec![
            sample(0, 0, 0, 10.0),
            sample(0, 0, 1, 10.0),
            sample(0, 1, 0, 0.0),
            sample(0, 2, 0, 4.0),
        ];
        samples[0].step_return = 9.5;
        samples[2].anchor_obs = samples[0].anchor_obs.clone();
        let batch = Batch::new(samples);
        let gigpo = GigpoConfig::default();
        let expected = [
            (
                Estimator::Grpo,
                grpo_advantages(&batch.samples, AdvNorm::MeanStd, true, 1e-6),
            ),
            (
                Estimator::DrGrpo,
                grpo_advantages(&batch.samples, AdvNorm::Mean, true, 1e-6),
            ),
            (
                Estimator::Gigpo,
                gigpo_advantages(&batch.samples, AdvNorm::MeanStd, 1.0, true, 1e-6).combined,
            ),
            (Estimator::Rloo, rloo_advantages(&batch.samples)),
        ];
        for (estimator, want) in expected {
            let mut b = batch.clone();
            let cfg = AdvantageConfig {
                estimator,
                ..AdvantageConfig::default()
            };
            compute_advantages(&mut b, &cfg, &gigpo);
            assert_eq!(b.advantages(), want, "{estimator:?}");
        }
        // Dr.GRPO by hand: μ = (10 + 10 + 0 + 4)/4 = 6 → [4, 4, −6, −2]
        let mut b = batch.clone();
        compute_advantages(&mut b, &AdvantageConfig::default(), &gigpo);
        assert_eq!(b.advantages(), vec![4.0, 4.0, -6.0, -2.0]);
    }
}
