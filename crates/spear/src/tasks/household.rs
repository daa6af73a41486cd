//! The household environment (ALFWorld-compatible, `env.kind = "household"`) as a
//! [`TaskSuite`]: generated or ALFWorld games, the planner's walkthroughs as warm-start
//! demonstrations, the agent loop for collection and evaluation.

use std::sync::Arc;

use anyhow::Context;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spear_envs::household::{
    expert_demo, searching_expert_demo, GameSet, GameSource, GeneratorConfig, HouseholdEnv, Split,
};
use spear_envs::Environment;
use spear_model::Policy;

use super::agent::{collect_agent, eval_agent};
use super::{CollectSettings, Collected, EvalSettings, TaskSuite, WarmStart};
use crate::agent::memory::Memory;
use crate::agent::prompts::{household_prompt, household_task};
use crate::rollout::ChatSampler;
use crate::run_dir::EvalRecord;
use crate::seed::mix_seed;
use crate::train::config::{
    EvalSplit, HouseholdConfig, HouseholdDemos, HouseholdSource, ModelSource, TrainConfig,
};
use crate::train::setup::{build_policy, demo_response, SftExample};

/// The household splits of a run.
#[derive(Debug, Clone)]
pub struct HouseholdTasks {
    /// Training games.
    pub train: GameSet,
    /// Evaluation splits, by name.
    pub evals: Vec<(String, GameSet)>,
}

fn generator_config(cfg: &TrainConfig) -> GeneratorConfig {
    let h = &cfg.env.household;
    let opt = |v: u64| (v > 0).then_some(v as usize);
    GeneratorConfig {
        seed: h.generator_seed,
        task_types: h.task_types(),
        max_receptacles: opt(h.max_receptacles),
        max_distractor_classes: opt(h.max_distractor_classes),
        max_instances: h.max_instances as usize,
    }
}

fn source(cfg: &TrainConfig, split: Split, count: u64) -> GameSource {
    let h = &cfg.env.household;
    match h.source {
        HouseholdSource::Generated => GameSource::Generated {
            config: generator_config(cfg),
            split,
            count: (count > 0).then_some(count as usize),
        },
        HouseholdSource::Alfworld => GameSource::Alfworld {
            root: (!h.alfworld_root.is_empty()).then(|| h.alfworld_root.clone().into()),
            split,
            task_types: generator_config(cfg).task_types,
        },
    }
}

/// Generates (or loads) the training split and every evaluation split of the config.
pub fn load_household(cfg: &TrainConfig) -> anyhow::Result<HouseholdTasks> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let h = &cfg.env.household;
    let train = source(cfg, Split::Train, h.train_games)
        .load(threads)
        .context("loading the household training split")?;
    let mut evals = vec![];
    for &name in &cfg.eval.splits {
        let split = match name {
            EvalSplit::ValidSeen => Split::ValidSeen,
            EvalSplit::ValidUnseen => Split::ValidUnseen,
            EvalSplit::Train => Split::Train,
            EvalSplit::Test | EvalSplit::HeldOut | EvalSplit::Aime24 | EvalSplit::Aime25 => {
                anyhow::bail!("eval.splits: {name} is not a household split")
            }
        };
        let set = source(cfg, split, h.eval_games)
            .load(threads)
            .with_context(|| format!("loading the household {name} split"))?;
        evals.push((name.to_string(), set));
    }
    Ok(HouseholdTasks { train, evals })
}

