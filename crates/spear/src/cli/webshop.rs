//! `spear` commands of the WebShop area (issue #6): play, replay, score, fuzz, bench.

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use spear_envs::webshop::fuzz::{token_set_ratio_with, RatioKind};
use spear_envs::webshop::score_case::score_case;
use spear_envs::webshop::search::SEARCH_RETURN_N;
use spear_envs::webshop::{
    build_catalog, run_expert, Catalog, CatalogConfig, DataFiles, DataSource, GenerateOptions,
    GoalMode, Split, WebShopEnv,
};
use spear_envs::Environment;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Which goals the task index addresses.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SplitArg {
    /// Goals 0–499 (verl-agent validation).
    Eval,
    /// Goals 500+ (verl-agent training).
    Train,
    /// Every goal.
    All,
}

impl From<SplitArg> for Split {
    fn from(s: SplitArg) -> Self {
        match s {
            SplitArg::Eval => Split::Eval,
            SplitArg::Train => Split::Train,
            SplitArg::All => Split::All,
        }
    }
}

/// Where the catalogue comes from (shared by play, replay).
#[derive(Args, Debug, Clone)]
pub struct CatalogArgs {
    /// Directory with WebShop's real files (`items_shuffle_1000.json`, `items_ins_v2_1000.json`,
    /// optional `items_human_ins.json`); without it a catalogue is generated offline.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// With --data-dir: use the full files (`items_shuffle.json`, `items_ins_v2.json`).
    #[arg(long)]
    pub full: bool,
    /// With --data-dir: keep only the first N product records (the original's num_products).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Number of generated products.
    #[arg(long, default_value_t = 5000)]
    pub products: usize,
    /// Seed of the generator.
    #[arg(long, default_value_t = 0)]
    pub gen_seed: u64,
    /// Seed of the drawn prices, price limits and goal order.
    #[arg(long, default_value_t = 42)]
    pub catalog_seed: u64,
    /// Human goals (needs items_human_ins.json) instead of synthetic goals.
    #[arg(long)]
    pub human_goals: bool,
    /// Which goals the task index addresses.
    #[arg(long, value_enum, default_value_t = SplitArg::Eval)]
    pub split: SplitArg,
}

impl CatalogArgs {
    fn build(&self) -> anyhow::Result<Arc<Catalog>> {
        let source = match &self.data_dir {
            Some(dir) => DataSource::Real {
                files: DataFiles::in_dir(dir, !self.full),
                limit: self.limit,
            },
            None => DataSource::Generated(GenerateOptions::new(self.products, self.gen_seed)),
        };
        let cfg = CatalogConfig {
            source,
            goal_mode: if self.human_goals {
                GoalMode::Human
            } else {
                GoalMode::Synthetic
            },
            seed: self.catalog_seed,
        };
        eprintln!("building the WebShop catalogue…");
        let t = Instant::now();
        let (cat, reports) =
            build_catalog(&cfg).context("loading the WebShop data (check --data-dir)")?;
        for (path, r) in &reports {
            eprintln!(
                "{}: {} records, {} kept, {} bad asin, {} duplicates, {} malformed",
                path.display(),
                r.records,
                r.kept,
                r.bad_asin,
                r.duplicates,
                r.malformed
            );
            for e in &r.examples {
                eprintln!("  {e}");
            }
        }
        eprintln!(
            "{} products, {} goals in {:.2}s",
            cat.products.len(),
            cat.goals.len(),
            t.elapsed().as_secs_f64()
        );
        if cat.goals.is_empty() {
            bail!("the catalogue has no goals (human goals need items_human_ins.json; synthetic goals need instructions in items_ins_v2)");
        }
        Ok(Arc::new(cat))
    }
}

/// Arguments of `spear env play webshop`.
#[derive(Args, Debug)]
pub struct PlayArgs {
    /// Task index within the split.
    #[arg(long, default_value_t = 0)]
    pub goal: usize,
    /// Episode seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Catalogue options.
    #[command(flatten)]
    pub catalog: CatalogArgs,
}

