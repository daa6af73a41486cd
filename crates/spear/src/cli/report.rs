//! `spear report`: one self-contained HTML page comparing training runs (issue #5, "Reports").

use std::path::PathBuf;

use clap::Args;
use spear::report::{default_output, write_report, ViewerLimits};

/// Arguments of `spear report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run directories to compare (`runs/<name>`, as written by `spear train`).
    #[arg(required = true, value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
    /// Output HTML file [default: `<run>/report.html` for one run,
    /// `report-<A>-vs-<B>.html` next to the first run for several].
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Trajectory viewer: at most this many iteration files per run (evenly spaced, first
    /// and last included).
    #[arg(long, default_value_t = 40, value_name = "N")]
    pub max_trajectory_files: usize,
    /// Trajectory viewer: at most this many episodes per iteration file (the first ones).
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub max_episodes: usize,
    /// Trajectory viewer: at most this many MiB of embedded trajectory JSON (all runs
    /// together); files and episodes are thinned further to fit.
    #[arg(long, default_value_t = 24, value_name = "MIB")]
    pub max_trajectory_mib: usize,
}

/// Runs `spear report`.
pub fn report(args: ReportArgs) -> anyhow::Result<()> {
    let out = args.out.unwrap_or_else(|| default_output(&args.runs));
    let limits = ViewerLimits {
        max_files: args.max_trajectory_files.max(1),
        max_episodes: args.max_episodes.max(1),
        max_bytes: args.max_trajectory_mib.max(1) << 20,
    };
    let bytes = write_report(&args.runs, &out, &limits)?;
    println!(
        "wrote {} ({:.1} MB); open it in a browser",
        out.display(),
        bytes as f64 / 1e6
    );
    Ok(())
}
