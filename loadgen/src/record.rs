//! Recording a run into its run database (tables and inserts: `rundb`):
//! the `runs` row and `schedule` when the run starts, one `calls` row per
//! call that came due, written by a dedicated thread fed through a bounded
//! channel, so sending calls never waits on disk.
//!
//! A commit that fails (the collector or a reader holding the lock past the
//! busy timeout, a full disk) is retried as the collector's writer does: the
//! batch is kept and tried again every [`WriterSettings::retry_interval`],
//! while new records wait in the channel. A batch still failing after
//! [`WriterSettings::give_up_after`] ends the writer with
//! [`WriterError::GaveUp`], naming the database and the SQLite error; it
//! closes the channel first, so the dispatcher stops sending calls whose
//! rows could not be kept.
//!
//! Column-by-column documentation: `configs/README.md`, "The run database".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hyperfake_core::trailers;
use rundb::calls::{CallRow, ScheduleRow};
pub use rundb::calls::{finish_run, insert_function};
pub use rundb::{CallStatus, RunStatus};
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::mpsc;

use crate::schedule::{RequestParams, Schedule};

/// Most rows written in one transaction.
const BATCH: usize = 2_000;
/// Wait after a transaction that emptied the queue, before the next: rows
/// reach the database at most this much later, and at 20 000 calls/s a
/// transaction holds about 200 rows instead of a handful (each commit
/// writes and checksums WAL pages).
const COMMIT_INTERVAL: Duration = Duration::from_millis(10);

/// The outcome of one call, as recorded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallRecord {
    pub call_index: u64,
    pub request_id: String,
    pub image_tag: String,
    pub function_id: String,
    pub phase: String,
    pub scheduled_ns: i64,
    pub sent_ns: Option<i64>,
    pub latency_ns: Option<i64>,
    pub status: CallStatus,
    pub grpc_code: Option<i32>,
    pub error: Option<String>,
    pub function_error: Option<String>,
    pub request_bytes: i64,
    pub response_bytes: Option<i64>,
    pub request: Option<RequestParams>,
    /// The `instance_id` field of the response, if any.
    pub response_instance_id: Option<String>,
    /// Every response metadata key and value (headers and trailers).
    pub metadata: BTreeMap<String, String>,
    /// The image's payload feature values for the bytes sent
    /// (`PayloadFeatures::eval`); `None` when the image declares none.
    pub payload_features: Option<Vec<Option<f64>>>,
}

/// The `runs` row written when a run starts.
#[derive(Clone, Debug)]
pub struct RunRow<'a> {
    pub run_id: &'a str,
    pub started_at_ns: i64,
    pub seed: u64,
    pub leaf_address: &'a str,
    pub config_path: Option<&'a str>,
    pub config_yaml: &'a str,
    pub schedule: &'a Schedule,
}

/// Opens (creating if needed) a run database with loadgen's tables.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = rundb::open(path)?;
    rundb::calls::create(&conn)?;
    Ok(conn)
}

/// Writes the `runs` row and the whole `schedule` table, in one transaction.
pub fn insert_run(conn: &mut Connection, run: &RunRow<'_>) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    rundb::calls::insert_run(
        &tx,
        &rundb::calls::RunRow {
            run_id: run.run_id.to_string(),
            started_at_ns: run.started_at_ns,
            seed: run.seed,
            leaf_address: run.leaf_address.to_string(),
            config_path: run.config_path.map(str::to_string),
            config_yaml: run.config_yaml.to_string(),
            resolved_schedule_json: run.schedule.to_json_without_calls(),
            calls_scheduled: u64::try_from(run.schedule.calls.len()).unwrap_or(u64::MAX),
            loadgen_version: env!("CARGO_PKG_VERSION").to_string(),
        },
    )?;
    let rows = run.schedule.calls.iter().map(|call| {
        let mut row = ScheduleRow {
            call_index: call.index,
            offset_ns: call.offset_ns,
            phase: run.schedule.phases[call.phase as usize].name.clone(),
            image_tag: call.image_tag.as_str().to_string(),
            copy: call.copy,
            ..ScheduleRow::default()
        };
        match &call.request {
            RequestParams::Bytes { size } => row.body_size = Some(*size),
            RequestParams::Bfs { size, seed } => {
                (row.bfs_size, row.bfs_seed) = (Some(i64::from(*size)), Some(i64::from(*seed)));
            }
            RequestParams::Thumbnail { source_width, source_height, width, height, .. } => {
                row.thumb_source = Some(format!("{source_width}x{source_height}"));
                (row.thumb_width, row.thumb_height) = (Some(i64::from(*width)), Some(i64::from(*height)));
            }
            // No schedule column for these: they are in the body (payload features).
            RequestParams::Trace { .. } => {}
        }
        row
    });
    rundb::calls::insert_schedule(&tx, run.run_id, rows)?;
    tx.commit()
}

