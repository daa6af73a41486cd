//! The verl-agent multi-turn loop for text environments (spec §2.8 step 1, §7): G copies of each
//! task reset to the same state; every turn, one batched generation for all active
//! environments, projection of each output into an action, then all environments step in
//! parallel (rayon). An environment stops contributing samples once it is done.

use std::time::Instant;

use anyhow::Context;
use rayon::prelude::*;
use spear_envs::household::HouseholdEnv;
use spear_envs::webshop::WebShopEnv;
use spear_envs::{Environment, Observation, StepOutcome};
use spear_model::{ChatMessage, GenRequest, Generation, SamplingParams};
use spear_rl::sample::{GroupId, StepSample, TrajId};

use crate::agent::memory::Memory;
use crate::agent::projection::{project, Projected, ProjectionRules};
use crate::agent::prompts::{household_prompt, household_task, webshop_prompt};
use crate::rollout::sampler::{response_text, ChatSampler};
use crate::rollout::RolloutOutput;
use crate::run_dir::{EpisodeRecord, TurnRecord};

/// An environment the agent loop can prompt: the verl-agent template of its family.
pub trait AgentEnv: Environment + Send {
    /// Projection rules of the environment's family (spec §7).
    const RULES: ProjectionRules;

    /// The task text shown in the prompt, from the first observation.
    fn prompt_task(&self, first: &Observation) -> String;

    /// The observation as the prompt and the history memory show it.
    fn prompt_observation(&self, obs: &Observation) -> String;

    /// The prompt of the current step (spec §7 templates).
    fn build_prompt(
        &self,
        task: &str,
        obs: &Observation,
        memory: &Memory,
        history_length: usize,
    ) -> String;
}

impl AgentEnv for HouseholdEnv {
    const RULES: ProjectionRules = ProjectionRules::Household;

    fn prompt_task(&self, first: &Observation) -> String {
        household_task(&first.text).unwrap_or_else(|| self.task_description().to_string())
    }

    fn prompt_observation(&self, obs: &Observation) -> String {
        obs.text.clone()
    }

    fn build_prompt(
        &self,
        task: &str,
        obs: &Observation,
        memory: &Memory,
        history_length: usize,
    ) -> String {
        household_prompt(
            task,
            &obs.text,
            &obs.admissible_actions,
            memory,
            history_length,
        )
    }
}

impl AgentEnv for WebShopEnv {
    const RULES: ProjectionRules = ProjectionRules::Webshop;

    fn prompt_task(&self, _first: &Observation) -> String {
        self.task_description().to_string()
    }

    fn prompt_observation(&self, _obs: &Observation) -> String {
        self.formatted_observation()
    }

    fn build_prompt(
        &self,
        task: &str,
        _obs: &Observation,
        memory: &Memory,
        history_length: usize,
    ) -> String {
        webshop_prompt(
            task,
            &self.formatted_observation(),
            &self.formatted_actions(),
            memory,
            history_length,
        )
    }
}

/// Shape of one rollout.
#[derive(Debug, Clone)]
pub struct AgentRolloutParams {
    /// G: environments per task (`envs.len() == tasks.len() · G`).
    pub group_size: usize,
    /// Turn cap (`env.max_steps`).
    pub max_turns: usize,
    /// (observation, action) pairs in the prompt.
    pub history_length: usize,
    /// Sampling.
    pub sampling: SamplingParams,
    /// Seed of the per-sequence sampling RNGs and environment resets.
    pub seed: u64,
    /// Training step `t` (stored in `collected_at`; part of every sampling seed).
    pub iteration: u64,
    /// Keep each turn's prompt text in the episode records (memory; the viewer wants it).
    pub keep_prompts: bool,
    /// Run every episode on its own thread, one request per turn as soon as its previous
    /// step is done (`rollout.mode = "async"`), instead of one batched generation per turn.
    pub concurrent: bool,
    /// Policy version stamped on the samples (the engine's own per-generation version, when it
    /// reports one, takes precedence once engines report it).
    pub policy_version: u64,
}

