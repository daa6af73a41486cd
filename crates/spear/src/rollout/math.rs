//! Math rollout on a real policy (spec §2.1 "verl math recipe", §2.2, §7 "Math agent loop";
//! verl `tool_agent_loop.py`).
//!
//! G conversations per problem run through the `code_interpreter` tool loop of
//! [`spear_envs::math::MathConversation`] (hermes `<tool_call>` or fenced ```` ```python ````,
//! at most 8 assistant turns). Each turn, **one** `generate` call continues every conversation
//! still running; the tool calls of that turn then run concurrently on the [`SandboxPool`].
//!
//! One [`StepSample`] per conversation, assembled at the token level exactly as verl does:
//!
//! * `prompt_tokens`: the chat template applied to the user message (problem + answer format)
//!   with the tool schema and the generation prompt;
//! * `response_tokens`: the sampled ids of every assistant turn (appended as sampled, never
//!   re-tokenized; mask 1, `old_log_probs` = the sampler's log-probs) interleaved with the
//!   tokenized tool message (mask 0, log-prob 0). The tool message is the chat template's
//!   rendering of a `tool` message with the generation prompt, without the system prefix
//!   (verl: `apply_chat_template([tool], add_generation_prompt=True)[len(system_prompt):]`),
//!   appended directly after the sampled `<|im_end|>` (no newline: verl's quirk, kept).
//!
//! So `prompt_tokens ++ response_tokens` is exactly the sequence the sampler conditioned on,
//! and teacher-forced scoring of it reproduces `old_log_probs` on the masked-in tokens.
//!
//! Budget (verl `response_length`): a turn may generate at most the remaining budget (its
//! tokens past the budget are dropped, as verl truncates the response); when the response
//! reaches the budget the conversation stops; a tool message that would reach it is not
//! appended and the conversation stops (verl's order; the last turn is always the model's).
//!
//! Reward: the strict `math_dapo` verifier on the decoded response (special tokens skipped,
//! verl's `solution_str`): `episode_reward` = ±1 (spec §2.2); the tool-call bonus μ(t)·r_tc is
//! added by the trainer's reward shaping from `tool_calls`. `is_incomplete` (Dr.BoT's incomplete
//! filter for math) follows [`SpearRewardConfig::incomplete`] and is reported per conversation
//! in [`ConversationInfo`].
//!
//! Seeds: the generation seed of a turn is [`turn_seed`]`(seed, iteration, problem, member,
//! turn)`, so a conversation does not depend on which others share its batch.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{bail, Context};
use serde_json::Value;
use spear_envs::math::conversation::{ChatTemplate as EnvTemplate, LoopConfig, Next, StopReason};
use spear_envs::math::data::metrics::{avg_at_k, pass_at_ladder};
use spear_envs::math::data::MathProblem;
use spear_envs::math::sandbox::SandboxPool;
use spear_envs::math::tool::{
    code_argument, extract_code, parse_turn, ANSWER_FORMAT, TOOL_NAME, TOOL_SCHEMA_JSON,
};
use spear_envs::math::{spear_score, MathConversation, SpearRewardConfig};
use spear_model::{ChatMessage, GenRequest, Generation, SamplingParams};
use spear_rl::config::DrBotConfig;
use spear_rl::drbot::{response_flags, ResponseFlags};
use spear_rl::sample::{GroupId, StepSample, TrajId};

use super::sampler::ChatSampler;
use super::RolloutOutput;
use crate::run_dir::{EpisodeRecord, TurnRecord};

/// System prompt used when the chat template does not render the tool schema (models without
/// native tool calling, e.g. SmolLM2): it tells the model to write fenced Python, which
/// [`spear_envs::math::tool::ToolFormat::Auto`] runs.
pub const FENCE_SYSTEM_PROMPT: &str = "You are a helpful assistant that solves math problems. You can run Python: write the code in a ```python fenced block and end your message; its printed output is returned to you. Put the final answer in \\boxed{}.";