fn show(env: &WebShopEnv) {
    println!("\n{}", env.formatted_observation());
    println!("actions:\n{}", env.available_actions_field());
}

/// Runs `spear env play webshop`.
pub fn play(args: PlayArgs) -> anyhow::Result<()> {
    let cat = args.catalog.build()?;
    let mut env = WebShopEnv::new(cat, args.catalog.split.into());
    env.reset(args.goal, args.seed)?;
    println!("Task: {}", env.task_description());
    println!("Type an action such as search[red shoes] or click[buy now]; 'quit' ends.");
    show(&env);
    let stdin = std::io::stdin();
    loop {
        print!("> ");
        std::io::stdout().flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            return Ok(());
        }
        let action = line.trim_end_matches(['\n', '\r']);
        if action == "quit" {
            return Ok(());
        }
        let out = env.step(action)?;
        if out.done {
            println!("\n{}", out.observation.text);
            println!(
                "done: score {} (won: {})",
                out.task_score.unwrap_or(0.0),
                out.won
            );
            if let Some(b) = env.last_reward_breakdown() {
                println!("{}", serde_json::to_string(b)?);
            }
            return Ok(());
        }
        show(&env);
    }
}

/// Arguments of `spear env replay webshop`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Task index within the split.
    #[arg(long)]
    pub goal: usize,
    /// A file with one action per line (blank lines skipped), or `expert` to replay the scripted expert.
    #[arg(long)]
    pub actions: String,
    /// Episode seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Catalogue options.
    #[command(flatten)]
    pub catalog: CatalogArgs,
}

fn step_json(
    env: &WebShopEnv,
    obs: &str,
    reward: f64,
    done: bool,
    won: bool,
    action: Option<&str>,
) -> serde_json::Value {
    serde_json::json!({
        "action": action,
        "obs": obs,
        "available_actions": env.formatted_actions(),
        "reward": reward,
        "done": done,
        "won": won,
    })
}

/// Runs `spear env replay webshop`: the reset state, then one JSON object per step.
/// `reward` is the env's raw reward (WebShop's score; verl-agent's training reward
/// is 10·won).
pub fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let cat = args.catalog.build()?;
    let mut env = WebShopEnv::new(cat, args.catalog.split.into());
    let actions: Vec<String> = if args.actions == "expert" {
        run_expert(&mut env, args.goal, args.seed)?.actions
    } else {
        let text = std::fs::read_to_string(&args.actions)
            .with_context(|| format!("reading actions file {}", args.actions))?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    };
    let obs = env.reset(args.goal, args.seed)?;
    let out = std::io::stdout();
    let mut out = out.lock();
    writeln!(
        out,
        "{}",
        step_json(&env, &obs.text, 0.0, false, false, None)
    )?;
    for a in &actions {
        let s = env.step(a)?;
        let score = s.task_score.unwrap_or(0.0);
        writeln!(
            out,
            "{}",
            step_json(&env, &s.observation.text, score, s.done, s.won, Some(a))
        )?;
        if s.done {
            break;
        }
    }
    Ok(())
}

/// Arguments of `spear score webshop`.
#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// A JSON file `{"product": …, "goal": …, "selected_options": …, "price": …}` in WebShop's dict shapes.
    pub case: PathBuf,
    /// Also print the matched counts, query/category matches and the title score.
    #[arg(long)]
    pub verbose: bool,
}