pub use crate::seed::mix_seed;

struct Slot {
    task: String,
    obs: Observation,
    memory: Memory,
    active: bool,
    samples: Vec<usize>,
    episode: EpisodeRecord,
    reward_sum: f64,
}

/// Resets environment `i` (group `i / g`, playing `task`) and opens its episode record.
fn new_slot<E: AgentEnv>(
    env: &mut E,
    i: usize,
    task: usize,
    g: usize,
    p: &AgentRolloutParams,
) -> anyhow::Result<Slot> {
    let reset_seed = mix_seed(&[p.seed, p.iteration, task as u64]);
    let obs = env
        .reset(task, reset_seed)
        .with_context(|| format!("resetting {} task {task}", env.name()))?;
    let task_text = env.prompt_task(&obs);
    let episode = EpisodeRecord {
        iteration: p.iteration,
        task: task as u64,
        task_type: env.task_type().to_string(),
        goal: task_text.clone(),
        group: (i / g) as u64,
        traj: i as u64,
        ..Default::default()
    };
    Ok(Slot {
        task: task_text,
        obs,
        memory: Memory::new(),
        active: true,
        samples: vec![],
        episode,
        reward_sum: 0.0,
    })
}

/// The request of environment `i`'s turn `turn`: its prompt text and the request (token ids
/// and the per-sequence seed), after checking that it fits the model's context.
fn turn_request<E: AgentEnv>(
    sampler: &dyn ChatSampler,
    env: &E,
    s: &Slot,
    i: usize,
    turn: usize,
    p: &AgentRolloutParams,
) -> anyhow::Result<(String, GenRequest)> {
    let max_pos = sampler.max_context();
    let text = env.build_prompt(&s.task, &s.obs, &s.memory, p.history_length);
    let ids = sampler.chat_prompt_ids(&[ChatMessage::user(text.clone())], None)?;
    anyhow::ensure!(
        ids.len() + p.sampling.max_new_tokens <= max_pos,
        "a prompt of {} tokens plus {} new tokens exceeds the model's {} positions \
         (verl raises here too, `truncation='error'`): lower env.history_length or \
         sampling.max_new_tokens, or raise model.max_position_embeddings",
        ids.len(),
        p.sampling.max_new_tokens,
        max_pos
    );
    let request = GenRequest {
        prompt_ids: ids,
        seed: mix_seed(&[p.seed, p.iteration, i as u64, turn as u64, 1]),
    };
    Ok((text, request))
}

/// What one turn of one environment produced, to be recorded in its slot.
struct TurnResult<'a> {
    turn: usize,
    prompt: &'a str,
    request: GenRequest,
    gen: &'a Generation,
    text: &'a str,
    projected: &'a Projected,
    pre_obs: String,
    outcome: &'a StepOutcome,
}

