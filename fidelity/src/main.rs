//! `fidelity`: how faithful is the simulation?

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use fidelity::{Comparison, RunData, SampleRelation};
use loadgen::Workload;
use loadgen::run::{RunOptions, new_run_id};

/// Compares a run of a seeded workload on the real platform with the same run
/// on the fake platform: latency p50/p90/p99 and their ratio, the KS distance
/// of the latency distributions, throughput, error rates and instance counts
/// over time, and where the latency goes (leaf, leaf→worker, worker queue,
/// worker overhead, handler, return path), per function. Writes
/// fidelity.{json,md,html} and SVG plots.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compare two existing run databases (written by loadgen, optionally with collector tables).
    Compare {
        /// Run database from the real platform.
        #[arg(long)]
        real: PathBuf,
        /// Run database from the fake platform.
        #[arg(long)]
        fake: PathBuf,
        /// Run id in --real (needed when the file holds several runs).
        #[arg(long)]
        real_run: Option<String>,
        /// Run id in --fake (needed when the file holds several runs).
        #[arg(long)]
        fake_run: Option<String>,
        /// A second real run of the same workload (e.g. the training run, another
        /// seed): the report shows how much the real platform differs from
        /// itself next to how much the fake differs from it.
        #[arg(long, value_name = "DB")]
        reference: Option<PathBuf>,
        /// Run id in --reference (needed when the file holds several runs).
        #[arg(long)]
        reference_run: Option<String>,
        /// Directory for the report.
        #[arg(long, default_value = "fidelity")]
        out: PathBuf,
        #[command(flatten)]
        sample: SampleArgs,
    },
    /// Run a workload against a real and a fake platform (leaf addresses), then compare.
    Run {
        /// The workload (loadgen YAML); the same seed is sent to both platforms.
        config: PathBuf,
        /// Leaf (or load-balancer) address of the real platform.
        #[arg(long)]
        real: String,
        /// Leaf (or load-balancer) address of the fake platform.
        #[arg(long)]
        fake: String,
        /// Where the two run databases go.
        #[arg(long, default_value = "training_data")]
        db_dir: PathBuf,
        /// Directory for the report.
        #[arg(long, default_value = "fidelity")]
        out: PathBuf,
        /// Shared token sent to both platforms (`HYPERFAKE_TOKEN`). Default:
        /// none. Shows in `ps`: prefer --token-file.
        #[arg(long, env = hyperfake_core::defaults::env::TOKEN, hide_env_values = true)]
        token: Option<String>,
        /// Read the shared token from this file (one line; readable by its
        /// owner only, e.g. mode 0600). Conflicts with --token / HYPERFAKE_TOKEN.
        #[arg(long, value_name = "PATH", env = proto::auth::TOKEN_FILE_ENV, conflicts_with = "token")]
        token_file: Option<PathBuf>,
        #[command(flatten)]
        sample: SampleArgs,
    },
}

/// How the compared runs relate to the models' training data; printed in the
/// report's header (md, html, json). Without either: "sample relation not stated".
#[derive(Debug, clap::Args)]
struct SampleArgs {
    /// Which data trained the fake's models, e.g. "training_data/run-a.db (seed 42)".
    #[arg(long, value_name = "TEXT")]
    trained_on: Option<String>,
    /// How the compared runs relate to that data, e.g. "out of sample: same config, seed 43".
    #[arg(long, value_name = "TEXT")]
    validation: Option<String>,
}

impl From<SampleArgs> for SampleRelation {
    fn from(a: SampleArgs) -> Self {
        SampleRelation { trained_on: a.trained_on, validation: a.validation }
    }
}

fn main() -> ExitCode {
    hyperfake_cli::init_tracing("info");
    hyperfake_cli::exit_code("fidelity", run(Cli::parse()))
}

fn report(
    real: &RunData,
    fake: &RunData,
    reference: Option<&RunData>,
    out: &std::path::Path,
    sample: SampleArgs,
) -> anyhow::Result<()> {
    let mut comparison = Comparison::new(real, fake).with_sample(sample.into());
    if let Some(reference) = reference {
        comparison = comparison.with_reference(reference, real);
    }
    if !comparison.same_workload {
        tracing::warn!("the two runs used different seeds or workload files");
    }
    let files = comparison.write(out, real, fake)?;
    println!("{}", comparison.to_markdown());
    println!("report written to {}", out.join("fidelity.html").display());
    for f in files {
        println!("  {}", f.display());
    }
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Compare { real, fake, real_run, fake_run, reference, reference_run, out, sample } => {
            let real = RunData::load(&real, real_run.as_deref())?;
            let fake = RunData::load(&fake, fake_run.as_deref())?;
            let reference = reference.map(|db| RunData::load(&db, reference_run.as_deref())).transpose()?;
            report(&real, &fake, reference.as_ref(), &out, sample)
        }
        Command::Run { config, real, fake, db_dir, out, token, token_file, sample } => {
            let token = proto::auth::Token::from_flags(token.as_deref(), token_file.as_deref())
                .context("invalid --token / --token-file")?;
            let token = proto::auth::BearerToken::from_token(token.as_ref());
            let text =
                std::fs::read_to_string(&config).with_context(|| format!("reading {}", config.display()))?;
            let workload =
                Workload::from_yaml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
            let runtime = tokio::runtime::Runtime::new()?;
            let base = new_run_id();
            let mut dbs = Vec::new();
            for (side, leaf) in [("real", real), ("fake", fake)] {
                let run_id = format!("{base}-{side}");
                let db = db_dir.join(format!("{run_id}.db"));
                println!("running {} against the {side} platform at {leaf}", config.display());
                let options = RunOptions {
                    workload: workload.clone(),
                    config_yaml: text.clone(),
                    config_path: Some(config.clone()),
                    out: Some(db.clone()),
                    leaf_address: Some(leaf),
                    run_id: Some(run_id.clone()),
                    max_in_flight: None,
                    token: token.clone(),
                    progress: true,
                    writer: Default::default(),
                };
                let (_stop_tx, stop_rx) = tokio::sync::watch::channel(loadgen::Stop::Running);
                let done = runtime.block_on(loadgen::run::run(options, stop_rx))?;
                println!("  {side}: {} calls recorded, {} errors", done.recorded, done.errors);
                dbs.push((db, run_id));
            }
            let real = RunData::load(&dbs[0].0, Some(&dbs[0].1))?;
            let fake = RunData::load(&dbs[1].0, Some(&dbs[1].1))?;
            report(&real, &fake, None, &out, sample)
        }
    }
}
