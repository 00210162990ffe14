//! The run database: one SQLite file per run (WAL), written by a dedicated
//! thread fed through a bounded channel, so sending calls never waits on disk.
//!
//! Tables (names kept generic: the collector adds its own tables to the same
//! file under the same `run_id`). Times are ns since the Unix epoch on the
//! host named in the column's comment; durations are ns; sizes are bytes.
//!
//! - `runs`: one row per run: config, resolved schedule, seed, status.
//! - `functions`: the functions created for each image (`CreateFunction`; one
//!   per `copy`).
//! - `schedule`: every scheduled call (sent or not), with its request parameters.
//! - `calls`: one row per call that came due, with its outcome and all the
//!   metadata the server returned.
//!
//! Column-by-column documentation: `configs/README.md`, "The run database".

use std::collections::BTreeMap;
use std::path::Path;
use std::thread::JoinHandle;

use hyperfake_core::trailers;
use rusqlite::{Connection, params};
use tokio::sync::mpsc;

use crate::schedule::{RequestParams, Schedule};

/// Schema of every table loadgen writes. `IF NOT EXISTS` so a database can be
/// reopened (for example by the collector) without error.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    run_id                 TEXT PRIMARY KEY,
    started_at_ns          INTEGER NOT NULL, -- client clock: the schedule's time 0
    finished_at_ns         INTEGER,          -- client clock; NULL while running
    status                 TEXT NOT NULL,    -- running | completed | interrupted | failed
    seed                   INTEGER NOT NULL, -- the workload seed (u64 stored as its i64 bit pattern)
    leaf_address           TEXT NOT NULL,
    config_path            TEXT,
    config_yaml            TEXT NOT NULL,    -- the workload file, verbatim
    resolved_schedule_json TEXT NOT NULL,    -- resolved phases + counts; calls are in `schedule`
    calls_scheduled        INTEGER NOT NULL,
    calls_due              INTEGER,          -- calls whose time came before the run stopped
    calls_recorded         INTEGER,          -- rows written to `calls` (== calls_due)
    error                  TEXT,             -- why a failed run failed
    loadgen_version        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS functions (
    run_id      TEXT NOT NULL,
    image_tag   TEXT NOT NULL,
    copy        INTEGER NOT NULL DEFAULT 0, -- which of the image's `copies`, from 0
    function_id TEXT NOT NULL,
    config_json TEXT NOT NULL,  -- memory (bytes), cpu (CFS us), idle timeout, max concurrency
    payload_features TEXT,      -- the image's declared payload features (JSON list, '[]' if none);
                                -- NULL in rows written before features existed
    PRIMARY KEY (run_id, image_tag, copy)
);
CREATE TABLE IF NOT EXISTS schedule (
    run_id       TEXT NOT NULL,
    call_index   INTEGER NOT NULL,
    offset_ns    INTEGER NOT NULL,  -- after runs.started_at_ns
    phase        TEXT NOT NULL,
    image_tag    TEXT NOT NULL,
    copy         INTEGER NOT NULL DEFAULT 0, -- the image's function the call goes to (functions.copy)
    body_size    INTEGER,           -- echo/generic: bytes of random body
    bfs_size     INTEGER,           -- bfs_json: nodes
    bfs_seed     INTEGER,
    thumb_source TEXT,              -- thumbnailer_json: source image WIDTHxHEIGHT
    thumb_width  INTEGER,
    thumb_height INTEGER,
    PRIMARY KEY (run_id, call_index)
);
CREATE TABLE IF NOT EXISTS calls (
    run_id                      TEXT NOT NULL,
    call_index                  INTEGER NOT NULL, -- = schedule.call_index
    request_id                  TEXT NOT NULL,    -- sent as request metadata `requestid`
    image_tag                   TEXT NOT NULL,
    function_id                 TEXT NOT NULL,
    phase                       TEXT NOT NULL,
    scheduled_ns                INTEGER NOT NULL, -- client clock
    sent_ns                     INTEGER,          -- client clock; NULL if not sent
    send_lag_ns                 INTEGER,          -- sent_ns - scheduled_ns
    latency_ns                  INTEGER,          -- client-measured, send to outcome
    status                      TEXT NOT NULL,    -- OK | gRPC code name | NOT_SENT
    grpc_code                   INTEGER,          -- 0 = OK; NULL if not sent
    error                       TEXT,             -- gRPC status message, or why not sent
    function_error              TEXT,             -- ScheduleCallResponse.error (handler failed)
    request_bytes               INTEGER NOT NULL,
    response_bytes              INTEGER,
    bfs_size                    INTEGER,
    thumb_width                 INTEGER,
    thumb_height                INTEGER,
    instance_id                 TEXT,             -- trailer `instanceid`, else the response field
    worker_address              TEXT,
    leaf_got_request_ns         INTEGER,          -- leaf clock
    leaf_scheduled_call_ns      INTEGER,          -- leaf clock
    call_queued_ns              INTEGER,          -- worker clock
    call_started_ns             INTEGER,          -- worker clock
    got_response_ns             INTEGER,          -- worker clock
    function_processing_time_ns INTEGER,          -- worker-measured
    function_handler_time_ns    INTEGER,          -- function-measured
    lb_got_request_ns           INTEGER,          -- load-balancer clock
    lb_forwarded_call_ns        INTEGER,          -- load-balancer clock
    trailers_json               TEXT NOT NULL,    -- every response metadata key, verbatim
    payload_features            TEXT,             -- JSON array: the image's payload feature values, in
                                                  -- declaration order, null where not computable;
                                                  -- NULL when the image declares none
    PRIMARY KEY (run_id, call_index)
);
CREATE INDEX IF NOT EXISTS calls_request_id ON calls (request_id);
";

