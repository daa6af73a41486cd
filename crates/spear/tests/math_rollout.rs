//! Math rollout end to end (issue #7): a tiny from-scratch policy with a character-level
//! tokenizer, warm-started on a tool-call demonstration, runs the code-interpreter loop through
//! the real sandbox (bubblewrap when installed, as in CI). The samples must be exactly what
//! teacher-forced scoring sees: the sampler's log-probs and `Policy::score` agree to 1e-4 on
//! every sampled token, tool spans are masked out and hold the template's tool message.
//! A scripted sampler checks the exact token layout, rewards, records and the budget rule.

use std::sync::{Arc, OnceLock};

use candle_core::{DType, Device};
use serde_json::{json, Value};
use spear::rollout::math::{
    demonstration_tokens, evaluate_math, render_prompt, rollout_math, MathEvalSettings,
    MathRolloutConfig, MathRolloutOutput, ToolMessageTemplate, FENCE_SYSTEM_PROMPT,
};
use spear::rollout::ChatSampler;
use spear_envs::math::conversation::StopReason;
use spear_envs::math::data::generator::{demonstration, generate_set};
use spear_envs::math::data::MathProblem;
use spear_envs::math::sandbox::{Limits, LocalExecutor, PythonEnv, SandboxPool};
use spear_model::decoder::Mode;
use spear_model::{
    AdamW, AdamWConfig, Arch, ChatMessage, Decoder, FinishReason, GenRequest, Generation, Grads,
    ModelConfig, Policy, SamplingParams, ScoreItem, TextTokenizer,
};

fn sandbox() -> &'static SandboxPool {
    static POOL: OnceLock<SandboxPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let env = PythonEnv::ensure_default().unwrap_or_else(|e| {
            panic!("the sandbox Python environment could not be prepared: {e}")
        });
        SandboxPool::new(
            Arc::new(
                LocalExecutor::new(env, spear_envs::math::sandbox::Isolation::Bwrap)
                    .unwrap_or_else(|e| panic!("bubblewrap sandbox unavailable: {e}")),
            ),
            4,
            Limits::default(),
        )
    })
}

/// The math runs' character-level tokenizer (one token per printable ASCII character, newline
/// and tab, plus the ChatML specials).
fn char_tokenizer() -> TextTokenizer {
    spear::tasks::math::char_tokenizer().unwrap()
}

fn tiny_policy(seed: u64) -> Policy {
    let tok = char_tokenizer();
    let mut cfg = ModelConfig::tiny(Arch::Qwen2, tok.vocab_size());
    cfg.max_position_embeddings = 1024;
    cfg.eos_token_ids = tok.stop_token_ids.clone();
    let model = Decoder::random(cfg, seed, 0.02, DType::F32, &Device::Cpu).unwrap();
    Policy::new(model, tok).unwrap()
}

fn problem(id: &str, text: &str, answer: &str) -> MathProblem {
    MathProblem {
        id: id.into(),
        problem: text.into(),
        answer: answer.into(),
        data_source: "test".into(),
    }
}

fn problems() -> Vec<MathProblem> {
    vec![
        problem("p0", "What is 3+4?", "7"),
        problem("p1", "What is 6*7?", "42"),
    ]
}