/// Settings of the math rollout (recipe values by default, spec §5.3).
#[derive(Debug, Clone, PartialEq)]
pub struct MathRolloutConfig {
    /// Turn limits (8 / 8), tool-reply truncation (16384 chars) and call format (`Auto`).
    /// Its `max_response_chars` is ignored: the token budget below applies.
    pub loop_cfg: LoopConfig,
    /// Response budget in tokens, tool output included (verl `response_length`; 16384 in the
    /// paper's runs).
    pub max_response_tokens: usize,
    /// Reward settings; the rollout uses the verifier outcome and the incomplete rule (the
    /// tool-call bonus is the trainer's, from `tool_calls`).
    pub reward: SpearRewardConfig,
    /// A system message to put before the problem (`None`: the template's default).
    pub system_prompt: Option<String>,
    /// When the template does not render the tool schema, use [`FENCE_SYSTEM_PROMPT`] (if no
    /// `system_prompt` is given) so the model knows it can run fenced Python.
    pub fence_prompt_without_tools: bool,
    /// Most conversations per `generate` call (0: all running conversations in one call). Bounds
    /// the KV-cache memory of a turn; results do not depend on it (per-sequence seeds).
    pub max_batch_conversations: usize,
    /// Index of `problems[0]` in its data set: seeds and group ids use `offset + i`, so a
    /// problem gets the same samples whatever chunk it is evaluated in.
    pub problem_index_offset: u64,
}

impl Default for MathRolloutConfig {
    fn default() -> Self {
        MathRolloutConfig {
            loop_cfg: LoopConfig::default(),
            max_response_tokens: 16384,
            reward: SpearRewardConfig::default(),
            system_prompt: None,
            fence_prompt_without_tools: true,
            max_batch_conversations: 0,
            problem_index_offset: 0,
        }
    }
}

/// Per-conversation facts the trainer and the evaluation need beyond the [`StepSample`].
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationInfo {
    /// Index of the problem in the `problems` slice.
    pub problem: usize,
    /// Member of the group (0..G).
    pub member: usize,
    /// The strict verifier's verdict.
    pub acc: bool,
    /// The strict verifier's boxed answer (`None`: no closed box in the last 100 characters).
    pub pred: Option<String>,
    /// Masked out by Dr.BoT's incomplete filter (spec §2.2, §3; see [`SpearRewardConfig`]).
    pub is_incomplete: bool,
    /// Why the conversation ended.
    pub stop: StopReason,
    /// The decoded response with special tokens kept (what Dr.BoT's text filters read).
    pub response_text: String,
}

impl ConversationInfo {
    /// Dr.BoT's response flags for this conversation's sample (spec §3): overlong, repetitive and
    /// unreadable as for agent tasks, `incomplete` from the math rule
    /// ([`SpearRewardConfig::incomplete`]).
    pub fn response_flags(&self, sample: &StepSample, cfg: &DrBotConfig) -> ResponseFlags {
        let mut f = response_flags(&sample.response_tokens, &self.response_text, cfg);
        f.incomplete = self.is_incomplete;
        f
    }
}

/// What [`rollout_math`] returns.
#[derive(Debug, Clone, Default)]
pub struct MathRolloutOutput {
    /// Samples (one per conversation, problem-major: problem i, member j at `i·G + j`),
    /// episode records and timings.
    pub rollout: RolloutOutput,
    /// One entry per sample, same order.
    pub conversations: Vec<ConversationInfo>,
}

pub use crate::seed::turn_seed;

/// The text the chat template puts around a tool reply (after an assistant turn, with the
/// generation prompt): `prefix + reply + suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolMessageTemplate {
    /// Before the reply (ChatML: `<|im_start|>tool\n`; Qwen: `<|im_start|>user\n<tool_response>\n`).
    pub prefix: String,
    /// After the reply, through the next generation prompt.
    pub suffix: String,
}

impl ToolMessageTemplate {
    const PLACEHOLDER: &'static str = "\u{E000}spear-tool-reply\u{E000}";

