//! The collector's tables: `collector_sessions`, `instance_events`,
//! `container_samples` and `worker_samples`, their row types and inserts.
//! The collector builds these rows from the wire (`collector::record`);
//! processing reads them; the fixtures write them the same way.

use std::sync::Arc;

use rusqlite::{CachedStatement, Connection, params};

/// The table of lifecycle events (`EventRow`).
pub const INSTANCE_EVENTS_TABLE: &str = "instance_events";
/// The table of per-container resource samples (`ContainerRow`).
pub const CONTAINER_SAMPLES_TABLE: &str = "container_samples";
/// The table of per-worker resource samples (`SampleRows` totals).
pub const WORKER_SAMPLES_TABLE: &str = "worker_samples";

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

/// Creates the collector's tables if needed and brings tables of an earlier
/// version up to [`SCHEMA`]: `instance_events` gained `start_duration_ns`
/// (NULL in older rows).
pub fn create(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)?;
    if !crate::has_column(conn, "instance_events", "start_duration_ns")? {
        conn.execute_batch("ALTER TABLE instance_events ADD COLUMN start_duration_ns INTEGER NULL")?;
    }
    Ok(())
}

/// `instance_events.event` of an instance's successful start.
pub const EVENT_START: &str = "START";

/// One lifecycle event (`instance_events`).
#[derive(Clone, Debug, PartialEq)]
pub struct EventRow {
    pub worker: Arc<str>,
    pub instance_id: Option<String>,
    pub function_id: Option<String>,
    /// `START`, `STOP`, `TIMEOUT`, `DOWN`, `CALL`, `RESPONSE`, `RUNNING`, or
    /// `UNKNOWN(<n>)` for a value this build does not know.
    pub event: String,
    /// `SUCCESS`, `FAILED`, or `UNKNOWN(<n>)`.
    pub status: String,
    /// Worker clock, ns since the Unix epoch.
    pub timestamp_ns: Option<i64>,
    pub detail: String,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// Successful START only: ns from the worker accepting `Start` to the
    /// instance being ready. `None` when the worker did not send it.
    pub start_duration_ns: Option<i64>,
}

impl EventRow {
    /// Whether this is a per-call event (`CALL`, `RESPONSE`), which are only
    /// recorded when asked for: there are two per call.
    pub fn is_call_event(&self) -> bool {
        self.event == "CALL" || self.event == "RESPONSE"
    }
}

/// One function container in one resource sample (`container_samples`).
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerRow {
    pub instance_id: Option<String>,
    pub function_id: Option<String>,
    /// Cumulative cgroup CPU time, ns.
    pub cpu_usage_ns: Option<i64>,
    pub memory_bytes: Option<i64>,
}

/// One resource sample: the worker's totals (`worker_samples`) and one row per
/// container (`container_samples`), all at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleRows {
    pub worker: Arc<str>,
    /// Worker clock, ns since the Unix epoch.
    pub timestamp_ns: Option<i64>,
    /// Cores busy over the interval ending at `timestamp_ns`.
    pub cpu_cores: Option<f64>,
    pub ram_bytes: Option<i64>,
    pub containers: Vec<ContainerRow>,
}

impl SampleRows {
    /// Rows this sample adds to the database.
    pub fn rows(&self) -> usize {
        1 + self.containers.len()
    }
}

/// The statements [`insert_event`] and [`insert_sample`] bind; prepare them
/// once per transaction (`prepare_cached`).
pub const INSERT_EVENT: &str = "INSERT INTO instance_events
    (run_id, worker, instance_id, function_id, event, status, timestamp_ns, detail, exit_code, oom_killed,
     start_duration_ns)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
pub const INSERT_CONTAINER: &str = "INSERT INTO container_samples
    (run_id, worker, timestamp_ns, instance_id, function_id, cpu_usage_ns, memory_bytes)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
pub const INSERT_WORKER: &str =
    "INSERT INTO worker_samples (run_id, worker, timestamp_ns, cpu_cores, ram_bytes)
    VALUES (?1, ?2, ?3, ?4, ?5)";

pub fn insert_event(stmt: &mut CachedStatement<'_>, run_id: &str, e: &EventRow) -> rusqlite::Result<()> {
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

/// Writes a sample's `worker_samples` row (unless `worker` is `None`: a
/// fixture writing container rows alone) and its `container_samples` rows.
pub fn insert_sample(
    container: &mut CachedStatement<'_>,
    worker: Option<&mut CachedStatement<'_>>,
    run_id: &str,
    s: &SampleRows,
) -> rusqlite::Result<()> {
    if let Some(worker) = worker {
        worker.execute(params![run_id, &*s.worker, s.timestamp_ns, s.cpu_cores, s.ram_bytes])?;
    }
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
