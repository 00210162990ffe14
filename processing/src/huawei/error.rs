//! What can go wrong importing the Huawei 2025 tables.

use std::path::PathBuf;

/// Why one CSV row was not imported. Counted per reason (and written into
/// the `runs` row); with `--strict` the first one aborts the import.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The row has more or fewer fields than the header, an unclosed quote,
    /// or is not UTF-8.
    Malformed,
    /// A number column holds something that is not a finite number.
    BadNumber,
    /// A number column holds a negative value (no column of either table can be).
    Negative,
    /// A column the row cannot be placed or trained on without is empty.
    MissingValue,
    /// The function name, user id and pool give no valid image reference.
    BadFunction,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Malformed => "malformed",
            SkipReason::BadNumber => "bad_number",
            SkipReason::Negative => "negative",
            SkipReason::MissingValue => "missing_value",
            SkipReason::BadFunction => "bad_function",
        }
    }
}

/// One bad row: where it is and what is wrong with it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{}:{line}: {}{message}", path.display(), column.as_ref().map(|c| format!("column {c}: ")).unwrap_or_default())]
pub struct RowError {
    pub path: PathBuf,
    /// 1-based; the header is line 1.
    pub line: u64,
    /// The column at fault, when one is.
    pub column: Option<String>,
    pub reason: SkipReason,
    pub message: String,
}

/// What stops an import.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// An input file cannot be opened or read.
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An input file has no header line.
    #[error("{path}: empty file (expected a CSV header line)")]
    Empty { path: PathBuf },
    /// The header lacks columns the import reads.
    #[error("{path}:1: the header has no column {} (it has: {found}); is this the Huawei 2025 {table} table?", missing.join(", "))]
    MissingColumns { path: PathBuf, table: &'static str, missing: Vec<String>, found: String },
    /// A bad row, with `--strict`.
    #[error("{0} (--strict stops at the first bad row; without it such rows are skipped and counted)")]
    BadRow(#[from] RowError),
    /// No request row could be imported.
    #[error("no request row could be imported from {files}: {skipped} rows skipped (see the warnings above)")]
    NothingImported { files: String, skipped: u64 },
    /// No request file was given.
    #[error("no per-request file given (--requests)")]
    NoRequests,
    /// The output database exists already (the import writes a new one).
    #[error("{path} exists; the import writes a new run database (remove it or choose another --db)")]
    Exists { path: PathBuf },
    /// The run id cannot name a run.
    #[error("{run_id:?} cannot name a run (1 to 128 letters, digits, '-', '_' and '.'); pass --run-id")]
    BadRunId { run_id: String },
    /// Creating, writing or renaming the database file failed.
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A SQLite statement failed; `what` names the step.
    #[error("SQLite error while {what}")]
    Sql {
        what: String,
        #[source]
        source: rusqlite::Error,
    },
}

impl ImportError {
    pub(crate) fn sql(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> ImportError {
        let what = what.into();
        move |source| ImportError::Sql { what, source }
    }
}
