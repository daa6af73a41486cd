//! `spear`: the command-line front end of spear-rs.
//!
//! Each area of the command tree lives in its own module under `cli/`, so that
//! work on one environment or on the model never touches another's code.

mod cli;

use clap::{Parser, Subcommand};

/// Train tool-using LLM agents with SPEAR (self-imitation with progressive exploration).
#[derive(Parser, Debug)]
#[command(name = "spear", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a policy with RL (GRPO / GiGPO / Dr.BoT / SPEAR).
    Train(cli::train::TrainArgs),
    /// Supervised warm start from expert demonstrations.
    Sft(cli::train::SftArgs),
    /// Evaluate a run's checkpoint (`--checkpoint`) or a model on AIME (`--preset aime24`).
    Eval(cli::train::EvalArgs),
    /// Write an HTML report comparing one or more runs.
    Report(cli::report::ReportArgs),
    /// Chat with a model (e.g. `--model smollm2-135m`).
    Chat(cli::model::ChatArgs),
    /// Play, replay or generate environment episodes.
    Env {
        #[command(subcommand)]
        action: EnvAction,
    },
    /// Score responses and rewards the way the original code does.
    Score {
        #[command(subcommand)]
        what: ScoreWhat,
    },
    /// Run code in the math sandbox as the code-interpreter tool would.
    Sandbox {
        #[command(subcommand)]
        action: SandboxAction,
    },
    /// Serve a policy behind vLLM's HTTP API (completions, pause/resume, reload_weights).
    Serve(cli::serve::ServeArgs),
    /// Benchmarks (speed and memory).
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Subcommand, Debug)]
enum EnvAction {
    /// Play an environment in the terminal.
    Play {
        #[command(subcommand)]
        env: PlayEnv,
    },
    /// Run a file of actions and print one JSON object per step.
    Replay {
        #[command(subcommand)]
        env: ReplayEnv,
    },
    /// Generate task files.
    Generate {
        #[command(subcommand)]
        env: GenerateEnv,
    },
}

#[derive(Subcommand, Debug)]
enum PlayEnv {
    /// The ALFWorld-compatible household environment.
    Household(cli::household::PlayArgs),
    /// The WebShop environment.
    Webshop(cli::webshop::PlayArgs),
}

#[derive(Subcommand, Debug)]
enum ReplayEnv {
    /// The ALFWorld-compatible household environment.
    Household(cli::household::ReplayArgs),
    /// The WebShop environment.
    Webshop(cli::webshop::ReplayArgs),
}

#[derive(Subcommand, Debug)]
enum GenerateEnv {
    /// Write household games (`game.tw-pddl` files).
    Household(cli::household::GenerateArgs),
}

#[derive(Subcommand, Debug)]
enum ScoreWhat {
    /// WebShop reward components of a case file.
    Webshop(cli::webshop::ScoreArgs),
    /// thefuzz `token_set_ratio(A, B)` as WebShop computes it.
    Fuzz(cli::webshop::FuzzArgs),
    /// The math verifier on a response read from stdin.
    Math(cli::math::ScoreArgs),
    /// In-process log-probs of token ids read from stdin (JSON lines), e.g. to compare with an
    /// inference server's.
    Logprobs(cli::serve::LogprobArgs),
}

#[derive(Subcommand, Debug)]
enum SandboxAction {
    /// Run a Python file and print the tool reply.
    Run(cli::math::SandboxRunArgs),
}

#[derive(Subcommand, Debug)]
enum BenchWhat {
    /// Environment step rates and memory.
    Env {
        #[command(subcommand)]
        env: BenchEnv,
    },
    /// Model training, scoring and generation throughput.
    Model(cli::model::BenchArgs),
    /// Sandbox tool calls per second.
    Sandbox(cli::math::BenchArgs),
}

#[derive(Subcommand, Debug)]
enum BenchEnv {
    /// The household environment.
    Household(cli::household::BenchArgs),
    /// The WebShop environment.
    Webshop(cli::webshop::BenchArgs),
}

/// Logs of the library crates go through `tracing`; `RUST_LOG` filters them (default: warnings,
/// and the spear crates' progress notes at `info`). They print on stderr, like the progress
/// bars.
fn install_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("warn,spear=info,spear_envs=info,spear_model=info,spear_rl=info")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .try_init();
}

fn main() {
    install_logging();
    let cli = Cli::parse();
    if let Err(err) = run(cli) {
        // `{:#}` prints the whole context chain on one line: what failed and why.
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(a) => cli::train::train(a),
        Command::Sft(a) => cli::train::sft(a),
        Command::Eval(a) => cli::train::eval(a),
        Command::Report(a) => cli::report::report(a),
        Command::Chat(a) => cli::model::chat(a),
        Command::Serve(a) => cli::serve::serve(a),
        Command::Env { action } => match action {
            EnvAction::Play { env } => match env {
                PlayEnv::Household(a) => cli::household::play(a),
                PlayEnv::Webshop(a) => cli::webshop::play(a),
            },
            EnvAction::Replay { env } => match env {
                ReplayEnv::Household(a) => cli::household::replay(a),
                ReplayEnv::Webshop(a) => cli::webshop::replay(a),
            },
            EnvAction::Generate { env } => match env {
                GenerateEnv::Household(a) => cli::household::generate(a),
            },
        },
        Command::Score { what } => match what {
            ScoreWhat::Webshop(a) => cli::webshop::score(a),
            ScoreWhat::Fuzz(a) => cli::webshop::fuzz(a),
            ScoreWhat::Math(a) => cli::math::score(a),
            ScoreWhat::Logprobs(a) => cli::serve::score_logprobs(a),
        },
        Command::Sandbox { action } => match action {
            SandboxAction::Run(a) => cli::math::sandbox_run(a),
        },
        Command::Bench { what } => match what {
            BenchWhat::Env { env } => match env {
                BenchEnv::Household(a) => cli::household::bench(a),
                BenchEnv::Webshop(a) => cli::webshop::bench(a),
            },
            BenchWhat::Model(a) => cli::model::bench(a),
            BenchWhat::Sandbox(a) => cli::math::bench(a),
        },
    }
}