/// Most rows written in one transaction.
const BATCH: usize = 2_000;

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
    pub status: String,
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

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Completed,
    Interrupted,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Failed => "failed",
        }
    }
}

/// Opens (creating if needed) a run database with loadgen's tables.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!("cannot create {}: {e}", dir.display())),
            )
        })?;
    }
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // WAL + NORMAL survives a process crash (not a power loss) and keeps
    // commits cheap enough for thousands of rows per second.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch(SCHEMA)?;
    migrate(&conn)?;
    Ok(conn)
}

/// Brings a run database written by an earlier loadgen up to [`SCHEMA`]
/// without losing a row: `functions` and `schedule` gained `copy`, which is
/// part of the key of `functions`. SQLite cannot change a key in place, so the
/// old table is renamed, recreated from the schema and copied over.
/// `functions` and `calls` gained `payload_features` (NULL in old rows).
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let has_column = |table: &str, column: &str| -> rusqlite::Result<bool> {
        conn.query_row(
            &format!("SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name = '{column}'"),
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
    };
    let has_copy = |table: &str| has_column(table, "copy");
    if !has_copy("functions")? {
        conn.execute_batch("BEGIN IMMEDIATE; ALTER TABLE functions RENAME TO functions_before_copies;")?;
        let rest = conn.execute_batch(SCHEMA).and_then(|()| {
            conn.execute_batch(
                "INSERT INTO functions (run_id, image_tag, copy, function_id, config_json)
                     SELECT run_id, image_tag, 0, function_id, config_json FROM functions_before_copies;
                 DROP TABLE functions_before_copies;
                 COMMIT;",
            )
        });
        if let Err(e) = rest {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    if !has_copy("schedule")? {
        conn.execute_batch("ALTER TABLE schedule ADD COLUMN copy INTEGER NOT NULL DEFAULT 0")?;
    }
    for table in ["functions", "calls"] {
        if !has_column(table, "payload_features")? {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN payload_features TEXT"))?;
        }
    }
    Ok(())
}

/// Writes the `runs` row and the whole `schedule` table, in one transaction.
pub fn insert_run(conn: &mut Connection, run: &RunRow<'_>) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO runs (run_id, started_at_ns, status, seed, leaf_address, config_path, config_yaml,
                           resolved_schedule_json, calls_scheduled, loadgen_version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            run.run_id,
            run.started_at_ns,
            RunStatus::Running.as_str(),
            i64::from_ne_bytes(run.seed.to_ne_bytes()),
            run.leaf_address,
            run.config_path,
            run.config_yaml,
            run.schedule.to_json_without_calls(),
            i64::try_from(run.schedule.calls.len()).unwrap_or(i64::MAX),
            env!("CARGO_PKG_VERSION"),
        ],
    )?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO schedule (run_id, call_index, offset_ns, phase, image_tag, copy, body_size, bfs_size,
                                   bfs_seed, thumb_source, thumb_width, thumb_height)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        for call in &run.schedule.calls {
            let (body, bfs_size, bfs_seed, source, w, h) = match &call.request {
                RequestParams::Bytes { size } => (Some(to_i64(*size)), None, None, None, None, None),
                RequestParams::Bfs { size, seed } => (None, Some(*size), Some(*seed), None, None, None),
                RequestParams::Thumbnail { source_width, source_height, width, height, .. } => (
                    None,
                    None,
                    None,
                    Some(format!("{source_width}x{source_height}")),
                    Some(*width),
                    Some(*height),
                ),
            };
            insert.execute(params![
                run.run_id,
                to_i64(call.index),
                to_i64(call.offset_ns),
                run.schedule.phases[call.phase as usize].name,
                call.image_tag.as_str(),
                call.copy,
                body,
                bfs_size,
                bfs_seed,
                source,
                w,
                h,
            ])?;
        }
    }
    tx.commit()
}