// === writer thread ===

/// Time between attempts at a batch whose commit failed: the collector's
/// batch interval, after which its own retry comes too. Each attempt may
/// itself wait the connection's busy timeout for a lock.
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// How long a batch may keep failing before the writer gives up and the run
/// stops. Six busy timeouts (`rundb::BUSY_TIMEOUT`, 10 s): far longer than
/// any transaction the collector or processing holds, so a lock this old or
/// a disk full this long will not clear while the run goes on losing rows.
pub const DEFAULT_GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// How the writer rides out a run database it cannot write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriterSettings {
    /// Default: [`DEFAULT_RETRY_INTERVAL`].
    pub retry_interval: Duration,
    /// Default: [`DEFAULT_GIVE_UP_AFTER`].
    pub give_up_after: Duration,
    /// How long one attempt waits for a lock held by another connection
    /// before it counts as failed. Default: `rundb::BUSY_TIMEOUT`, what every
    /// run database connection waits.
    pub busy_timeout: Duration,
}

impl Default for WriterSettings {
    fn default() -> Self {
        WriterSettings {
            retry_interval: DEFAULT_RETRY_INTERVAL,
            give_up_after: DEFAULT_GIVE_UP_AFTER,
            busy_timeout: rundb::BUSY_TIMEOUT,
        }
    }
}

/// Why the writer stopped before writing every record.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error(
        "cannot write calls to the run database {}: still failing after {waited:?} ({attempts} attempts); \
         {rows} rows not written and the run stopped",
        .path.display()
    )]
    GaveUp {
        path: PathBuf,
        waited: Duration,
        attempts: u32,
        /// Rows of the failing batch plus those still queued.
        rows: u64,
        #[source]
        source: rusqlite::Error,
    },
}

/// Counters the writer keeps, readable while it runs.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Rows in committed transactions.
    pub committed_rows: AtomicU64,
    /// Commits that failed (each retried, until the writer gives up).
    pub failed_commits: AtomicU64,
}

/// The thread that writes `calls` rows. Dropping every [`mpsc::Sender`] ends
/// it; [`Recorder::finish`] then returns how many rows it wrote.
#[derive(Debug)]
pub struct Recorder {
    handle: JoinHandle<Result<u64, WriterError>>,
    stats: Arc<WriterStats>,
}

impl Recorder {
    /// Starts the writer on `conn` (its own connection to the run database).
    /// Records queue in a channel of `capacity`; a full channel makes the
    /// finished call's task wait, never the dispatcher.
    pub fn start(conn: Connection, run_id: String, capacity: usize) -> (Recorder, mpsc::Sender<CallRecord>) {
        Self::start_with(conn, run_id, capacity, WriterSettings::default())
    }

    /// [`Recorder::start`] with other [`WriterSettings`] than the defaults.
    pub fn start_with(
        conn: Connection,
        run_id: String,
        capacity: usize,
        settings: WriterSettings,
    ) -> (Recorder, mpsc::Sender<CallRecord>) {
        if let Err(e) = conn.busy_timeout(settings.busy_timeout) {
            tracing::warn!("cannot set the call writer's busy timeout: {e}");
        }
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let stats = Arc::new(WriterStats::default());
        let writer = Writer {
            path: PathBuf::from(conn.path().unwrap_or(":memory:")),
            conn,
            run_id,
            settings,
            stats: Arc::clone(&stats),
        };
        let handle = std::thread::Builder::new()
            .name("loadgen-recorder".into())
            .spawn(move || writer.write_all(rx))
            .expect("spawning a thread only fails when the process is out of resources");
        (Recorder { handle, stats }, tx)
    }

    pub fn stats(&self) -> &Arc<WriterStats> {
        &self.stats
    }

