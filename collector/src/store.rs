//! The collector's tables and the single writer that fills them.
//!
//! The collector writes into the run database the load generator writes
//! (`training_data/<run_id>.db`), both with WAL and a busy timeout. Every row
//! carries the run id; each start of the collector opens a new numbered
//! session of that run, so a restarted collector appends, and nothing is
//! de-duplicated behind anyone's back. Column units follow `docs/units.md`.
//!
//! Rows reach the [`Writer`] thread through a bounded channel. It buffers them
//! and commits the buffer in one short transaction when the oldest buffered
//! row has waited `batch_interval`, or when `batch_rows` rows are buffered,
//! whichever comes first. A crash therefore loses at most the open batch:
//! rows buffered but not yet committed (younger than `batch_interval`, fewer
//! than `batch_rows`), plus whatever was still queued in the channel.
//! A committed batch is always whole.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rundb::collector::{INSERT_CONTAINER, INSERT_EVENT, INSERT_WORKER, insert_event, insert_sample};
use rusqlite::{Connection, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::record::Record;

/// How long a write waits for the load generator's transaction to finish.
pub const BUSY_TIMEOUT: Duration = rundb::BUSY_TIMEOUT;

/// Why the run database could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the directory {dir}")]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the run database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot open session {session} of run {run_id}")]
    Session {
        run_id: String,
        session: i64,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot commit {rows} rows")]
    Commit {
        rows: usize,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot close session {session} of run {run_id}; {rows} rows were not written")]
    Close {
        run_id: String,
        session: i64,
        rows: usize,
        #[source]
        source: rusqlite::Error,
    },
}

/// Opens (creating if needed) the run database and the collector's tables
/// (`rundb::collector`), upgrading tables an earlier collector made.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|source| StoreError::CreateDir { dir: dir.to_path_buf(), source })?;
    }
    let open_err = |source| StoreError::Open { path: path.to_path_buf(), source };
    let conn = rundb::open(path).map_err(open_err)?;
    rundb::collector::create(&conn).map_err(open_err)?;
    Ok(conn)
}

/// One start of the collector for a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub run_id: String,
    /// 1 for the first start of the run in this database, then 2, 3, ...
    pub number: i64,
    pub started_at_ns: i64,
}

impl Session {
    /// Opens the next session of `run_id`. Numbering happens inside one
    /// immediate transaction, so two collectors starting at once still get
    /// different numbers.
    pub fn begin(
        conn: &mut Connection,
        run_id: &str,
        workers: &[String],
        interval_ms: u32,
    ) -> Result<Session, StoreError> {
        let err = |session, source| StoreError::Session { run_id: run_id.to_string(), session, source };
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| err(0, e))?;
        let number: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(session), 0) + 1 FROM collector_sessions WHERE run_id = ?1",
                [run_id],
                |r| r.get(0),
            )
            .map_err(|e| err(0, e))?;
        let started_at_ns = hyperfake_core::time::now_unix().as_i64();
        let workers_json = serde_json::to_string(workers).expect("a list of strings always serializes");
        tx.execute(
            "INSERT INTO collector_sessions (run_id, session, started_at_ns, stopped_at_ns, workers_json, interval_ms)
             VALUES (?1, ?2, ?3, NULL, ?4, ?5)",
            params![run_id, number, started_at_ns, workers_json, interval_ms],
        )
        .map_err(|e| err(number, e))?;
        tx.commit().map_err(|e| err(number, e))?;
        Ok(Session { run_id: run_id.to_string(), number, started_at_ns })
    }
}

// === Writer ===

/// When the writer commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSettings {
    /// Commit once the oldest buffered row has waited this long.
    pub interval: Duration,
    /// Commit once this many rows are buffered.
    pub rows: usize,
    /// Records (not rows) the channel to the writer holds. A full channel makes
    /// the followers wait; the worker then buffers their events for them.
    pub queue: usize,
}