/// Records the function created as `copy` of `image_tag`, with the payload
/// features its image declares ([`PayloadFeatures::to_json`]; `[]` for none).
///
/// [`PayloadFeatures::to_json`]: hyperfake_core::payload::PayloadFeatures::to_json
pub fn insert_function(
    conn: &Connection,
    run_id: &str,
    image_tag: &str,
    copy: u32,
    function_id: &str,
    config_json: &str,
    payload_features: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO functions (run_id, image_tag, copy, function_id, config_json, payload_features)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![run_id, image_tag, copy, function_id, config_json, payload_features],
    )?;
    Ok(())
}

/// Marks a run finished.
pub fn finish_run(
    conn: &Connection,
    run_id: &str,
    finished_at_ns: i64,
    status: RunStatus,
    calls_due: Option<u64>,
    calls_recorded: Option<u64>,
    error: Option<&str>,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE runs SET finished_at_ns = ?2, status = ?3, calls_due = ?4, calls_recorded = ?5, error = ?6
         WHERE run_id = ?1",
        params![
            run_id,
            finished_at_ns,
            status.as_str(),
            calls_due.map(to_i64),
            calls_recorded.map(to_i64),
            error
        ],
    )?;
    Ok(())
}

// === writer thread ===

/// The thread that writes `calls` rows. Dropping every [`mpsc::Sender`] ends
/// it; [`Recorder::finish`] then returns how many rows it wrote.
#[derive(Debug)]
pub struct Recorder {
    handle: JoinHandle<rusqlite::Result<u64>>,
}

impl Recorder {
    /// Starts the writer on `conn` (its own connection to the run database).
    /// Records queue in a channel of `capacity`; a full channel makes the
    /// finished call's task wait, never the dispatcher.
    pub fn start(conn: Connection, run_id: String, capacity: usize) -> (Recorder, mpsc::Sender<CallRecord>) {
        let (tx, rx) = mpsc::channel(capacity);
        let handle = std::thread::Builder::new()
            .name("loadgen-recorder".into())
            .spawn(move || write_all(conn, &run_id, rx))
            .expect("spawning a thread only fails when the process is out of resources");
        (Recorder { handle }, tx)
    }

