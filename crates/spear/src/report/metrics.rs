//! Which metric goes in which chart group, in which order, with which y axis.
//!
//! The fields the trainer writes (`run_dir::IterationMetrics`) come first in a fixed order,
//! grouped; every other numeric field follows alphabetically under "Other metrics", so a new
//! metric shows up without a change here.

use std::collections::BTreeSet;

use super::svg::YAxis;

/// Chart groups in page order, each with its key patterns in order. A pattern ending in `.`
/// takes every key under that prefix (alphabetically) not already placed.
pub const GROUPS: &[(&str, &[&str])] = &[
    (
        "Success",
        &[
            "success_rate",
            "success_by_type.",
            "valid_action_rate",
            "task_score",
        ],
    ),
    ("Reward", &["episode_reward", "score", "episode_length"]),
    (
        "Policy update",
        &[
            "entropy",
            "approx_kl",
            "kl_loss",
            "clip_frac",
            "clip_frac_dual",
            "clip_cov_frac",
            "replay_clip_cov_frac",
            "pg_loss",
            "grad_norm",
            "lr",
        ],
    ),
    (
        "SPEAR: tool-call reward, self-imitation, replay",
        &[
            "toolcall_coef",
            "sil_weight",
            "buffer_samples",
            "replay_samples",
            "replay_p50",
        ],
    ),
    (
        "Rollout engine: log-prob mismatch, truncated IS, async",
        &[
            "rollout_logprob_abs_diff_mean",
            "rollout_logprob_abs_diff_max",
            "rollout_ratio_outside_frac",
            "tis_weight",
            "tis_capped_frac",
            "async_dropped_samples",
        ],
    ),
    ("Samples", &["samples", "masked_samples", "trained_samples"]),
    (
        "Throughput and wall time",
        &[
            "gen_tokens_per_s",
            "train_tokens_per_s",
            "time.generate",
            "time.env",
            "time.advantage",
            "time.update",
            "time.old_log_prob",
            "time.eval",
            "time.save",
            "time.total",
            "time.",
            "elapsed",
        ],
    ),
];

/// Heading of the group holding every key no pattern names.
pub const OTHER_GROUP: &str = "Other metrics";

/// The keys of `keys` grouped and ordered for the page: the [`GROUPS`] in order (empty
/// groups dropped), then [`OTHER_GROUP`] with the rest alphabetically. `iteration` (the x
/// axis) is left out.
pub fn ordered_groups(keys: &BTreeSet<String>) -> Vec<(String, Vec<String>)> {
    let mut left: BTreeSet<&String> = keys.iter().filter(|k| *k != "iteration").collect();
    let mut out = Vec::new();
    for (group, patterns) in GROUPS {
        let mut these = Vec::new();
        for p in *patterns {
            if p.ends_with('.') {
                let matched: Vec<&String> =
                    left.iter().filter(|k| k.starts_with(p)).copied().collect();
                for k in matched {
                    left.remove(k);
                    these.push(k.clone());
                }
            } else if let Some(k) = left.iter().find(|k| k.as_str() == *p).copied() {
                left.remove(k);
                these.push(k.clone());
            }
        }
        if !these.is_empty() {
            out.push((group.to_string(), these));
        }
    }
    if !left.is_empty() {
        out.push((OTHER_GROUP.to_string(), left.into_iter().cloned().collect()));
    }
    out
}

/// The y axis of a metric: success and valid-action rates always show 0–1; the rest fit
/// their data.
pub fn y_axis(key: &str) -> YAxis {
    if key == "success_rate" || key.starts_with("success_by_type.") || key == "valid_action_rate" {
        YAxis::AtLeast(0.0, 1.0)
    } else {
        YAxis::Auto
    }
}

