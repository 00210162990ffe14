//! What can be wrong with a trace file, and where.

use std::fmt;
use std::path::{Path, PathBuf};

/// A problem in one trace file: the file, the 1-based line when there is one,
/// and what is wrong. Displayed as `file:line: what`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct TraceError {
    pub path: PathBuf,
    pub line: Option<u64>,
    pub kind: TraceErrorKind,
}

impl TraceError {
    pub(crate) fn new(path: &Path, line: Option<u64>, kind: TraceErrorKind) -> TraceError {
        TraceError { path: path.to_path_buf(), line, kind }
    }
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path.display(), self.kind),
            None => write!(f, "{}: {}", self.path.display(), self.kind),
        }
    }
}

/// What is wrong, without where.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TraceErrorKind {
    #[error("cannot open: {0}")]
    Open(String),
    #[error("cannot read: {0}")]
    Read(String),
    #[error("the file is empty (expected a header line)")]
    Empty,
    #[error("no column {0:?} in the header")]
    MissingColumn(String),
    #[error("unexpected column {0:?} in the header")]
    UnexpectedColumn(String),
    #[error("the minute columns must be 1, 2, … without a gap; minute {0} is missing")]
    MinuteGap(u32),
    #[error(
        "the trace window (minutes {first}..={last}) is not in the file, which has minutes 1..={available}"
    )]
    Window { first: u32, last: u32, available: u32 },
    #[error("line longer than {0} bytes")]
    LineTooLong(u64),
    #[error("quoted fields are not part of the Azure trace format")]
    Quoted,
    #[error("expected {expected} fields as in the header, found {found}")]
    FieldCount { expected: usize, found: usize },
    #[error("{0} is empty")]
    EmptyField(String),
    #[error("{column} is not a non-negative number: {value:?}")]
    BadNumber { column: String, value: String },
    #[error("{column} is not a non-negative whole count: {value:?}")]
    BadCount { column: String, value: String },
    #[error("{0} is listed twice in the trace section's hashes")]
    DuplicateHash(String),
    #[error("no function {0:?} in the file")]
    HashNotFound(String),
    #[error("function {0:?} has no row in this durations file")]
    NoDuration(String),
    #[error("no function has an invocation in the trace window and a durations row; nothing to replay")]
    NothingToSelect,
}