    /// Derives the pieces from the sampler's template: the rendering of
    /// `[user, assistant, tool]` with the generation prompt minus that of `[user, assistant]`
    /// (the same text verl obtains by rendering `[tool]` and cutting the system prefix).
    pub fn from_template(sampler: &dyn ChatSampler) -> anyhow::Result<Self> {
        let base = [ChatMessage::user("q"), ChatMessage::assistant("a")];
        let before = sampler
            .render_chat(&base, None, false)
            .context("rendering a user/assistant exchange with the chat template")?;
        let mut with_tool = base.to_vec();
        with_tool.push(ChatMessage::tool(Self::PLACEHOLDER));
        let after = sampler
            .render_chat(&with_tool, None, true)
            .context("rendering a tool message with the chat template")?;
        let Some(delta) = after.strip_prefix(before.as_str()) else {
            bail!(
                "the chat template renders earlier messages differently once a tool message follows; \
                 cannot append tool replies token by token (rendered {before:?} vs {after:?})"
            );
        };
        let Some((prefix, suffix)) = delta.split_once(Self::PLACEHOLDER) else {
            bail!("the chat template drops the content of tool messages (rendered {delta:?})");
        };
        Ok(ToolMessageTemplate {
            prefix: prefix.to_string(),
            suffix: suffix.to_string(),
        })
    }

    /// The tool message for `reply`.
    pub fn render(&self, reply: &str) -> String {
        format!("{}{reply}{}", self.prefix, self.suffix)
    }
}

/// The tool schema of the recipe as a JSON value.
pub fn tool_schema() -> Value {
    serde_json::from_str(TOOL_SCHEMA_JSON).expect("TOOL_SCHEMA_JSON is valid JSON")
}

/// The rendered prompt for one problem: the user message (problem + answer format) with the
/// tool schema and the generation prompt; a system message per [`MathRolloutConfig`].
pub fn render_prompt(
    sampler: &dyn ChatSampler,
    problem: &str,
    cfg: &MathRolloutConfig,
) -> anyhow::Result<String> {
    let tools = [tool_schema()];
    let user = ChatMessage::user(format!("{problem}{ANSWER_FORMAT}"));
    let with_system = |sys: &str| vec![ChatMessage::system(sys), user.clone()];
    let msgs = match &cfg.system_prompt {
        Some(s) => with_system(s),
        None => vec![user.clone()],
    };
    let text = sampler
        .render_chat(&msgs, Some(&tools), true)
        .context("rendering the math prompt with the chat template")?;
    if cfg.system_prompt.is_none() && cfg.fence_prompt_without_tools && !text.contains(TOOL_NAME) {
        return sampler
            .render_chat(&with_system(FENCE_SYSTEM_PROMPT), Some(&tools), true)
            .context("rendering the math prompt with the chat template");
    }
    Ok(text)
}

/// One conversation in progress.
struct Running {
    problem: usize,
    member: usize,
    conv: MathConversation,
    response: Vec<u32>,
    mask: Vec<u8>,
    logprobs: Vec<f32>,
    turns: Vec<TurnRecord>,
    done: bool,
    /// The oldest policy version among its turns.
    policy_version: Option<u64>,
}