/// Every 500 ms: a crash loses at most half a second of data, and each
/// commit is a short write that barely delays the load generator's.
pub const DEFAULT_BATCH_INTERVAL: Duration = Duration::from_millis(500);
/// 5 000 rows: one commit of that size takes a few milliseconds.
pub const DEFAULT_BATCH_ROWS: usize = 5_000;
/// Enough for a second of samples from dozens of workers with hundreds of containers.
pub const DEFAULT_QUEUE: usize = 4_096;

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings { interval: DEFAULT_BATCH_INTERVAL, rows: DEFAULT_BATCH_ROWS, queue: DEFAULT_QUEUE }
    }
}

/// Counters the writer keeps, readable while it runs.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Rows taken from the channel.
    pub received_rows: AtomicU64,
    /// Rows in committed transactions.
    pub committed_rows: AtomicU64,
    pub commits: AtomicU64,
    /// Commits that failed and will be retried.
    pub failed_commits: AtomicU64,
}

impl WriterStats {
    pub fn received(&self) -> u64 {
        self.received_rows.load(Ordering::Acquire)
    }

    pub fn committed(&self) -> u64 {
        self.committed_rows.load(Ordering::Acquire)
    }
}

/// How the writer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriterReport {
    pub received_rows: u64,
    pub committed_rows: u64,
}

/// The thread that writes every row. Dropping every sender ends it after a
/// final commit and closing the session ([`Writer::finish`]);
/// [`Writer::kill`] ends it at once, like a crash.
#[derive(Debug)]
pub struct Writer {
    handle: JoinHandle<Result<WriterReport, StoreError>>,
    kill: oneshot::Sender<()>,
    stats: Arc<WriterStats>,
}

impl Writer {
    /// Starts the writer on `conn`, writing rows of `session`.
    pub fn start(conn: Connection, session: Session, batch: BatchSettings) -> (Writer, mpsc::Sender<Record>) {
        let (tx, rx) = mpsc::channel(batch.queue.max(1));
        let (kill, killed) = oneshot::channel();
        let stats = Arc::new(WriterStats::default());
        let thread_stats = Arc::clone(&stats);
        let handle = std::thread::Builder::new()
            .name("collector-writer".into())
            .spawn(move || {
                // A current-thread runtime only to wait for "a record or the
                // batch deadline"; all SQLite work is plain blocking calls.
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .expect("building a current-thread runtime only fails when out of resources");
                let mut state = WriterState {
                    conn,
                    session,
                    batch,
                    buffer: Vec::new(),
                    buffered_rows: 0,
                    stats: thread_stats,
                };
                runtime.block_on(state.run(rx, killed))
            })
            .expect("spawning a thread only fails when the process is out of resources");
        (Writer { handle, kill, stats }, tx)
    }

    pub fn stats(&self) -> &Arc<WriterStats> {
        &self.stats
    }

    /// Waits until every record sent before the last sender was dropped is
    /// committed and the session is closed. Blocking: call from
    /// `spawn_blocking` in async code.
    pub fn finish(self) -> Result<WriterReport, StoreError> {
        // Keep `kill` alive until the thread is done so it is not taken as a kill.
        let Writer { handle, kill, stats: _ } = self;
        let result = join(handle);
        drop(kill);
        result
    }

    /// Ends the writer now, committing nothing more and leaving the session
    /// open: what `kill -9` does to the process. Blocking (briefly: an
    /// in-progress commit completes first).
    pub fn kill(self) -> WriterReport {
        let Writer { handle, kill, stats } = self;
        let _ = kill.send(());
        let _ = join(handle);
        WriterReport { received_rows: stats.received(), committed_rows: stats.committed() }
    }
}