/// Appends turn `r` of environment `i` to `samples` and to the slot (sample, turn record,
/// history memory, observation, episode outcome).
fn record_turn(
    s: &mut Slot,
    samples: &mut Vec<StepSample>,
    i: usize,
    g: usize,
    r: TurnResult<'_>,
    p: &AgentRolloutParams,
) {
    let (gen, pr, outcome) = (r.gen, r.projected, r.outcome);
    let sample = StepSample {
        uid: GroupId((i / g) as u64),
        traj_uid: TrajId(i as u64),
        step_index: r.turn as u32,
        prompt_tokens: r.request.prompt_ids,
        response_tokens: gen.token_ids.clone(),
        response_mask: vec![1; gen.token_ids.len()],
        old_log_probs: gen.logprobs.clone(),
        rollout_log_probs: gen.logprobs.clone(),
        policy_version: gen.policy_version.unwrap_or(p.policy_version),
        step_reward: outcome.reward,
        episode_reward: 0.0,
        episode_length: 0,
        tool_calls: 0,
        is_action_valid: pr.valid,
        anchor_obs: r.pre_obs.clone(),
        collected_at: p.iteration,
        score: 0.0,
        step_return: 0.0,
        advantage: 0.0,
    };
    s.samples.push(samples.len());
    // The episode's version: the oldest that produced one of its turns.
    if let Some(v) = gen.policy_version {
        let e = &mut s.episode.policy_version;
        *e = Some(e.map_or(v, |x| x.min(v)));
    }
    samples.push(sample);
    s.reward_sum += outcome.reward;
    s.episode.turns.push(TurnRecord {
        prompt: if p.keep_prompts {
            r.prompt.to_string()
        } else {
            String::new()
        },
        response: r.text.to_string(),
        action: pr.action.clone(),
        valid: pr.valid,
        observation: outcome.observation.text.clone(),
        reward: outcome.reward,
        advantage: None,
        masked: false,
    });
    s.memory.store(r.pre_obs, pr.action.clone());
    s.obs = outcome.observation.clone();
    if outcome.won {
        s.episode.won = true;
    }
    if let Some(ts) = outcome.task_score {
        s.episode.task_score = Some(ts);
    }
    if outcome.done {
        s.active = false;
    }
}

/// Writes the episode totals on every sample of each trajectory (spec §2.2) and closes the
/// episode records.
fn finish(out: &mut RolloutOutput, slots: Vec<Slot>) {
    for s in &slots {
        let len = s.samples.len() as u32;
        for &j in &s.samples {
            let x = &mut out.samples[j];
            x.episode_reward = s.reward_sum;
            x.episode_length = len;
            // Agent tasks: every environment action is a tool call (spec §2.2).
            x.tool_calls = len;
        }
    }
    out.episodes = slots
        .into_iter()
        .map(|s| {
            let mut e = s.episode;
            e.episode_reward = s.reward_sum;
            e
        })
        .collect();
}

/// A finished episode of the concurrent rollout: its slot, its samples (slot indices local to
/// them), generated tokens and environment seconds.
type EpisodeRun = (Slot, Vec<StepSample>, u64, f64);

/// One episode of the concurrent rollout, run to its end on its own thread: each turn is a
/// single request, issued as soon as the previous step is done.
fn run_episode<E: AgentEnv>(
    sampler: &dyn ChatSampler,
    env: &mut E,
    i: usize,
    task: usize,
    g: usize,
    p: &AgentRolloutParams,
) -> anyhow::Result<EpisodeRun> {
    let t_env = Instant::now();
    let mut slot = new_slot(env, i, task, g, p)?;
    let mut env_secs = t_env.elapsed().as_secs_f64();
    let mut samples = vec![];
    let mut tokens = 0u64;
    for turn in 0..p.max_turns {
        if !slot.active {
            break;
        }
        let pre_obs = env.prompt_observation(&slot.obs);
        let (prompt, request) = turn_request(sampler, &*env, &slot, i, turn, p)?;
        let gens = sampler.generate(std::slice::from_ref(&request), &p.sampling)?;
        let [gen] = <[Generation; 1]>::try_from(gens).map_err(|g| {
            anyhow::anyhow!("the sampler returned {} generations for 1 request", g.len())
        })?;
        tokens += gen.token_ids.len() as u64;
        let text = response_text(sampler, &gen.token_ids)?;
        let projected = project(&text, E::RULES);
        let t_env = Instant::now();
        let outcome = env
            .step(&projected.action)
            .map_err(|e| anyhow::anyhow!("environment {i} failed to step: {e}"))?;
        env_secs += t_env.elapsed().as_secs_f64();
        let r = TurnResult {
            turn,
            prompt: &prompt,
            request,
            gen: &gen,
            text: &text,
            projected: &projected,
            pre_obs,
            outcome: &outcome,
        };
        record_turn(&mut slot, &mut samples, i, g, r, p);
    }
    Ok((slot, samples, tokens, env_secs))
}

