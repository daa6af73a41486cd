//! SPEAR's math reward (spec §2.2 "Intrinsic tool-call reward, math";
//! `recipe/spear/reward.py`).
//!
//! * `r_tc = min(1, 0.1 · n_tc)` where `n_tc` counts assistant messages that
//!   carry `tool_calls`.
//! * μ(t) (`use_toolcall_reward`): `none` → 0, `constant` → 1, `cosine` →
//!   `(cos(π t / T) + 1) / 2` for `t ≤ T`, else 0, with `T = max_toolcall_steps = 200`.
//! * Qwen2.5 variant (`..._posneg_decay`): `score += r_tc · μ(t)` always.
//! * Qwen3 variant (`..._posneg_decay_qwen3`): μ clamped `≥ 0`; if `score ≤ 0`
//!   `score += r_tc · μ`, else `score += 1[r_tc > 0] · μ`.
//!
//! **`is_incomplete` and the reported prediction, traced** (`verl/recipe/spear/reward.py`
//! and `verl/verl/utils/reward_score/math_dapo.py`, TencentYoutuResearch/SPEAR @
//! 7e8431513165640b4b1f78d09ebaae8807ee4f85). For `math_dapo` / `aime*` sources
//! `default_compute_score` runs
//!
//! ```text
//! res = math_dapo.compute_score(solution_str, ground_truth, strict_box_verify=True)
//! if res["pred"] in ["[INVALID]"]: res["is_incomplete"] = 1; res["pred"] = ""
//! else:                            res["is_incomplete"] = 0
//! if res["pred"] is None:          res["pred"] = ""
//! ```
//!
//! Strict verification returns `pred = None` for a response without a closed box in its
//! last 100 characters (it never returns the string `"[INVALID]"`; only the non-strict
//! mode does), and `None in ["[INVALID]"]` is false. So the flag is decided *before* `None`
//! becomes `""`, and it is 1 **only when the boxed content is literally `[INVALID]`**; an
//! answer without a box is not flagged. The reported `pred` is `""` for no box and for a
//! boxed `[INVALID]`, else the boxed content. The two reward functions then apply
//! `if "is_incomplete" in res and res_toolcall and not res["is_incomplete"]:
//! res["is_incomplete"] = 0`, which changes nothing (spec §8 item 18).
//! [`IncompleteRule::Upstream`] (the default) reproduces exactly this.
//!
//! The comment next to that override says what was meant: a response with neither a tool
//! call nor a final answer is degenerate and should be masked.
//! [`IncompleteRule::NoAnswerNoToolCall`] implements that reading (no closed box **and** no
//! tool call); the CPU math presets use it (docs/math.md).

use super::verify::{compute_score, DapoScore, INVALID_PRED};

/// How the tool-call bonus decays with the training step (`use_toolcall_reward`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ToolCallSchedule {
    /// No bonus.
    None,
    /// Bonus weight 1 at every step.
    Constant,
    /// `(cos(π t / T) + 1) / 2` for `t ≤ T`, then 0 (SPEAR: T = 200).
    Cosine {
        /// `max_toolcall_steps`.
        max_steps: u64,
    },
}

impl ToolCallSchedule {
    /// SPEAR's released setting: cosine over 200 steps (spec §2.2).
    pub const SPEAR: ToolCallSchedule = ToolCallSchedule::Cosine { max_steps: 200 };

    /// μ(t) at global step `t` (counting from 1 as verl does). Not clamped.
    pub fn weight(&self, global_step: u64) -> f64 {
        match *self {
            ToolCallSchedule::None => 0.0,
            ToolCallSchedule::Constant => 1.0,
            ToolCallSchedule::Cosine { max_steps } => {
                if global_step <= max_steps && max_steps > 0 {
                    ((std::f64::consts::PI * global_step as f64 / max_steps as f64).cos() + 1.0)
                        / 2.0
                } else {
                    0.0
                }
            }
        }
    }
}

/// Which reward function of `reward.py` is reproduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewardVariant {
    /// `default_compute_score_enforce_toolcall_posneg_decay` (Qwen2.5-32B runs).
    Qwen25,
    /// `default_compute_score_enforce_toolcall_posneg_decay_qwen3` (Qwen3-32B runs).
    Qwen3,
}

