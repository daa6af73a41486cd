//! `spear` commands of the household area (issue #3): play, replay, generate, bench.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use rand::seq::IndexedRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use spear_envs::household::generator::{
    generate as generate_game, write_game, GeneratorConfig, Split,
};
use spear_envs::household::{Game, HouseholdEnv, Playthrough, TaskType};
use spear_envs::Environment;

/// Generator knobs shared by several commands.
#[derive(Args, Debug, Clone)]
pub struct GenKnobs {
    /// Master seed of the generator.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Comma-separated task types (default: all six).
    #[arg(long, value_delimiter = ',')]
    pub task_types: Vec<String>,
    /// Keep at most this many receptacles per room.
    #[arg(long)]
    pub max_receptacles: Option<usize>,
    /// Keep at most this many distractor object classes per room.
    #[arg(long)]
    pub max_distractor_classes: Option<usize>,
    /// At most this many instances per object class.
    #[arg(long, default_value_t = 3)]
    pub max_instances: usize,
}

impl GenKnobs {
    fn config(&self) -> anyhow::Result<GeneratorConfig> {
        let task_types = if self.task_types.is_empty() {
            TaskType::ALL.to_vec()
        } else {
            self.task_types
                .iter()
                .map(|s| {
                    TaskType::parse(s.trim()).with_context(|| {
                        format!(
                            "unknown task type {s:?}; use one of: {}",
                            TaskType::ALL.map(|t| t.as_str()).join(", ")
                        )
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?
        };
        Ok(GeneratorConfig {
            seed: self.seed,
            task_types,
            max_receptacles: self.max_receptacles,
            max_distractor_classes: self.max_distractor_classes,
            max_instances: self.max_instances,
        })
    }
}

fn parse_split(s: &str) -> anyhow::Result<Split> {
    Split::parse(s)
        .with_context(|| format!("unknown split {s:?}; use train, valid_seen or valid_unseen"))
}

/// Arguments of `spear env play household`.
#[derive(Args, Debug)]
pub struct PlayArgs {
    /// Play a `game.tw-pddl` file instead of a generated game.
    #[arg(long, conflicts_with = "seed")]
    pub game: Option<PathBuf>,
    /// Generator seed of the game to play (game `--index` of `--split`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Index of the generated game in its split.
    #[arg(long, default_value_t = 0)]
    pub index: usize,
    /// Split of the generated game.
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Step cap.
    #[arg(long, default_value_t = 50, value_parser = crate::cli::at_least_one)]
    pub max_steps: usize,
}

fn load_or_generate(
    game: &Option<PathBuf>,
    seed: u64,
    split: &str,
    index: usize,
) -> anyhow::Result<Game> {
    match game {
        Some(p) => Ok(Game::load(p)?),
        None => {
            let cfg = GeneratorConfig {
                seed,
                ..Default::default()
            };
            Ok(generate_game(&cfg, parse_split(split)?, index)?.game)
        }
    }
}

/// Runs `spear env play household`.
pub fn play(args: PlayArgs) -> anyhow::Result<()> {
    let game = load_or_generate(&args.game, args.seed.unwrap_or(0), &args.split, args.index)?;
    let mut env = HouseholdEnv::with_max_steps(Arc::new(vec![Arc::new(game)]), args.max_steps);
    let mut obs = env.reset(0, 0)?;
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    println!("Type a command, or the number of one of the admissible commands; `quit` to stop.\n");
    loop {
        println!("{}\n", obs.text);
        for (i, c) in obs.admissible_actions.iter().enumerate() {
            println!("  {:>2}. {c}", i + 1);
        }
        print!("\n[step {}/{}] > ", env.steps() + 1, env.max_steps());
        out.flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim();
        if line == "quit" || line == "exit" {
            return Ok(());
        }
        let cmd = match line.parse::<usize>() {
            Ok(n) if n >= 1 && n <= obs.admissible_actions.len() => {
                obs.admissible_actions[n - 1].clone()
            }
            _ => line.to_string(),
        };
        let o = env.step(&cmd)?;
        obs = o.observation;
        if o.done {
            println!("{}\n", obs.text);
            if o.won {
                println!("You won in {} steps (reward {}).", env.steps(), o.reward);
            } else {
                println!("Out of steps ({}).", env.max_steps());
            }
            return Ok(());
        }
    }
}

/// Arguments of `spear env replay household`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The `game.tw-pddl` file.
    #[arg(long)]
    pub game: PathBuf,
    /// A file with one command per line.
    #[arg(long)]
    pub actions: PathBuf,
}

/// Runs `spear env replay household`: one JSON object per step, the first for
/// the reset; `done` is TextWorld's (`= won`), and the game goes on after a win
/// like the Python engine.
pub fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let game = Game::load(&args.game)?;
    let actions = std::fs::read_to_string(&args.actions)
        .with_context(|| format!("cannot read the actions file {}", args.actions.display()))?;
    let mut p = Playthrough::new(Arc::new(game));
    let out = std::io::stdout();
    let mut out = out.lock();
    let emit = |out: &mut std::io::StdoutLock, p: &Playthrough| -> anyhow::Result<()> {
        let v = serde_json::json!({"obs": p.obs(), "admissible": p.admissible(), "won": p.won(), "done": p.won()});
        writeln!(out, "{v}")?;
        Ok(())
    };
    emit(&mut out, &p)?;
    for line in actions.lines() {
        p.step_fast(line);
        emit(&mut out, &p)?;
    }
    Ok(())
}

/// Arguments of `spear env generate household`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Split to generate: train, valid_seen, valid_unseen (or `all`).
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Output directory (games go to `<out>/<split>/<task dir>/<trial>/game.tw-pddl`).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of games (default: ALFWorld's split size, 3553 / 140 / 134).
    #[arg(long)]
    pub count: Option<usize>,
    /// Index of the first game.
    #[arg(long, default_value_t = 0)]
    pub start: usize,
    #[command(flatten)]
    pub knobs: GenKnobs,
}

fn generate_cmd(args: &GenerateArgs) -> anyhow::Result<()> {
    let cfg = args.knobs.config()?;
    let splits: Vec<Split> = if args.split == "all" {
        Split::ALL.to_vec()
    } else {
        vec![parse_split(&args.split)?]
    };
    for split in splits {
        let n = args.count.unwrap_or(split.default_size());
        let end = args.start.checked_add(n).with_context(|| {
            format!(
                "--start {} --count {n}: the last index would overflow; choose a smaller --start",
                args.start
            )
        })?;
        let bar = indicatif::ProgressBar::new(n as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(split.as_str().to_string());
        for i in args.start..end {
            let g = generate_game(&cfg, split, i)?;
            write_game(&args.out, &g)?;
            bar.inc(1);
        }
        bar.finish();
        eprintln!(
            "wrote {n} {} games under {}",
            split.as_str(),
            args.out.display()
        );
    }
    Ok(())
}

/// Runs `spear env generate household`.
pub fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    generate_cmd(&args)
}

/// Arguments of `spear bench env household`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Number of generated games to cycle through.
    #[arg(long, default_value_t = 64, value_parser = crate::cli::at_least_one)]
    pub games: usize,
    /// Steps to time.
    #[arg(long, default_value_t = 200_000, value_parser = crate::cli::at_least_one)]
    pub steps: usize,
    /// Live environments for the memory measurement.
    #[arg(long, default_value_t = 256)]
    pub live_envs: usize,
    /// Seed (games and the random policy).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs `spear bench env household`.
pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    if args.games == 0 || args.steps == 0 {
        bail!("--games and --steps must be at least 1");
    }
    let cfg = GeneratorConfig {
        seed: args.seed,
        ..Default::default()
    };
    let t0 = Instant::now();
    let mut games = Vec::with_capacity(args.games);
    for i in 0..args.games {
        games.push(Arc::new(generate_game(&cfg, Split::Train, i)?.game));
    }
    let gen_s = t0.elapsed().as_secs_f64();
    let games = Arc::new(games);
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut env = HouseholdEnv::new(games.clone());
    // Resets included.
    let mut task = 0usize;
    let mut obs = env.reset(task, 0)?;
    let t = Instant::now();
    let mut resets = 0usize;
    for _ in 0..args.steps {
        let a = obs
            .admissible_actions
            .choose(&mut rng)
            .cloned()
            .unwrap_or_default();
        let o = env.step(&a)?;
        obs = o.observation;
        if o.done {
            task = (task + 1) % games.len();
            obs = env.reset(task, 0)?;
            resets += 1;
        }
    }
    let with_resets = args.steps as f64 / t.elapsed().as_secs_f64();
    // Resets excluded: time only the steps.
    let mut step_time = 0.0;
    let mut obs = env.reset(0, 0)?;
    let mut task = 0;
    for _ in 0..args.steps {
        let a = obs
            .admissible_actions
            .choose(&mut rng)
            .cloned()
            .unwrap_or_default();
        let t = Instant::now();
        let o = env.step(&a)?;
        step_time += t.elapsed().as_secs_f64();
        obs = o.observation;
        if o.done {
            task = (task + 1) % games.len();
            obs = env.reset(task, 0)?;
        }
    }
    let without_resets = args.steps as f64 / step_time;
    // Memory per live environment: heap each reset-and-stepped environment owns
    // (the games are shared by all copies, as in training).
    let mut live = Vec::with_capacity(args.live_envs);
    for i in 0..args.live_envs {
        let mut e = HouseholdEnv::new(games.clone());
        let o = e.reset(i % games.len(), 0)?;
        let a = o.admissible_actions.first().cloned().unwrap_or_default();
        e.step(&a)?;
        live.push(e);
    }
    let owned: usize = live.iter().map(HouseholdEnv::owned_bytes).sum();
    println!("household env benchmark (one core, random admissible actions, 50-step cap)");
    println!(
        "  games: {} generated in {:.2}s ({:.1} ms/game incl. planner)",
        games.len(),
        gen_s,
        1e3 * gen_s / games.len() as f64
    );
    println!("  steps/s, resets included: {with_resets:.0} ({resets} resets)");
    println!("  steps/s, resets excluded: {without_resets:.0}");
    println!(
        "  memory per live env (owned heap, games shared): {:.1} KiB mean, {:.1} KiB max over {} envs",
        owned as f64 / 1024.0 / args.live_envs.max(1) as f64,
        live.iter().map(HouseholdEnv::owned_bytes).max().unwrap_or(0) as f64 / 1024.0,
        args.live_envs
    );
    drop(live);
    Ok(())
}
