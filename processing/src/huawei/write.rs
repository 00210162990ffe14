//! Writing the import: the tables (all from `rundb`), one `training_data`
//! row per request, one `cold_starts` row per cold start, the `runs` row.

use std::collections::BTreeMap;
use std::path::Path;

use indicatif::ProgressBar;
use rundb::training::{RESPONSE_SIZE, TRAINING_COLUMNS, TRAINING_DATA_TABLE};
use rusqlite::{Connection, Transaction, params};
use serde::Serialize;

use super::csv::CsvFile;
use super::error::{ImportError, RowError, SkipReason};
use super::rows::{COLD_START_COLUMNS, ColdStartRow, REQUEST_COLUMNS, RequestRow, Where};

/// Rows inserted per transaction (the WAL stays small on multi-GB files).
const BATCH: u64 = 100_000;
/// Skipped rows logged one by one per file; the rest are only counted.
const LOGGED_SKIPS: u64 = 10;

/// What became of one input file's rows.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FileCounts {
    pub path: std::path::PathBuf,
    /// Data lines read (the header not counted).
    pub rows_read: u64,
    pub rows_imported: u64,
    /// Rows not imported, by reason.
    pub skipped: BTreeMap<SkipReason, u64>,
}

impl FileCounts {
    pub fn rows_skipped(&self) -> u64 {
        self.skipped.values().sum()
    }

    /// Counts a bad row (logging the first few), or returns it with `strict`.
    fn skip(&mut self, e: RowError, strict: bool) -> Result<(), ImportError> {
        if strict {
            return Err(e.into());
        }
        let n = self.rows_skipped();
        if n < LOGGED_SKIPS {
            tracing::warn!("{e}; row skipped");
        } else if n == LOGGED_SKIPS {
            tracing::warn!("{}: more rows skipped; counts at the end", self.path.display());
        }
        *self.skipped.entry(e.reason).or_default() += 1;
        Ok(())
    }
}

/// The `training_data` extras an import fills or leaves NULL: every extra
/// but `response_size_bytes`. The trace has no response sizes, and the
/// trainer predicts the extra targets only when the table has both columns,
/// so without it the models have HyperFake's three outputs instead of
/// dropping every row for a NULL target.
pub(crate) fn extras() -> Vec<&'static str> {
    TRAINING_COLUMNS[13..].iter().copied().filter(|c| *c != RESPONSE_SIZE).collect()
}

/// Creates the tables: loadgen's (for `runs`), `training_data` and
/// `training_data_avg` with the base columns plus [`extras`], `cold_starts`.
pub(crate) fn create(conn: &Connection) -> rusqlite::Result<()> {
    rundb::calls::create(conn)?;
    conn.execute_batch(rundb::training::BASE_SCHEMA)?;
    rundb::training::add_missing_columns(conn, TRAINING_DATA_TABLE, &extras())?;
    conn.execute_batch(rundb::training::COLD_STARTS_DDL)
}

/// The Huawei cluster, as `worker` (`cluster-<clusterName>`).
fn worker(cluster: &str) -> String {
    format!("cluster-{cluster}")
}

const INSERT_REQUEST: &str = "INSERT INTO training_data (
    run_id, request_id, image_tag, call_started_ns, request_size_bytes, function_processing_time_ns,
    function_cpu_usage, function_ram_usage, worker_processing_time_ns, got_response_ns, latency_ns,
    instance_id, worker, worker_overhead_ns)
  VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";

/// Streams one per-request file into `training_data` (derived inputs NULL
/// until [`super::derive::apply`]).
pub(crate) fn requests(
    conn: &mut Connection,
    run_id: &str,
    path: &Path,
    strict: bool,
    progress: &ProgressBar,
) -> Result<FileCounts, ImportError> {
    let mut csv = CsvFile::open(path, progress)?;
    let cols = csv.columns("per-request", REQUEST_COLUMNS)?;
    let at = Where { path };
    let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into());
    let mut counts = FileCounts { path: path.to_owned(), ..FileCounts::default() };
    let mut tx = begin(conn)?;
    while let Some(record) = csv.next_record()? {
        counts.rows_read += 1;
        let row = record.and_then(|r| {
            let line = r.line;
            RequestRow::parse(&r, &cols, &at).map(|row| (line, row))
        });
        let (line, r) = match row {
            Ok(row) => row,
            Err(e) => {
                counts.skip(e, strict)?;
                continue;
            }
        };
        let request_id = r.request_id.clone().unwrap_or_else(|| format!("{name}:{line}"));
        let got_response = r.worker_time_ns.map(|_| r.ended_ns());
        tx.prepare_cached(INSERT_REQUEST)
            .and_then(|mut stmt| {
                stmt.execute(params![
                    run_id,
                    request_id,
                    r.image_tag,
                    r.started_ns,
                    r.request_size_bytes,
                    r.runtime_ns,
                    r.cpu_cores,
                    r.ram_bytes,
                    r.worker_time_ns,
                    got_response,
                    r.latency_ns,
                    r.pod,
                    r.cluster.as_deref().map(worker),
                    r.worker_overhead_ns,
                ])
            })
            .map_err(ImportError::sql(format!("writing training_data rows of {}", path.display())))?;
        counts.rows_imported += 1;
        if counts.rows_imported.is_multiple_of(BATCH) {
            commit(tx)?;
            tx = begin(conn)?;
        }
    }
    commit(tx)?;
    Ok(counts)
}