/// How `is_incomplete` is decided (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncompleteRule {
    /// `reward.py` as it runs: incomplete iff the strict verifier's prediction is the
    /// literal string `[INVALID]` (a boxed `[INVALID]`). A response without a box is
    /// **not** incomplete.
    #[default]
    Upstream,
    /// The CPU presets' rule (the intent stated in `reward.py`'s comment): no closed box
    /// in the last 100 characters **and** no tool call.
    NoAnswerNoToolCall,
}

impl IncompleteRule {
    /// Whether a conversation is incomplete, given the strict verifier's prediction
    /// (`None`: no closed box) and the number of tool-call messages.
    pub fn is_incomplete(self, verifier_pred: Option<&str>, n_tool_calls: usize) -> bool {
        match self {
            IncompleteRule::Upstream => verifier_pred == Some(INVALID_PRED),
            IncompleteRule::NoAnswerNoToolCall => verifier_pred.is_none() && n_tool_calls == 0,
        }
    }
}

/// The SPEAR reward's output for one conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct SpearScore {
    /// Final scalar reward placed on the last response token.
    pub score: f64,
    /// Verifier accuracy (the reported metric).
    pub acc: bool,
    /// The prediction as `reward.py` reports it: `""` when the verifier's prediction is
    /// `None` (no closed box) or `"[INVALID]"`, else the boxed content.
    pub pred: String,
    /// The strict verifier's own prediction (`None`: no closed box in the last 100
    /// characters). Not an upstream field.
    pub extracted: Option<String>,
    /// Masked out of the loss by the Dr.BoT incomplete filter.
    pub is_incomplete: bool,
    /// The tool-call reward before decay, `min(1, 0.1 · n_tc)`.
    pub tool_call_reward: f64,
    /// The verifier's raw score (±1).
    pub outcome: f64,
}

/// `r_tc = min(1, 0.1 · n_tc)`, with the tenth added `n_tc` times as upstream
/// does (`res_toolcall += 0.1`), so 3 calls give `0.30000000000000004`.
pub fn tool_call_reward(n_tool_calls: usize) -> f64 {
    let mut r = 0.0f64;
    for _ in 0..n_tool_calls {
        r += 0.1;
    }
    r.min(1.0)
}

/// Configuration of [`spear_score`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpearRewardConfig {
    /// Which `reward.py` function.
    pub variant: RewardVariant,
    /// μ(t).
    pub schedule: ToolCallSchedule,
    /// How `is_incomplete` is decided.
    pub incomplete: IncompleteRule,
}

impl Default for SpearRewardConfig {
    fn default() -> Self {
        SpearRewardConfig {
            variant: RewardVariant::Qwen3,
            schedule: ToolCallSchedule::SPEAR,
            incomplete: IncompleteRule::Upstream,
        }
    }
}

