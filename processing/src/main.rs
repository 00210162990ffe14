//! `process`: turns a run database into training data, plots and a benchmark.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use processing::{ProcessOptions, Progress};

/// Builds `training_data`, `training_data_avg` and `run_summary` from a run
/// database (loadgen's calls + the collector's events and samples), writing
/// them into the same file. Re-processing a run replaces its rows.
///
/// Column definitions: docs/units.md.
#[derive(Debug, Parser)]
#[command(name = "process", version, args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    process: ProcessArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Draws a processed run: throughput, latency decomposition and ECDF per
    /// image, instances, worker CPU and RAM over time (PNG + SVG + index.html).
    Plots(PlotArgs),
    /// Times processing of a synthetic run of --calls calls; writes
    /// <out>.json and <out>.md.
    Bench(BenchArgs),
    /// Writes a synthetic run database (loadgen's and the collector's tables
    /// with known behaviour), to try processing and plots without a platform.
    Synth(SynthArgs),
    /// Checks one processed run: it completed, every scheduled call was
    /// recorded, at most --max-failed-fraction failed, the collector and
    /// processing wrote rows, the run summary accounts for every call, and
    /// every training row and worker sample is within docs/units.md's ranges
    /// (with --leaf and --worker: the run used that leaf and those workers).
    /// Prints what it found; fails naming each failed check.
    Check(CheckArgs),
    /// Imports the Huawei Public Cloud Trace 2025 (EuroSys'25,
    /// sir-lab/data-release) into a new run database: one training_data row
    /// per request of the per-request CSV files (image
    /// `huawei-<funcName>---<userID>---<pool>:latest`, units converted,
    /// instances / active calls / worker CPU and RAM derived per function),
    /// the cold-start CSV files into cold_starts, and a runs row with the
    /// files and counts. The trainer then trains on it as on any run.
    /// Column mapping: docs/units.md, "Huawei 2025 per-request data".
    ImportHuawei(ImportHuaweiArgs),
}

#[derive(Debug, Args)]
struct ProcessArgs {
    /// The run database (training_data/<run>.db).
    #[arg(long, required = true)]
    db: Option<PathBuf>,
    /// Process only this run (default: every run in the file).
    #[arg(long)]
    run_id: Option<String>,
    /// How far a sample may be from the time it describes, e.g. 500ms
    /// (default: twice the collector's interval, at least 1s).
    #[arg(long, value_parser = humantime::parse_duration)]
    sample_tolerance: Option<Duration>,
    /// No progress bars.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Debug, Args)]
struct PlotArgs {
    /// The run database, processed or not (plots need only raw tables).
    #[arg(long)]
    db: PathBuf,
    /// The run to draw (default: the only run in the file).
    #[arg(long)]
    run_id: Option<String>,
    /// Output directory (default: training_data/<db file stem>/plots).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Calls in the synthetic run.
    #[arg(long, default_value_t = 1_000_000)]
    calls: usize,
    /// Output path without extension.
    #[arg(long, default_value = "target/bench/processing")]
    out: PathBuf,
    /// No progress bars.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Debug, Args)]
struct SynthArgs {
    /// The database to write (created; an existing run of the same id is an error).
    #[arg(long)]
    db: PathBuf,
    /// Run id.
    #[arg(long, default_value = "synthetic")]
    run_id: String,
    /// Calls in the run.
    #[arg(long, default_value_t = 10_000)]
    calls: usize,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// The run database.
    #[arg(long)]
    db: PathBuf,
    /// The run to check.
    #[arg(long)]
    run_id: String,
    /// A worker the collector followed, as given to it; repeat for each. Every
    /// collector row must name one, and each must have sent worker samples.
    /// By default not checked.
    #[arg(long = "worker", value_name = "ADDRESS")]
    workers: Vec<String>,
    /// The leaf the load generator called (`runs.leaf_address`). By default not checked.
    #[arg(long, value_name = "ADDRESS")]
    leaf: Option<String>,
    /// The largest fraction of calls that may fail.
    #[arg(long, default_value_t = processing::check::MAX_FAILED_FRACTION)]
    max_failed_fraction: f64,
    /// Logical CPUs of the host the run was measured on (bounds worker CPU).
    /// By default, this machine's.
    #[arg(long)]
    host_cores: Option<f64>,
    /// Memory of that host, bytes (bounds worker and function RAM). By
    /// default, this machine's MemTotal.
    #[arg(long)]
    host_memory_bytes: Option<i64>,
}

#[derive(Debug, Args)]
struct ImportHuaweiArgs {
    /// A per-request CSV file (columns time_worker, requestID, clusterName,
    /// funcName, userID, podID, totalCost_worker, workerCost, runtimeCost,
    /// totalCost_frontend, cpu_usage, memory_usage, requestBodySize; others
    /// are ignored); repeat for each part.
    #[arg(long = "requests", value_name = "CSV", required = true)]
    requests: Vec<PathBuf>,
    /// A cold-start CSV file (columns clusterName, funcName, userID, podID,
    /// totalCost_cold_start); repeat for each. None by default.
    #[arg(long = "cold-starts", value_name = "CSV")]
    cold_starts: Vec<PathBuf>,
    /// The run database to write (training_data/<run>.db); it must not exist.
    #[arg(long)]
    db: PathBuf,
    /// Run id (default: the database's file stem).
    #[arg(long)]
    run_id: Option<String>,
    /// How long an idle pod stays alive, for counting live pods (the paper's
    /// keep-alive time).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    keep_alive: Duration,
    /// Stop at the first bad row (wrong field count, not a number, negative,
    /// empty required cell) instead of skipping and counting it.
    #[arg(long)]
    strict: bool,
    /// No progress bars.
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    hyperfake_cli::init_tracing("warn,processing=info");
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Plots(args)) => plots(&args),
        Some(Command::Bench(args)) => bench(&args),
        Some(Command::Synth(args)) => synth(&args),
        Some(Command::Check(args)) => check(&args),
        Some(Command::ImportHuawei(args)) => import_huawei(&args),
        None => process(&cli.process),
    };
    hyperfake_cli::exit_code("process", result)
}

