//! Writing the processed tables into the run database. Re-processing a run
//! replaces that run's rows and nothing else, in one transaction.

use indicatif::ProgressBar;
use polars::prelude::{DataFrame, DataType};
use rusqlite::Connection;

use crate::error::{ProcessError, Result};
use crate::frame::{self, AVG_COLUMNS, Frames, TRAINING_COLUMNS};
use crate::summary::DropReason;

/// The tables processing writes. `training_data` and `training_data_avg` start
/// with exactly the columns of `docs/units.md` ("Training database schema");
/// the rest are extras that readers may ignore.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS training_data (
    run_id TEXT,
    request_id TEXT,
    image_tag TEXT,
    call_started_ns INTEGER,            -- worker clock
    request_size_bytes INTEGER,
    function_instances_count INTEGER,
    active_function_calls_count INTEGER,
    worker_cpu_usage REAL,              -- cores
    worker_ram_usage INTEGER,           -- bytes
    function_processing_time_ns INTEGER, -- handler time
    function_cpu_usage REAL,            -- cores
    function_ram_usage INTEGER,         -- bytes
    worker_processing_time_ns INTEGER,  -- worker-measured
    got_response_ns INTEGER,            -- worker clock
    queue_time_ns INTEGER,              -- call_started - call_queued
    latency_ns INTEGER,                 -- client-measured
    bfs_size INTEGER,
    thumb_width INTEGER,
    thumb_height INTEGER,
    instance_id TEXT,
    worker TEXT,
    response_size_bytes INTEGER,        -- calls.response_bytes
    worker_overhead_ns INTEGER          -- worker_processing_time_ns - function_processing_time_ns
    -- then one feature_<name> REAL per payload feature (added as runs declare them)
);
CREATE INDEX IF NOT EXISTS training_data_run ON training_data (run_id);
CREATE TABLE IF NOT EXISTS training_data_avg (
    image_tag TEXT,
    request_size_bytes REAL,
    function_instances_count REAL,
    active_function_calls_count REAL,
    worker_cpu_usage REAL,
    worker_ram_usage REAL,
    function_processing_time_ns REAL,
    function_cpu_usage REAL,
    function_ram_usage REAL,
    sample_count INTEGER,
    run_id TEXT
);
CREATE TABLE IF NOT EXISTS run_summary (
    run_id TEXT NOT NULL,
    image_tag TEXT NOT NULL,
    calls INTEGER NOT NULL,
    calls_ok INTEGER NOT NULL,
    calls_failed INTEGER NOT NULL,       -- status other than OK (NOT_SENT included)
    calls_by_status_json TEXT NOT NULL,  -- {\"OK\": n, \"UNAVAILABLE\": n, ...}
    function_errors INTEGER NOT NULL,    -- OK calls whose handler returned an error
    training_rows INTEGER NOT NULL,
    training_rows_null_inputs INTEGER NOT NULL,
    dropped_failed INTEGER NOT NULL,
    dropped_unknown_instance INTEGER NOT NULL,
    dropped_no_runtime INTEGER NOT NULL,
    dropped_no_function_cpu INTEGER NOT NULL,
    dropped_no_function_ram INTEGER NOT NULL,
    dropped_runtime_exceeds_latency INTEGER NOT NULL,
    median_queue_time_ns INTEGER,
    median_runtime_ns INTEGER,
    overloaded INTEGER NOT NULL,         -- 1: median queueing > 10% of median runtime
    cpu_quota_cores REAL,
    payload_feature_nulls TEXT,          -- {\"<feature name>\": training rows with it NULL}; {} if none declared
    PRIMARY KEY (run_id, image_tag)
);
CREATE TABLE IF NOT EXISTS payload_features (
    run_id TEXT NOT NULL,
    image_tag TEXT NOT NULL,
    position INTEGER NOT NULL,           -- 0-based, declaration order (the model's input 5 + position)
    name TEXT NOT NULL,                  -- its training_data column is feature_<name>
    declaration TEXT NOT NULL,           -- this feature's JSON, e.g. {\"name\":\"n\",\"json\":\"/Size\"}
    PRIMARY KEY (run_id, image_tag, position)
);
CREATE TABLE IF NOT EXISTS cold_starts (
    run_id TEXT NOT NULL,
    image_tag TEXT,                      -- NULL when no function or call names the instance's image
    instance_id TEXT NOT NULL,
    worker TEXT NOT NULL,
    duration_ns INTEGER NOT NULL         -- worker accepted Start -> instance ready
);
CREATE INDEX IF NOT EXISTS cold_starts_run_image ON cold_starts (run_id, image_tag);
";

/// Opens the run database for writing (WAL, waiting on other writers).
pub fn open_write(path: &std::path::Path) -> Result<Connection> {
    let conn =
        Connection::open(path).map_err(|source| ProcessError::Open { path: path.to_owned(), source })?;
    let setup = || -> rusqlite::Result<()> {
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.execute_batch(SCHEMA)
    };
    setup().map_err(ProcessError::sql("creating the processing tables"))?;
    add_missing_columns(&conn, "training_data", &TRAINING_COLUMNS)?;
    add_missing_columns(&conn, "training_data_avg", &AVG_COLUMNS)?;
    add_missing_columns(&conn, "run_summary", &["payload_feature_nulls"])?;
    Ok(conn)
}

/// The declared type of a column added to an existing table: the new ones
/// have theirs, the older extras keep none (as before).
fn column_type(column: &str) -> &'static str {
    match column {
        "response_size_bytes" | "worker_overhead_ns" => " INTEGER",
        "payload_feature_nulls" => " TEXT",
        c if c.starts_with(hyperfake_core::payload::COLUMN_PREFIX) => " REAL",
        _ => "",
    }
}

/// A table made by an older writer (or the trainer's synthetic data) may lack
/// the extra columns, and a run may declare payload features no earlier run
/// did: add them so the rows still fit.
fn add_missing_columns<S: AsRef<str>>(conn: &Connection, table: &str, columns: &[S]) -> Result<()> {
    let err = ProcessError::sql(format!("checking the columns of {table}"));
    let existing: Vec<String> = conn
        .prepare(&format!("PRAGMA table_info({table})"))
        .and_then(|mut s| s.query_map([], |r| r.get::<_, String>(1))?.collect())
        .map_err(err)?;
    for c in columns.iter().map(AsRef::as_ref).filter(|c| !existing.iter().any(|e| e == c)) {
        conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {c}{}", column_type(c)))
            .map_err(ProcessError::sql(format!("adding {c} to {table}")))?;
    }
    Ok(())
}

/// One column's values, typed for binding.
enum Values {
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Text(Vec<Option<String>>),
}

impl Values {
    fn of(df: &DataFrame, name: &str) -> Result<Values> {
        let dtype = df.column(name).map_err(ProcessError::polars("reading a column"))?.dtype().clone();
        Ok(match dtype {
            DataType::String => Values::Text(frame::strs(df, name)?),
            DataType::Float32 | DataType::Float64 => Values::Float(frame::f64s(df, name)?),
            _ => Values::Int(frame::i64s(df, name)?),
        })
    }

    fn bind(&self, stmt: &mut rusqlite::Statement<'_>, index: usize, row: usize) -> rusqlite::Result<()> {
        match self {
            Values::Int(v) => stmt.raw_bind_parameter(index, v[row]),
            Values::Float(v) => stmt.raw_bind_parameter(index, v[row]),
            Values::Text(v) => stmt.raw_bind_parameter(index, v[row].as_deref()),
        }
    }
}

fn insert_frame<S: AsRef<str>>(
    tx: &rusqlite::Transaction<'_>,
    table: &str,
    columns: &[S],
    df: &DataFrame,
    progress: &ProgressBar,
) -> Result<()> {
    let columns: Vec<&str> = columns.iter().map(AsRef::as_ref).collect();
    let values: Vec<Values> = columns.iter().map(|c| Values::of(df, c)).collect::<Result<_>>()?;
    let placeholders = (1..=columns.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
    let sql = format!("INSERT INTO {table} ({}) VALUES ({placeholders})", columns.join(", "));
    let err = || ProcessError::sql(format!("writing {table}"));
    let mut stmt = tx.prepare(&sql).map_err(err())?;
    for row in 0..df.height() {
        for (k, v) in values.iter().enumerate() {
            v.bind(&mut stmt, k + 1, row).map_err(err())?;
        }
        stmt.raw_execute().map_err(err())?;
        if row % 8192 == 8191 {
            progress.inc(8192);
        }
    }
    progress.inc((df.height() % 8192) as u64);
    Ok(())
}

/// The tables [`write_run`] replaces a run's rows of.
pub const RUN_TABLES: [&str; 5] =
    ["training_data", "training_data_avg", "run_summary", "payload_features", "cold_starts"];

/// Replaces the run's rows in [`RUN_TABLES`].
pub fn write_run(conn: &mut Connection, frames: &Frames, progress: &ProgressBar) -> Result<()> {
    let Frames { training, avg, summary, extras, .. } = frames;
    let run_id = summary.run_id.as_str();
    progress.set_length(progress.length().unwrap_or(0) + (training.height() + avg.height()) as u64);
    let tx = conn.transaction().map_err(ProcessError::sql("starting the write"))?;
    // Inside the transaction: a failed write leaves no half-added columns behind.
    add_missing_columns(&tx, "training_data", &extras.feature_columns)?;
    for table in RUN_TABLES {
        tx.execute(&format!("DELETE FROM {table} WHERE run_id = ?1"), [run_id])
            .map_err(ProcessError::sql(format!("replacing {table} rows of {run_id}")))?;
    }
    let mut training_columns: Vec<&str> = TRAINING_COLUMNS.to_vec();
    training_columns.extend(extras.feature_columns.iter().map(String::as_str));
    insert_frame(&tx, "training_data", &training_columns, training, progress)?;
    insert_frame(&tx, "training_data_avg", &AVG_COLUMNS, avg, progress)?;
    {
        let mut stmt = tx
            .prepare(
                "INSERT INTO payload_features (run_id, image_tag, position, name, declaration)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(ProcessError::sql("writing payload_features"))?;
        for (image, features) in &extras.declarations {
            for (position, f) in features.iter().enumerate() {
                let declaration = serde_json::to_string(f).expect("a payload feature always serializes");
                stmt.execute(rusqlite::params![
                    run_id,
                    image,
                    to_i64(position as u64),
                    f.name(),
                    declaration
                ])
                .map_err(ProcessError::sql("writing payload_features"))?;
            }
        }
        let mut stmt = tx
            .prepare(
                "INSERT INTO cold_starts (run_id, image_tag, instance_id, worker, duration_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(ProcessError::sql("writing cold_starts"))?;
        for c in &extras.cold_starts {
            stmt.execute(rusqlite::params![run_id, c.image_tag, c.instance_id, c.worker, c.duration_ns])
                .map_err(ProcessError::sql("writing cold_starts"))?;
        }
    }
    {
        let mut stmt = tx
            .prepare(
                "INSERT INTO run_summary (run_id, image_tag, calls, calls_ok, calls_failed, calls_by_status_json,
                     function_errors, training_rows, training_rows_null_inputs, dropped_failed,
                     dropped_unknown_instance, dropped_no_runtime, dropped_no_function_cpu, dropped_no_function_ram,
                     dropped_runtime_exceeds_latency, median_queue_time_ns, median_runtime_ns, overloaded,
                     cpu_quota_cores, payload_feature_nulls)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
            )
            .map_err(ProcessError::sql("writing run_summary"))?;
        for img in &summary.images {
            let d = |r: DropReason| to_i64(img.dropped.get(&r).copied().unwrap_or(0));
            stmt.execute(rusqlite::params![
                run_id,
                img.image_tag,
                to_i64(img.calls),
                to_i64(img.calls_ok()),
                to_i64(img.calls - img.calls_ok()),
                serde_json::to_string(&img.calls_by_status).expect("a map of counts serializes"),
                to_i64(img.function_errors),
                to_i64(img.training_rows),
                to_i64(img.training_rows_null_inputs),
                d(DropReason::Failed),
                d(DropReason::UnknownInstance),
                d(DropReason::NoRuntime),
                d(DropReason::NoFunctionCpu),
                d(DropReason::NoFunctionRam),
                d(DropReason::RuntimeExceedsLatency),
                img.median_queue_time_ns,
                img.median_runtime_ns,
                i64::from(img.overloaded),
                img.cpu_quota_cores,
                serde_json::to_string(&img.payload_feature_nulls).expect("a map of counts serializes"),
            ])
            .map_err(ProcessError::sql("writing run_summary"))?;
        }
    }
    tx.commit().map_err(ProcessError::sql("committing the processed tables"))
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
