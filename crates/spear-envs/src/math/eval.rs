//! Evaluation over a problem set (spec §5.4): k sampled conversations per
//! problem through the tool loop, scored with the strict verifier; reports
//! avg@k and unbiased pass@k. This is the closure-driven, one-conversation-at-a-
//! time version (scripted policies, remote samplers); `spear eval --preset
//! aime24|aime25` uses the batched token-level rollout of the `spear` crate
//! (`spear::rollout::math::evaluate_math`) with the same metrics (the paper:
//! k = 32, T = 1.0, top-p 0.6).

use std::collections::BTreeMap;

use super::conversation::{run_conversation, ChatTemplate, LoopConfig, MathConversation};
use super::data::metrics::{avg_at_k, pass_at_ladder};
use super::data::MathProblem;
use super::sandbox::SandboxPool;
use super::verify::compute_score;

/// Per-problem outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct ProblemResult {
    /// The problem id.
    pub id: String,
    /// Whether each of the k samples was correct.
    pub correct: Vec<bool>,
    /// Tool-call messages of each sample.
    pub tool_calls: Vec<usize>,
}

/// Aggregate metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    /// Samples per problem.
    pub k: usize,
    /// Mean accuracy over all samples (avg@k).
    pub avg_at_k: f64,
    /// Unbiased pass@j for j = 1, 2, 4, …, k (and k itself).
    pub pass_at: BTreeMap<usize, f64>,
    /// Mean tool calls per conversation.
    pub mean_tool_calls: f64,
    /// Per-problem details.
    pub problems: Vec<ProblemResult>,
}

/// Run `k` conversations per problem. `policy(problem, sample_index, context)`
/// returns the next assistant turn for the conversation whose text so far is
/// `context`.
pub fn evaluate(
    problems: &[MathProblem],
    k: usize,
    policy: &mut dyn FnMut(&MathProblem, usize, &str) -> String,
    pool: &SandboxPool,
    loop_cfg: &LoopConfig,
    template: &ChatTemplate,
) -> EvalReport {
    let k = k.max(1);
    let mut results = Vec::with_capacity(problems.len());
    for p in problems {
        let mut correct = Vec::with_capacity(k);
        let mut calls = Vec::with_capacity(k);
        for i in 0..k {
            let mut conv =
                MathConversation::new(&p.problem, &p.answer, loop_cfg.clone(), template.clone());
            let mut turn = |ctx: &str| policy(p, i, ctx);
            run_conversation(&mut conv, &mut turn, pool);
            correct.push(compute_score(&conv.response_text(), &p.answer, true).acc);
            calls.push(conv.n_tool_calls());
        }
        results.push(ProblemResult {
            id: p.id.clone(),
            correct,
            tool_calls: calls,
        });
    }
    let table: Vec<Vec<bool>> = results.iter().map(|r| r.correct.clone()).collect();
    let pass_at = pass_at_ladder(&table, k);
    let total: usize = results
        .iter()
        .map(|r| r.tool_calls.iter().sum::<usize>())
        .sum();
    EvalReport {
        k,
        avg_at_k: avg_at_k(&table),
        pass_at,
        mean_tool_calls: if results.is_empty() {
            0.0
        } else {
            total as f64 / (results.len() * k) as f64
        },
        problems: results,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::sandbox::{Executor, Limits, RunResult, RunStatus};
    use std::sync::Arc;

    /// Answers every program with "7".
    struct Seven;
    impl Executor for Seven {
        fn name(&self) -> String {
            "seven".into()
        }
        fn run(&self, _: &str, _: &Limits) -> RunResult {
            RunResult {
                status: RunStatus::Finished,
                return_code: Some(0),
                stdout: "7\n".into(),
                stderr: String::new(),
                execution_time: 0.0,
            }
        }
    }

    #[test]
    fn metrics_from_scripted_samples() {
        let problems: Vec<MathProblem> = (0..2)
            .map(|i| MathProblem {
                id: format!("p{i}"),
                problem: format!("problem {i}"),
                answer: "7".into(),
                data_source: "test".into(),
            })
            .collect();
        let pool = SandboxPool::new(Arc::new(Seven), 1, Limits::default());
        // p0: sample 0 calls the tool then answers 7 (correct), samples 1–3 answer 3.
        // p1: every sample answers 7 directly.
        let mut policy = |p: &MathProblem, i: usize, ctx: &str| -> String {
            if p.id == "p0" && i == 0 && !ctx.contains("<tool_response>") {
                "```python\nprint(7)\n```".to_string()
            } else if p.id == "p0" && i > 0 {
                "\\boxed{3}".to_string()
            } else {
                "\\boxed{7}".to_string()
            }
        };
        let r = evaluate(
            &problems,
            4,
            &mut policy,
            &pool,
            &LoopConfig::default(),
            &ChatTemplate::qwen25(),
        );
        assert_eq!(r.problems[0].correct, vec![true, false, false, false]);
        assert_eq!(r.problems[0].tool_calls, vec![1, 0, 0, 0]);
        // avg@4 = (1/4 + 4/4) / 2 = 0.625
        assert!((r.avg_at_k - 0.625).abs() < 1e-12);
        // pass@1 = (0.25 + 1) / 2 = 0.625; pass@2 = (1 − C(3,2)/C(4,2) + 1) / 2 = (0.5 + 1) / 2 = 0.75
        assert!((r.pass_at[&1] - 0.625).abs() < 1e-12);
        assert!((r.pass_at[&2] - 0.75).abs() < 1e-12);
        assert!((r.pass_at[&4] - 1.0).abs() < 1e-12);
        assert!((r.mean_tool_calls - 1.0 / 8.0).abs() < 1e-12);
    }
}
