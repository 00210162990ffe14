//! `collector`: the command line over the `collector` library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use collector::{BatchSettings, Collector, CollectorSettings, WorkerStats, WriterStats};
use hyperfake_core::defaults::env;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Follows every worker's lifecycle events (Status) and per-container cgroup
/// samples plus worker CPU/RAM totals (Resources) over gRPC, and records them
/// under a run id in the run's SQLite database (the file the load generator
/// writes). Start it before the load generator, with the same --run-id, and
/// stop it with Ctrl-C or SIGTERM once the run is over: everything received is
/// then committed and the session closed. Restarting with the same --run-id
/// and --db appends a new session; a crash loses at most the last batch.
///
/// Unreachable workers are retried with backoff (100 ms up to 5 s) until they
/// answer. Log verbosity follows RUST_LOG.
#[derive(Debug, Parser)]
#[command(name = "collector", version)]
struct Args {
    /// A worker to follow, host:port (repeatable, or comma-separated). Stored
    /// as given in the `worker` column.
    #[arg(long = "worker", value_name = "ADDR", required = true, value_delimiter = ',')]
    workers: Vec<String>,
    /// Run id (letters, digits, '-', '_', '.'): the load generator's run.
    #[arg(long, value_name = "RUN")]
    run_id: String,
    /// Run database to write (created if missing). Default: training_data/<run id>.db.
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// How often each worker samples its containers' cgroups and its own CPU/RAM.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "100ms")]
    interval: Duration,
    /// Also record CALL and RESPONSE events (two per call; the processing step
    /// does not need them).
    #[arg(long)]
    record_call_events: bool,
    /// Shared token the workers require (sent as `authorization: Bearer <token>`).
    /// Shows in `ps`: prefer --token-file.
    #[arg(long, env = env::TOKEN, hide_env_values = true)]
    token: Option<String>,
    /// Read the shared token from this file (one line; readable by its owner
    /// only, e.g. mode 0600). Conflicts with --token / HYPERFAKE_TOKEN.
    #[arg(long, value_name = "PATH", env = proto::auth::TOKEN_FILE_ENV, conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// Commit at least this often; a crash loses at most this much data.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "500ms")]
    batch_interval: Duration,
    /// Commit once this many rows are waiting.
    #[arg(long, value_name = "ROWS", default_value_t = collector::store::DEFAULT_BATCH_ROWS)]
    batch_rows: usize,
    /// Do not draw the progress spinners.
    #[arg(long)]
    no_progress: bool,
}

/// Where unprocessed runs are kept, as the load generator does.
const DEFAULT_DB_DIR: &str = "training_data";
/// How often the spinners are redrawn.
const PROGRESS_TICK: Duration = Duration::from_millis(200);

fn main() -> ExitCode {
    let args = Args::parse();
    let multi = MultiProgress::with_draw_target(if args.no_progress {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let log_target = multi.clone();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        // The writer hides the terminal from the subscriber: ask directly.
        .with_ansi(hyperfake_cli::colour())
        .with_writer(move || LogWriter(log_target.clone()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("collector: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    hyperfake_cli::exit_code("collector", runtime.block_on(run(args, multi)))
}

async fn run(args: Args, multi: MultiProgress) -> anyhow::Result<()> {
    let Args {
        workers,
        run_id,
        db,
        interval,
        record_call_events,
        token,
        token_file,
        batch_interval,
        batch_rows,
        no_progress: _,
    } = args;
    let db = db.unwrap_or_else(|| PathBuf::from(DEFAULT_DB_DIR).join(format!("{run_id}.db")));
    let mut settings = CollectorSettings::new(workers, &db, &run_id);
    settings.interval = interval;
    settings.record_call_events = record_call_events;
    let token = proto::auth::Token::from_flags(token.as_deref(), token_file.as_deref())
        .context("invalid --token / --token-file")?;
    settings.token = token.map(|t| t.as_str().to_string());
    settings.batch = BatchSettings { interval: batch_interval, rows: batch_rows, ..BatchSettings::default() };
    let auth = if settings.token.is_some() { " with a token" } else { "" };

    // Signals first: a SIGTERM during start-up must not kill the process unflushed.
    let shutdown = hyperfake_cli::shutdown_signal().context("cannot listen for signals")?;
    let collector = Collector::start(settings).await.context("cannot start collecting")?;
    let session = collector.session().clone();
    multi.suspend(|| {
        println!("collector: run {} session {} -> {}", session.run_id, session.number, db.display());
        for w in collector.workers() {
            println!(
                "collector: following {}{auth} (Status + Resources every {})",
                w.address,
                humantime::format_duration(interval)
            );
        }
    });

    let progress = spawn_progress(&multi, collector.workers(), collector.writer());
    shutdown.await;
    progress.abort();
    let summary = collector.shutdown().await.context("stopping")?;
    multi.clear().ok();
    println!(
        "collector: run {} session {} closed; {} rows written",
        summary.session.run_id, summary.session.number, summary.written.committed_rows
    );
    Ok(())
}

/// One spinner per worker and one for the writer, redrawn from the counters.
fn spawn_progress(
    multi: &MultiProgress,
    workers: &[Arc<WorkerStats>],
    writer: &Arc<WriterStats>,
) -> tokio::task::JoinHandle<()> {
    let style = ProgressStyle::with_template("{spinner} {msg}").expect("the template is valid");
    let bars: Vec<(ProgressBar, Arc<WorkerStats>)> = workers
        .iter()
        .map(|w| (multi.add(ProgressBar::new_spinner().with_style(style.clone())), Arc::clone(w)))
        .collect();
    let writer_bar = multi.add(ProgressBar::new_spinner().with_style(style));
    let writer = Arc::clone(writer);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PROGRESS_TICK);
        loop {
            tick.tick().await;
            for (bar, w) in &bars {
                bar.set_message(format!(
                    "{}  events {} ({}){}  samples {} ({}, {} container rows){}",
                    w.address,
                    w.status.messages(),
                    w.status.state().as_str(),
                    match w.status.data_loss.load(Ordering::Relaxed) {
                        0 => String::new(),
                        n => format!(" DATA LOSS x{n}"),
                    },
                    w.resources.messages(),
                    w.resources.state().as_str(),
                    w.container_rows.load(Ordering::Relaxed),
                    match w
                        .status
                        .last_error()
                        .filter(|_| w.status.state() != collector::LinkState::Connected)
                    {
                        Some(e) => format!("  last error: {e}"),
                        None => String::new(),
                    },
                ));
                bar.tick();
            }
            let failed = writer.failed_commits.load(Ordering::Relaxed);
            writer_bar.set_message(format!(
                "database: {} rows committed, {} waiting{}",
                writer.committed(),
                writer.received().saturating_sub(writer.committed()),
                if failed > 0 { format!(", {failed} failed commits (retrying)") } else { String::new() },
            ));
            writer_bar.tick();
        }
    })
}

/// Log lines go around the spinners instead of through them.
struct LogWriter(MultiProgress);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.suspend(|| std::io::stderr().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