/// Runs `group_size` conversations per problem on `sampler` (see the module docs).
#[allow(clippy::too_many_arguments)]
pub fn rollout_math(
    sampler: &dyn ChatSampler,
    problems: &[MathProblem],
    group_size: usize,
    sampling: &SamplingParams,
    seed: u64,
    iteration: u64,
    sandbox: &SandboxPool,
    cfg: &MathRolloutConfig,
) -> anyhow::Result<MathRolloutOutput> {
    if group_size == 0 {
        bail!("group_size must be at least 1");
    }
    if cfg.max_response_tokens == 0 {
        bail!("max_response_tokens must be at least 1");
    }
    let tok = sampler.tokenizer();
    let tool_tmpl = ToolMessageTemplate::from_template(sampler)?;
    let mut prompts: Vec<(String, Vec<u32>)> = Vec::with_capacity(problems.len());
    for p in problems {
        let text = render_prompt(sampler, &p.problem, cfg)?;
        let ids = tok
            .encode(&text)
            .with_context(|| format!("tokenizing the prompt of problem {}", p.id))?;
        if ids.is_empty() {
            bail!("the prompt of problem {} tokenizes to nothing", p.id);
        }
        prompts.push((text, ids));
    }
    let mut loop_cfg = cfg.loop_cfg.clone();
    loop_cfg.max_response_chars = None;
    let mut runs: Vec<Running> = Vec::with_capacity(problems.len() * group_size);
    for (pi, p) in problems.iter().enumerate() {
        for member in 0..group_size {
            runs.push(Running {
                problem: pi,
                member,
                conv: MathConversation::new(
                    &p.problem,
                    &p.answer,
                    loop_cfg.clone(),
                    EnvTemplate::qwen25(),
                ),
                response: vec![],
                mask: vec![],
                logprobs: vec![],
                turns: vec![],
                done: false,
                policy_version: None,
            });
        }
    }

    let mut out = MathRolloutOutput::default();
    let budget = cfg.max_response_tokens;
    for turn in 0u64.. {
        let active: Vec<usize> = (0..runs.len()).filter(|&i| !runs[i].done).collect();
        if active.is_empty() {
            break;
        }
        // One batched generation for every running conversation (in chunks of
        // `max_batch_conversations` when set).
        let chunk = match cfg.max_batch_conversations {
            0 => active.len(),
            n => n,
        };
        let mut gens: Vec<Generation> = Vec::with_capacity(active.len());
        for part in active.chunks(chunk) {
            let requests: Vec<GenRequest> = part
                .iter()
                .map(|&i| {
                    let r = &runs[i];
                    let mut ids = prompts[r.problem].1.clone();
                    ids.extend_from_slice(&r.response);
                    GenRequest {
                        prompt_ids: ids,
                        seed: turn_seed(
                            seed,
                            iteration,
                            cfg.problem_index_offset + r.problem as u64,
                            r.member as u64,
                            turn,
                        ),
                    }
                })
                .collect();
            // Every sequence may use its remaining budget; longer ones are cut below.
            let most_left = part
                .iter()
                .map(|&i| budget - runs[i].response.len())
                .max()
                .unwrap_or(0);
            let params = SamplingParams {
                max_new_tokens: sampling.max_new_tokens.min(most_left),
                ..sampling.clone()
            };
            let t0 = Instant::now();
            // One session per conversation: its turns go to one server (prefix-cache hits).
            let sessions: Vec<u64> = part
                .iter()
                .map(|&i| {
                    let r = &runs[i];
                    turn_seed(
                        seed,
                        iteration,
                        cfg.problem_index_offset + r.problem as u64,
                        r.member as u64,
                        u64::MAX,
                    )
                })
                .collect();
            let part_gens = sampler
                .generate_in_sessions(&requests, &sessions, &params)
                .context("generating the next assistant turn")?;
            out.rollout.generate_secs += t0.elapsed().as_secs_f64();
            if part_gens.len() != requests.len() {
                bail!(
                    "the sampler returned {} generations for {} requests",
                    part_gens.len(),
                    requests.len()
                );
            }
            gens.extend(part_gens);
        }

        // Append the sampled tokens and let the tool loop decide.
        let mut calls: Vec<(usize, String)> = vec![];
        for (&i, g) in active.iter().zip(gens) {
            let r = &mut runs[i];
            let keep = g.token_ids.len().min(budget - r.response.len());
            if g.logprobs.len() < keep {
                bail!("the sampler returned fewer log-probs than tokens");
            }
            let ids = &g.token_ids[..keep];
            if let Some(v) = g.policy_version {
                r.policy_version = Some(r.policy_version.map_or(v, |x| x.min(v)));
            }
            out.rollout.generated_tokens += keep as u64;
            r.response.extend_from_slice(ids);
            r.mask.extend(std::iter::repeat_n(1u8, keep));
            r.logprobs.extend_from_slice(&g.logprobs[..keep]);
            let text = tok
                .decode(ids, false)
                .context("decoding a generated turn")?;
            let exhausted = r.response.len() >= budget;
            let next = r.conv.push_assistant(&text, exhausted);
            let action = match &next {
                Next::RunTool { .. } => parse_turn(&text, loop_cfg.format)
                    .calls
                    .first()
                    .and_then(|c| code_argument(c).ok())
                    .map(|c| extract_code(&c))
                    .unwrap_or_default(),
                Next::Stop(_) => "answer".to_string(),
            };
            r.turns.push(TurnRecord {
                prompt: if turn == 0 {
                    r.conv.messages()[0].content.clone()
                } else {
                    String::new()
                },
                response: text,
                action,
                valid: true,
                observation: String::new(),
                reward: 0.0,
                advantage: None,
                masked: false,
            });
            match next {
                Next::RunTool { program } => calls.push((i, program)),
                Next::Stop(_) => r.done = true,
            }
        }

        // Run this turn's tool calls concurrently and append the tool messages.
        if !calls.is_empty() {
            let t0 = Instant::now();
            let programs: Vec<String> = calls.iter().map(|(_, p)| p.clone()).collect();
            let results = sandbox.run_many(&programs);
            for ((i, _), result) in calls.iter().zip(&results) {
                let r = &mut runs[*i];
                let reply = r.conv.reply_for(result);
                let piece = tok
                    .encode(&tool_tmpl.render(&reply))
                    .context("tokenizing a tool message")?;
                let fits = r.response.len() + piece.len() < budget;
                if r.conv.push_tool_result(result, |_| fits) {
                    r.response.extend_from_slice(&piece);
                    r.mask.extend(std::iter::repeat_n(0u8, piece.len()));
                    r.logprobs.extend(std::iter::repeat_n(0f32, piece.len()));
                } else {
                    r.done = true;
                }
                if let Some(t) = r.turns.last_mut() {
                    t.observation = reply;
                }
            }
            out.rollout.env_secs += t0.elapsed().as_secs_f64();
        }
    }

    // Rewards and samples.
    let t0 = Instant::now();
    let g = group_size as u64;
    for (traj, r) in runs.into_iter().enumerate() {
        let p = &problems[r.problem];
        let solution = tok
            .decode(&r.response, true)
            .context("decoding a response")?;
        let s = spear_score(
            &solution,
            &p.answer,
            r.conv.n_tool_calls(),
            iteration,
            &cfg.reward,
        );
        let response_text = tok
            .decode(&r.response, false)
            .context("decoding a response")?;
        let group = cfg.problem_index_offset + r.problem as u64;
        let mut turns = r.turns;
        if let Some(t) = turns.last_mut() {
            t.reward = s.outcome;
        }
        let assistant_turns = turns.len() as u32;
        out.rollout.samples.push(StepSample {
            uid: GroupId(group),
            traj_uid: TrajId(cfg.problem_index_offset * g + traj as u64),
            step_index: 0,
            prompt_tokens: prompts[r.problem].1.clone(),
            response_tokens: r.response,
            response_mask: r.mask,
            rollout_log_probs: r.logprobs.clone(),
            old_log_probs: r.logprobs,
            policy_version: 0,
            step_reward: s.outcome,
            episode_reward: s.outcome,
            episode_length: assistant_turns,
            tool_calls: r.conv.n_tool_calls() as u32,
            is_action_valid: true,
            anchor_obs: p.problem.clone(),
            collected_at: iteration,
            score: 0.0,
            step_return: 0.0,
            advantage: 0.0,
        });
        out.rollout.episodes.push(EpisodeRecord {
            iteration,
            task: group,
            task_type: "math".into(),
            goal: p.problem.clone(),
            group,
            traj: cfg.problem_index_offset * g + traj as u64,
            won: s.acc,
            episode_reward: s.outcome,
            score: 0.0,
            task_score: None,
            policy_version: r.policy_version,
            turns,
        });
        out.conversations.push(ConversationInfo {
            problem: r.problem,
            member: r.member,
            acc: s.acc,
            pred: s.extracted,
            is_incomplete: s.is_incomplete,
            stop: r
                .conv
                .stop_reason()
                .cloned()
                .unwrap_or(StopReason::ResponseBudget),
            response_text,
        });
    }
    out.rollout.env_secs += t0.elapsed().as_secs_f64();
    Ok(out)
}

