//! Math presets (spec §2.9, §3, §5.3; docs/math.md "What a math-spear / math-grpo preset
//! needs"): a base (`math` = SmolLM2-135M-Instruct on the CPU, `math-tiny` = a tiny
//! character-level model for tests, `math-paper` = the paper's run) and an algorithm suffix:
//!
//! * `-spear` (or no suffix): SPEAR on Dr.BoT(GRPO) — Dr.GRPO advantages over the G
//!   conversations of a problem, the Dr.BoT filters (overlong, incomplete, repetitive,
//!   unreadable) and std group filter, Clip-Cov (on-policy 2e-4 / 1 / 5, replay
//!   0.02 / 1 / 40), the Qwen3 math tool-call reward with the cosine μ(t) (T_decay 200),
//!   self-imitation replay (P50 baseline, keep Ã > 0, `require_tool_call`, T_warm 300).
//! * `-grpo`: the math Dr.BoT baseline — the same without replay, with the vanilla PPO loss
//!   and no tool-call reward (spec §3: "Dr.BoT = SPEAR with enable_trajectory_replay=False,
//!   loss_mode=vanilla, use_toolcall_reward=none").
//!
//! Both use dual clip c = 10 (every repo script, spec §3), entropy 0 and no KL (math recipe).
//! The paper's response budget, batch and buffer sizes are `math-paper`'s; the CPU presets
//! shrink them and scale the step-count schedules (T_decay, T_warm) to the run length.
//!
//! Incomplete rule: `math-paper-*` uses upstream's rule exactly (`env.math.incomplete_rule =
//! "upstream"`: only a boxed `[INVALID]` is flagged, `spear_envs::math::reward`); the CPU
//! presets use their own named rule `no_answer_no_tool_call` (see `scale_math_to_short_run`).

use spear_rl::config::{Estimator, RecalibratedKeep, RlConfig, ToolCallReward, ToolCallVariant};
use spear_rl::loss::{LossConfig, LossMode};

use crate::train::config::math::{IncompleteRuleArg, MathSource};
use crate::train::config::{EnvKind, EvalSplit, ModelSource, TrainConfig};

/// The base of a math preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MathBase {
    /// `math`: SmolLM2-135M-Instruct on the CPU.
    Smollm2,
    /// `math-tiny`: a tiny character-level model for tests.
    Tiny,
    /// `math-paper`: the paper's run.
    Paper,
}

/// The algorithm of a math preset. There is no GiGPO: it has nothing to add over GRPO when a
/// conversation is one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MathAlgorithm {
    /// `-grpo`: Dr.BoT(GRPO), the math baseline.
    DrBot,
    /// `-spear` (or no suffix): SPEAR on Dr.BoT(GRPO).
    Spear,
}

/// Applies SPEAR or Dr.BoT(GRPO) for math to `rl` (module docs).
pub fn apply_math_algorithm(rl: &mut RlConfig, algo: MathAlgorithm) {
    let spear = match algo {
        MathAlgorithm::Spear => true,
        MathAlgorithm::DrBot => false,
    };
    // Dr.BoT: norm_adv_by_std_in_grpo = False (spec §3); one sample per conversation.
    rl.advantage.estimator = Estimator::DrGrpo;
    rl.drbot.filter_overlong = true;
    rl.drbot.filter_incomplete = true;
    rl.drbot.filter_repetitive = true;
    rl.drbot.filter_unreadable = true;
    rl.drbot.rollout_filter_ratio = 0.75;
    rl.drbot.power_of_two_subsample = true;
    rl.reward.toolcall_variant = ToolCallVariant::MathQwen3;
    rl.reward.toolcall_reward = if spear {
        ToolCallReward::Cosine
    } else {
        ToolCallReward::None
    };
    rl.reward.max_toolcall_steps = 200;
    rl.replay.enabled = spear;
    rl.replay.buffer_size = 2048;
    rl.replay.baseline_buffer_size = 10240;
    rl.replay.tolerate_steps = 5;
    rl.replay.keep = RecalibratedKeep::Positive;
    rl.replay.require_tool_call = true;
    rl.replay.replay_loss_coef = 1.0;
    rl.replay.max_replay_loss_steps = 300;
    let base = LossConfig {
        clip_ratio_c: 10.0,
        ..LossConfig::spear_math()
    };
    rl.loss = if spear {
        base
    } else {
        LossConfig {
            loss_mode: LossMode::Vanilla,
            ..base
        }
    };
}

