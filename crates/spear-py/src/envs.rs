//! Vectorised environments: `env_num` tasks × `group_n` copies (verl-agent's groups:
//! environment `i` belongs to group `i // group_n`, and the copies of a group reset to
//! the same task and seed). `reset` and `step` work on the whole batch; the steps run on
//! rayon threads with the GIL released, and only the conversion of the results to
//! Python objects holds it.
//!
//! A finished environment is not stepped again: until the next `reset` it repeats its
//! last observation and info with reward 0 and `done = True` (verl-agent's rollout loop
//! steps every environment and masks the finished ones).

use std::path::PathBuf;
use std::sync::Arc;

use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use spear_envs::household::{Game, GameSource, GeneratorConfig, HouseholdEnv, TaskType};
use spear_envs::math::data::aime::{aime_problems, AimeYear};
use spear_envs::math::data::generator::generate_set;
use spear_envs::math::data::MathProblem;
use spear_envs::math::sandbox::SandboxPool;
use spear_envs::math::{ChatTemplate, LoopConfig, MathEnv};
use spear_envs::webshop::{
    build_catalog, CatalogConfig, DataFiles, DataSource, Expert, GenerateOptions, GoalMode,
    WebShopEnv,
};
use spear_envs::{EnvError, Environment};

use crate::arrays::{bool_out, f64_out};
use crate::errors::{env_error, runtime_error, value_error};

/// Where the tasks of a batch come from.
enum Tasks {
    Household(Arc<Vec<Arc<Game>>>),
    /// The number of goals in the split.
    WebShop(usize),
    Math {
        problems: Arc<Vec<MathProblem>>,
        pool: SandboxPool,
    },
}

/// One environment of the batch.
enum SlotEnv {
    Household(HouseholdEnv),
    WebShop(WebShopEnv),
    /// A math environment is built on its one problem at each reset.
    Math(Option<MathEnv>),
}

impl SlotEnv {
    fn env(&self) -> Option<&dyn Environment> {
        match self {
            SlotEnv::Household(e) => Some(e),
            SlotEnv::WebShop(e) => Some(e),
            SlotEnv::Math(e) => e.as_ref().map(|e| e as &dyn Environment),
        }
    }

    fn env_mut(&mut self) -> Option<&mut dyn Environment> {
        match self {
            SlotEnv::Household(e) => Some(e),
            SlotEnv::WebShop(e) => Some(e),
            SlotEnv::Math(e) => e.as_mut().map(|e| e as &mut dyn Environment),
        }
    }
}

/// What one environment reports after a reset or a step.
#[derive(Clone, Default)]
struct View {
    obs: String,
    admissible: Vec<String>,
    reward: f64,
    done: bool,
    won: bool,
    task_score: Option<f64>,
    anchor: String,
    task: String,
    task_type: String,
    steps: usize,
    /// WebShop: the goal's index in the catalogue and `get_available_actions()`.
    goal_idx: Option<usize>,
    search_bar: bool,
    clickables: Vec<String>,
    /// Math: assistant messages with tool calls, the model's next input, why it ended.
    tool_calls: usize,
    context: String,
    stop_reason: Option<String>,
}

struct Slot {
    env: SlotEnv,
    /// WebShop's scripted oracle expert for the current episode.
    expert: Expert,
    task: usize,
    done: bool,
    steps: usize,
    last: View,
}

fn view_of(
    slot: &Slot,
    reward: f64,
    done: bool,
    won: bool,
    score: Option<f64>,
    obs: String,
    admissible: Vec<String>,
) -> View {
    let mut v = View {
        obs,
        admissible,
        reward,
        done,
        won,
        task_score: score,
        steps: slot.steps,
        ..View::default()
    };
    if let Some(e) = slot.env.env() {
        v.anchor = e.anchor();
        v.task = e.task_description().to_string();
        v.task_type = e.task_type().to_string();
    }
    match &slot.env {
        SlotEnv::Household(_) => {
            // TextWorld's score: 1 once the goal holds.
            v.task_score = Some(if won { 1.0 } else { 0.0 });
        }
        SlotEnv::WebShop(e) => {
            let (s, c) = e.available_actions();
            v.goal_idx = e.goal_index();
            v.search_bar = s;
            v.clickables = c;
        }
        SlotEnv::Math(Some(e)) => {
            if let Some(c) = e.conversation() {
                v.tool_calls = c.n_tool_calls();
                v.context = c.context_text();
                v.stop_reason = c.stop_reason().map(|r| format!("{r:?}"));
            }
        }
        SlotEnv::Math(None) => {}
    }
    v
}