/// Trains `policy` on "call the tool, then box its output" for each problem until the mean
/// token log-prob of the demonstrations exceeds -0.05 (fails after 600 steps).
fn warm_start(policy: &Policy, problems: &[MathProblem], cfg: &MathRolloutConfig) {
    let tok = &policy.tokenizer;
    let tmpl = ToolMessageTemplate::from_template(policy).unwrap();
    let mut pairs: Vec<(Vec<u32>, Vec<u32>)> = vec![];
    for p in problems {
        let expr = p
            .problem
            .trim_start_matches("What is ")
            .trim_end_matches('?');
        let prompt = tok
            .encode(&render_prompt(policy, &p.problem, cfg).unwrap())
            .unwrap();
        let call = tok
            .encode(&format!("```python\nprint({expr})\n```<|im_end|>"))
            .unwrap();
        let tool = tok.encode(&tmpl.render(&p.answer)).unwrap();
        let answer = tok
            .encode(&format!("\\boxed{{{}}}<|im_end|>", p.answer))
            .unwrap();
        let ctx2 = [prompt.clone(), call.clone(), tool].concat();
        pairs.push((prompt, call));
        pairs.push((ctx2, answer));
    }
    let items: Vec<ScoreItem> = pairs
        .iter()
        .map(|(p, r)| ScoreItem {
            prompt: p,
            response: r,
        })
        .collect();
    let total: usize = pairs.iter().map(|(_, r)| r.len()).sum();
    let mut opt = AdamW::new(AdamWConfig::default());
    for _ in 0..600 {
        let s = policy.score(&items, Mode::Train, false).unwrap();
        let mean: f32 = (s.logprobs.sum_all().unwrap() / total as f64)
            .unwrap()
            .to_scalar()
            .unwrap();
        if mean > -0.05 {
            return;
        }
        let loss = (s.logprobs.sum_all().unwrap().neg().unwrap() / total as f64).unwrap();
        let mut g = Grads::new();
        g.accumulate(&loss.backward().unwrap(), policy.model.params())
            .unwrap();
        g.clip_global_norm(1.0).unwrap();
        opt.step(policy.model.params(), &g, 1e-2).unwrap();
    }
    panic!("the tiny policy did not learn the demonstrations in 600 steps");
}

fn sampling() -> SamplingParams {
    SamplingParams {
        temperature: 1.0,
        top_p: 1.0,
        max_new_tokens: 48,
        ..Default::default()
    }
}

/// Room for a whole scripted hermes turn.
fn long_turns() -> SamplingParams {
    SamplingParams {
        max_new_tokens: 256,
        ..sampling()
    }
}

/// A short system prompt keeps the tiny model's sequences (one token per character) short.
fn rollout_cfg() -> MathRolloutConfig {
    MathRolloutConfig {
        max_response_tokens: 240,
        system_prompt: Some("Use python.".into()),
        ..Default::default()
    }
}

/// Maximal runs of equal mask values: (start, end, value).
fn mask_runs(mask: &[u8]) -> Vec<(usize, usize, u8)> {
    let mut runs = vec![];
    let mut start = 0;
    for i in 1..=mask.len() {
        if i == mask.len() || mask[i] != mask[start] {
            runs.push((start, i, mask[start]));
            start = i;
        }
    }
    runs
}

