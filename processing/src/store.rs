//! Writing the processed tables into the run database. Re-processing a run
//! replaces that run's rows and nothing else, in one transaction.

use indicatif::ProgressBar;
use polars::prelude::{DataFrame, DataType};
use rusqlite::Connection;

use crate::error::{ProcessError, Result};
use crate::frame::{self, AVG_COLUMNS, Frames, TRAINING_COLUMNS};
use crate::summary::DropReason;

pub use rundb::training::RUN_TABLES;

/// How long writing the processed tables waits for another writer's transaction.
const WRITE_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Opens the run database for writing (WAL, waiting on other writers) with
/// the processed tables (`rundb::training`), adding columns an older writer's
/// tables lack.
pub fn open_write(path: &std::path::Path) -> Result<Connection> {
    let conn = rundb::open(path).map_err(|source| ProcessError::Open { path: path.to_owned(), source })?;
    // Processing has always waited longer than the recording writers (rundb::BUSY_TIMEOUT).
    conn.busy_timeout(WRITE_BUSY_TIMEOUT).map_err(ProcessError::sql("setting the busy timeout"))?;
    rundb::training::create(&conn).map_err(ProcessError::sql("creating the processing tables"))?;
    Ok(conn)
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

/// Replaces the run's rows in [`RUN_TABLES`].
pub fn write_run(conn: &mut Connection, frames: &Frames, progress: &ProgressBar) -> Result<()> {
    let Frames { training, avg, summary, extras, .. } = frames;
    let run_id = summary.run_id.as_str();
    progress.set_length(progress.length().unwrap_or(0) + (training.height() + avg.height()) as u64);
    let tx = conn.transaction().map_err(ProcessError::sql("starting the write"))?;
    // Inside the transaction: a failed write leaves no half-added columns behind.
    rundb::training::add_missing_columns(&tx, "training_data", &extras.feature_columns)
        .map_err(ProcessError::sql("adding the payload feature columns to training_data"))?;
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
