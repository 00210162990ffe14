//! `process import-huawei`: the Huawei Public Cloud Trace 2025 (EuroSys'25,
//! sir-lab/data-release) as a run database the trainer trains on.
//!
//! Its per-request table has hyperfake's request size and three targets
//! (`requestBodySize`, `runtimeCost`, `cpu_usage`, `memory_usage`); each
//! request becomes one `training_data` row of image `huawei-<funcID>:latest`
//! ([`rows::image_tag`]). The inputs it has no column for are derived per
//! function from its own requests ([`derive`]); its cold-start table becomes
//! `cold_starts`. Every column's mapping: `docs/units.md`, "Huawei 2025
//! per-request data".
//!
//! The CSV files are streamed ([`csv`]), never loaded whole: pass 1 writes
//! the rows, pass 2 sweeps them in (function, start) order as SQLite sorts
//! them on disk. The database is written as `<db>.partial` and renamed when
//! complete, so a failed import leaves nothing behind.
//!
//! A bad row (wrong field count, not a number, negative, an empty required
//! cell) is skipped and counted by reason (the first few logged with file,
//! line and column; the counts go into the `runs` row); with
//! [`ImportOptions::strict`] the first one aborts. A missing file or a
//! header without a needed column always aborts.

pub mod csv;
pub mod derive;
pub mod error;
pub mod rows;
pub mod write;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use indicatif::ProgressBar;
use serde::Serialize;

pub use error::{ImportError, RowError, SkipReason};
pub use rows::{IMAGE_PREFIX, image_tag, sanitise};
pub use write::FileCounts;

/// How long an idle pod stays alive: the paper's keep-alive time ("pods keep
/// running for a minute even if unused"), used to count live pods.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(60);

/// `runs.leaf_address` of an import (there is no leaf): the data's source.
pub const SOURCE: &str = "huawei-public-cloud-trace-2025";

/// What to import and how.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Per-request CSV files (one region's day, in parts).
    pub requests: Vec<PathBuf>,
    /// Cold-start CSV files.
    pub cold_starts: Vec<PathBuf>,
    /// The run database to write; must not exist.
    pub db: PathBuf,
    /// By default, the database's file stem.
    pub run_id: Option<String>,
    /// By default, [`DEFAULT_KEEP_ALIVE`].
    pub keep_alive: Duration,
    /// Abort at the first bad row instead of skipping it.
    pub strict: bool,
}

impl ImportOptions {
    pub fn new(db: impl Into<PathBuf>, requests: Vec<PathBuf>) -> ImportOptions {
        ImportOptions {
            requests,
            cold_starts: vec![],
            db: db.into(),
            run_id: None,
            keep_alive: DEFAULT_KEEP_ALIVE,
            strict: false,
        }
    }
}

/// Progress bars (hidden by default).
#[derive(Clone, Debug)]
pub struct ImportProgress {
    /// Bytes of the CSV files read.
    pub read: ProgressBar,
    /// Rows whose derived inputs are written.
    pub derive: ProgressBar,
}

impl Default for ImportProgress {
    fn default() -> Self {
        ImportProgress { read: ProgressBar::hidden(), derive: ProgressBar::hidden() }
    }
}

/// What an import did (also `runs.resolved_schedule_json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImportSummary {
    pub source: &'static str,
    pub run_id: String,
    pub db: PathBuf,
    pub requests: Vec<FileCounts>,
    pub cold_starts: Vec<FileCounts>,
    /// Distinct functions (image tags) with training rows.
    pub functions: u64,
    pub keep_alive_ns: i64,
    pub strict: bool,
}

impl ImportSummary {
    pub fn rows_imported(&self) -> u64 {
        self.requests.iter().map(|f| f.rows_imported).sum()
    }

    pub fn rows_skipped(&self) -> u64 {
        self.requests.iter().map(FileCounts::rows_skipped).sum()
    }

