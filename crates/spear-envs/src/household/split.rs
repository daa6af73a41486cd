//! Building a split of games for training or evaluation, and expert
//! demonstrations for a supervised warm start (the trainer's entry points).

use std::path::PathBuf;
use std::sync::Arc;

use super::dataset::{load_split, resolve_root, Skip};
use super::error::HouseholdError;
use super::game::Game;
use super::generator::{generate, GeneratorConfig, Split};
use super::play::Playthrough;
use super::task::TaskType;

/// Where a split's games come from.
#[derive(Debug, Clone)]
pub enum GameSource {
    /// The procedural generator (offline default).
    Generated {
        /// Generator knobs and seed.
        config: GeneratorConfig,
        /// Which split.
        split: Split,
        /// How many games (`None`: ALFWorld's size for the split).
        count: Option<usize>,
    },
    /// Real ALFWorld data (`json_2.1.1` tree).
    Alfworld {
        /// The data root (`None`: `$ALFWORLD_DATA`).
        root: Option<PathBuf>,
        /// Which split.
        split: Split,
        /// Wanted task types.
        task_types: Vec<TaskType>,
    },
}

/// A loaded split.
#[derive(Debug, Clone)]
pub struct GameSet {
    /// The games, shared by every environment of the split.
    pub games: Arc<Vec<Arc<Game>>>,
    /// Trial directories skipped by the ALFWorld loader and why (empty for generated games).
    pub skipped: Vec<(PathBuf, Skip)>,
}

/// Generate `count` games of `split` on up to `threads` threads (same result for any thread count).
pub fn generate_split(
    cfg: &GeneratorConfig,
    split: Split,
    count: usize,
    threads: usize,
) -> Result<Vec<Arc<Game>>, HouseholdError> {
    let threads = threads.clamp(1, 64);
    let chunk = count.div_ceil(threads).max(1);
    let results: Vec<Result<Vec<Arc<Game>>, HouseholdError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..count)
            .step_by(chunk)
            .map(|start| {
                s.spawn(move || {
                    (start..(start + chunk).min(count))
                        .map(|i| generate(cfg, split, i).map(|g| Arc::new(g.game)))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(HouseholdError::Invalid("generator thread panicked".into()))
                })
            })
            .collect()
    });
    let mut out = Vec::with_capacity(count);
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

impl GameSource {
    /// Load or generate the games.
    pub fn load(&self, threads: usize) -> Result<GameSet, HouseholdError> {
        match self {
            GameSource::Generated {
                config,
                split,
                count,
            } => {
                let n = count.unwrap_or(split.default_size());
                Ok(GameSet {
                    games: Arc::new(generate_split(config, *split, n, threads)?),
                    skipped: vec![],
                })
            }
            GameSource::Alfworld {
                root,
                split,
                task_types,
            } => {
                let root = resolve_root(root.as_deref())?;
                let rep = load_split(&root, split.as_str(), task_types)?;
                if rep.games.is_empty() {
                    return Err(HouseholdError::Invalid(format!(
                        "no playable games under {}/{} ({} trial directories skipped)",
                        root.display(),
                        split.as_str(),
                        rep.skipped.len()
                    )));
                }
                Ok(GameSet {
                    games: Arc::new(rep.games),
                    skipped: rep.skipped,
                })
            }
        }
    }
}

/// One step of an expert demonstration.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpertStep {
    /// Observation before the action (the intro for the first step).
    pub obs: String,
    /// Admissible commands before the action.
    pub admissible: Vec<String>,
    /// The expert's command.
    pub action: String,
}

/// The walkthrough of a game replayed into (observation, admissible, action)
/// triples; uses the file's walkthrough or else the planner's. Errors if the
/// walkthrough does not win.
pub fn expert_demo(game: &Arc<Game>) -> Result<Vec<ExpertStep>, HouseholdError> {
    replay_demo(game, expert_plan(game)?)
}

/// A *searching* expert's demonstration: the walkthrough, except that before its first
/// `go to` the expert visits the room's other receptacles in a random order (seeded by
/// `seed`) until it reaches the walkthrough's one, as an agent that cannot see inside
/// receptacles would. Its position in the random order is uniform, so with `n` places to go
/// the expert goes straight there with probability 1/n. A warm start on these leaves the
/// first choice of where to look spread over the room, which is what RL then sharpens
/// (docs/training.md, "Issue 18"). Where the detours would make the walkthrough fail, the
/// demonstration is the walkthrough. Errors like [`expert_demo`].
pub fn searching_expert_demo(
    game: &Arc<Game>,
    seed: u64,
) -> Result<Vec<ExpertStep>, HouseholdError> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let plan = expert_plan(game)?;
    let Some(first_go) = plan.iter().position(|a| a.starts_with("go to ")) else {
        return replay_demo(game, plan);
    };
    // The admissible `go to`s where the walkthrough's first one is taken.
    let mut p = Playthrough::new(game.clone());
    for a in &plan[..first_go] {
        if !p.step_fast(a) {
            return replay_demo(game, plan);
        }
    }
    let mut places: Vec<String> = p
        .admissible()
        .into_iter()
        .filter(|a| a.starts_with("go to "))
        .collect();
    if !places.contains(&plan[first_go]) {
        return replay_demo(game, plan);
    }
    places.sort();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    places.shuffle(&mut rng);
    let detours: Vec<String> = places
        .into_iter()
        .take_while(|a| *a != plan[first_go])
        .collect();
    let mut searched = plan[..first_go].to_vec();
    searched.extend(detours);
    searched.extend_from_slice(&plan[first_go..]);
    // A detour can make a later walkthrough step inadmissible (a `go to` a place that shares
    // the detour's location); then this game's demonstration is the walkthrough.
    replay_demo(game, searched).or_else(|_| replay_demo(game, plan))
}