/// Builds math preset `base` with `algo` on `c` (the defaults; the caller names the run).
pub(super) fn math_preset(c: &mut TrainConfig, base: MathBase, algo: MathAlgorithm) {
    match base {
        MathBase::Smollm2 => math_smollm2(c),
        MathBase::Tiny => math_tiny(c),
        MathBase::Paper => math_paper(c),
    }
    apply_math_algorithm(&mut c.rl, algo);
    match base {
        MathBase::Smollm2 | MathBase::Tiny => scale_math_to_short_run(c),
        MathBase::Paper => {}
    }
    c.rl.drbot.max_response_length = c.env.math.max_response_tokens;
}

/// Short runs: T_decay = T_warm = the number of iterations; the replay buffer holds half an
/// iteration's conversations and D_R 32 group entries (the ratio of the paper's Qwen2.5-32B
/// SPEAR script: buffer 32 and baseline 32 with 4 × 16 conversations per step).
///
/// Incomplete rule: the CPU presets use `no_answer_no_tool_call` (no boxed answer **and** no
/// tool call: the intent the comment in `reward.py` states, spec §8 item 18), not upstream's
/// rule. As `reward.py` runs, only a literally boxed `[INVALID]` is flagged, so its filter
/// practically never fires. The CPU rule masks the degenerate conversations (neither an answer
/// nor a tool call) and keeps those that called the tool even without a box: a 135M model
/// after a short warm start boxes almost none of its answers (measured: 16 of 16
/// conversations unboxed), and its tool calls are what SPEAR's tool-call reward encourages.
fn scale_math_to_short_run(c: &mut TrainConfig) {
    c.env.math.incomplete_rule = IncompleteRuleArg::NoAnswerNoToolCall;
    c.rl.reward.max_toolcall_steps = c.run.iterations;
    c.rl.replay.max_replay_loss_steps = c.run.iterations;
    c.rl.replay.buffer_size = (c.env.tasks_per_iter * c.env.group_size / 2).max(1);
    c.rl.replay.baseline_buffer_size = 32;
}

/// The paper's math run (spec §5.3, Qwen3-32B script): DAPO-Math-17k, 128 problems × 16
/// conversations per step, mini-batch 64 problems, lr 1e-6, 16384-token responses (tool
/// output included), 8 / 8 turns, T = 1.0, validation on AIME24/25 with k = 32, T = 1.0,
/// top-p 0.6 every 5 steps, one epoch (17917 problems / 128 = 139 full steps). The policy is
/// an HF directory of the ReTool-SFT cold-start checkpoint (`--set model.name=…`).
fn math_paper(c: &mut TrainConfig) {
    c.run.iterations = 139;
    c.run.eval_every = 5;
    c.run.save_every = 5;
    // `enable_gradient_checkpointing=True`, as `run_qwen3-32b_spear.sh`.
    c.model.activation_checkpointing = true;
    c.env.kind = EnvKind::Math;
    c.env.tasks_per_iter = 128;
    c.env.group_size = 16;
    let m = &mut c.env.math;
    m.source = MathSource::Dapo;
    m.dapo_path = "dapo-math-17k.jsonl".into();
    m.train_problems = 0;
    m.eval_problems = 0;
    m.eval_k = 32;
    m.max_assistant_turns = 8;
    m.max_user_turns = 8;
    m.max_response_tokens = 16384;
    m.max_tool_response_chars = 16384;
    m.sandbox.timeout_s = 30.0;
    m.sandbox.memory_mb = 1024;
    m.sandbox.concurrency = 64;
    c.model.name = ModelSource::Path("Qwen3-32B-ReTool-SFT".into());
    c.sampling.temperature = 1.0;
    c.sampling.top_p = 1.0;
    c.sampling.max_new_tokens = 16384;
    c.optim.lr = 1e-6;
    c.optim.token_budget = 18432;
    c.sft.enabled = false;
    c.eval.splits = vec![EvalSplit::Aime24, EvalSplit::Aime25];
    c.eval.temperature = 1.0;
    c.eval.top_p = 0.6;
    c.rl.update.mini_batch_size = 64 * 16;
    c.rl.update.micro_batch_size = 8;
}