/// The concurrent rollout (`rollout.mode = "async"`): one thread per environment, each
/// episode advancing as soon as its own generation returns, so a fast episode never waits for
/// a slow one. The sampler sees single requests from many threads at once (`ChatSampler:
/// Sync`); an inference-server client batches them on the server. Each request carries the
/// same per-sequence seed as in the batched loop, but a batch of one need not give bitwise the
/// numbers of a larger batch, so this mode is not bit-reproducible. Samples come out grouped
/// by episode (episode 0's turns, then episode 1's…); `generate_secs` is the wall time of the
/// whole concurrent phase (generation and environment steps interleave), `env_secs` the sum
/// of the episodes' environment seconds.
fn rollout_agent_concurrent<E: AgentEnv>(
    sampler: &dyn ChatSampler,
    envs: &mut [E],
    tasks: &[usize],
    p: &AgentRolloutParams,
) -> anyhow::Result<RolloutOutput> {
    let g = p.group_size.max(1);
    let start = Instant::now();
    let results: Vec<anyhow::Result<EpisodeRun>> = std::thread::scope(|scope| {
        let handles: Vec<_> = envs
            .iter_mut()
            .enumerate()
            .map(|(i, env)| {
                let task = tasks[i / g];
                scope.spawn(move || run_episode(sampler, env, i, task, g, p))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(anyhow::anyhow!("an episode thread of the rollout panicked"))
                })
            })
            .collect()
    });
    let mut out = RolloutOutput::default();
    let mut slots = Vec::with_capacity(results.len());
    for r in results {
        let (mut slot, samples, tokens, env_secs) = r?;
        let first = out.samples.len();
        for j in &mut slot.samples {
            *j += first;
        }
        out.samples.extend(samples);
        out.generated_tokens += tokens;
        out.env_secs += env_secs;
        slots.push(slot);
    }
    out.generate_secs = start.elapsed().as_secs_f64();
    finish(&mut out, slots);
    Ok(out)
}