fn reset_slot(slot: &mut Slot, tasks: &Tasks, task: usize, seed: u64) -> Result<View, EnvError> {
    if let (SlotEnv::Math(m), Tasks::Math { problems, pool }) = (&mut slot.env, tasks) {
        let p = problems.get(task).ok_or(EnvError::TaskOutOfRange {
            index: task,
            len: problems.len(),
        })?;
        *m = Some(MathEnv::new(
            vec![p.clone()],
            pool.clone(),
            LoopConfig::default(),
            ChatTemplate::qwen25(),
        ));
    }
    let env_task = if matches!(slot.env, SlotEnv::Math(_)) {
        0
    } else {
        task
    };
    let env = slot.env.env_mut().ok_or(EnvError::NotRunning)?;
    let obs = env.reset(env_task, seed)?;
    slot.task = task;
    slot.done = false;
    slot.steps = 0;
    slot.expert = Expert::new();
    let v = view_of(
        slot,
        0.0,
        false,
        false,
        None,
        obs.text,
        obs.admissible_actions,
    );
    slot.last = v.clone();
    Ok(v)
}

fn step_slot(slot: &mut Slot, action: &str) -> Result<View, EnvError> {
    if slot.done {
        let mut v = slot.last.clone();
        v.reward = 0.0;
        v.done = true;
        return Ok(v);
    }
    let env = slot.env.env_mut().ok_or(EnvError::NotRunning)?;
    let out = env.step(action)?;
    slot.steps += 1;
    slot.done = out.done;
    let v = view_of(
        slot,
        out.reward,
        out.done,
        out.won,
        out.task_score,
        out.observation.text,
        out.observation.admissible_actions,
    );
    slot.last = v.clone();
    Ok(v)
}

/// `env_num` × `group_n` environments of one kind.
#[pyclass(module = "spear_rs._native")]
struct VecEnv {
    kind: &'static str,
    tasks: Tasks,
    slots: Vec<Slot>,
    env_num: usize,
    group_n: usize,
    seed: u64,
    rng: ChaCha8Rng,
    resets: u64,
    task_names: Vec<String>,
}

impl VecEnv {
    fn new(
        kind: &'static str,
        tasks: Tasks,
        slots: Vec<SlotEnv>,
        env_num: usize,
        group_n: usize,
        seed: u64,
        task_names: Vec<String>,
    ) -> VecEnv {
        VecEnv {
            kind,
            tasks,
            slots: slots
                .into_iter()
                .map(|env| Slot {
                    env,
                    expert: Expert::new(),
                    task: 0,
                    done: true,
                    steps: 0,
                    last: View::default(),
                })
                .collect(),
            env_num,
            group_n,
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
            resets: 0,
            task_names,
        }
    }

    fn num_tasks(&self) -> usize {
        match &self.tasks {
            Tasks::Household(g) => g.len(),
            Tasks::WebShop(n) => *n,
            Tasks::Math { problems, .. } => problems.len(),
        }
    }