/// A conversation (user, then assistant / tool messages, as
/// [`spear_envs::math::data::generator::demonstration`] and the ReTool-SFT converter produce) as
/// one masked token sample in exactly the rollout's layout: the rollout prompt, each assistant
/// message written as the model would emit it (hermes `<tool_call>` when the template renders the
/// tool schema, else a fenced ```` ```python ```` block) and ended with the eos token (mask 1),
/// each tool reply as the template's tool message (mask 0). Use it for the SFT warm start so the
/// demonstrations match what [`rollout_math`] samples and parses.
///
/// Returns `(prompt_tokens, response_tokens, response_mask)`.
pub fn demonstration_tokens(
    sampler: &dyn ChatSampler,
    messages: &[spear_envs::math::conversation::Message],
    cfg: &MathRolloutConfig,
) -> anyhow::Result<(Vec<u32>, Vec<u32>, Vec<u8>)> {
    use spear_envs::math::conversation::Role;
    let tok = sampler.tokenizer();
    let Some(first) = messages.first().filter(|m| m.role == Role::User) else {
        bail!("a demonstration starts with the user message");
    };
    let problem = first
        .content
        .strip_suffix(ANSWER_FORMAT)
        .unwrap_or(&first.content);
    let prompt_text = render_prompt(sampler, problem, cfg)?;
    let hermes = prompt_text.contains(TOOL_NAME) && prompt_text.contains("<tool_call>");
    let eos = tok.eos_token.clone().unwrap_or_default();
    let tool_tmpl = ToolMessageTemplate::from_template(sampler)?;
    let (mut ids, mut mask) = (vec![], vec![]);
    for m in &messages[1..] {
        let (text, trainable) = match m.role {
            Role::Assistant => {
                let mut t = m.content.clone();
                for c in &m.tool_calls {
                    if hermes {
                        // Qwen's template order: name, then arguments (`json.dumps` spacing).
                        let name =
                            spear_model::chat::python_json(&Value::from(c.name.clone()), None);
                        let args = spear_model::chat::python_json(&c.arguments, None);
                        t.push_str(&format!(
                            "\n<tool_call>\n{{\"name\": {name}, \"arguments\": {args}}}\n</tool_call>"
                        ));
                    } else {
                        let code = code_argument(c).map_err(anyhow::Error::msg)?;
                        t.push_str(&format!("\n```python\n{}\n```", extract_code(&code)));
                    }
                }
                t.push_str(&eos);
                (t, 1u8)
            }
            Role::Tool => (tool_tmpl.render(&m.content), 0u8),
            Role::User | Role::System => {
                bail!("a demonstration has only assistant and tool messages after the problem")
            }
        };
        let piece = tok.encode(&text).context("tokenizing a demonstration")?;
        mask.extend(std::iter::repeat_n(trainable, piece.len()));
        ids.extend(piece);
    }
    let prompt = tok.encode(&prompt_text).context("tokenizing a prompt")?;
    Ok((prompt, ids, mask))
}

