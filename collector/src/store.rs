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

use rusqlite::{Connection, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::record::{EventRow, Record, SampleRows};

/// Schema of the collector's tables. `IF NOT EXISTS`: the file may already
/// hold the load generator's tables, or an earlier session's rows.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS collector_sessions (
    run_id        TEXT NOT NULL,
    session       INTEGER NOT NULL,  -- 1, 2, ... one per start of the collector for this run
    started_at_ns INTEGER NOT NULL,  -- collector host clock
    stopped_at_ns INTEGER NULL,      -- collector host clock; NULL while running or after a crash
    workers_json  TEXT NOT NULL,     -- JSON array of worker addresses, as given
    interval_ms   INTEGER NOT NULL,  -- resource sampling interval asked of the workers
    PRIMARY KEY (run_id, session)
);
CREATE TABLE IF NOT EXISTS instance_events (
    run_id       TEXT NOT NULL,
    worker       TEXT NOT NULL,      -- worker address, as given on the command line
    instance_id  TEXT,
    function_id  TEXT,
    event        TEXT NOT NULL,      -- START | STOP | TIMEOUT | DOWN | CALL | RESPONSE | RUNNING
    status       TEXT NOT NULL,      -- SUCCESS | FAILED
    timestamp_ns INTEGER,            -- worker clock
    detail       TEXT NOT NULL,      -- exit code, OOM, error message; '' if none
    exit_code    INTEGER NULL,       -- DOWN only
    oom_killed   INTEGER NOT NULL,   -- 0 | 1
    start_duration_ns INTEGER NULL   -- successful START only: Start accepted -> instance ready
);
CREATE TABLE IF NOT EXISTS container_samples (
    run_id       TEXT NOT NULL,
    worker       TEXT NOT NULL,
    timestamp_ns INTEGER,            -- worker clock
    instance_id  TEXT,
    function_id  TEXT,
    cpu_usage_ns INTEGER,            -- cumulative cgroup CPU time; NULL if not read, never 0
    memory_bytes INTEGER             -- memory in use; NULL if not read, never 0
);
CREATE TABLE IF NOT EXISTS worker_samples (
    run_id       TEXT NOT NULL,
    worker       TEXT NOT NULL,
    timestamp_ns INTEGER,            -- worker clock
    cpu_cores    REAL,               -- cores busy over the interval ending at timestamp_ns
    ram_bytes    INTEGER             -- RAM in use
);
CREATE INDEX IF NOT EXISTS instance_events_run_instance_time
    ON instance_events (run_id, instance_id, timestamp_ns);
CREATE INDEX IF NOT EXISTS container_samples_run_instance_time
    ON container_samples (run_id, instance_id, timestamp_ns);
CREATE INDEX IF NOT EXISTS worker_samples_run_worker_time
    ON worker_samples (run_id, worker, timestamp_ns);
";

/// How long a write waits for the load generator's transaction to finish.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Opens (creating if needed) the run database and the collector's tables.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|source| StoreError::CreateDir { dir: dir.to_path_buf(), source })?;
    }
    let open_err = |source| StoreError::Open { path: path.to_path_buf(), source };
    let conn = Connection::open(path).map_err(open_err)?;
    // Busy timeout first: switching to WAL needs a lock the other writer may hold.
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(open_err)?;
    // WAL + NORMAL survives a process crash (not a power loss) and keeps
    // commits cheap: what we promise is "at most the last batch".
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(open_err)?;
    conn.execute_batch(SCHEMA).map_err(open_err)?;
    upgrade(&conn).map_err(open_err)?;
    Ok(conn)
}

/// Brings tables made by an earlier collector up to [`SCHEMA`] in place:
/// `instance_events` gained `start_duration_ns` (NULL in older rows).
fn upgrade(conn: &Connection) -> rusqlite::Result<()> {
    let has: i64 = conn.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('instance_events') WHERE name = 'start_duration_ns'",
        [],
        |r| r.get(0),
    )?;
    if has == 0 {
        conn.execute_batch("ALTER TABLE instance_events ADD COLUMN start_duration_ns INTEGER NULL")?;
    }
    Ok(())
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
                        insert_sample(&mut container, &mut worker, run_id, s).map_err(err)?
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

const INSERT_EVENT: &str = "INSERT INTO instance_events
    (run_id, worker, instance_id, function_id, event, status, timestamp_ns, detail, exit_code, oom_killed,
     start_duration_ns)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
const INSERT_CONTAINER: &str = "INSERT INTO container_samples
    (run_id, worker, timestamp_ns, instance_id, function_id, cpu_usage_ns, memory_bytes)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
const INSERT_WORKER: &str = "INSERT INTO worker_samples (run_id, worker, timestamp_ns, cpu_cores, ram_bytes)
    VALUES (?1, ?2, ?3, ?4, ?5)";

fn insert_event(
    stmt: &mut rusqlite::CachedStatement<'_>,
    run_id: &str,
    e: &EventRow,
) -> rusqlite::Result<()> {
    stmt.execute(params![
        run_id,
        &*e.worker,
        e.instance_id,
        e.function_id,
        e.event,
        e.status,
        e.timestamp_ns,
        e.detail,
        e.exit_code,
        e.oom_killed,
        e.start_duration_ns,
    ])?;
    Ok(())
}

fn insert_sample(
    container: &mut rusqlite::CachedStatement<'_>,
    worker: &mut rusqlite::CachedStatement<'_>,
    run_id: &str,
    s: &SampleRows,
) -> rusqlite::Result<()> {
    worker.execute(params![run_id, &*s.worker, s.timestamp_ns, s.cpu_cores, s.ram_bytes])?;
    for c in &s.containers {
        container.execute(params![
            run_id,
            &*s.worker,
            s.timestamp_ns,
            c.instance_id,
            c.function_id,
            c.cpu_usage_ns,
            c.memory_bytes,
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