    /// The Python `(observations, rewards, dones, infos)` of a list of views.
    #[allow(clippy::type_complexity)]
    fn to_python<'py>(
        &self,
        py: Python<'py>,
        views: &[View],
    ) -> PyResult<(
        Bound<'py, PyList>,
        Bound<'py, PyArray1<f64>>,
        Bound<'py, PyArray1<bool>>,
        Bound<'py, PyList>,
    )> {
        let obs = PyList::new(py, views.iter().map(|v| v.obs.as_str()))?;
        let rewards = f64_out(py, views.iter().map(|v| v.reward).collect());
        let dones = bool_out(py, views.iter().map(|v| v.done).collect());
        let infos = PyList::empty(py);
        for (i, v) in views.iter().enumerate() {
            let d = PyDict::new(py);
            let task = self.slots[i].task;
            d.set_item("won", v.won)?;
            d.set_item("task_score", v.task_score)?;
            d.set_item("anchor", &v.anchor)?;
            d.set_item("task_id", task)?;
            d.set_item("task", &v.task)?;
            d.set_item("task_type", &v.task_type)?;
            d.set_item("group", i / self.group_n)?;
            d.set_item("step", v.steps)?;
            match self.kind {
                "household" => {
                    d.set_item("admissible_commands", &v.admissible)?;
                    d.set_item("observation_text", &v.obs)?;
                    d.set_item("extra.gamefile", &self.task_names[task])?;
                }
                "webshop" => {
                    let a = PyDict::new(py);
                    a.set_item("has_search_bar", v.search_bar)?;
                    a.set_item("clickables", &v.clickables)?;
                    d.set_item("available_actions", a)?;
                    d.set_item("goal_idx", v.goal_idx)?;
                }
                _ => {
                    d.set_item("problem_id", &self.task_names[task])?;
                    d.set_item("n_tool_calls", v.tool_calls)?;
                    d.set_item("context", &v.context)?;
                    d.set_item("stop_reason", &v.stop_reason)?;
                }
            }
            infos.append(d)?;
        }
        Ok((obs, rewards, dones, infos))
    }
}