/// Settings of [`evaluate_math`] (spec §5.3 "validation": k = 32, T = 1.0, top-p 0.6).
#[derive(Debug, Clone, PartialEq)]
pub struct MathEvalSettings {
    /// Samples (conversations) per problem.
    pub k: usize,
    /// Sampling of every turn.
    pub sampling: SamplingParams,
    /// The tool loop and budget.
    pub rollout: MathRolloutConfig,
    /// Run seed (per-turn seeds derive from it, spec: reproducible).
    pub seed: u64,
    /// Conversations per rollout batch (whole problems: at least one problem of k).
    pub batch_conversations: usize,
}

/// One problem's k samples.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProblemOutcome {
    /// Problem id.
    pub id: String,
    /// Ground truth.
    pub answer: String,
    /// Verdict of each sample.
    pub correct: Vec<bool>,
    /// Extracted boxed answer of each sample.
    pub preds: Vec<Option<String>>,
    /// Tool-call messages of each sample.
    pub tool_calls: Vec<u32>,
    /// Response tokens (tool output included) of each sample.
    pub response_tokens: Vec<usize>,
}

/// avg@k / pass@k over a problem set (spec §5.4).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MathEvalReport {
    /// Samples per problem.
    pub k: usize,
    /// Mean accuracy over all samples (avg@k).
    pub avg_at_k: f64,
    /// Unbiased pass@j (Chen et al. 2021) for j = 1, 2, 4, … < k and j = k; pass@k is the
    /// fraction of problems with at least one correct sample.
    pub pass_at: BTreeMap<usize, f64>,
    /// Mean tool calls per conversation.
    pub mean_tool_calls: f64,
    /// Per problem.
    pub problems: Vec<ProblemOutcome>,
}

