//! `loadgen`: the command line over the `loadgen` library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hyperfake_core::defaults::{self, env};
use loadgen::bench::{BenchOptions, bench};
use loadgen::bench_trace::{TraceBenchOptions, bench_trace};
use loadgen::record::RunStatus;
use loadgen::run::{FunctionCleanup, RunOptions, run_with_cleanup};
use loadgen::{Schedule, Stop, Workload};
use proto::auth::{BearerToken, Token};
use tokio::sync::watch;

/// Open-loop load generator for a HyperFaaS-style leaf. Reads a HyperFaaS
/// workload YAML, sends every call at its scheduled time, and records every
/// outcome with all server timing metadata in a SQLite run database.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a workload against a leaf and record every call.
    Run {
        /// The workload file (HyperFaaS format; see configs/README.md).
        config: PathBuf,
        /// Run database to write (created if missing; one file can hold many runs).
        /// Default: training_data/<run id>.db.
        #[arg(long, value_name = "DB")]
        out: Option<PathBuf>,
        /// Leaf address, overriding the file's leaf_address.
        #[arg(long, value_name = "ADDR", env = env::LEAF_ADDRESS)]
        leaf: Option<String>,
        /// Run id (letters, digits, '-', '_', '.'). Default: UTC start time + random suffix.
        #[arg(long, value_name = "ID")]
        run_id: Option<String>,
        /// Most calls in flight at once, overriding the file's max_in_flight; a call
        /// due beyond it is recorded as NOT_SENT. Default: no limit.
        #[arg(long, value_name = "N")]
        max_in_flight: Option<usize>,
        /// Shared token sent with every request, for a platform started with
        /// --token. Default: none. Shows in `ps`: prefer --token-file.
        #[arg(long, env = env::TOKEN, hide_env_values = true)]
        token: Option<String>,
        /// Read the shared token from this file (one line; readable by its owner
        /// only, e.g. mode 0600). Conflicts with --token / HYPERFAKE_TOKEN.
        #[arg(long, value_name = "PATH", env = proto::auth::TOKEN_FILE_ENV, conflicts_with = "token")]
        token_file: Option<PathBuf>,
        /// Do not draw the progress bar.
        #[arg(long)]
        no_progress: bool,
        /// Leave the functions this run created registered. By default they
        /// are deleted from the function store (--database) when the run ends,
        /// whether it completed, failed or was interrupted.
        #[arg(long)]
        keep_functions: bool,
        /// The platform's function store, where the run's functions are
        /// deleted at the end (the leaf has no delete call).
        #[arg(long, value_name = "ADDR", env = env::DATABASE_ADDRESS, default_value = defaults::DATABASE_ADDRESS)]
        database: String,
    },
    /// Parse and resolve a workload and print a summary of its schedule. Sends nothing.
    Validate {
        /// The workload file.
        config: PathBuf,
    },
    /// Print the resolved schedule (phases and every call with its request
    /// parameters). The same file and seed always print the same bytes.
    Schedule {
        /// The workload file.
        config: PathBuf,
        /// Print JSON (the only format).
        #[arg(long)]
        json: bool,
    },
    /// Measure the generator itself against a no-op leaf (a process of its
    /// own) at increasing rates, after that leaf's own ceiling; writes
    /// loadgen.json and loadgen.md.
    Bench {
        /// Directory for the reports.
        #[arg(long, value_name = "DIR", default_value = "target/bench")]
        out: PathBuf,
        /// Target rates in calls per second, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1000,2000,5000,10000,15000,20000,25000")]
        rates: Vec<u32>,
        /// Seconds per rate.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Times every rate is measured (the rates in order, then again); a
        /// rate is sustained only when it meets every criterion in every round.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
        rounds: u32,
        /// Seconds of the no-op leaf's ceiling run, before the rates; 0 skips it.
        #[arg(long, default_value_t = 10)]
        ceiling_seconds: u64,
        /// Request body size in bytes.
        #[arg(long, default_value_t = 256)]
        body_bytes: u64,
        /// Highest send-lag p99, in microseconds, for a rate to count as
        /// sustained (issue 11's target: 2 ms).
        #[arg(long, default_value_t = 2_000)]
        max_lag_p99_us: u64,
    },
    /// Serve a no-op leaf on 127.0.0.1:0 (used by `loadgen bench`): prints its
    /// address on the first line of stdout and serves until stdin is closed.
    #[command(hide = true)]
    NoopLeaf,
    /// Measure building the schedule of one full day of a generated Azure
    /// 2019-format trace (every function selected): time and peak memory;
    /// writes trace-schedule.json and trace-schedule.md.
    BenchTrace {
        /// Directory for the reports.
        #[arg(long, value_name = "DIR", default_value = "target/bench")]
        out: PathBuf,
        /// Functions in the generated day.
        #[arg(long, default_value_t = 50_000)]
        functions: u32,
        /// Seed of the generated trace and of the schedule.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Scratch directory for the generated files (removed afterwards).
        /// Default: a new directory under the system's temporary directory.
        #[arg(long, value_name = "DIR")]
        scratch: Option<PathBuf>,
    },
}