#[pymethods]
impl VecEnv {
    /// Reset every environment. `task_ids` (one per group, `env_num` of them) picks the
    /// tasks; by default they are drawn with the batch's seeded RNG, distinct while the
    /// split has enough tasks. Returns `(observations, infos)`.
    #[pyo3(signature = (task_ids=None))]
    fn reset<'py>(
        &mut self,
        py: Python<'py>,
        task_ids: Option<Vec<usize>>,
    ) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>)> {
        let n_tasks = self.num_tasks();
        let ids = match task_ids {
            Some(ids) => {
                if ids.len() != self.env_num {
                    return Err(value_error(format!(
                        "task_ids has {} entries; give one task per group (env_num = {})",
                        ids.len(),
                        self.env_num
                    )));
                }
                ids
            }
            None if n_tasks == 0 => return Err(runtime_error("the split has no tasks")),
            None if self.env_num <= n_tasks => {
                sample(&mut self.rng, n_tasks, self.env_num).into_vec()
            }
            None => (0..self.env_num)
                .map(|_| self.rng.random_range(0..n_tasks))
                .collect(),
        };
        let base = self
            .seed
            .wrapping_add(self.resets.wrapping_mul(self.env_num as u64));
        self.resets += 1;
        let group_n = self.group_n;
        let tasks = &self.tasks;
        let slots = &mut self.slots;
        let views: Result<Vec<View>, EnvError> = py.detach(|| {
            slots
                .par_iter_mut()
                .enumerate()
                .map(|(i, slot)| {
                    let g = i / group_n;
                    reset_slot(slot, tasks, ids[g], base.wrapping_add(g as u64))
                })
                .collect()
        });
        let views = views.map_err(env_error)?;
        let (obs, _, _, infos) = self.to_python(py, &views)?;
        Ok((obs, infos))
    }

    /// Step every environment with its action. Returns
    /// `(observations, rewards, dones, infos)`; `rewards` is float64, `dones` bool.
    #[allow(clippy::type_complexity)]
    fn step<'py>(
        &mut self,
        py: Python<'py>,
        actions: Vec<String>,
    ) -> PyResult<(
        Bound<'py, PyList>,
        Bound<'py, PyArray1<f64>>,
        Bound<'py, PyArray1<bool>>,
        Bound<'py, PyList>,
    )> {
        if actions.len() != self.slots.len() {
            return Err(value_error(format!(
                "got {} actions for {} environments (env_num {} × group_n {})",
                actions.len(),
                self.slots.len(),
                self.env_num,
                self.group_n
            )));
        }
        if self.resets == 0 {
            return Err(runtime_error("step called before reset"));
        }
        let slots = &mut self.slots;
        let views: Result<Vec<View>, EnvError> = py.detach(|| {
            slots
                .par_iter_mut()
                .zip(actions.par_iter())
                .map(|(slot, a)| step_slot(slot, a))
                .collect()
        });
        let views = views.map_err(env_error)?;
        self.to_python(py, &views)
    }

    /// The current admissible (household) or available (WebShop) actions of every environment.
    #[getter]
    fn admissible_commands(&self) -> Vec<Vec<String>> {
        self.slots
            .iter()
            .map(|s| s.last.admissible.clone())
            .collect()
    }

    /// The expert's next action for every environment (None where there is none):
    /// household, the game's walkthrough command for the current step (an expert plan
    /// while the agent has followed the walkthrough); WebShop, the scripted oracle expert
    /// (it knows the goal's product; call once per step, it counts result pages); math, None.
    fn expert_actions(&mut self) -> Vec<Option<String>> {
        self.slots
            .iter_mut()
            .map(|s| match &s.env {
                SlotEnv::Household(e) => e
                    .playthrough()
                    .and_then(|p| p.game().walkthrough.as_ref())
                    .and_then(|w| w.get(s.steps).cloned()),
                SlotEnv::WebShop(e) if !s.done => Some(s.expert.act(e)),
                _ => None,
            })
            .collect()
    }

    /// Which environment: `"household"`, `"webshop"` or `"math"`.
    #[getter]
    fn kind(&self) -> &str {
        self.kind
    }

    /// Number of tasks (groups) per reset.
    #[getter]
    fn env_num(&self) -> usize {
        self.env_num
    }

    /// Copies per task.
    #[getter]
    fn group_n(&self) -> usize {
        self.group_n
    }

    /// `env_num × group_n`.
    #[getter]
    fn num_envs(&self) -> usize {
        self.slots.len()
    }

    /// Tasks in the split.
    #[getter]
    fn num_tasks_in_split(&self) -> usize {
        self.num_tasks()
    }

    /// The environments that have finished their episode.
    #[getter]
    fn dones<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<bool>> {
        bool_out(py, self.slots.iter().map(|s| s.done).collect())
    }

    /// The name of each task of the split (household: the game file or generator label;
    /// WebShop: the goal's ASIN; math: the problem id).
    #[getter]
    fn task_names(&self) -> Vec<String> {
        self.task_names.clone()
    }

    fn __len__(&self) -> usize {
        self.slots.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "VecEnv(kind={:?}, env_num={}, group_n={}, tasks={})",
            self.kind,
            self.env_num,
            self.group_n,
            self.num_tasks()
        )
    }

    /// Nothing to release (kept for verl-agent's `close()` calls).
    fn close(&self) {}
}