/// Aggregates per-problem outcomes into avg@k and pass@j.
pub fn math_eval_report(k: usize, problems: Vec<ProblemOutcome>) -> MathEvalReport {
    let table: Vec<Vec<bool>> = problems.iter().map(|p| p.correct.clone()).collect();
    let pass_at = pass_at_ladder(&table, k);
    let n: usize = problems.iter().map(|p| p.tool_calls.len()).sum();
    let calls: u32 = problems.iter().flat_map(|p| &p.tool_calls).sum();
    MathEvalReport {
        k,
        avg_at_k: avg_at_k(&table),
        pass_at,
        mean_tool_calls: if n == 0 { 0.0 } else { calls as f64 / n as f64 },
        problems,
    }
}

/// Samples k conversations per problem through the tool loop and scores them with the strict
/// verifier. `progress(done)` is called after each batch with the conversations finished so far.
pub fn evaluate_math(
    sampler: &dyn ChatSampler,
    problems: &[MathProblem],
    settings: &MathEvalSettings,
    sandbox: &SandboxPool,
    progress: &mut dyn FnMut(usize),
) -> anyhow::Result<MathEvalReport> {
    let k = settings.k;
    if k == 0 {
        bail!("k must be at least 1");
    }
    let per_batch = (settings.batch_conversations / k).max(1);
    let mut outcomes = Vec::with_capacity(problems.len());
    let mut done = 0;
    for (c, chunk) in problems.chunks(per_batch).enumerate() {
        let cfg = MathRolloutConfig {
            problem_index_offset: (c * per_batch) as u64,
            ..settings.rollout.clone()
        };
        let out = rollout_math(
            sampler,
            chunk,
            k,
            &settings.sampling,
            settings.seed,
            0,
            sandbox,
            &cfg,
        )?;
        for (pi, p) in chunk.iter().enumerate() {
            let range = pi * k..(pi + 1) * k;
            let infos = &out.conversations[range.clone()];
            let samples = &out.rollout.samples[range];
            outcomes.push(ProblemOutcome {
                id: p.id.clone(),
                answer: p.answer.clone(),
                correct: infos.iter().map(|i| i.acc).collect(),
                preds: infos.iter().map(|i| i.pred.clone()).collect(),
                tool_calls: samples.iter().map(|s| s.tool_calls).collect(),
                response_tokens: samples.iter().map(|s| s.response_tokens.len()).collect(),
            });
        }
        done += chunk.len() * k;
        progress(done);
    }
    Ok(math_eval_report(k, outcomes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_report_by_hand() {
        let o = |correct: Vec<bool>, calls: Vec<u32>| ProblemOutcome {
            id: "p".into(),
            answer: "1".into(),
            preds: vec![None; correct.len()],
            response_tokens: vec![1; correct.len()],
            correct,
            tool_calls: calls,
        };
        let r = math_eval_report(
            4,
            vec![
                o(vec![true, false, false, false], vec![1, 0, 0, 0]),
                o(vec![false; 4], vec![2, 2, 0, 0]),
            ],
        );
        // avg@4 = (1/4 + 0) / 2 = 0.125
        assert!((r.avg_at_k - 0.125).abs() < 1e-12);
        // pass@1 = (1/4 + 0)/2 = 0.125; pass@2 = (1 − C(3,2)/C(4,2))/2 = (1 − 3/6)/2 = 0.25;
        // pass@4 = (1 + 0)/2 = 0.5 (problems with a correct sample)
        assert_eq!(r.pass_at.keys().copied().collect::<Vec<_>>(), vec![1, 2, 4]);
        assert!((r.pass_at[&1] - 0.125).abs() < 1e-12);
        assert!((r.pass_at[&2] - 0.25).abs() < 1e-12);
        assert!((r.pass_at[&4] - 0.5).abs() < 1e-12);
        // 5 calls over 8 conversations
        assert!((r.mean_tool_calls - 0.625).abs() < 1e-12);
        // k = 3: pass@1, pass@2, pass@3
        let r = math_eval_report(3, vec![o(vec![true, true, false], vec![0; 3])]);
        assert_eq!(r.pass_at.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
    }
}