/// SmolLM2-135M-Instruct on two CPU cores: 4 generated problems × 4 conversations per
/// iteration, 384-token responses, 4 assistant turns, a short warm start on the generator's
/// demonstrations (the paper's cold start is SFT on ReTool-SFT), held-out evaluation on 8
/// generated problems × k = 2 every 5 iterations at the paper's T = 1.0, top-p 0.6.
fn math_smollm2(c: &mut TrainConfig) {
    c.run.iterations = 20;
    c.run.eval_every = 5;
    c.run.eval_before = true;
    c.run.save_every = 1;
    c.run.log_episodes = 16;
    c.env.kind = EnvKind::Math;
    c.env.tasks_per_iter = 4;
    c.env.group_size = 4;
    let m = &mut c.env.math;
    m.source = MathSource::Generated;
    m.levels = vec![1];
    m.train_problems = 1024;
    m.eval_problems = 8;
    m.eval_k = 2;
    m.max_assistant_turns = 4;
    m.max_user_turns = 4;
    m.max_response_tokens = 384;
    m.max_tool_response_chars = 2048;
    m.sandbox.timeout_s = 10.0;
    m.sandbox.memory_mb = 1024;
    m.sandbox.concurrency = 4;
    c.model.name = ModelSource::Pretrained("smollm2-135m");
    c.sampling.temperature = 1.0;
    c.sampling.top_p = 1.0;
    c.sampling.max_new_tokens = 192;
    c.optim.lr = 1e-6;
    c.optim.token_budget = 8192;
    c.sft.enabled = true;
    c.sft.games = 48;
    c.sft.epochs = 1;
    c.sft.batch_size = 8;
    c.sft.lr = 2e-5;
    c.eval.splits = vec![EvalSplit::HeldOut];
    c.eval.temperature = 1.0;
    c.eval.top_p = 0.6;
    c.rl.update.mini_batch_size = 8;
    c.rl.update.micro_batch_size = 4;
}