/// Runs `spear score webshop`.
pub fn score(args: ScoreArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.case)
        .with_context(|| format!("reading {}", args.case.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", args.case.display()))?;
    let b = score_case(&v).with_context(|| format!("{}", args.case.display()))?;
    let out = if args.verbose {
        serde_json::to_value(&b)?
    } else {
        serde_json::json!({"r_type": b.r_type, "r_att": b.r_att, "r_option": b.r_option, "r_price": b.r_price, "total": b.total})
    };
    println!("{out}");
    Ok(())
}

/// Arguments of `spear score fuzz`.
#[derive(Args, Debug)]
pub struct FuzzArgs {
    /// First string.
    pub a: String,
    /// Second string.
    pub b: String,
    /// Use the Levenshtein (python-Levenshtein) ratio instead of difflib.
    #[arg(long)]
    pub levenshtein: bool,
}

/// Runs `spear score fuzz`.
pub fn fuzz(args: FuzzArgs) -> anyhow::Result<()> {
    let kind = if args.levenshtein {
        RatioKind::Levenshtein
    } else {
        RatioKind::Difflib
    };
    println!("{}", token_set_ratio_with(&args.a, &args.b, kind));
    Ok(())
}

/// Arguments of `spear bench env webshop`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Catalogue sizes (generated products).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1000usize, 100_000])]
    pub products: Vec<usize>,
    /// Searches per size.
    #[arg(long, default_value_t = 2000, value_parser = crate::cli::at_least_one)]
    pub searches: usize,
    /// Expert episodes per size (their steps give steps/s).
    #[arg(long, default_value_t = 500, value_parser = crate::cli::at_least_one)]
    pub episodes: usize,
    /// Products with instructions (goals), as in the real full set (~12k of 1.18M).
    #[arg(long, default_value_t = 10_000)]
    pub instructed: usize,
}

fn rss_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `spear bench env webshop`.
pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    for &n in &args.products {
        let rss0 = rss_kib("VmRSS:").unwrap_or(0);
        let t = Instant::now();
        let products = spear_envs::webshop::generate::generate_products(GenerateOptions {
            instructed: Some(args.instructed),
            ..GenerateOptions::new(n, 0)
        });
        let gen_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let cat = Arc::new(Catalog::new(products, GoalMode::Synthetic, 42));
        let build_s = t.elapsed().as_secs_f64();
        let rss1 = rss_kib("VmRSS:").unwrap_or(0);
        // searches: the goals' key terms (what an agent types)
        let queries: Vec<String> = cat
            .goals
            .iter()
            .take(args.searches)
            .map(|g| spear_envs::webshop::expert::key_terms(&g.instruction_text, &g.goal_options))
            .collect();
        let t = Instant::now();
        let mut hits = 0usize;
        for q in &queries {
            hits += cat.index.search(q, SEARCH_RETURN_N).len();
        }
        let search_s = t.elapsed().as_secs_f64();
        // env steps: expert episodes on eval goals
        let mut env = WebShopEnv::new(cat.clone(), Split::All);
        let episodes = args.episodes.min(env.num_tasks());
        let t = Instant::now();
        let (mut steps, mut won, mut score) = (0usize, 0usize, 0.0);
        for task in 0..episodes {
            let ep = run_expert(&mut env, task, 0)?;
            steps += ep.actions.len();
            won += usize::from(ep.won);
            score += ep.score;
        }
        let step_s = t.elapsed().as_secs_f64();
        let (mut bwon, mut bscore) = (0usize, 0.0);
        for task in 0..episodes {
            let ep = spear_envs::webshop::expert::run_policy(
                &mut env,
                task,
                0,
                spear_envs::webshop::Expert::blind(),
            )?;
            bwon += usize::from(ep.won);
            bscore += ep.score;
        }
        println!(
            "{}",
            serde_json::json!({
                "products": n,
                "goals": cat.goals.len(),
                "terms": cat.index.num_terms(),
                "generate_s": gen_s,
                "catalog_and_index_build_s": build_s,
                "rss_delta_mib": (rss1.saturating_sub(rss0)) as f64 / 1024.0,
                "searches": queries.len(),
                "searches_per_s": queries.len() as f64 / search_s,
                "mean_hits": hits as f64 / queries.len().max(1) as f64,
                "expert_episodes": episodes,
                "steps": steps,
                "steps_per_s": steps as f64 / step_s,
                "expert_success": won as f64 / episodes.max(1) as f64,
                "expert_score": score / episodes.max(1) as f64,
                "top_hit_policy_success": bwon as f64 / episodes.max(1) as f64,
                "top_hit_policy_score": bscore / episodes.max(1) as f64,
                "peak_rss_mib": rss_kib("VmHWM:").unwrap_or(0) as f64 / 1024.0,
            })
        );
    }
    Ok(())
}