/// Streams one cold-start file into `cold_starts`.
pub(crate) fn cold_starts(
    conn: &mut Connection,
    run_id: &str,
    path: &Path,
    strict: bool,
    progress: &ProgressBar,
) -> Result<FileCounts, ImportError> {
    let mut csv = CsvFile::open(path, progress)?;
    let cols = csv.columns("cold-start", COLD_START_COLUMNS)?;
    let at = Where { path };
    let mut counts = FileCounts { path: path.to_owned(), ..FileCounts::default() };
    let mut tx = begin(conn)?;
    while let Some(record) = csv.next_record()? {
        counts.rows_read += 1;
        let c = match record.and_then(|r| ColdStartRow::parse(&r, &cols, &at)) {
            Ok(c) => c,
            Err(e) => {
                counts.skip(e, strict)?;
                continue;
            }
        };
        tx.prepare_cached(
            "INSERT INTO cold_starts (run_id, image_tag, instance_id, worker, duration_ns)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![run_id, c.image_tag, c.pod, worker(&c.cluster), c.duration_ns])
        })
        .map_err(ImportError::sql(format!("writing cold_starts rows of {}", path.display())))?;
        counts.rows_imported += 1;
        if counts.rows_imported.is_multiple_of(BATCH) {
            commit(tx)?;
            tx = begin(conn)?;
        }
    }
    commit(tx)?;
    Ok(counts)
}

fn begin(conn: &mut Connection) -> Result<Transaction<'_>, ImportError> {
    conn.transaction().map_err(ImportError::sql("starting a write"))
}

fn commit(tx: Transaction<'_>) -> Result<(), ImportError> {
    tx.commit().map_err(ImportError::sql("committing imported rows"))
}

/// The `runs` row describing the import: `config_yaml` names the inputs and
/// options, `resolved_schedule_json` is the [`super::ImportSummary`] (files,
/// rows read, imported and skipped by reason), `calls_due` the request rows
/// read and `calls_recorded` those imported.
pub(crate) fn run_row(conn: &Connection, summary: &super::ImportSummary) -> Result<(), ImportError> {
    let err = || ImportError::sql("writing the runs row");
    let list = |files: &[FileCounts]| {
        files.iter().map(|f| format!("  - {:?}\n", f.path.display().to_string())).collect::<String>()
    };
    let config_yaml = format!(
        "# process import-huawei\nsource: {}\nrequests:\n{}cold_starts:\n{}keep_alive_ns: {}\nstrict: {}\n",
        super::SOURCE,
        list(&summary.requests),
        list(&summary.cold_starts),
        summary.keep_alive_ns,
        summary.strict
    );
    let (first, last) = conn
        .query_row(
            "SELECT MIN(call_started_ns), MAX(COALESCE(got_response_ns, call_started_ns + function_processing_time_ns))
             FROM training_data WHERE run_id = ?1",
            [&summary.run_id],
            |r| Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?)),
        )
        .map_err(err())?;
    let read: u64 = summary.requests.iter().map(|f| f.rows_read).sum();
    let row = rundb::calls::RunRow {
        run_id: summary.run_id.clone(),
        started_at_ns: first.unwrap_or(0),
        seed: 0,
        leaf_address: super::SOURCE.to_owned(),
        config_path: None,
        config_yaml,
        resolved_schedule_json: serde_json::to_string(summary).expect("counts and paths serialize"),
        calls_scheduled: read,
        loadgen_version: format!("process import-huawei {}", env!("CARGO_PKG_VERSION")),
    };
    rundb::calls::insert_run(conn, &row).map_err(err())?;
    rundb::calls::finish_run(
        conn,
        &summary.run_id,
        last.unwrap_or(0),
        rundb::RunStatus::Completed,
        Some(read),
        Some(summary.requests.iter().map(|f| f.rows_imported).sum()),
        None,
    )
    .map_err(err())
}