/// Every structural invariant of a math rollout output.
fn check_structure(
    policy: &dyn ChatSampler,
    problems: &[MathProblem],
    g: usize,
    cfg: &MathRolloutConfig,
    out: &MathRolloutOutput,
) {
    let tok = policy.tokenizer();
    let tmpl = ToolMessageTemplate::from_template(policy).unwrap();
    let r = &out.rollout;
    assert_eq!(r.samples.len(), problems.len() * g);
    assert_eq!(r.episodes.len(), r.samples.len());
    assert_eq!(out.conversations.len(), r.samples.len());
    let mut sampled = 0u64;
    for (i, s) in r.samples.iter().enumerate() {
        let (p, m) = (i / g, i % g);
        let info = &out.conversations[i];
        let ep = &r.episodes[i];
        assert_eq!((info.problem, info.member), (p, m));
        assert_eq!((s.uid.0, s.traj_uid.0), (p as u64, i as u64));
        assert_eq!((ep.group, ep.traj, ep.task), (p as u64, i as u64, p as u64));
        assert_eq!(s.step_index, 0);
        assert!(s.is_action_valid);
        assert_eq!(s.anchor_obs, problems[p].problem);
        assert_eq!(ep.goal, problems[p].problem);
        assert_eq!(ep.task_type, "math");
        let prompt = tok
            .encode(&render_prompt(policy, &problems[p].problem, cfg).unwrap())
            .unwrap();
        assert_eq!(s.prompt_tokens, prompt);
        let n = s.response_tokens.len();
        assert!(n > 0 && n <= cfg.max_response_tokens);
        assert_eq!(s.response_mask.len(), n);
        assert_eq!(s.old_log_probs.len(), n);
        // Runs alternate assistant (1) / tool (0), starting and ending with the model.
        let runs = mask_runs(&s.response_mask);
        assert_eq!(runs.first().unwrap().2, 1);
        assert_eq!(runs.last().unwrap().2, 1);
        let tool_runs: Vec<_> = runs.iter().filter(|r| r.2 == 0).collect();
        assert_eq!(runs.len(), 2 * tool_runs.len() + 1);
        // Every turn but the last was followed by its tool message (a call in the last turn is
        // counted but its reply was not appended: budget, 8th turn, or a call that cannot run).
        assert_eq!(tool_runs.len() + 1, ep.turns.len(), "sample {i}");
        assert!(tool_runs.len() as u32 <= s.tool_calls, "sample {i}");
        assert!(s.tool_calls as usize <= ep.turns.len());
        // Each tool span is exactly the template's tool message for that turn's reply.
        let replies: Vec<&str> = ep.turns[..ep.turns.len() - 1]
            .iter()
            .map(|t| t.observation.as_str())
            .collect();
        for ((a, b, _), reply) in tool_runs.iter().zip(&replies) {
            assert_eq!(
                s.response_tokens[*a..*b],
                tok.encode(&tmpl.render(reply)).unwrap()[..],
                "sample {i}: tool span"
            );
        }
        for (j, (&mk, &lp)) in s.response_mask.iter().zip(&s.old_log_probs).enumerate() {
            if mk == 1 {
                assert!(lp.is_finite() && lp <= 0.0, "sample {i} token {j}: {lp}");
                sampled += 1;
            } else {
                assert_eq!(lp, 0.0);
            }
        }
        assert_eq!(s.episode_length as usize, ep.turns.len());
        assert_eq!(s.episode_length as usize, runs.len().div_ceil(2));
        assert!(s.episode_reward == 1.0 || s.episode_reward == -1.0);
        assert_eq!(s.episode_reward == 1.0, info.acc);
        assert_eq!(ep.won, info.acc);
        assert_eq!(ep.turns.last().unwrap().reward, s.episode_reward);
        assert_eq!(s.collected_at, 3);
        assert_eq!(
            info.response_text,
            tok.decode(&s.response_tokens, false).unwrap()
        );
    }
    assert_eq!(r.generated_tokens, sampled);
}

#[test]
fn tiny_policy_rollout_through_the_sandbox_matches_teacher_forcing() {
    let policy = tiny_policy(11);
    let probs = problems();
    let cfg = rollout_cfg();
    warm_start(&policy, &probs, &cfg);
    let out = rollout_math(&policy, &probs, 2, &sampling(), 5, 3, sandbox(), &cfg).unwrap();
    check_structure(&policy, &probs, 2, &cfg, &out);
    let calls: u32 = out.rollout.samples.iter().map(|s| s.tool_calls).sum();
    assert!(calls > 0, "the warm-started policy never called the tool");
    assert!(out.rollout.generate_secs > 0.0 && out.rollout.env_secs > 0.0);

    // The sampler's log-probs are the teacher-forced ones on exactly these tokens.
    let items: Vec<ScoreItem> = out
        .rollout
        .samples
        .iter()
        .map(|s| ScoreItem {
            prompt: &s.prompt_tokens,
            response: &s.response_tokens,
        })
        .collect();
    let scored = policy.score(&items, Mode::Infer, false).unwrap();
    let mut compared = 0;
    for (i, s) in out.rollout.samples.iter().enumerate() {
        let lp: Vec<f32> = scored.item_logprobs(i).unwrap().to_vec1().unwrap();
        for (j, &m) in s.response_mask.iter().enumerate() {
            if m == 1 {
                let d = (lp[j] - s.old_log_probs[j]).abs();
                assert!(
                    d <= 1e-4,
                    "sample {i} token {j}: sampled {} vs scored {}",
                    s.old_log_probs[j],
                    lp[j]
                );
                compared += 1;
            }
        }
    }
    // Sampled tokens after a tool message exist, so the multi-turn context was checked.
    assert!(compared as u64 == out.rollout.generated_tokens);
    assert!(out
        .rollout
        .samples
        .iter()
        .any(|s| s.tool_calls > 0 && *s.response_mask.last().unwrap() == 1));

    // A problem's conversations do not depend on which other problems share the batch.
    let alone = rollout_math(&policy, &probs[1..], 2, &sampling(), 5, 3, sandbox(), &{
        MathRolloutConfig {
            problem_index_offset: 1,
            ..cfg.clone()
        }
    })
    .unwrap();
    for m in 0..2 {
        assert_eq!(
            alone.rollout.samples[m].response_tokens,
            out.rollout.samples[2 + m].response_tokens
        );
        assert_eq!(alone.rollout.samples[m].uid.0, 1);
    }
    // Nor on how many conversations share a generate call.
    let chunked = rollout_math(&policy, &probs, 2, &sampling(), 5, 3, sandbox(), &{
        MathRolloutConfig {
            max_batch_conversations: 3,
            ..cfg.clone()
        }
    })
    .unwrap();
    for (a, b) in chunked.rollout.samples.iter().zip(&out.rollout.samples) {
        assert_eq!(a.response_tokens, b.response_tokens);
        assert_eq!(a.response_mask, b.response_mask);
    }
}

