//! Writing the processed tables into the run database. Re-processing a run
//! replaces that run's rows and nothing else, in one transaction.

use indicatif::ProgressBar;
use polars::prelude::{DataFrame, DataType};
use rusqlite::Connection;

use crate::error::{ProcessError, Result};
use crate::frame::{self, AVG_COLUMNS, TRAINING_COLUMNS};
use crate::summary::{DropReason, RunSummary};

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
    worker TEXT
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
    PRIMARY KEY (run_id, image_tag)
);
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
    Ok(conn)
}

/// A table made by an older writer (or the trainer's synthetic data) may lack
/// the extra columns: add them so the rows still fit.
fn add_missing_columns(conn: &Connection, table: &str, columns: &[&str]) -> Result<()> {
    let err = ProcessError::sql(format!("checking the columns of {table}"));
    let existing: Vec<String> = conn
        .prepare(&format!("PRAGMA table_info({table})"))
        .and_then(|mut s| s.query_map([], |r| r.get::<_, String>(1))?.collect())
        .map_err(err)?;
    for c in columns.iter().filter(|c| !existing.iter().any(|e| e == *c)) {
        conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {c}"))
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

fn insert_frame(
    tx: &rusqlite::Transaction<'_>,
    table: &str,
    columns: &[&str],
    df: &DataFrame,
    progress: &ProgressBar,
) -> Result<()> {
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

/// Replaces `summary.run_id`'s rows in the three tables.
pub fn write_run(
    conn: &mut Connection,
    training: &DataFrame,
    avg: &DataFrame,
    summary: &RunSummary,
    progress: &ProgressBar,
) -> Result<()> {
    let run_id = summary.run_id.as_str();
    progress.set_length(progress.length().unwrap_or(0) + (training.height() + avg.height()) as u64);
    let tx = conn.transaction().map_err(ProcessError::sql("starting the write"))?;
    for table in ["training_data", "training_data_avg", "run_summary"] {
        tx.execute(&format!("DELETE FROM {table} WHERE run_id = ?1"), [run_id])
            .map_err(ProcessError::sql(format!("replacing {table} rows of {run_id}")))?;
    }
    insert_frame(&tx, "training_data", &TRAINING_COLUMNS, training, progress)?;
    insert_frame(&tx, "training_data_avg", &AVG_COLUMNS, avg, progress)?;
    {
        let mut stmt = tx
            .prepare(
                "INSERT INTO run_summary VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                                                  ?16, ?17, ?18, ?19)",
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
            ])
            .map_err(ProcessError::sql("writing run_summary"))?;
        }
    }
    tx.commit().map_err(ProcessError::sql("committing the processed tables"))
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