/// SPEAR's math reward for one whole conversation. `response` is the decoded
/// response text (all turns, tool output included, as verl's `solution_str`);
/// `n_tool_calls` the number of assistant messages that carried tool calls.
pub fn spear_score(
    response: &str,
    ground_truth: &str,
    n_tool_calls: usize,
    global_step: u64,
    cfg: &SpearRewardConfig,
) -> SpearScore {
    let base: DapoScore = compute_score(response, ground_truth, true);
    let r_tc = tool_call_reward(n_tool_calls);
    let mut mu = cfg.schedule.weight(global_step);
    let mut score = base.score;
    match cfg.variant {
        RewardVariant::Qwen25 => score += r_tc * mu,
        RewardVariant::Qwen3 => {
            mu = mu.max(0.0);
            if score <= 0.0 {
                score += r_tc * mu;
            } else {
                score += if r_tc > 0.0 { mu } else { 0.0 };
            }
        }
    }
    let is_incomplete = cfg
        .incomplete
        .is_incomplete(base.pred.as_deref(), n_tool_calls);
    let pred = match base.pred.as_deref() {
        None | Some(INVALID_PRED) => String::new(),
        Some(p) => p.to_string(),
    };
    SpearScore {
        score,
        acc: base.acc,
        pred,
        extracted: base.pred,
        is_incomplete,
        tool_call_reward: r_tc,
        outcome: base.score,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn cosine_schedule_values() {
        let s = ToolCallSchedule::SPEAR;
        assert!(close(s.weight(0), 1.0)); // (cos 0 + 1)/2 = 1
        assert!(close(s.weight(100), 0.5)); // (cos π/2 + 1)/2 = 0.5
        assert!(close(
            s.weight(50),
            (std::f64::consts::FRAC_1_SQRT_2 + 1.0) / 2.0
        )); // cos π/4 = 0.7071 → 0.8536
        assert!(close(s.weight(200), 0.0)); // (cos π + 1)/2 = 0
        assert!(close(s.weight(201), 0.0));
        assert!(close(ToolCallSchedule::Constant.weight(999), 1.0));
        assert!(close(ToolCallSchedule::None.weight(1), 0.0));
    }

    #[test]
    fn tool_call_reward_caps_at_one() {
        assert_eq!(tool_call_reward(0), 0.0);
        assert!(close(tool_call_reward(3), 0.3));
        assert_eq!(tool_call_reward(3), 0.1 + 0.1 + 0.1); // float sum as upstream
        assert_eq!(tool_call_reward(10), 0.9999999999999999f64.min(1.0)); // 10 × 0.1 in floats
        assert_eq!(tool_call_reward(12), 1.0);
    }

    #[test]
    fn qwen25_adds_bonus_to_both_signs() {
        let cfg = SpearRewardConfig {
            variant: RewardVariant::Qwen25,
            ..Default::default()
        };
        // correct, 3 calls, t = 100: 1 + 0.3 × 0.5 = 1.15
        let r = spear_score("\\boxed{5}", "5", 3, 100, &cfg);
        assert!(close(r.score, 1.15));
        // wrong, 2 calls, t = 100: -1 + 0.2 × 0.5 = -0.9
        let r = spear_score("\\boxed{4}", "5", 2, 100, &cfg);
        assert!(close(r.score, -0.9));
        assert!(!r.is_incomplete);
    }

    #[test]
    fn qwen3_indicator_for_correct_answers() {
        let cfg = SpearRewardConfig::default();
        // correct, 3 calls, t = 100: 1 + 1 × 0.5 = 1.5
        let r = spear_score("\\boxed{5}", "5", 3, 100, &cfg);
        assert!(close(r.score, 1.5));
        // correct, no call: 1 + 0 = 1
        assert!(close(
            spear_score("\\boxed{5}", "5", 0, 100, &cfg).score,
            1.0
        ));
        // wrong, 4 calls, t = 0: -1 + 0.4 × 1 = -0.6
        assert!(close(
            spear_score("\\boxed{4}", "5", 4, 0, &cfg).score,
            -0.6
        ));
        // after T the bonus is gone: -1
        assert!(close(
            spear_score("\\boxed{4}", "5", 4, 300, &cfg).score,
            -1.0
        ));
    }

    #[test]
    fn incomplete_rules() {
        let upstream = SpearRewardConfig::default();
        let cpu = SpearRewardConfig {
            incomplete: IncompleteRule::NoAnswerNoToolCall,
            ..Default::default()
        };
        // reward.py as it runs: no box is NOT incomplete (strict pred None is not
        // "[INVALID]"), with or without a tool call; the reported pred is "".
        for calls in [0, 1] {
            let a = spear_score("ran code, no answer", "5", calls, 10, &upstream);
            assert!(!a.is_incomplete, "{calls} calls");
            assert_eq!((a.pred.as_str(), a.extracted.as_deref()), ("", None));
        }
        // only a literal boxed [INVALID] is flagged, and its pred is reported as ""
        let a = spear_score("\\boxed{[INVALID]}", "5", 1, 10, &upstream);
        assert!(a.is_incomplete);
        assert_eq!(
            (a.pred.as_str(), a.extracted.as_deref()),
            ("", Some("[INVALID]"))
        );
        // a wrong box is reported as is
        let a = spear_score("\\boxed{1}", "5", 0, 10, &upstream);
        assert!(!a.is_incomplete);
        assert_eq!(a.pred, "1");
        // the CPU presets' rule: no box and no tool call
        assert!(spear_score("nothing", "5", 0, 10, &cpu).is_incomplete);
        assert!(!spear_score("ran code, no answer", "5", 1, 10, &cpu).is_incomplete);
        assert!(!spear_score("\\boxed{1}", "5", 0, 10, &cpu).is_incomplete);
        assert!(!spear_score("\\boxed{[INVALID]}", "5", 0, 10, &cpu).is_incomplete);
    }
}
