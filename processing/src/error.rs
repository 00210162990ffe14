//! The one error type of the processing library.

use std::path::PathBuf;

/// What went wrong while reading a run database or writing its results.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The database file could not be opened.
    #[error("cannot open {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// A SQLite statement failed; `what` names the table or step.
    #[error("SQLite error while {what}")]
    Sql {
        what: String,
        #[source]
        source: rusqlite::Error,
    },
    /// A processed table has a column processing has no value for (a schema
    /// and code out of step: a bug).
    #[error("no value for column {column} of {table}")]
    UnknownColumn { table: String, column: String },
    /// The database has no `calls` table, or no run in it.
    #[error("{path} has no run to process (no `calls` rows); is it a loadgen run database?")]
    NoRuns { path: PathBuf },
    /// `--run-id` names a run the database does not have.
    #[error("{path} has no run {run_id:?} (runs in it: {known})")]
    UnknownRun { path: PathBuf, run_id: String, known: String },
    /// `functions.payload_features` of an image is not a valid declaration list.
    #[error(
        "run {run_id}: functions.payload_features of {image_tag} is not a valid payload feature list: {reason}"
    )]
    PayloadFeatures { run_id: String, image_tag: String, reason: String },
    /// Writing a plot or report file failed.
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Drawing a plot failed.
    #[error("cannot draw {path}: {message}")]
    Draw { path: PathBuf, message: String },
    /// No TrueType font for plot labels was found.
    #[error(
        "no TrueType font for plot labels: tried {tried}; install fonts-dejavu-core or set {env} to a .ttf file",
        env = hyperfake_plotfont::FONT_ENV
    )]
    NoFont { tried: String },
    /// A run failed one or more checks of `process check` ([`crate::check`]).
    #[error("{path}: run {run_id:?} {failures}\nfound:\n{report}")]
    CheckFailed {
        path: PathBuf,
        run_id: String,
        failures: crate::check::CheckFailures,
        report: Box<crate::check::RunReport>,
    },
}

impl ProcessError {
    pub(crate) fn sql(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> ProcessError {
        let what = what.into();
        move |source| ProcessError::Sql { what, source }
    }
}

pub type Result<T, E = ProcessError> = std::result::Result<T, E>;