    /// Waits until every record sent before the last sender was dropped is
    /// committed. Blocking: call from `spawn_blocking` in async code.
    pub fn finish(self) -> rusqlite::Result<u64> {
        match self.handle.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

fn write_all(
    mut conn: Connection,
    run_id: &str,
    mut rx: mpsc::Receiver<CallRecord>,
) -> rusqlite::Result<u64> {
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
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(INSERT_CALL)?;
            for record in batch.drain(..) {
                insert_call(&mut insert, run_id, &record)?;
                written += 1;
            }
        }
        tx.commit()?;
    }
    Ok(written)
}

const INSERT_CALL: &str = "INSERT INTO calls (
    run_id, call_index, request_id, image_tag, function_id, phase, scheduled_ns, sent_ns, send_lag_ns,
    latency_ns, status, grpc_code, error, function_error, request_bytes, response_bytes, bfs_size,
    thumb_width, thumb_height, instance_id, worker_address, leaf_got_request_ns, leaf_scheduled_call_ns,
    call_queued_ns, call_started_ns, got_response_ns, function_processing_time_ns, function_handler_time_ns,
    lb_got_request_ns, lb_forwarded_call_ns, trailers_json, payload_features)
  VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21,
          ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32)";

fn insert_call(
    stmt: &mut rusqlite::CachedStatement<'_>,
    run_id: &str,
    r: &CallRecord,
) -> rusqlite::Result<()> {
    let md = &r.metadata;
    let ns = |key: &str| md.get(key).and_then(|v| v.trim().parse::<i64>().ok());
    let (bfs_size, thumb_width, thumb_height) = match &r.request {
        Some(RequestParams::Bfs { size, .. }) => (Some(*size), None, None),
        Some(RequestParams::Thumbnail { width, height, .. }) => (None, Some(*width), Some(*height)),
        _ => (None, None, None),
    };
    let instance_id = md.get(trailers::INSTANCE_ID).cloned().or_else(|| r.response_instance_id.clone());
    stmt.execute(params![
        run_id,
        to_i64(r.call_index),
        r.request_id,
        r.image_tag,
        r.function_id,
        r.phase,
        r.scheduled_ns,
        r.sent_ns,
        r.sent_ns.map(|s| s - r.scheduled_ns),
        r.latency_ns,
        r.status,
        r.grpc_code,
        r.error,
        r.function_error,
        r.request_bytes,
        r.response_bytes,
        bfs_size,
        thumb_width,
        thumb_height,
        instance_id,
        md.get(trailers::WORKER_ADDRESS),
        ns(trailers::LEAF_GOT_REQUEST_TIMESTAMP),
        ns(trailers::LEAF_SCHEDULED_CALL_TIMESTAMP),
        ns(trailers::CALL_QUEUED_TIMESTAMP),
        ns(trailers::CALL_STARTED_TIMESTAMP),
        ns(trailers::GOT_RESPONSE_TIMESTAMP),
        ns(trailers::FUNCTION_PROCESSING_TIME),
        ns(trailers::FUNCTION_HANDLER_TIME),
        ns(trailers::LB_GOT_REQUEST_TIMESTAMP),
        ns(trailers::LB_FORWARDED_CALL_TIMESTAMP),
        serde_json::to_string(md).expect("a string map always serializes"),
        r.payload_features.as_deref().map(payload_feature_values_json),
    ])?;
    Ok(())
}