/// Replays fixed assistant turns (as text) on a real policy's tokenizer and template.
struct Scripted {
    policy: Policy,
    /// Turn text for (context contains a tool reply?) per problem keyword.
    script: fn(&str) -> String,
}

impl ChatSampler for Scripted {
    fn tokenizer(&self) -> &TextTokenizer {
        &self.policy.tokenizer
    }
    fn max_context(&self) -> usize {
        self.policy.model.config().max_position_embeddings
    }
    fn eos_token_ids(&self) -> &[u32] {
        &self.policy.model.config().eos_token_ids
    }
    fn render_chat(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[Value]>,
        add_generation_prompt: bool,
    ) -> spear_model::Result<String> {
        self.policy
            .render_chat(messages, tools, add_generation_prompt)
    }
    fn generate(
        &self,
        requests: &[GenRequest],
        params: &SamplingParams,
    ) -> spear_model::Result<Vec<Generation>> {
        let tok = &self.policy.tokenizer;
        requests
            .iter()
            .map(|r| {
                let ctx = tok.decode(&r.prompt_ids, false)?;
                let mut ids = tok.encode(&(self.script)(&ctx))?;
                ids.truncate(params.max_new_tokens);
                Ok(Generation {
                    logprobs: vec![-0.5; ids.len()],
                    text: tok.decode(&ids, true)?,
                    entropies: None,
                    finish: FinishReason::StopToken(3),
                    policy_version: None,
                    token_ids: ids,
                })
            })
            .collect()
    }
}

/// Hermes call on the first turn, then the last tool reply boxed.
fn hermes_script(ctx: &str) -> String {
    let code = if ctx.contains("6*7") {
        "print(6*7)"
    } else {
        "print(undefined_name)"
    };
    match ctx.rfind("<|im_start|>tool\n") {
        None => format!(
            "Let me compute.\n<tool_call>\n{}\n</tool_call><|im_end|>",
            json!({"name": "code_interpreter", "arguments": {"code": code}})
        ),
        Some(i) => {
            let reply = &ctx[i + "<|im_start|>tool\n".len()..];
            let reply = reply.split("<|im_end|>").next().unwrap_or("");
            format!("So the answer is \\boxed{{{reply}}}<|im_end|>")
        }
    }
}