/// A short description of a known metric (shown under the chart title).
pub fn describe(key: &str) -> Option<&'static str> {
    Some(match key {
        "success_rate" => "rollout episodes won",
        "valid_action_rate" => "outputs that parsed into a valid action",
        "task_score" => "environment task score",
        "episode_reward" => "mean Σ step rewards (extrinsic)",
        "score" => "mean episode score: extrinsic + μ(t)·tool calls − invalid penalty",
        "episode_length" => "mean active steps per episode",
        "entropy" => "mean token entropy (on-policy update)",
        "approx_kl" => "approximate KL(old ‖ new)",
        "kl_loss" => "KL loss to the reference policy (use_kl_loss)",
        "clip_frac" => "PPO clip fraction",
        "clip_frac_dual" => "dual-clip fraction",
        "clip_cov_frac" => "Clip-Cov masked token fraction",
        "replay_clip_cov_frac" => "Clip-Cov masked fraction, replay pass",
        "pg_loss" => "policy-gradient loss",
        "grad_norm" => "gradient norm before clipping",
        "lr" => "learning rate",
        "toolcall_coef" => "tool-call reward coefficient μ(t)",
        "sil_weight" => "self-imitation weight γ(t)",
        "buffer_samples" => "samples in the replay buffer",
        "replay_samples" => "replay samples trained on",
        "replay_p50" => "replay recalibration baseline (P50)",
        "rollout_logprob_abs_diff_mean" => {
            "mean |log π_trainer − log π_engine|, trained tokens (recomputed vs sampled)"
        }
        "rollout_logprob_abs_diff_max" => "largest |log π_trainer − log π_engine|",
        "rollout_ratio_outside_frac" => "tokens with π_trainer / π_engine outside [0.5, 2]",
        "tis_weight" => "mean truncated importance weight (rl.loss.tis_cap)",
        "tis_capped_frac" => "tokens whose importance weight hit the cap",
        "async_dropped_samples" => "samples older than rollout.max_staleness, dropped",
        "samples" => "step-samples collected",
        "masked_samples" => "step-samples masked by filters",
        "trained_samples" => "step-samples trained on",
        "gen_tokens_per_s" => "generated tokens per second",
        "train_tokens_per_s" => "trained tokens per second",
        "time.generate" => "seconds generating",
        "time.env" => "seconds stepping environments",
        "time.advantage" => "seconds on rewards, filters, advantages",
        "time.update" => "seconds in the update",
        "time.old_log_prob" => "seconds recomputing behaviour log-probs",
        "time.eval" => "seconds evaluating",
        "time.save" => "seconds writing checkpoints and logs",
        "time.total" => "seconds per iteration",
        "elapsed" => "wall seconds since the start",
        _ if key.starts_with("success_by_type.") => "rollout success of this task type",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_first_then_the_rest_alphabetically() {
        let keys: BTreeSet<String> = [
            "zeta",
            "iteration",
            "time.total",
            "time.generate",
            "time.custom",
            "score",
            "success_by_type.pick",
            "success_by_type.clean",
            "success_rate",
            "alpha",
            "entropy",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let groups = ordered_groups(&keys);
        let flat: Vec<(&str, Vec<&str>)> = groups
            .iter()
            .map(|(g, ks)| (g.as_str(), ks.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            flat,
            vec![
                (
                    "Success",
                    vec![
                        "success_rate",
                        "success_by_type.clean",
                        "success_by_type.pick"
                    ]
                ),
                ("Reward", vec!["score"]),
                ("Policy update", vec!["entropy"]),
                (
                    "Throughput and wall time",
                    vec!["time.generate", "time.total", "time.custom"]
                ),
                ("Other metrics", vec!["alpha", "zeta"]),
            ]
        );
    }

    /// The mismatch and async metrics the trainer writes form their own group, in order.
    #[test]
    fn rollout_engine_metrics_have_a_group() {
        let keys: BTreeSet<String> = [
            "async_dropped_samples",
            "rollout_ratio_outside_frac",
            "rollout_logprob_abs_diff_max",
            "rollout_logprob_abs_diff_mean",
            "samples",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let groups = ordered_groups(&keys);
        assert_eq!(
            groups[0],
            (
                "Rollout engine: log-prob mismatch, truncated IS, async".to_string(),
                vec![
                    "rollout_logprob_abs_diff_mean".to_string(),
                    "rollout_logprob_abs_diff_max".to_string(),
                    "rollout_ratio_outside_frac".to_string(),
                    "async_dropped_samples".to_string(),
                ]
            )
        );
        assert!(describe("rollout_logprob_abs_diff_mean").is_some());
    }

    #[test]
    fn rates_are_zero_to_one() {
        assert_eq!(y_axis("success_by_type.clean"), YAxis::AtLeast(0.0, 1.0));
        assert_eq!(y_axis("clip_frac"), YAxis::Auto);
    }
}