    pub fn cold_starts_imported(&self) -> u64 {
        self.cold_starts.iter().map(|f| f.rows_imported).sum()
    }
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.requests.iter().chain(&self.cold_starts) {
            write!(f, "{}: {} rows read, {} imported", c.path.display(), c.rows_read, c.rows_imported)?;
            let skipped: Vec<String> =
                c.skipped.iter().map(|(reason, n)| format!("{n} {}", reason.as_str())).collect();
            if !skipped.is_empty() {
                write!(f, ", skipped: {}", skipped.join(", "))?;
            }
            writeln!(f)?;
        }
        writeln!(
            f,
            "run {}: {} training rows of {} functions, {} cold starts",
            self.run_id,
            self.rows_imported(),
            self.functions,
            self.cold_starts_imported()
        )
    }
}

/// The database being written; removed (with its WAL files) when dropped,
/// which after the final rename finds nothing left to remove.
#[derive(Debug)]
struct Partial {
    path: PathBuf,
}

impl Partial {
    fn files(&self) -> [PathBuf; 3] {
        let with = |suffix: &str| PathBuf::from(format!("{}{suffix}", self.path.display()));
        [self.path.clone(), with("-wal"), with("-shm")]
    }

    fn remove(&self) {
        for f in self.files() {
            let _ = std::fs::remove_file(f);
        }
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Imports the trace's tables into a new run database at `options.db`.
pub fn import(options: &ImportOptions, progress: &ImportProgress) -> Result<ImportSummary, ImportError> {
    let ImportOptions { requests, cold_starts, db, run_id, keep_alive, strict } = options;
    if requests.is_empty() {
        return Err(ImportError::NoRequests);
    }
    let run_id = match run_id {
        Some(r) => r.clone(),
        None => db.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    if !hyperfake_core::ids::valid_run_id(&run_id) {
        return Err(ImportError::BadRunId { run_id });
    }
    if db.exists() {
        return Err(ImportError::Exists { path: db.clone() });
    }
    let mut bytes = 0;
    for path in requests.iter().chain(cold_starts) {
        let meta =
            std::fs::metadata(path).map_err(|source| ImportError::Read { path: path.clone(), source })?;
        bytes += meta.len();
    }
    progress.read.set_length(bytes);
    let keep_alive_ns = i64::try_from(keep_alive.as_nanos()).unwrap_or(i64::MAX);

    let partial = Partial { path: PathBuf::from(format!("{}.partial", db.display())) };
    partial.remove();
    let mut conn = rundb::open(&partial.path)
        .map_err(ImportError::sql(format!("creating {}", partial.path.display())))?;
    write::create(&conn).map_err(ImportError::sql("creating the tables"))?;

    let mut summary = ImportSummary {
        source: SOURCE,
        run_id,
        db: db.clone(),
        requests: vec![],
        cold_starts: vec![],
        functions: 0,
        keep_alive_ns,
        strict: *strict,
    };
    for path in requests {
        let counts = write::requests(&mut conn, &summary.run_id, path, *strict, &progress.read)?;
        tracing::info!(file = %path.display(), rows = counts.rows_imported, skipped = counts.rows_skipped(), "read");
        summary.requests.push(counts);
    }
    if summary.rows_imported() == 0 {
        let files = requests.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
        return Err(ImportError::NothingImported { files, skipped: summary.rows_skipped() });
    }
    for path in cold_starts {
        let counts = write::cold_starts(&mut conn, &summary.run_id, path, *strict, &progress.read)?;
        summary.cold_starts.push(counts);
    }
    summary.functions =
        derive::apply(&partial.path, &mut conn, &summary.run_id, keep_alive_ns, &progress.derive)?;
    write::run_row(&conn, &summary)?;
    // One self-contained file: the WAL folded in, no -wal or -shm to carry along.
    conn.pragma_update(None, "journal_mode", "DELETE").map_err(ImportError::sql("closing the database"))?;
    drop(conn);
    std::fs::rename(&partial.path, db).map_err(|source| ImportError::Write { path: db.clone(), source })?;
    Ok(summary)
}
