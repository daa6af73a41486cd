//! The verl-agent multi-turn loop for text environments (spec §2.8 step 1, §7): G copies of each
//! task reset to the same state; every turn, one batched generation for all active
//! environments, projection of each output into an action, then all environments step in
//! parallel (rayon). An environment stops contributing samples once it is done.

use std::time::Instant;

use anyhow::Context;
use rayon::prelude::*;
use spear_envs::household::HouseholdEnv;
use spear_envs::webshop::WebShopEnv;
use spear_envs::{Environment, Observation};
use spear_model::{ChatMessage, GenRequest, SamplingParams};
use spear_rl::sample::{GroupId, StepSample, TrajId};

use crate::agent::memory::Memory;
use crate::agent::projection::{project, ProjectionRules};
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
    let mut out = RolloutOutput::default();
    let t_env = Instant::now();
    let mut slots: Vec<Slot> = Vec::with_capacity(envs.len());
    for (i, env) in envs.iter_mut().enumerate() {
        let task = tasks[i / g];
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
        slots.push(Slot {
            task: task_text,
            obs,
            memory: Memory::new(),
            active: true,
            samples: vec![],
            episode,
            reward_sum: 0.0,
        });
    }
    out.env_secs += t_env.elapsed().as_secs_f64();
    let max_pos = sampler.max_context();
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
            let s = &slots[i];
            pre_obs.push(envs[i].prompt_observation(&s.obs));
            let text = envs[i].build_prompt(&s.task, &s.obs, &s.memory, p.history_length);
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
            requests.push(GenRequest {
                prompt_ids: ids,
                seed: mix_seed(&[p.seed, p.iteration, i as u64, turn as u64, 1]),
            });
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

        for (k, &i) in active.iter().enumerate() {
            let outcome = match &outcomes[k] {
                Ok(o) => o.clone(),
                Err(e) => anyhow::bail!("environment {i} failed to step: {e}"),
            };
            let gen = &gens[k];
            let pr = &projected[k];
            let s = &mut slots[i];
            let anchor = pre_obs[k].clone();
            let sample = StepSample {
                uid: GroupId((i / g) as u64),
                traj_uid: TrajId(i as u64),
                step_index: turn as u32,
                prompt_tokens: requests[k].prompt_ids.clone(),
                response_tokens: gen.token_ids.clone(),
                response_mask: vec![1; gen.token_ids.len()],
                old_log_probs: gen.logprobs.clone(),
                step_reward: outcome.reward,
                episode_reward: 0.0,
                episode_length: 0,
                tool_calls: 0,
                is_action_valid: pr.valid,
                anchor_obs: anchor,
                collected_at: p.iteration,
                score: 0.0,
                step_return: 0.0,
                advantage: 0.0,
            };
            s.samples.push(out.samples.len());
            out.samples.push(sample);
            out.sample_policy_versions.push(gen.policy_version);
            if let Some(v) = gen.policy_version {
                let e = &mut s.episode.policy_version;
                *e = Some(e.map_or(v, |x| x.min(v)));
            }
            s.reward_sum += outcome.reward;
            s.episode.turns.push(TurnRecord {
                prompt: if p.keep_prompts {
                    prompts[k].clone()
                } else {
                    String::new()
                },
                response: texts[k].clone(),
                action: pr.action.clone(),
                valid: pr.valid,
                observation: outcome.observation.text.clone(),
                reward: outcome.reward,
                advantage: None,
                masked: false,
            });
            s.memory.store(pre_obs[k].clone(), pr.action.clone());
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
    }
    // Episode totals on every sample of the trajectory (spec §2.2).
    for s in &mut slots {
        let len = s.samples.len() as u32;
        for &j in &s.samples {
            let x = &mut out.samples[j];
            x.episode_reward = s.reward_sum;
            x.episode_length = len;
            // Agent tasks: every environment action is a tool call (spec §2.2).
            x.tool_calls = len;
        }
        s.episode.episode_reward = s.reward_sum;
    }
    out.episodes = slots.into_iter().map(|s| s.episode).collect();
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
}