/// Expert demonstrations of `games` rendered exactly as the RL prompts of the agent loop
/// (spec §7): one example per expert step, history of `history_length` pairs. With the
/// searching expert, game `i` uses the seed `seed · 1 000 003 + i` (`seed`: the generator
/// seed), so the demonstrations are data, fixed by the generator seed. Games whose type has a
/// `demo_share` below 1 keep their demonstration with that probability (drawn from the
/// generator seed too).
pub fn household_sft_examples(
    games: &GameSet,
    count: usize,
    history_length: usize,
    h: &HouseholdConfig,
) -> anyhow::Result<Vec<SftExample>> {
    let seed = h.generator_seed;
    // `demo_share`: one draw per game from a stream of the generator seed, so the kept games
    // are data, like the demonstrations.
    let mut keep_rng = ChaCha8Rng::seed_from_u64(mix_seed(&[seed, 0xDE40]));
    let mut out = vec![];
    for (i, game) in games.games.iter().take(count).enumerate() {
        let draw: f64 = keep_rng.random();
        if draw >= h.demo_share_of(game.task_type) {
            continue;
        }
        let demo = match h.demonstrations {
            HouseholdDemos::Walkthrough => expert_demo(game),
            HouseholdDemos::Searching => {
                searching_expert_demo(game, seed.wrapping_mul(1_000_003).wrapping_add(i as u64))
            }
        };
        let demo = match demo {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("no demonstration for {}: {e}", game.source);
                continue;
            }
        };
        let Some(first) = demo.first() else { continue };
        let task = household_task(&first.obs).unwrap_or_else(|| game.task_description().into());
        let mut memory = Memory::new();
        for step in &demo {
            let prompt =
                household_prompt(&task, &step.obs, &step.admissible, &memory, history_length);
            out.push(SftExample {
                prompt,
                response: demo_response(&task, &step.action),
            });
            memory.store(step.obs.clone(), step.action.clone());
        }
    }
    Ok(out)
}

/// Text for a tiny policy's vocabulary: the demonstrations plus the first observation and
/// admissible commands of every training game.
pub fn household_corpus(tasks: &HouseholdTasks, examples: &[SftExample]) -> Vec<String> {
    let mut corpus: Vec<String> = examples
        .iter()
        .flat_map(|e| [e.prompt.clone(), e.response.clone()])
        .collect();
    // The chat template's role names.
    corpus.push("system user assistant tool".into());
    let mut env = HouseholdEnv::new(tasks.train.games.clone());
    for i in 0..tasks.train.games.len() {
        if let Ok(obs) = env.reset(i, 0) {
            corpus.push(obs.text);
            corpus.push(obs.admissible_actions.join(" \n "));
        }
    }
    corpus
}

/// Everything a household run builds from its config: the splits, the warm-start
/// demonstrations (also the tiny policy's vocabulary source; empty when neither needs them)
/// and the policy. `spear train` and `spear eval` share it, so a tiny policy's vocabulary is
/// rebuilt identically and its checkpoints fit.
pub fn household_run(
    cfg: &TrainConfig,
) -> anyhow::Result<(HouseholdTasks, Vec<SftExample>, Policy)> {
    let tasks = load_household(cfg)?;
    let n_demo = if cfg.sft.games == 0 {
        tasks.train.games.len()
    } else {
        cfg.sft.games as usize
    };
    // A tiny policy's vocabulary is built from the text, the demonstrations included.
    let examples = if cfg.sft.enabled || matches!(cfg.model.name, ModelSource::Tiny) {
        let h = &cfg.env.household;
        household_sft_examples(&tasks.train, n_demo, cfg.env.history_length as usize, h)?
    } else {
        vec![]
    };
    let policy = build_policy(cfg, || household_corpus(&tasks, &examples))?;
    Ok((tasks, examples, policy))
}

/// Shares games between threads.
pub type Games = Arc<Vec<Arc<spear_envs::household::Game>>>;

/// The household suite: the splits and the demonstrations.
pub struct HouseholdSuite {
    tasks: HouseholdTasks,
    sft: Vec<SftExample>,
    max_turns: usize,
}

impl HouseholdSuite {
    /// Builds the suite and the run's policy from the config.
    pub fn build(cfg: &TrainConfig) -> anyhow::Result<(Self, Policy)> {
        let (tasks, sft, policy) = household_run(cfg)?;
        Ok((
            HouseholdSuite {
                tasks,
                sft,
                max_turns: cfg.env.max_turns as usize,
            },
            policy,
        ))
    }

    /// The splits.
    pub fn tasks(&self) -> &HouseholdTasks {
        &self.tasks
    }
}