#[test]
fn scripted_hermes_calls_layout_rewards_and_records() {
    let s = Scripted {
        policy: tiny_policy(1),
        script: hermes_script,
    };
    let probs = vec![
        problem("a", "What is 6*7?", "42"),
        problem("b", "What is x?", "3"),
    ];
    let cfg = MathRolloutConfig {
        max_response_tokens: 400,
        ..Default::default()
    };
    let out = rollout_math(&s, &probs, 2, &long_turns(), 0, 3, sandbox(), &cfg).unwrap();
    check_structure(&s, &probs, 2, &cfg, &out);
    let tok = s.tokenizer();
    // ChatML does not render the tool schema: the fenced-Python system prompt stands in.
    let prompt = tok
        .decode(&out.rollout.samples[0].prompt_tokens, false)
        .unwrap();
    assert!(prompt.starts_with(&format!(
        "<|im_start|>system\n{FENCE_SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\nWhat is 6*7?\n"
    )));
    assert!(prompt.ends_with("<|im_end|>\n<|im_start|>assistant\n"));
    for i in 0..4 {
        let smp = &out.rollout.samples[i];
        let ep = &out.rollout.episodes[i];
        let info = &out.conversations[i];
        assert_eq!(smp.tool_calls, 1);
        assert_eq!(smp.episode_length, 2);
        assert_eq!(info.stop, StopReason::Answered);
        let turn0 = tok.encode(&hermes_script(&probs[i / 2].problem)).unwrap();
        let reply = &ep.turns[0].observation;
        let tool = tok
            .encode(&format!(
                "<|im_start|>tool\n{reply}<|im_end|>\n<|im_start|>assistant\n"
            ))
            .unwrap();
        let turn1 = tok
            .encode(&format!("So the answer is \\boxed{{{reply}}}<|im_end|>"))
            .unwrap();
        assert_eq!(
            smp.response_tokens,
            [turn0.clone(), tool.clone(), turn1.clone()].concat()
        );
        let mask: Vec<u8> = [
            vec![1u8; turn0.len()],
            vec![0; tool.len()],
            vec![1; turn1.len()],
        ]
        .concat();
        assert_eq!(smp.response_mask, mask);
        assert!(smp
            .old_log_probs
            .iter()
            .zip(&mask)
            .all(|(&lp, &m)| lp == if m == 1 { -0.5 } else { 0.0 }));
        assert_eq!(ep.turns[1].action, "answer");
        assert_eq!(ep.turns[1].observation, "");
        assert_eq!(
            ep.turns[0].prompt,
            format!(
                "{}\nThe answer format must be: \\boxed{{'The final answer goes here.'}}",
                probs[i / 2].problem
            )
        );
        assert_eq!(ep.turns[0].reward, 0.0);
    }
    // Problem a: the sandbox prints 42, the boxed reply is right.
    assert_eq!(out.rollout.episodes[0].turns[0].action, "print(6*7)");
    assert_eq!(out.rollout.episodes[0].turns[0].observation, "42");
    assert_eq!(out.rollout.samples[0].episode_reward, 1.0);
    assert!(out.conversations[0].acc && !out.conversations[0].is_incomplete);
    assert_eq!(out.conversations[0].pred.as_deref(), Some("42"));
    // Problem b: a NameError comes back as the recipe's error reply; the answer is wrong.
    // (the last two stderr lines: Python ≥ 3.11 puts a caret line before the error)
    let obs = &out.rollout.episodes[2].turns[0].observation;
    assert!(
        obs.ends_with(
            "NameError: name 'undefined_name' is not defined\nErrors occurred! Check your code."
        ),
        "{obs}"
    );
    assert!(obs.lines().count() <= 3, "{obs}");
    assert_eq!(out.rollout.samples[2].episode_reward, -1.0);
    assert!(!out.conversations[2].acc);
}

#[test]
fn a_tool_message_past_the_budget_ends_the_conversation() {
    let s = Scripted {
        policy: tiny_policy(1),
        script: hermes_script,
    };
    let probs = vec![problem("a", "What is 6*7?", "42")];
    let tok = s.tokenizer();
    let turn0 = tok.encode(&hermes_script(&probs[0].problem)).unwrap().len();
    // The first turn fits; its tool message (21 tokens) does not.
    let cfg = MathRolloutConfig {
        max_response_tokens: turn0 + 20,
        ..Default::default()
    };
    let out = rollout_math(&s, &probs, 1, &long_turns(), 0, 3, sandbox(), &cfg).unwrap();
    let smp = &out.rollout.samples[0];
    assert_eq!(smp.response_tokens.len(), turn0);
    assert!(smp.response_mask.iter().all(|&m| m == 1));
    assert_eq!(out.conversations[0].stop, StopReason::ResponseBudget);
    // The call was made (counted, as verl counts the message) but no reply was appended.
    assert_eq!(smp.tool_calls, 1);
    assert_eq!(smp.episode_reward, -1.0);
    // No box: upstream's rule (the default) does not flag it; only a boxed [INVALID] is.
    assert!(!out.conversations[0].is_incomplete);
    assert_eq!(out.conversations[0].pred, None);

    // A budget smaller than the first turn truncates it and stops.
    let cfg = MathRolloutConfig {
        max_response_tokens: 10,
        ..Default::default()
    };
    let out = rollout_math(&s, &probs, 1, &long_turns(), 0, 3, sandbox(), &cfg).unwrap();
    assert_eq!(out.rollout.samples[0].response_tokens.len(), 10);
    assert_eq!(out.conversations[0].stop, StopReason::ResponseBudget);
    assert_eq!(out.rollout.samples[0].tool_calls, 0);
}