fn check_batch(env_num: usize, group_n: usize) -> PyResult<()> {
    if env_num == 0 || group_n == 0 {
        return Err(value_error(format!(
            "env_num ({env_num}) and group_n ({group_n}) must be at least 1"
        )));
    }
    Ok(())
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn parse_household_split(s: &str) -> PyResult<spear_envs::household::Split> {
    spear_envs::household::Split::parse(s).ok_or_else(|| {
        value_error(format!(
            "unknown split {s:?}: use \"train\", \"valid_seen\" or \"valid_unseen\""
        ))
    })
}

/// Household environments (ALFWorld-compatible) over generated games or ALFWorld's data.
#[pyfunction]
#[pyo3(signature = (env_num=1, group_n=1, seed=0, *, split="train", data_dir=None, num_games=None, games_seed=0, task_types=None, max_steps=50))]
#[allow(clippy::too_many_arguments)]
fn household_envs(
    py: Python<'_>,
    env_num: usize,
    group_n: usize,
    seed: u64,
    split: &str,
    data_dir: Option<PathBuf>,
    num_games: Option<usize>,
    games_seed: u64,
    task_types: Option<Vec<String>>,
    max_steps: usize,
) -> PyResult<VecEnv> {
    check_batch(env_num, group_n)?;
    let split = parse_household_split(split)?;
    let types: Vec<TaskType> = match task_types {
        None => TaskType::ALL.to_vec(),
        Some(v) => v
            .iter()
            .map(|t| {
                TaskType::parse(t).ok_or_else(|| {
                    value_error(format!(
                        "unknown task type {t:?}: use one of {}",
                        TaskType::ALL.map(|t| t.as_str()).join(", ")
                    ))
                })
            })
            .collect::<PyResult<_>>()?,
    };
    let source = match data_dir {
        Some(root) => GameSource::Alfworld {
            root: Some(root),
            split,
            task_types: types,
        },
        None => GameSource::Generated {
            config: GeneratorConfig {
                seed: games_seed,
                task_types: types,
                ..GeneratorConfig::default()
            },
            split,
            count: num_games,
        },
    };
    let set = py
        .detach(|| source.load(threads()))
        .map_err(runtime_error)?;
    let mut games = set.games;
    if let Some(n) = num_games {
        if n < games.len() {
            games = Arc::new(games[..n].to_vec());
        }
    }
    let names: Vec<String> = games
        .iter()
        .map(|g| {
            let t = g.task_type.map(|t| t.as_str()).unwrap_or("unknown");
            if g.source.contains(t) {
                g.source.clone()
            } else {
                format!("{t}:{}", g.source)
            }
        })
        .collect();
    let slots = HouseholdEnv::group(games.clone(), env_num * group_n, max_steps)
        .into_iter()
        .map(SlotEnv::Household)
        .collect();
    Ok(VecEnv::new(
        "household",
        Tasks::Household(games),
        slots,
        env_num,
        group_n,
        seed,
        names,
    ))
}

/// WebShop environments over a generated catalogue or WebShop's data files.
#[pyfunction]
#[pyo3(signature = (env_num=1, group_n=1, seed=0, *, split="train", products_file=None, attributes_file=None, human_file=None, limit=None, num_products=5000, products_seed=0, catalog_seed=42, human_goals=false, max_steps=15))]
#[allow(clippy::too_many_arguments)]
fn webshop_envs(
    py: Python<'_>,
    env_num: usize,
    group_n: usize,
    seed: u64,
    split: &str,
    products_file: Option<PathBuf>,
    attributes_file: Option<PathBuf>,
    human_file: Option<PathBuf>,
    limit: Option<usize>,
    num_products: usize,
    products_seed: u64,
    catalog_seed: u64,
    human_goals: bool,
    max_steps: usize,
) -> PyResult<VecEnv> {
    check_batch(env_num, group_n)?;
    let split = match split {
        "train" => spear_envs::webshop::Split::Train,
        "eval" | "test" => spear_envs::webshop::Split::Eval,
        "all" => spear_envs::webshop::Split::All,
        o => {
            return Err(value_error(format!(
                "unknown split {o:?}: use \"train\" (goals 500…), \"eval\" (goals 0–499) or \"all\""
            )))
        }
    };
    let source = match (products_file, attributes_file) {
        (Some(products), Some(attributes)) => DataSource::Real {
            files: DataFiles {
                products,
                attributes,
                human: human_file,
            },
            limit,
        },
        (None, None) => DataSource::Generated(GenerateOptions::new(num_products, products_seed)),
        _ => {
            return Err(value_error(
                "give both products_file (items_shuffle*.json) and attributes_file (items_ins_v2*.json), or neither for a generated catalogue",
            ))
        }
    };
    let cfg = CatalogConfig {
        source,
        goal_mode: if human_goals {
            GoalMode::Human
        } else {
            GoalMode::Synthetic
        },
        seed: catalog_seed,
    };
    let (catalog, _) = py.detach(|| build_catalog(&cfg)).map_err(runtime_error)?;
    let catalog = Arc::new(catalog);
    let slots: Vec<SlotEnv> = (0..env_num * group_n)
        .map(|_| {
            SlotEnv::WebShop(WebShopEnv::new(catalog.clone(), split).with_max_steps(max_steps))
        })
        .collect();
    let n = slots[0].env().map_or(0, |e| e.num_tasks());
    if n == 0 {
        return Err(runtime_error(format!(
            "the catalogue has {} goals: none in the {split:?} split",
            catalog.goals.len()
        )));
    }
    let start = match split {
        spear_envs::webshop::Split::Train => catalog.goals.len() - n,
        _ => 0,
    };
    let names = (0..n)
        .map(|i| catalog.goals[start + i].asin.clone())
        .collect();
    Ok(VecEnv::new(
        "webshop",
        Tasks::WebShop(n),
        slots,
        env_num,
        group_n,
        seed,
        names,
    ))
}

/// Math environments: one conversation per environment, tool calls run in the sandbox.
#[pyfunction]
#[pyo3(signature = (problems, env_num=1, group_n=1, seed=0, *, interpreter))]
fn math_envs(
    problems: &Bound<'_, PyAny>,
    env_num: usize,
    group_n: usize,
    seed: u64,
    interpreter: PyRef<'_, crate::sandbox::CodeInterpreter>,
) -> PyResult<VecEnv> {
    check_batch(env_num, group_n)?;
    let problems: Vec<MathProblem> = if let Ok(name) = problems.extract::<String>() {
        if let Some(year) = AimeYear::parse(&name) {
            aime_problems(year)
        } else if let Some(n) = name.strip_prefix("generated:") {
            let n: usize = n
                .parse()
                .map_err(|_| value_error(format!("{name:?}: expected \"generated:<count>\"")))?;
            generate_set(n, seed, &[])
                .into_iter()
                .map(|g| g.problem)
                .collect()
        } else {
            return Err(value_error(format!(
                "unknown problem set {name:?}: use \"aime2024\", \"aime2025\", \"generated:<count>\" or a list of dicts with problem and answer"
            )));
        }
    } else {
        let rows: Vec<Bound<'_, PyDict>> = problems.extract().map_err(|_| {
            value_error("problems must be a set name or a list of dicts {\"problem\", \"answer\", \"id\"?, \"data_source\"?}")
        })?;
        rows.iter()
            .enumerate()
            .map(|(i, r)| {
                let get = |k: &str| -> PyResult<Option<String>> {
                    match r.get_item(k)? {
                        Some(v) => Ok(Some(v.str()?.to_string())),
                        None => Ok(None),
                    }
                };
                Ok(MathProblem {
                    id: get("id")?.unwrap_or_else(|| i.to_string()),
                    problem: get("problem")?.ok_or_else(|| {
                        value_error(format!("problem {i} has no \"problem\" key"))
                    })?,
                    answer: get("answer")?
                        .ok_or_else(|| value_error(format!("problem {i} has no \"answer\" key")))?,
                    data_source: get("data_source")?.unwrap_or_else(|| "math_dapo".into()),
                })
            })
            .collect::<PyResult<_>>()?
    };
    if problems.is_empty() {
        return Err(value_error("no problems"));
    }
    let names = problems.iter().map(|p| p.id.clone()).collect();
    let slots = (0..env_num * group_n)
        .map(|_| SlotEnv::Math(None))
        .collect();
    Ok(VecEnv::new(
        "math",
        Tasks::Math {
            problems: Arc::new(problems),
            pool: interpreter.pool.clone(),
        },
        slots,
        env_num,
        group_n,
        seed,
        names,
    ))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<VecEnv>()?;
    m.add_function(wrap_pyfunction!(household_envs, m)?)?;
    m.add_function(wrap_pyfunction!(webshop_envs, m)?)?;
    m.add_function(wrap_pyfunction!(math_envs, m)?)?;
    Ok(())
}