fn join(handle: JoinHandle<Result<WriterReport, StoreError>>) -> Result<WriterReport, StoreError> {
    match handle.join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

struct WriterState {
    conn: Connection,
    session: Session,
    batch: BatchSettings,
    buffer: Vec<Record>,
    buffered_rows: usize,
    stats: Arc<WriterStats>,
}

impl WriterState {
    async fn run(
        &mut self,
        mut rx: mpsc::Receiver<Record>,
        mut killed: oneshot::Receiver<()>,
    ) -> Result<WriterReport, StoreError> {
        // When to commit the buffer: set when its first row arrives, or after
        // a failed commit, when to try again.
        let mut deadline: Option<Instant> = None;
        // A dropped `Writer` (not killed) lets the thread run on and finish.
        let mut kill_armed = true;
        loop {
            let full = self.buffered_rows >= self.batch.rows;
            tokio::select! {
                biased;
                kill = &mut killed, if kill_armed => match kill {
                    Ok(()) => {
                        tracing::debug!(lost = self.buffered_rows, "writer killed; buffer dropped");
                        return Ok(self.report());
                    }
                    Err(_) => kill_armed = false,
                },
                () = sleep_until(deadline) => {
                    deadline = self.commit_or_retry();
                }
                record = rx.recv(), if !full => match record {
                    Some(record) => {
                        self.push(record);
                        deadline.get_or_insert_with(|| Instant::now() + self.batch.interval);
                        if self.buffered_rows >= self.batch.rows {
                            deadline = self.commit_or_retry();
                        }
                    }
                    None => return self.close(),
                },
            }
        }
    }

    fn push(&mut self, record: Record) {
        let rows = record.rows();
        self.buffered_rows += rows;
        self.stats.received_rows.fetch_add(rows as u64, Ordering::AcqRel);
        self.buffer.push(record);
    }

    /// Commits the buffer; on failure keeps it and says when to try again.
    fn commit_or_retry(&mut self) -> Option<Instant> {
        match self.commit(None) {
            Ok(()) => None,
            Err(e) => {
                self.stats.failed_commits.fetch_add(1, Ordering::AcqRel);
                tracing::warn!(error = %crate::error_chain(&e), "commit failed; keeping the batch and retrying");
                Some(Instant::now() + self.batch.interval)
            }
        }
    }

    /// Writes every buffered row, and `stopped_at_ns` if given, in one transaction.
    fn commit(&mut self, stopped_at_ns: Option<i64>) -> Result<(), StoreError> {
        let rows = self.buffered_rows;
        let err = |source| StoreError::Commit { rows, source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        {
            let run_id = self.session.run_id.as_str();
            let mut event = tx.prepare_cached(INSERT_EVENT).map_err(err)?;
            let mut container = tx.prepare_cached(INSERT_CONTAINER).map_err(err)?;
            let mut worker = tx.prepare_cached(INSERT_WORKER).map_err(err)?;
            for record in &self.buffer {
                match record {
                    Record::Event(e) => insert_event(&mut event, run_id, e).map_err(err)?,
                    Record::Sample(s) => {
                        insert_sample(&mut container, Some(&mut worker), run_id, s).map_err(err)?
                    }
                }
            }
            if let Some(stopped) = stopped_at_ns {
                tx.execute(
                    "UPDATE collector_sessions SET stopped_at_ns = ?3 WHERE run_id = ?1 AND session = ?2",
                    params![run_id, self.session.number, stopped],
                )
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        self.buffer.clear();
        self.buffered_rows = 0;
        self.stats.committed_rows.fetch_add(rows as u64, Ordering::AcqRel);
        self.stats.commits.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// The last commit, together with closing the session. Retries a few
    /// times (the other writer may hold the lock beyond the busy timeout).
    fn close(&mut self) -> Result<WriterReport, StoreError> {
        const ATTEMPTS: u32 = 3;
        let mut attempt = 1;
        loop {
            let stopped = hyperfake_core::time::now_unix().as_i64();
            match self.commit(Some(stopped)) {
                Ok(()) => return Ok(self.report()),
                Err(StoreError::Commit { rows, source }) if attempt >= ATTEMPTS => {
                    return Err(StoreError::Close {
                        run_id: self.session.run_id.clone(),
                        session: self.session.number,
                        rows,
                        source,
                    });
                }
                Err(e) => {
                    tracing::warn!(attempt, error = %crate::error_chain(&e), "final commit failed; retrying");
                    attempt += 1;
                }
            }
        }
    }

    fn report(&self) -> WriterReport {
        WriterReport { received_rows: self.stats.received(), committed_rows: self.stats.committed() }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