#[test]
fn evaluation_counts_correct_samples_per_problem() {
    let s = Scripted {
        policy: tiny_policy(1),
        script: hermes_script,
    };
    let probs = vec![
        problem("a", "What is 6*7?", "42"),
        problem("b", "What is x?", "3"),
        problem("c", "What is 6*7 again?", "41"),
    ];
    let settings = MathEvalSettings {
        k: 2,
        sampling: long_turns(),
        rollout: MathRolloutConfig {
            max_response_tokens: 400,
            ..Default::default()
        },
        seed: 0,
        // one problem per batch: three rollouts, progress after each
        batch_conversations: 3,
    };
    let mut seen = vec![];
    let r = evaluate_math(&s, &probs, &settings, sandbox(), &mut |d| seen.push(d)).unwrap();
    assert_eq!(seen, vec![2, 4, 6]);
    let ids: Vec<&str> = r.problems.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert_eq!(r.problems[0].correct, vec![true, true]);
    assert_eq!(r.problems[1].correct, vec![false, false]);
    // c computes 42 but the ground truth is 41
    assert_eq!(r.problems[2].correct, vec![false, false]);
    assert_eq!(
        r.problems[2].preds,
        vec![Some("42".to_string()), Some("42".to_string())]
    );
    // avg@2 = (1 + 0 + 0) / 3; pass@1 = 1/3; pass@2 = 1/3; one call per conversation
    assert!((r.avg_at_k - 1.0 / 3.0).abs() < 1e-12);
    assert!((r.pass_at[&1] - 1.0 / 3.0).abs() < 1e-12);
    assert!((r.pass_at[&2] - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!(r.mean_tool_calls, 1.0);
}

/// Replays fixed assistant turns: turn k after k tool messages.
struct Replay {
    policy: Policy,
    turns: Vec<String>,
}

impl ChatSampler for Replay {
    fn tokenizer(&self) -> &TextTokenizer {
        &self.policy.tokenizer
    }
    fn max_context(&self) -> usize {
        self.policy.model.config().max_position_embeddings
    }
    fn eos_token_ids(&self) -> &[u32] {
        &self.policy.model.config().eos_token_ids
    }
    fn render_chat(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[Value]>,
        add_generation_prompt: bool,
    ) -> spear_model::Result<String> {
        self.policy
            .render_chat(messages, tools, add_generation_prompt)
    }
    fn generate(
        &self,
        requests: &[GenRequest],
        _: &SamplingParams,
    ) -> spear_model::Result<Vec<Generation>> {
        let tok = &self.policy.tokenizer;
        requests
            .iter()
            .map(|r| {
                let ctx = tok.decode(&r.prompt_ids, false)?;
                // tool messages so far (ChatML or Qwen-like rendering)
                let k = ctx.matches("<|im_start|>tool\n").count()
                    + ctx.matches("<tool_response>\n").count();
                let ids = tok.encode(&self.turns[k])?;
                Ok(Generation {
                    logprobs: vec![-1.0; ids.len()],
                    text: tok.decode(&ids, true)?,
                    entropies: None,
                    finish: FinishReason::StopToken(3),
                    policy_version: None,
                    token_ids: ids,
                })
            })
            .collect()
    }
}

/// A Qwen2.5-style template: the tool schema in the system prompt, tool replies inside
/// `<tool_response>` in a user turn (the branches of Qwen's template this loop uses).
const QWEN_LIKE: &str = r#"{%- if tools %}{{- '<|im_start|>system\nYou may call functions.\n<tools>' }}{%- for t in tools %}{{- '\n' }}{{- t | tojson }}{%- endfor %}{{- '\n</tools>\nReturn each call within <tool_call></tool_call> tags.<|im_end|>\n' }}{%- endif %}{%- for m in messages %}{%- if m.role == 'tool' %}{{- '<|im_start|>user\n<tool_response>\n' + m.content + '\n</tool_response><|im_end|>\n' }}{%- else %}{{- '<|im_start|>' + m.role + '\n' + m.content + '<|im_end|>\n' }}{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"#;

fn qwen_like_policy(seed: u64) -> Policy {
    let p = tiny_policy(seed);
    let mut tok = p.tokenizer.clone();
    tok.chat_template = Some(QWEN_LIKE.to_string());
    Policy::new(p.model, tok).unwrap()
}

/// A generator demonstration rendered by `demonstration_tokens` is exactly what the rollout
/// produces when the model emits the demonstration's turns: same tokens, same mask, and the
/// sandbox's real output of the check program is the demonstration's tool reply. Both call
/// formats: fenced Python (ChatML, no tool schema) and hermes (a Qwen-like template).
#[test]
fn demonstration_tokens_match_the_rollout_layout() {
    let g = generate_set(12, 4, &[1])
        .into_iter()
        .find(|g| g.problem.problem.is_ascii() && g.check_code.is_ascii())
        .expect("an ASCII generated problem");
    let demo = demonstration(&g);
    let cfg = MathRolloutConfig {
        max_response_tokens: 4000,
        ..Default::default()
    };
    for (policy, hermes) in [(tiny_policy(2), false), (qwen_like_policy(2), true)] {
        let tmpl = ToolMessageTemplate::from_template(&policy).unwrap();
        if hermes {
            assert_eq!(tmpl.prefix, "<|im_start|>user\n<tool_response>\n");
            assert_eq!(
                tmpl.suffix,
                "\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
            );
        } else {
            assert_eq!(tmpl.prefix, "<|im_start|>tool\n");
            assert_eq!(tmpl.suffix, "<|im_end|>\n<|im_start|>assistant\n");
        }
        let (prompt, response, mask) = demonstration_tokens(&policy, &demo, &cfg).unwrap();
        // Assistant turns as the model would emit them: split the response at the mask runs.
        let tok = &policy.tokenizer;
        let turns: Vec<String> = mask_runs(&mask)
            .into_iter()
            .filter(|r| r.2 == 1)
            .map(|(a, b, _)| tok.decode(&response[a..b], false).unwrap())
            .collect();
        assert_eq!(turns.len(), 2);
        if hermes {
            assert!(turns[0].contains(
                "\n<tool_call>\n{\"name\": \"code_interpreter\", \"arguments\": {\"code\": "
            ));
            assert!(turns[0].ends_with("}}\n</tool_call><|im_end|>"));
        } else {
            assert!(turns[0].contains("```python\n") && turns[0].ends_with("```<|im_end|>"));
        }
        let replay = Replay { policy, turns };
        let out = rollout_math(
            &replay,
            std::slice::from_ref(&g.problem),
            1,
            &long_turns(),
            0,
            1,
            sandbox(),
            &cfg,
        )
        .unwrap();
        let s = &out.rollout.samples[0];
        assert_eq!(s.prompt_tokens, prompt);
        let prompt_text = replay.tokenizer().decode(&prompt, false).unwrap();
        assert_eq!(prompt_text.contains(FENCE_SYSTEM_PROMPT), !hermes);
        assert_eq!(
            out.rollout.episodes[0].turns[0].observation, g.problem.answer,
            "the sandbox's output of the check program"
        );
        assert_eq!(s.response_tokens, response);
        assert_eq!(s.response_mask, mask);
        assert_eq!(s.episode_reward, 1.0);
        assert_eq!(s.tool_calls, 1);
    }
}