/// `calls.payload_features`: a JSON array with `null` for a value that could
/// not be computed (never 0). Values are finite (`PayloadFeatures::eval`).
pub fn payload_feature_values_json(values: &[Option<f64>]) -> String {
    serde_json::to_string(values).expect("finite numbers and nulls always serialize")
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_from_before_copies_is_upgraded_without_losing_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE functions (run_id TEXT NOT NULL, image_tag TEXT NOT NULL, function_id TEXT NOT NULL,
                                         config_json TEXT NOT NULL, PRIMARY KEY (run_id, image_tag));
                 INSERT INTO functions VALUES ('old-run', 'hyperfaas-echo:latest', 'f-1', '{}');
                 CREATE TABLE schedule (run_id TEXT NOT NULL, call_index INTEGER NOT NULL, offset_ns INTEGER NOT NULL,
                                        phase TEXT NOT NULL, image_tag TEXT NOT NULL, body_size INTEGER,
                                        bfs_size INTEGER, bfs_seed INTEGER, thumb_source TEXT, thumb_width INTEGER,
                                        thumb_height INTEGER, PRIMARY KEY (run_id, call_index));
                 INSERT INTO schedule (run_id, call_index, offset_ns, phase, image_tag)
                     VALUES ('old-run', 0, 5, 'p', 'hyperfaas-echo:latest');",
            )
            .unwrap();
        }
        let conn = open(&path).unwrap();
        let old: (String, i64) = conn
            .query_row("SELECT function_id, copy FROM functions WHERE run_id = 'old-run'", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(old, ("f-1".to_string(), 0));
        let copy: i64 = conn.query_row("SELECT copy FROM schedule", [], |r| r.get(0)).unwrap();
        assert_eq!(copy, 0);
        // The new key takes several copies of one image; a repeat is refused, not replaced.
        insert_function(&conn, "new-run", "hyperfaas-echo:latest", 0, "f-2", "{}", "[]").unwrap();
        insert_function(&conn, "new-run", "hyperfaas-echo:latest", 1, "f-3", "{}", "[]").unwrap();
        assert!(insert_function(&conn, "new-run", "hyperfaas-echo:latest", 1, "f-4", "{}", "[]").is_err());
        drop(conn);
        // Opening again is a no-op.
        let conn = open(&path).unwrap();
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM functions", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 3);
    }

    #[test]
    fn a_database_from_before_payload_features_gains_the_columns_with_null_in_old_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            // The schema as it was: every table, without `payload_features`.
            let old: String = SCHEMA
                .lines()
                .filter(|l| !l.contains("payload_features") && !l.trim_start().starts_with("-- "))
                .collect::<Vec<_>>()
                .join("\n");
            assert!(!old.contains("payload_features"));
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(&old).unwrap();
            conn.execute_batch(
                "INSERT INTO functions (run_id, image_tag, copy, function_id, config_json)
                     VALUES ('old-run', 'bfs:latest', 0, 'f-1', '{}');
                 INSERT INTO calls (run_id, call_index, request_id, image_tag, function_id, phase, scheduled_ns,
                                    status, request_bytes, trailers_json)
                     VALUES ('old-run', 0, 'old-run-0', 'bfs:latest', 'f-1', 'p', 1, 'OK', 10, '{}');",
            )
            .unwrap();
        }
        let mut conn = open(&path).unwrap();
        let old: (Option<String>, Option<String>) = conn
            .query_row(
                "SELECT f.payload_features, c.payload_features FROM functions f JOIN calls c USING (run_id)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(old, (None, None));
        // New rows carry values; a value that cannot be computed is null, never 0.
        insert_function(&conn, "new-run", "bfs:latest", 0, "f-2", "{}", r#"[{"name":"n","json":"/Size"}]"#)
            .unwrap();
        let tx = conn.transaction().unwrap();
        {
            let mut stmt = tx.prepare_cached(INSERT_CALL).unwrap();
            let record = CallRecord {
                request_id: "new-run-0".into(),
                image_tag: "bfs:latest".into(),
                status: "OK".into(),
                payload_features: Some(vec![Some(250.0), None]),
                ..CallRecord::default()
            };
            insert_call(&mut stmt, "new-run", &record).unwrap();
        }
        tx.commit().unwrap();
        let values: String = conn
            .query_row("SELECT payload_features FROM calls WHERE run_id = 'new-run'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(values, "[250.0,null]");
        drop(conn);
        // Opening again is a no-op.
        open(&path).unwrap();
    }
}