impl TaskSuite for HouseholdSuite {
    fn describe(&self) -> String {
        format!(
            "{} training games, {} evaluation splits, {} demonstrations",
            self.tasks.train.games.len(),
            self.tasks.evals.len(),
            self.sft.len()
        )
    }

    fn num_train_tasks(&self) -> usize {
        self.tasks.train.games.len()
    }

    fn eval_splits(&self) -> Vec<String> {
        self.tasks.evals.iter().map(|(n, _)| n.clone()).collect()
    }

    fn warm_start(&self) -> WarmStart<'_> {
        WarmStart::Text(&self.sft, "expert steps")
    }

    fn collect(
        &self,
        sampler: &dyn ChatSampler,
        tasks: &[usize],
        s: &CollectSettings,
    ) -> anyhow::Result<Collected> {
        let envs = HouseholdEnv::group(
            self.tasks.train.games.clone(),
            tasks.len() * s.group_size,
            self.max_turns,
        );
        collect_agent(sampler, envs, tasks, s)
    }

    fn evaluate(
        &self,
        sampler: &dyn ChatSampler,
        split: &str,
        s: &EvalSettings,
    ) -> anyhow::Result<EvalRecord> {
        let games = &self
            .tasks
            .evals
            .iter()
            .find(|(n, _)| n == split)
            .with_context(|| format!("no household split {split:?} in this run"))?
            .1;
        let (rec, _) = eval_agent(
            sampler,
            split,
            games.games.len(),
            |n| HouseholdEnv::group(games.games.clone(), n, s.max_turns),
            s,
        )?;
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spear_envs::household::TaskType;

    /// `demo_share` keeps about that share of a type's demonstration games, the same ones for
    /// the same generator seed, and leaves the other types' demonstrations as they were.
    #[test]
    fn demo_share_thins_one_task_type_out_of_the_warm_start() {
        let mut cfg = TrainConfig::default();
        let h = &mut cfg.env.household;
        h.task_types = vec![TaskType::PickAndPlaceSimple, TaskType::LookAtObjInLight];
        h.max_receptacles = 2;
        h.max_distractor_classes = 1;
        h.max_instances = 1;
        h.train_games = 200;
        cfg.eval.splits = vec![];
        let tasks = load_household(&cfg).unwrap();
        let looks = tasks
            .train
            .games
            .iter()
            .filter(|g| g.task_type == Some(TaskType::LookAtObjInLight))
            .count();
        assert!(looks > 50, "{looks} look-at games of 200");
        let task_of = |e: &SftExample| household_task(&e.prompt);
        let count = |h: &HouseholdConfig| {
            let ex = household_sft_examples(&tasks.train, 200, 2, h).unwrap();
            // One example per step; count games by their first step (no history yet).
            let firsts: Vec<&SftExample> = ex
                .iter()
                .filter(|e| e.prompt.contains("Your current observation is"))
                .collect();
            let look = firsts
                .iter()
                .filter(|e| {
                    task_of(e).is_some_and(|t| t.starts_with("look at") || t.starts_with("examine"))
                })
                .count();
            (firsts.len() - look, look, ex)
        };
        let (all_pick, all_look, all) = count(&cfg.env.household);
        assert_eq!(
            all_look, looks,
            "share 1: every look-at game is demonstrated"
        );
        cfg.env
            .household
            .demo_share
            .insert(TaskType::LookAtObjInLight, 0.2);
        let (pick, look, some) = count(&cfg.env.household);
        assert_eq!(pick, all_pick, "other types are untouched");
        assert!(
            look > 0 && look * 3 < looks,
            "{look} of {looks} look-at games kept at 0.2"
        );
        assert_eq!(some, count(&cfg.env.household).2, "same seed, same games");
        // Every kept example is one of the full set's.
        assert!(some
            .iter()
            .all(|e| all.iter().any(|a| a.prompt == e.prompt)));
        cfg.env
            .household
            .demo_share
            .insert(TaskType::LookAtObjInLight, 0.0);
        assert_eq!(count(&cfg.env.household).1, 0);
    }
}
