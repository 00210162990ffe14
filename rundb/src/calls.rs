//! The load generator's tables: `runs`, `functions`, `schedule` and `calls`.
//! Their row types and inserts are here so that loadgen and the fixtures
//! write them the same way. Column documentation: `configs/README.md`,
//! "The run database"; units: `docs/units.md`.

use rusqlite::{CachedStatement, Connection, Transaction, params};

use crate::status::{CallStatus, RunStatus};

/// The table of runs, one row each (`RunRow`).
pub const RUNS_TABLE: &str = "runs";
/// The table of calls that came due, one row each (`CallRow`).
pub const CALLS_TABLE: &str = "calls";

/// Schema of every table the load generator writes. `IF NOT EXISTS` so a
/// database can be reopened (for example by the collector) without error.
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
    status                      TEXT NOT NULL,    -- OK | gRPC code name | NOT_SENT (CallStatus)
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
    warmup                      INTEGER NOT NULL DEFAULT 0, -- 1: a warm-up call, sent before time 0 (not in
                                                  -- `schedule`; call_index after the schedule's), left
                                                  -- out of training rows and summaries
    PRIMARY KEY (run_id, call_index)
);
CREATE INDEX IF NOT EXISTS calls_request_id ON calls (request_id);
";

/// Creates the load generator's tables if needed and brings tables of an
/// earlier version up to [`SCHEMA`].
pub fn create(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)?;
    migrate(conn)
}

/// Brings a run database written by an earlier loadgen up to [`SCHEMA`]
/// without losing a row: `functions` and `schedule` gained `copy`, which is
/// part of the key of `functions`. SQLite cannot change a key in place, so the
/// old table is renamed, recreated from the schema and copied over.
/// `functions` and `calls` gained `payload_features` (NULL in old rows);
/// `calls` gained `warmup` (0 in old rows: they had no warm-up).
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    if !crate::has_column(conn, "functions", "copy")? {
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
    if !crate::has_column(conn, "schedule", "copy")? {
        conn.execute_batch("ALTER TABLE schedule ADD COLUMN copy INTEGER NOT NULL DEFAULT 0")?;
    }
    for table in ["functions", "calls"] {
        if !crate::has_column(conn, table, "payload_features")? {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN payload_features TEXT"))?;
        }
    }
    if !crate::has_column(conn, CALLS_TABLE, "warmup")? {
        conn.execute_batch("ALTER TABLE calls ADD COLUMN warmup INTEGER NOT NULL DEFAULT 0")?;
    }
    Ok(())
}

/// The condition that keeps a reader of `calls` to the measured calls (no
/// warm-up): `"AND warmup = 0"`, or `""` for a database from before warm-ups
/// (every call measured). For databases opened read-only, which cannot be
/// upgraded; append it to a `WHERE`.
pub fn measured_only(conn: &Connection) -> rusqlite::Result<&'static str> {
    Ok(if crate::has_column(conn, CALLS_TABLE, "warmup")? { "AND warmup = 0" } else { "" })
}

/// The `runs` row written when a run starts.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRow {
    pub run_id: String,
    pub started_at_ns: i64,
    pub seed: u64,
    pub leaf_address: String,
    pub config_path: Option<String>,
    pub config_yaml: String,
    pub resolved_schedule_json: String,
    pub calls_scheduled: u64,
    pub loadgen_version: String,
}

/// Writes the `runs` row of a starting run (status `running`).
pub fn insert_run(conn: &Connection, run: &RunRow) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO runs (run_id, started_at_ns, status, seed, leaf_address, config_path, config_yaml,
                           resolved_schedule_json, calls_scheduled, loadgen_version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            run.run_id,
            run.started_at_ns,
            RunStatus::Running,
            i64::from_ne_bytes(run.seed.to_ne_bytes()),
            run.leaf_address,
            run.config_path,
            run.config_yaml,
            run.resolved_schedule_json,
            to_i64(run.calls_scheduled),
            run.loadgen_version,
        ],
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
        params![run_id, finished_at_ns, status, calls_due.map(to_i64), calls_recorded.map(to_i64), error],
    )?;
    Ok(())
}