/// Runs one rollout of `tasks` (indices into the environments' split) with `envs.len() / G`
/// groups: env `i` plays `tasks[i / G]`, group id `i / G`, trajectory id `i`.
pub fn rollout_agent<E: AgentEnv>(
    sampler: &dyn ChatSampler,
    envs: &mut [E],
    tasks: &[usize],
    p: &AgentRolloutParams,
) -> anyhow::Result<RolloutOutput> {
    let g = p.group_size.max(1);
    anyhow::ensure!(
        envs.len() == tasks.len() * g,
        "rollout needs {} environments ({} tasks × G = {g}), got {}",
        tasks.len() * g,
        tasks.len(),
        envs.len()
    );
    if p.concurrent {
        return rollout_agent_concurrent(sampler, envs, tasks, p);
    }
    let mut out = RolloutOutput::default();
    let t_env = Instant::now();
    let mut slots: Vec<Slot> = Vec::with_capacity(envs.len());
    for (i, env) in envs.iter_mut().enumerate() {
        slots.push(new_slot(env, i, tasks[i / g], g, p)?);
    }
    out.env_secs += t_env.elapsed().as_secs_f64();
    for turn in 0..p.max_turns {
        let active: Vec<usize> = (0..slots.len()).filter(|&i| slots[i].active).collect();
        if active.is_empty() {
            break;
        }
        let t_gen = Instant::now();
        let mut prompts = Vec::with_capacity(active.len());
        let mut requests = Vec::with_capacity(active.len());
        // The observation each action is taken at, captured before stepping: WebShop renders
        // it from the environment's current page, which the step replaces. It is the GiGPO
        // anchor and what the history memory pairs with the action (verl-agent stores
        // `pre_text_obs`).
        let mut pre_obs = Vec::with_capacity(active.len());
        for &i in &active {
            pre_obs.push(envs[i].prompt_observation(&slots[i].obs));
            let (text, request) = turn_request(sampler, &envs[i], &slots[i], i, turn, p)?;
            requests.push(request);
            prompts.push(text);
        }
        // One session per episode: its turns go to one server (prefix-cache hits).
        let sessions: Vec<u64> = active
            .iter()
            .map(|&i| mix_seed(&[p.seed, p.iteration, i as u64, 0x5E5]))
            .collect();
        let gens = sampler.generate_in_sessions(&requests, &sessions, &p.sampling)?;
        anyhow::ensure!(
            gens.len() == requests.len(),
            "the sampler returned {} generations for {} requests",
            gens.len(),
            requests.len()
        );
        out.generate_secs += t_gen.elapsed().as_secs_f64();
        out.generated_tokens += gens.iter().map(|g| g.token_ids.len() as u64).sum::<u64>();

        let texts: Vec<String> = gens
            .iter()
            .map(|g| response_text(sampler, &g.token_ids))
            .collect::<anyhow::Result<_>>()?;
        let projected: Vec<_> = texts.iter().map(|t| project(t, E::RULES)).collect();
        let t_env = Instant::now();
        let mut targets: Vec<(usize, &mut E)> = envs
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| slots[*i].active)
            .collect();
        let outcomes: Vec<_> = targets
            .par_iter_mut()
            .zip(projected.par_iter())
            .map(|((_, env), pr)| env.step(&pr.action))
            .collect();
        drop(targets);
        out.env_secs += t_env.elapsed().as_secs_f64();

        let mut requests = requests.into_iter();
        let mut pre_obs = pre_obs.into_iter();
        for (k, &i) in active.iter().enumerate() {
            let outcome = match &outcomes[k] {
                Ok(o) => o,
                Err(e) => anyhow::bail!("environment {i} failed to step: {e}"),
            };
            let r = TurnResult {
                turn,
                prompt: &prompts[k],
                request: requests.next().expect("one request per active environment"),
                gen: &gens[k],
                text: &texts[k],
                projected: &projected[k],
                pre_obs: pre_obs
                    .next()
                    .expect("one observation per active environment"),
                outcome,
            };
            record_turn(&mut slots[i], &mut out.samples, i, g, r, p);
        }
    }
    finish(&mut out, slots);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An environment that, like WebShop, renders its prompt observation from its current
    /// state: page `n` after `n` steps, done after 3.
    #[derive(Debug, Clone, Default)]
    struct Pages {
        page: usize,
    }

    impl Environment for Pages {
        fn name(&self) -> &'static str {
            "pages"
        }
        fn num_tasks(&self) -> usize {
            1
        }
        fn reset(&mut self, _task: usize, _seed: u64) -> Result<Observation, spear_envs::EnvError> {
            self.page = 0;
            Ok(Observation {
                text: "page 0".into(),
                admissible_actions: vec![],
            })
        }
        fn step(&mut self, _action: &str) -> Result<spear_envs::StepOutcome, spear_envs::EnvError> {
            self.page += 1;
            Ok(spear_envs::StepOutcome {
                observation: Observation {
                    text: format!("page {}", self.page),
                    admissible_actions: vec![],
                },
                done: self.page == 3,
                ..Default::default()
            })
        }
        fn task_description(&self) -> &str {
            "read"
        }
        fn task_type(&self) -> &str {
            "pages"
        }
        fn anchor(&self) -> String {
            format!("page {}", self.page)
        }
    }

    impl AgentEnv for Pages {
        const RULES: ProjectionRules = ProjectionRules::Webshop;
        fn prompt_task(&self, _first: &Observation) -> String {
            "read".into()
        }
        fn prompt_observation(&self, _obs: &Observation) -> String {
            format!("page {}", self.page)
        }
        fn build_prompt(
            &self,
            task: &str,
            obs: &Observation,
            memory: &Memory,
            history_length: usize,
        ) -> String {
            webshop_prompt(
                task,
                &self.prompt_observation(obs),
                &[],
                memory,
                history_length,
            )
        }
    }

    /// The anchor and the history pair each action with the observation it was taken at,
    /// even for an environment that renders observations from its state (WebShop).
    #[test]
    fn anchors_and_history_use_the_observation_before_the_step() {
        let cfg = crate::train::config::TrainConfig::default();
        let corpus = vec!["read page 0 1 2 3 search click".to_string()];
        let policy = crate::train::setup::tiny_policy(&cfg.model, &corpus, 1).unwrap();
        let mut envs = vec![Pages::default(), Pages::default()];
        let p = AgentRolloutParams {
            group_size: 2,
            max_turns: 5,
            history_length: 2,
            sampling: SamplingParams {
                max_new_tokens: 4,
                ..SamplingParams::default()
            },
            seed: 0,
            iteration: 1,
            keep_prompts: true,
            concurrent: false,
            policy_version: 0,
        };
        let out = rollout_agent(&policy, &mut envs, &[0], &p).unwrap();
        assert_eq!(out.samples.len(), 6);
        for s in &out.samples {
            assert_eq!(s.anchor_obs, format!("page {}", s.step_index), "{s:?}");
        }
        for e in &out.episodes {
            // Turn 2's history holds (page 0, action 1) and (page 1, action 2), not page 2
            // twice.
            let prompt = &e.turns[2].prompt;
            assert!(prompt.contains("page 0"), "{prompt}");
            assert!(prompt.contains("page 1"), "{prompt}");
        }
    }

    /// The concurrent rollout (`rollout.mode = "async"`) plays the same episodes: every
    /// episode is complete and in `traj` order, its samples are its turns in order with the
    /// episode totals, the anchors and history pair each action with the observation it was
    /// taken at, and the engine's log-probs are recorded as both `rollout_log_probs` and (until
    /// the trainer recomputes them) `old_log_probs`, with the policy version stamped.
    #[test]
    fn concurrent_rollout_plays_whole_episodes() {
        let cfg = crate::train::config::TrainConfig::default();
        let corpus = vec!["read page 0 1 2 3 search click".to_string()];
        let policy = crate::train::setup::tiny_policy(&cfg.model, &corpus, 1).unwrap();
        let mut envs = vec![Pages::default(); 6];
        let p = AgentRolloutParams {
            group_size: 3,
            max_turns: 5,
            history_length: 2,
            sampling: SamplingParams {
                max_new_tokens: 4,
                ..SamplingParams::default()
            },
            seed: 0,
            iteration: 1,
            keep_prompts: true,
            concurrent: true,
            policy_version: 7,
        };
        let out = rollout_agent(&policy, &mut envs, &[0, 0], &p).unwrap();
        assert_eq!(out.episodes.len(), 6);
        assert_eq!(out.samples.len(), 18);
        for (k, s) in out.samples.iter().enumerate() {
            assert_eq!(s.traj_uid.0, (k / 3) as u64, "{s:?}");
            assert_eq!(s.uid.0, (k / 9) as u64);
            assert_eq!(s.step_index, (k % 3) as u32);
            assert_eq!(s.anchor_obs, format!("page {}", s.step_index));
            assert_eq!(s.episode_length, 3);
            assert_eq!(s.policy_version, 7);
            assert_eq!(s.rollout_log_probs, s.old_log_probs);
            assert_eq!(s.rollout_log_probs.len(), s.response_tokens.len());
            assert!(!s.response_tokens.is_empty());
        }
        for (i, e) in out.episodes.iter().enumerate() {
            assert_eq!(e.traj, i as u64);
            assert_eq!(e.turns.len(), 3);
            let prompt = &e.turns[2].prompt;
            assert!(
                prompt.contains("page 0") && prompt.contains("page 1"),
                "{prompt}"
            );
        }
        let tokens: u64 = out
            .samples
            .iter()
            .map(|s| s.response_tokens.len() as u64)
            .sum();
        assert_eq!(out.generated_tokens, tokens);
    }
}