    /// Waits until every record sent before the last sender was dropped is
    /// committed. Blocking: call from `spawn_blocking` in async code.
    pub fn finish(self) -> Result<u64, WriterError> {
        match self.handle.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

struct Writer {
    conn: Connection,
    /// For errors: where the rows were going.
    path: PathBuf,
    run_id: String,
    settings: WriterSettings,
    stats: Arc<WriterStats>,
}

impl Writer {
    fn write_all(mut self, mut rx: mpsc::Receiver<CallRecord>) -> Result<u64, WriterError> {
        let mut written = 0u64;
        let mut batch = Vec::with_capacity(BATCH);
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            // Take whatever else is queued: batches grow with the load.
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(record) => batch.push(record),
                    Err(_) => break,
                }
            }
            self.commit_retrying(&batch, &mut rx)?;
            written += batch.len() as u64;
            let full = batch.len() == BATCH;
            batch.clear();
            // A short batch means the queue is empty: let rows gather for a
            // moment, so that a high call rate costs a few large transactions
            // a second instead of one small one per call.
            if !full {
                std::thread::sleep(COMMIT_INTERVAL);
            }
        }
        Ok(written)
    }

    /// Commits `batch`, keeping it and trying again while the failures last
    /// less than `give_up_after`. Giving up closes `rx` first, so senders see
    /// the writer is gone.
    fn commit_retrying(
        &mut self,
        batch: &[CallRecord],
        rx: &mut mpsc::Receiver<CallRecord>,
    ) -> Result<(), WriterError> {
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let source = match self.commit(batch) {
                Ok(()) => {
                    if attempts > 1 {
                        tracing::info!(attempts, db = %self.path.display(), "call rows written after retrying");
                    }
                    self.stats.committed_rows.fetch_add(batch.len() as u64, Ordering::AcqRel);
                    return Ok(());
                }
                Err(e) => e,
            };
            self.stats.failed_commits.fetch_add(1, Ordering::AcqRel);
            let waited = started.elapsed();
            if waited >= self.settings.give_up_after {
                rx.close();
                let mut queued = 0u64;
                while rx.try_recv().is_ok() {
                    queued += 1;
                }
                return Err(WriterError::GaveUp {
                    path: self.path.clone(),
                    waited,
                    attempts,
                    rows: batch.len() as u64 + queued,
                    source,
                });
            }
            tracing::warn!(
                db = %self.path.display(),
                rows = batch.len(),
                attempts,
                "cannot write call rows, keeping them and retrying: {source}"
            );
            std::thread::sleep(self.settings.retry_interval);
        }
    }

    /// Writes `batch` in one transaction, or nothing.
    fn commit(&mut self, batch: &[CallRecord]) -> rusqlite::Result<()> {
        // IMMEDIATE: a lock held elsewhere is waited for (busy timeout) at
        // BEGIN, before any row is written.
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(rundb::calls::INSERT_CALL)?;
            for record in batch {
                rundb::calls::insert_call(&mut insert, &self.run_id, &record.to_row())?;
            }
        }
        tx.commit()
    }
}

impl CallRecord {
    /// The `calls` row of this record: the platform's timestamps and
    /// durations parsed from the response metadata.
    pub fn to_row(&self) -> CallRow {
        let md = &self.metadata;
        let ns = |key: &str| md.get(key).and_then(|v| v.trim().parse::<i64>().ok());
        let (bfs_size, thumb_width, thumb_height) = match &self.request {
            Some(RequestParams::Bfs { size, .. }) => (Some(i64::from(*size)), None, None),
            Some(RequestParams::Thumbnail { width, height, .. }) => {
                (None, Some(i64::from(*width)), Some(i64::from(*height)))
            }
            _ => (None, None, None),
        };
        CallRow {
            call_index: i64::try_from(self.call_index).unwrap_or(i64::MAX),
            request_id: self.request_id.clone(),
            image_tag: self.image_tag.clone(),
            function_id: self.function_id.clone(),
            phase: self.phase.clone(),
            scheduled_ns: self.scheduled_ns,
            sent_ns: self.sent_ns,
            latency_ns: self.latency_ns,
            status: self.status,
            grpc_code: self.grpc_code,
            error: self.error.clone(),
            function_error: self.function_error.clone(),
            request_bytes: self.request_bytes,
            response_bytes: self.response_bytes,
            bfs_size,
            thumb_width,
            thumb_height,
            instance_id: md.get(trailers::INSTANCE_ID).cloned().or_else(|| self.response_instance_id.clone()),
            worker_address: md.get(trailers::WORKER_ADDRESS).cloned(),
            leaf_got_request_ns: ns(trailers::LEAF_GOT_REQUEST_TIMESTAMP),
            leaf_scheduled_call_ns: ns(trailers::LEAF_SCHEDULED_CALL_TIMESTAMP),
            call_queued_ns: ns(trailers::CALL_QUEUED_TIMESTAMP),
            call_started_ns: ns(trailers::CALL_STARTED_TIMESTAMP),
            got_response_ns: ns(trailers::GOT_RESPONSE_TIMESTAMP),
            function_processing_time_ns: ns(trailers::FUNCTION_PROCESSING_TIME),
            function_handler_time_ns: ns(trailers::FUNCTION_HANDLER_TIME),
            lb_got_request_ns: ns(trailers::LB_GOT_REQUEST_TIMESTAMP),
            lb_forwarded_call_ns: ns(trailers::LB_FORWARDED_CALL_TIMESTAMP),
            trailers_json: serde_json::to_string(md).expect("a string map always serializes"),
            payload_features: self.payload_features.clone(),
            warmup: false,
        }
    }
}