/// One `schedule` row: a call as planned, with its request parameters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScheduleRow {
    pub call_index: u64,
    pub offset_ns: u64,
    pub phase: String,
    pub image_tag: String,
    pub copy: u32,
    pub body_size: Option<u64>,
    pub bfs_size: Option<i64>,
    pub bfs_seed: Option<i64>,
    pub thumb_source: Option<String>,
    pub thumb_width: Option<i64>,
    pub thumb_height: Option<i64>,
}

/// Writes `rows` into `schedule` (inside the caller's transaction).
pub fn insert_schedule(
    tx: &Transaction<'_>,
    run_id: &str,
    rows: impl IntoIterator<Item = ScheduleRow>,
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare(
        "INSERT INTO schedule (run_id, call_index, offset_ns, phase, image_tag, copy, body_size, bfs_size,
                               bfs_seed, thumb_source, thumb_width, thumb_height)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    for r in rows {
        insert.execute(params![
            run_id,
            to_i64(r.call_index),
            to_i64(r.offset_ns),
            r.phase,
            r.image_tag,
            r.copy,
            r.body_size.map(to_i64),
            r.bfs_size,
            r.bfs_seed,
            r.thumb_source,
            r.thumb_width,
            r.thumb_height,
        ])?;
    }
    Ok(())
}

/// Records the function created as `copy` of `image_tag`, with the payload
/// features its image declares (`PayloadFeatures::to_json`; `[]` for none).
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

/// One `calls` row: a call that came due, with its outcome and what the
/// platform returned. `send_lag_ns` is derived when written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallRow {
    pub call_index: i64,
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
    pub bfs_size: Option<i64>,
    pub thumb_width: Option<i64>,
    pub thumb_height: Option<i64>,
    pub instance_id: Option<String>,
    pub worker_address: Option<String>,
    pub leaf_got_request_ns: Option<i64>,
    pub leaf_scheduled_call_ns: Option<i64>,
    pub call_queued_ns: Option<i64>,
    pub call_started_ns: Option<i64>,
    pub got_response_ns: Option<i64>,
    pub function_processing_time_ns: Option<i64>,
    pub function_handler_time_ns: Option<i64>,
    pub lb_got_request_ns: Option<i64>,
    pub lb_forwarded_call_ns: Option<i64>,
    /// Every response metadata key and value, as a JSON object.
    pub trailers_json: String,
    /// The image's payload feature values in declaration order (`None` for
    /// one that could not be computed); `None` when the image declares none.
    pub payload_features: Option<Vec<Option<f64>>>,
    /// A warm-up call (`loadgen`'s `warmup:`), sent before the schedule's
    /// time 0 and left out of training rows and summaries.
    pub warmup: bool,
}

/// The statement [`insert_call`] binds; prepare it once per transaction
/// (`prepare_cached`).
pub const INSERT_CALL: &str = "INSERT INTO calls (
    run_id, call_index, request_id, image_tag, function_id, phase, scheduled_ns, sent_ns, send_lag_ns,
    latency_ns, status, grpc_code, error, function_error, request_bytes, response_bytes, bfs_size,
    thumb_width, thumb_height, instance_id, worker_address, leaf_got_request_ns, leaf_scheduled_call_ns,
    call_queued_ns, call_started_ns, got_response_ns, function_processing_time_ns, function_handler_time_ns,
    lb_got_request_ns, lb_forwarded_call_ns, trailers_json, payload_features, warmup)
  VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21,
          ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33)";

/// Writes one `calls` row through a statement prepared from [`INSERT_CALL`].
pub fn insert_call(stmt: &mut CachedStatement<'_>, run_id: &str, r: &CallRow) -> rusqlite::Result<()> {
    stmt.execute(params![
        run_id,
        r.call_index,
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
        r.bfs_size,
        r.thumb_width,
        r.thumb_height,
        r.instance_id,
        r.worker_address,
        r.leaf_got_request_ns,
        r.leaf_scheduled_call_ns,
        r.call_queued_ns,
        r.call_started_ns,
        r.got_response_ns,
        r.function_processing_time_ns,
        r.function_handler_time_ns,
        r.lb_got_request_ns,
        r.lb_forwarded_call_ns,
        r.trailers_json,
        r.payload_features.as_deref().map(payload_feature_values_json),
        r.warmup,
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
mod tests;
