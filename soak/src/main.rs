//! `soak`: the tools of `scripts/soak.sh` (issue 14's 10-minute soak).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use proto::auth::{BearerToken, Token};
use soak::samples::{Sampler, Target};

/// Tools of the soak test (scripts/soak.sh): repeat a one-cycle workload,
/// sample processes, probe the platform's instances, write the report.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints a workload of N cycles of a one-cycle workload file (its
    /// max_duration is the cycle; phases are repeated, each shifted by one
    /// cycle and named <name>-c<k>).
    Workload {
        /// The one-cycle workload (configs/soak.yaml).
        template: PathBuf,
        /// How many cycles.
        #[arg(long, default_value_t = 10)]
        cycles: u32,
    },
    /// Samples the RSS and open file descriptors of processes, and the load
    /// average, every --interval into a JSON-lines file, until SIGTERM /
    /// Ctrl-C or until every process has exited.
    Sample {
        /// A process to sample, NAME=PID (repeatable).
        #[arg(long = "process", value_name = "NAME=PID", required = true)]
        processes: Vec<Target>,
        #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
        interval: Duration,
        /// The sample file (created or truncated).
        #[arg(long)]
        out: PathBuf,
    },
    /// Asks leaf-level nodes and workers which instances they hold, and the
    /// workers' runtimes which they really run; writes JSON.
    Probe {
        /// A leaf-level node, ROLE=ADDRESS (e.g. lb=127.0.0.1:50049; repeatable).
        #[arg(long = "node", value_name = "ROLE=ADDRESS")]
        nodes: Vec<String>,
        /// A worker address (repeatable).
        #[arg(long = "worker", value_name = "ADDRESS", required = true)]
        workers: Vec<String>,
        #[command(flatten)]
        token: TokenArgs,
        #[arg(long)]
        out: PathBuf,
    },
    /// Writes <out>.json and <out>.md from the run database, the sample file
    /// and the probe.
    Report {
        /// The run database (loadgen's and the collector's tables).
        #[arg(long)]
        db: PathBuf,
        /// The run (default: the only one in the file).
        #[arg(long)]
        run_id: Option<String>,
        /// The file `soak sample` wrote.
        #[arg(long)]
        samples: PathBuf,
        /// The file `soak probe` wrote once every idle timeout had passed.
        #[arg(long)]
        probe: PathBuf,
        /// The file `soak probe` wrote while calls ran (shows the probe sees
        /// instances that exist).
        #[arg(long)]
        busy_probe: Option<PathBuf>,
        /// One paragraph on the setup (topology, models), put in the header.
        #[arg(long)]
        setup: Option<String>,
        /// Output path without extension, e.g. bench-results/soak.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// Shared token of the platform. Shows in `ps`: prefer --token-file.
    #[arg(long, env = hyperfake_core::defaults::env::TOKEN, hide_env_values = true)]
    token: Option<String>,
    /// Read the shared token from this file (mode 0600).
    #[arg(long, value_name = "PATH", env = proto::auth::TOKEN_FILE_ENV, conflicts_with = "token")]
    token_file: Option<PathBuf>,
}

impl TokenArgs {
    fn bearer(&self) -> anyhow::Result<BearerToken> {
        let token = Token::from_flags(self.token.as_deref(), self.token_file.as_deref())
            .context("invalid --token / --token-file")?;
        Ok(BearerToken::from_token(token.as_ref()))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    hyperfake_cli::init_tracing("info");
    hyperfake_cli::exit_code("soak", run(Cli::parse()).await)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Workload { template, cycles } => {
            let text = std::fs::read_to_string(&template)
                .with_context(|| format!("cannot read {}", template.display()))?;
            print!("{}", soak::workload::repeat(&text, &template.display().to_string(), cycles)?);
        }
        Command::Sample { processes, interval, out } => {
            let stop = hyperfake_cli::shutdown_signal().context("cannot listen for signals")?;
            let rounds = Sampler::create(&out, processes, interval)?.run(stop).await?;
            tracing::info!(rounds, out = %out.display(), "sampling stopped");
        }
        Command::Probe { nodes, workers, token, out } => {
            let nodes = nodes
                .iter()
                .map(|n| {
                    n.split_once('=')
                        .map(|(r, a)| (r.to_string(), a.to_string()))
                        .with_context(|| format!("--node {n:?}: expected ROLE=ADDRESS"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let probe = soak::probe::probe(&nodes, &workers, token.bearer()?).await?;
            write(&out, &serde_json::to_string_pretty(&probe)?)?;
            println!("{}", serde_json::to_string(&probe)?);
        }
        Command::Report { db, run_id, samples, probe, busy_probe, setup, out } => {
            let samples = soak::samples::read(&samples)?;
            let probe = read_probe(&probe)?;
            let busy_probe = busy_probe.as_deref().map(read_probe).transpose()?;
            let inputs = soak::report::Inputs {
                db: &db,
                run_id: run_id.as_deref(),
                samples: &samples,
                probe: &probe,
                busy_probe: busy_probe.as_ref(),
                profile: hyperfake_core::build::profile(cfg!(debug_assertions)),
                setup,
            };
            let report = soak::report::build(&inputs)?;
            let json = out.with_extension("json");
            let md = out.with_extension("md");
            write(&json, &serde_json::to_string_pretty(&report)?)?;
            let text = soak::report::markdown(&report);
            write(&md, &text)?;
            for check in &report.checks {
                println!("{} {}: {}", if check.passed { "pass" } else { "FAIL" }, check.check, check.detail);
            }
            println!("report: {} and {}", md.display(), json.display());
        }
    }
    Ok(())
}

fn read_probe(path: &std::path::Path) -> anyhow::Result<soak::probe::Probe> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a probe file", path.display()))
}

fn write(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