/// A tiny character-level model for tests and quick runs: level-1 generated problems, a
/// short system prompt (one token per character), 320-token responses, SFT on the
/// demonstrations first.
fn math_tiny(c: &mut TrainConfig) {
    // The SmolLM2 preset's loop and evaluation, with a smaller problem set, shorter turns and
    // a tiny from-scratch model.
    math_smollm2(c);
    c.run.iterations = 10;
    c.run.save_every = TrainConfig::default().run.save_every;
    c.run.log_episodes = 8;
    let m = &mut c.env.math;
    m.train_problems = 256;
    m.max_assistant_turns = 3;
    m.max_user_turns = 3;
    m.max_response_tokens = 320;
    m.max_tool_response_chars = 512;
    m.system_prompt = "Use python.".into();
    m.sandbox.memory_mb = TrainConfig::default().env.math.sandbox.memory_mb;
    c.model.name = ModelSource::Tiny;
    c.model.hidden_size = 64;
    c.model.intermediate_size = 128;
    c.model.num_layers = 2;
    c.model.num_heads = 2;
    c.model.num_kv_heads = 1;
    c.model.max_position_embeddings = 2048;
    c.sampling.max_new_tokens = 224;
    c.optim.lr = 1e-4;
    c.optim.token_budget = 16384;
    c.sft.games = 64;
    c.sft.epochs = 2;
    c.sft.lr = 3e-3;
    c.rl.update.mini_batch_size = 16;
    c.rl.update.micro_batch_size = 8;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::presets::preset;

    #[test]
    fn spear_and_grpo_differ_only_where_spear_adds_something() {
        for base in ["math", "math-tiny", "math-paper"] {
            let s = preset(&format!("{base}-spear")).unwrap();
            let g = preset(&format!("{base}-grpo")).unwrap();
            s.validate().unwrap();
            g.validate().unwrap();
            assert_eq!(s.env, g.env);
            assert_eq!(s.model, g.model);
            assert_eq!(s.optim, g.optim);
            assert_eq!(s.env.kind, EnvKind::Math);
            assert!(s.rl.replay.enabled && !g.rl.replay.enabled);
            assert_eq!(s.rl.loss.loss_mode, LossMode::ClipCov);
            assert_eq!(g.rl.loss.loss_mode, LossMode::Vanilla);
            assert_eq!(s.rl.reward.toolcall_reward, ToolCallReward::Cosine);
            assert_eq!(g.rl.reward.toolcall_reward, ToolCallReward::None);
            for c in [&s, &g] {
                assert_eq!(c.rl.advantage.estimator, Estimator::DrGrpo);
                assert!(c.rl.drbot.filter_incomplete);
                assert_eq!(c.rl.loss.entropy_coeff, 0.0);
                assert_eq!(c.rl.loss.clip_ratio_c, 10.0);
                assert_eq!(
                    c.rl.drbot.max_response_length,
                    c.env.math.max_response_tokens
                );
            }
            assert_eq!(preset(base).unwrap().rl, s.rl);
            assert!(preset(&format!("{base}-gigpo")).is_none());
        }
    }

    #[test]
    fn paper_preset_has_the_paper_constants() {
        let c = preset("math-paper-spear").unwrap();
        assert_eq!((c.env.tasks_per_iter, c.env.group_size), (128, 16));
        assert_eq!(c.rl.update.mini_batch_size, 64 * 16);
        assert_eq!(c.optim.lr, 1e-6);
        assert_eq!(c.env.math.max_response_tokens, 16384);
        assert_eq!(
            (c.env.math.max_assistant_turns, c.env.math.max_user_turns),
            (8, 8)
        );
        assert_eq!(c.env.math.eval_k, 32);
        assert_eq!((c.eval.temperature, c.eval.top_p), (1.0, 0.6));
        assert_eq!(c.run.eval_every, 5);
        let r = &c.rl.replay;
        assert_eq!(
            (r.buffer_size, r.baseline_buffer_size, r.tolerate_steps),
            (2048, 10240, 5)
        );
        assert_eq!(r.max_replay_loss_steps, 300);
        assert_eq!(r.keep, RecalibratedKeep::Positive);
        assert!(r.require_tool_call);
        assert_eq!(c.rl.reward.max_toolcall_steps, 200);
        assert_eq!(c.rl.reward.toolcall_variant, ToolCallVariant::MathQwen3);
        assert_eq!(c.env.math.incomplete_rule, IncompleteRuleArg::Upstream);
        let l = &c.rl.loss;
        assert_eq!(
            (l.clip_cov_ratio, l.clip_cov_lb, l.clip_cov_ub),
            (0.0002, 1.0, 5.0)
        );
        assert_eq!(
            (
                l.clip_cov_ratio_replay,
                l.clip_cov_lb_replay,
                l.clip_cov_ub_replay
            ),
            (0.02, 1.0, 40.0)
        );
    }

    #[test]
    fn cpu_presets_scale_the_schedules_to_the_run() {
        let c = preset("math-spear").unwrap();
        assert_eq!(c.model.name, ModelSource::Pretrained("smollm2-135m"));
        assert_eq!(c.rl.reward.max_toolcall_steps, c.run.iterations);
        assert_eq!(c.rl.replay.max_replay_loss_steps, c.run.iterations);
        // 4 problems × G 4 = 16 conversations per iteration; buffer = half = 8.
        assert_eq!(c.rl.replay.buffer_size, 8);
        assert_eq!(
            c.env.math.incomplete_rule,
            IncompleteRuleArg::NoAnswerNoToolCall
        );
    }
}