fn bar(quiet: bool, what: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {per_sec}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_owned());
    bar
}

fn process(args: &ProcessArgs) -> Result<()> {
    let db = args.db.as_deref().context("--db is required")?;
    let options = ProcessOptions { sample_tolerance: args.sample_tolerance, ..ProcessOptions::default() };
    let progress = Progress {
        read: bar(args.quiet, "reading"),
        process: bar(args.quiet, "runs"),
        write: bar(args.quiet, "writing"),
    };
    let summaries = processing::process_db(db, args.run_id.as_deref(), &options, &progress)
        .with_context(|| format!("processing {}", db.display()))?;
    for bar in [&progress.read, &progress.process, &progress.write] {
        bar.finish_and_clear();
    }
    for s in &summaries {
        print!("{s}");
    }
    println!("wrote training_data, training_data_avg and run_summary into {}", db.display());
    Ok(())
}

fn import_huawei(args: &ImportHuaweiArgs) -> Result<()> {
    use processing::huawei::{ImportOptions, ImportProgress};
    let ImportHuaweiArgs { requests, cold_starts, db, run_id, keep_alive, strict, quiet } = args;
    let options = ImportOptions {
        requests: requests.clone(),
        cold_starts: cold_starts.clone(),
        db: db.clone(),
        run_id: run_id.clone(),
        keep_alive: *keep_alive,
        strict: *strict,
    };
    let read = bar(*quiet, "reading");
    read.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let progress = ImportProgress { read, derive: bar(*quiet, "deriving") };
    let summary = processing::huawei::import(&options, &progress)
        .with_context(|| format!("importing into {}", db.display()))?;
    progress.read.finish_and_clear();
    progress.derive.finish_and_clear();
    print!("{summary}");
    println!("wrote training_data, cold_starts and runs into {}", db.display());
    Ok(())
}

fn plots(args: &PlotArgs) -> Result<()> {
    let out = match &args.out {
        Some(out) => out.clone(),
        None => default_plot_dir(&args.db),
    };
    let written = processing::plots::draw_db(&args.db, args.run_id.as_deref(), &out)
        .with_context(|| format!("plotting {}", args.db.display()))?;
    let plots = written.iter().filter(|p| p.extension().is_some_and(|e| e == "png")).count();
    println!("wrote {plots} plots (PNG + SVG) and {}", out.join("index.html").display());
    Ok(())
}

/// `training_data/<run>.db` → `training_data/<run>/plots`.
fn default_plot_dir(db: &Path) -> PathBuf {
    let stem = db.file_stem().map_or_else(|| "run".into(), |s| s.to_string_lossy().into_owned());
    db.parent().unwrap_or(Path::new(".")).join(stem).join("plots")
}

fn bench(args: &BenchArgs) -> Result<()> {
    let report =
        processing::bench::run(args.calls, &bar(args.quiet, "bench")).context("running the benchmark")?;
    report.write(&args.out).with_context(|| format!("writing {}.json/.md", args.out.display()))?;
    print!("{}", report.markdown());
    Ok(())
}

fn synth(args: &SynthArgs) -> Result<()> {
    let counts = rundb::fixtures::SynthRun::new(&args.run_id, args.calls)
        .write(&args.db)
        .with_context(|| format!("writing {}", args.db.display()))?;
    println!(
        "wrote run {} into {}: {} calls, {} instances, {} container samples, {} worker samples",
        args.run_id,
        args.db.display(),
        counts.calls,
        counts.instances,
        counts.container_samples,
        counts.worker_samples
    );
    Ok(())
}

fn check(args: &CheckArgs) -> Result<()> {
    use processing::check::{CheckOptions, Host};
    let host = match (args.host_cores, args.host_memory_bytes) {
        (Some(cores), Some(memory_bytes)) => Host { cores, memory_bytes },
        (cores, memory) => {
            let this = Host::this_machine().context("reading this machine's cores and memory")?;
            Host { cores: cores.unwrap_or(this.cores), memory_bytes: memory.unwrap_or(this.memory_bytes) }
        }
    };
    anyhow::ensure!(host.cores > 0.0 && host.cores.is_finite(), "--host-cores must be a positive number");
    anyhow::ensure!(host.memory_bytes > 0, "--host-memory-bytes must be positive");
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.max_failed_fraction),
        "--max-failed-fraction must be between 0 and 1"
    );
    let options = CheckOptions {
        host,
        workers: args.workers.clone(),
        leaf_address: args.leaf.clone(),
        max_failed_fraction: args.max_failed_fraction,
    };
    match processing::check::check_run(&args.db, &args.run_id, &options) {
        Ok(report) => {
            print!("{report}");
            println!("run {} in {}: ok", args.run_id, args.db.display());
            Ok(())
        }
        // Names the file, the run and every failed check already.
        Err(e @ processing::ProcessError::CheckFailed { .. }) => Err(e.into()),
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "checking run {} of {}",
            args.run_id,
            args.db.display()
        ))),
    }
}