/// Exit codes: 0 done, 1 failed, 2 bad workload file, 130 interrupted.
const EXIT_FAILED: u8 = 1;
const EXIT_BAD_CONFIG: u8 = 2;
const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    hyperfake_cli::init_tracing("info");
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Reads and validates a workload file; prints every problem on failure.
fn load(path: &PathBuf) -> Result<(Workload, String), ExitCode> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            return Err(ExitCode::from(EXIT_FAILED));
        }
    };
    match Workload::from_yaml(&text) {
        Ok(w) => Ok((w, text)),
        Err(errors) => {
            eprintln!("error: {}: {errors}", path.display());
            Err(ExitCode::from(EXIT_BAD_CONFIG))
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Validate { config } => {
            let (workload, _) = match load(&config) {
                Ok(w) => w,
                Err(code) => return Ok(code),
            };
            Ok(print_out(&loadgen::summary::render(&workload, &Schedule::resolve(&workload))))
        }
        Command::Schedule { config, json: _ } => {
            let (workload, _) = match load(&config) {
                Ok(w) => w,
                Err(code) => return Ok(code),
            };
            let mut json = Schedule::resolve(&workload).to_json();
            json.push('\n');
            Ok(print_out(&json))
        }
        Command::Run {
            config,
            out,
            leaf,
            run_id,
            max_in_flight,
            token,
            token_file,
            no_progress,
            keep_functions,
            database,
        } => {
            let (workload, config_yaml) = match load(&config) {
                Ok(w) => w,
                Err(code) => return Ok(code),
            };
            let token = Token::from_flags(token.as_deref(), token_file.as_deref())
                .context("invalid --token / --token-file")?;
            let token = BearerToken::from_token(token.as_ref());
            let stop = stop_on_signal(workload.call_timeout);
            let cleanup =
                if keep_functions { FunctionCleanup::Keep } else { FunctionCleanup::Delete { database } };
            let report = run_with_cleanup(
                RunOptions {
                    workload,
                    config_yaml,
                    config_path: Some(config),
                    out,
                    leaf_address: leaf,
                    run_id,
                    max_in_flight,
                    token,
                    progress: !no_progress,
                    writer: Default::default(),
                },
                cleanup,
                stop,
            )
            .await?;
            eprintln!(
                "run {} {}: {} of {} calls due, {} recorded, {} not OK -> {}",
                report.run_id,
                report.status.as_str(),
                report.due,
                report.scheduled,
                report.recorded,
                report.errors,
                report.db_path.display()
            );
            Ok(match report.status {
                RunStatus::Completed if report.recorded == report.due => ExitCode::SUCCESS,
                RunStatus::Interrupted => ExitCode::from(EXIT_INTERRUPTED),
                _ => ExitCode::from(EXIT_FAILED),
            })
        }
        Command::Bench { out, rates, seconds, rounds, ceiling_seconds, body_bytes, max_lag_p99_us } => {
            let report = bench(BenchOptions {
                rates,
                rounds,
                step: Duration::from_secs(seconds),
                ceiling: Duration::from_secs(ceiling_seconds),
                body_bytes,
                max_lag_p99: Duration::from_micros(max_lag_p99_us),
                out_dir: out.clone(),
                loadgen_exe: std::env::current_exe().context("cannot find the loadgen executable")?,
            })
            .await
            .context("benchmark failed")?;
            print_out(&loadgen::bench::markdown(&report));
            eprintln!("reports: {}/loadgen.json, {}/loadgen.md", out.display(), out.display());
            Ok(if report.zero_lost_rows { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FAILED) })
        }
        Command::NoopLeaf => {
            loadgen::bench::run_noop_leaf().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchTrace { out, functions, seed, scratch } => {
            let scratch = scratch.unwrap_or_else(|| {
                std::env::temp_dir().join(format!("loadgen-bench-trace-{}", std::process::id()))
            });
            let options = TraceBenchOptions { functions, seed, out_dir: out.clone(), scratch };
            let report = bench_trace(&options).context("trace benchmark failed")?;
            print_out(&loadgen::bench_trace::markdown(&report));
            eprintln!("reports: {}/trace-schedule.json, {}/trace-schedule.md", out.display(), out.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes to stdout; a closed pipe (`loadgen schedule x.yaml --json | head`)
/// is a clean exit, not a panic.
fn print_out(text: &str) -> ExitCode {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write to stdout: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// The first Ctrl-C or SIGTERM stops sending and waits for the calls in
/// flight; the second stops waiting and records them as ABANDONED.
fn stop_on_signal(call_timeout: Duration) -> watch::Receiver<Stop> {
    let (tx, rx) = watch::channel(Stop::Running);
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        loop {
            #[cfg(unix)]
            let terminated = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let terminated = std::future::pending::<()>();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                () = terminated => {}
            }
            let now = *tx.borrow();
            match now {
                Stop::Running => {
                    tracing::warn!(
                        "stopping: no new calls; waiting up to {call_timeout:?} for calls in flight \
                         (interrupt again to stop waiting)"
                    );
                    let _ = tx.send(Stop::Drain);
                }
                Stop::Drain => {
                    tracing::warn!("not waiting any longer: calls still in flight are recorded as ABANDONED");
                    let _ = tx.send(Stop::Abandon);
                }
                Stop::Abandon => tracing::warn!("already stopping; writing the last rows"),
            }
        }
    });
    rx
}