/// The file's walkthrough, or else the planner's.
fn expert_plan(game: &Arc<Game>) -> Result<Vec<String>, HouseholdError> {
    Ok(match &game.walkthrough {
        Some(w) => w.clone(),
        None => {
            super::planner::plan(game, super::planner::DEFAULT_NODE_LIMIT).ok_or_else(|| {
                HouseholdError::Invalid(format!("{}: the planner found no plan", game.source))
            })?
        }
    })
}

/// Replays `plan` into (observation, admissible, action) triples; errors if a command is not
/// admissible or the plan does not win.
fn replay_demo(game: &Arc<Game>, plan: Vec<String>) -> Result<Vec<ExpertStep>, HouseholdError> {
    let mut p = Playthrough::new(game.clone());
    let mut steps = Vec::with_capacity(plan.len());
    for a in plan {
        steps.push(ExpertStep {
            obs: p.obs().to_string(),
            admissible: p.admissible(),
            action: a.clone(),
        });
        if !p.step_fast(&a) {
            return Err(HouseholdError::Invalid(format!(
                "{}: walkthrough command {a:?} is not admissible",
                game.source
            )));
        }
    }
    if !p.won() {
        return Err(HouseholdError::Invalid(format!(
            "{}: walkthrough does not reach the goal",
            game.source
        )));
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threaded_generation_matches_sequential_and_demos_win() {
        let cfg = GeneratorConfig {
            seed: 2,
            ..Default::default()
        };
        let a = generate_split(&cfg, Split::Train, 7, 1).unwrap();
        let b = generate_split(&cfg, Split::Train, 7, 3).unwrap();
        assert_eq!(a.len(), 7);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.walkthrough, y.walkthrough);
            assert_eq!(x.task_line, y.task_line);
        }
        let demo = expert_demo(&a[0]).unwrap();
        assert_eq!(demo.len(), a[0].walkthrough.as_ref().unwrap().len());
        assert!(demo[0].obs.starts_with("-= Welcome"));
        assert!(demo.iter().all(|s| s.admissible.contains(&s.action)));
        let set = GameSource::Generated {
            config: cfg,
            split: Split::ValidUnseen,
            count: Some(3),
        }
        .load(2)
        .unwrap();
        assert_eq!(set.games.len(), 3);
    }

    /// The searching expert wins every game, keeps the walkthrough after its detours, takes
    /// only admissible `go to`s as detours, is a function of its seed, and goes straight to the
    /// walkthrough's place in some games and detours in others.
    #[test]
    fn searching_expert_detours_then_follows_the_walkthrough() {
        let cfg = GeneratorConfig {
            seed: 5,
            ..Default::default()
        };
        let games = generate_split(&cfg, Split::Train, 24, 2).unwrap();
        let (mut straight, mut detoured) = (0, 0);
        for (i, g) in games.iter().enumerate() {
            let plan = g.walkthrough.clone().unwrap();
            let demo = searching_expert_demo(g, i as u64).unwrap();
            assert_eq!(demo, searching_expert_demo(g, i as u64).unwrap());
            assert!(demo.iter().all(|s| s.admissible.contains(&s.action)));
            let extra = demo.len() - plan.len();
            let actions: Vec<&str> = demo.iter().map(|s| s.action.as_str()).collect();
            let first_go = plan.iter().position(|a| a.starts_with("go to ")).unwrap();
            assert_eq!(
                actions[..first_go],
                plan[..first_go]
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()[..]
            );
            assert!(actions[first_go..first_go + extra]
                .iter()
                .all(|a| a.starts_with("go to ") && *a != plan[first_go]));
            assert_eq!(
                actions[first_go + extra..],
                plan[first_go..]
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()[..]
            );
            if extra == 0 {
                straight += 1;
            } else {
                detoured += 1;
            }
        }
        assert!(
            straight > 0 && detoured > 0,
            "{straight} straight, {detoured} detoured"
        );
    }
}
