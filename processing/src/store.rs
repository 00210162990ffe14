//! Writing the processed tables into the run database. Re-processing a run
//! replaces that run's rows and nothing else, in one transaction.

use indicatif::ProgressBar;
use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, ValueRef};

use crate::error::{ProcessError, Result};
use crate::frame::{AVG_COLUMNS, Frames, TRAINING_COLUMNS};
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

/// Inserts `rows` into `table`, binding each of `columns` with `value`.
fn insert_rows<'r, R: 'r>(
    tx: &rusqlite::Transaction<'_>,
    table: &str,
    columns: &[&str],
    rows: impl Iterator<Item = &'r R>,
    value: impl Fn(&'r R, &str) -> Option<ValueRef<'r>>,
    progress: &ProgressBar,
) -> Result<()> {
    let placeholders = (1..=columns.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
    let sql = format!("INSERT INTO {table} ({}) VALUES ({placeholders})", columns.join(", "));
    let err = || ProcessError::sql(format!("writing {table}"));
    let mut stmt = tx.prepare(&sql).map_err(err())?;
    let mut n = 0u64;
    for row in rows {
        for (k, column) in columns.iter().enumerate() {
            let v = value(row, column).ok_or_else(|| ProcessError::UnknownColumn {
                table: table.to_owned(),
                column: (*column).to_owned(),
            })?;
            stmt.raw_bind_parameter(k + 1, ToSqlOutput::Borrowed(v)).map_err(err())?;
        }
        stmt.raw_execute().map_err(err())?;
        n += 1;
        if n % 8192 == 0 {
            progress.inc(8192);
        }
    }
    progress.inc(n % 8192);
    Ok(())
}

/// Replaces the run's rows in [`RUN_TABLES`].
pub fn write_run(conn: &mut Connection, frames: &Frames, progress: &ProgressBar) -> Result<()> {
    let Frames { avg, summary, extras, .. } = frames;
    let run_id = summary.run_id.as_str();
    let rows = frames.training().count() + avg.len();
    progress.set_length(progress.length().unwrap_or(0) + rows as u64);
    let tx = conn.transaction().map_err(ProcessError::sql("starting the write"))?;
    // Inside the transaction: a failed write leaves no half-added columns behind.
    for table in ["training_data", "training_data_avg"] {
        rundb::training::add_missing_columns(&tx, table, &extras.feature_columns)
            .map_err(ProcessError::sql(format!("adding the payload feature columns to {table}")))?;
    }
    for table in RUN_TABLES {
        tx.execute(&format!("DELETE FROM {table} WHERE run_id = ?1"), [run_id])
            .map_err(ProcessError::sql(format!("replacing {table} rows of {run_id}")))?;
    }
    let mut training_columns: Vec<&str> = TRAINING_COLUMNS.to_vec();
    training_columns.extend(extras.feature_columns.iter().map(String::as_str));
    let features = &extras.feature_columns;
    insert_rows(
        &tx,
        "training_data",
        &training_columns,
        frames.training(),
        |row, column| row.training_value(column, run_id, features),
        progress,
    )?;
    let mut avg_columns: Vec<&str> = AVG_COLUMNS.to_vec();
    avg_columns.extend(extras.feature_columns.iter().map(String::as_str));
    insert_rows(
        &tx,
        "training_data_avg",
        &avg_columns,
        avg.iter(),
        |row, column| row.value(column, run_id, features),
        progress,
    )?;
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
