//! What can be wrong with a workload file, and where: every problem names
//! its YAML path and line, and all of them are reported at once.

use std::fmt;

use hyperfake_core::FunctionConfigError;

use crate::duration;
use crate::yaml_path::YamlPath;

/// One problem in a workload file.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadError {
    /// Where the problem is, e.g. `workload.phases[1].duration`; empty when
    /// the parser could not tell.
    pub path: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    pub problem: Problem,
}

impl fmt::Display for WorkloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.path.is_empty(), self.line) {
            (false, Some(line)) => write!(f, "{} (line {line}): {}", self.path, self.problem),
            (false, None) => write!(f, "{}: {}", self.path, self.problem),
            (true, Some(line)) => write!(f, "line {line}: {}", self.problem),
            (true, None) => write!(f, "{}", self.problem),
        }
    }
}

/// What is wrong, without where.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Problem {
    /// The YAML did not parse into the expected shape (unknown key, wrong type, …).
    #[error("{0}")]
    Syntax(String),
    #[error("required but missing")]
    Missing,
    #[error("invalid duration {text:?}: {reason}")]
    Duration { text: String, reason: duration::DurationError },
    #[error("invalid size {0}: expected bytes or a number with a unit such as 512KB, 256MB or 2GB")]
    Size(String),
    #[error("must not be negative, got {0}")]
    Negative(i64),
    #[error("{value} is out of range: {expected}")]
    OutOfRange { value: String, expected: String },
    #[error("min ({min}) is larger than max ({max})")]
    MinAboveMax { min: String, max: String },
    #[error("image {0:?} has no entry in function_config")]
    MissingFunctionConfig(String),
    #[error("image {0:?} has no entry in data_providers")]
    MissingDataProvider(String),
    #[error("{0}")]
    Function(FunctionConfigError),
    #[error("not used by data provider type {0}")]
    NotApplicable(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// A payload feature declaration that is not valid (`function_config.<image>.features`).
    #[error("{0}")]
    Feature(String),
    /// The phases would schedule more calls than `max_scheduled_calls`.
    #[error(
        "the phases schedule about {planned} calls, more than max_scheduled_calls ({cap}); \
         largest: {largest}. Lower their rates or durations, or raise max_scheduled_calls"
    )]
    TooManyCalls { planned: u64, cap: u64, largest: String },
    /// A trace file (`trace:`) is missing or malformed.
    #[error("{0}")]
    Trace(crate::trace::TraceError),
}

/// Every problem found in a workload file (never empty).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct WorkloadErrors(pub Vec<WorkloadError>);

impl fmt::Display for WorkloadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} problem{} in the workload file", if n == 1 { "" } else { "s" })?;
        for e in &self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

impl WorkloadErrors {
    /// The first error at `path`, for tests and callers that look for one field.
    pub fn at(&self, path: &str) -> Option<&WorkloadError> {
        self.0.iter().find(|e| e.path == path)
    }
}

impl WorkloadError {
    /// Turns a serde_yaml_ng error into path, line and message.
    pub(super) fn from_yaml(error: &serde_yaml_ng::Error) -> Self {
        let line = error.location().map(|l| l.line());
        let mut message = error.to_string();
        // serde_yaml_ng appends " at line L column C"; the line is kept separately.
        if let Some(at) = message.rfind(" at line ") {
            message.truncate(at);
        }
        // … and prefixes the path of nested errors: "workload.phases[1]: msg".
        let mut path = String::new();
        if let Some((prefix, rest)) = message.split_once(": ")
            && !prefix.is_empty()
            && !prefix.contains(' ')
        {
            path = prefix.to_string();
            message = rest.to_string();
        }
        // Name the offending key itself for unknown and missing fields.
        for marker in ["unknown field `", "missing field `", "duplicate field `"] {
            if let Some(name) = message.strip_prefix(marker).and_then(|r| r.split('`').next()) {
                path = if path.is_empty() { name.to_string() } else { format!("{path}.{name}") };
                break;
            }
        }
        WorkloadError { path, line, problem: Problem::Syntax(message) }
    }
}

/// Collects problems during validation, with lines looked up in the text.
pub(crate) struct Problems<'a> {
    text: &'a str,
    pub(crate) errors: Vec<WorkloadError>,
}

impl<'a> Problems<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Problems { text, errors: Vec::new() }
    }

    /// The file's text (may be empty).
    pub(crate) fn text(&self) -> &'a str {
        self.text
    }

    pub(crate) fn push(&mut self, path: &YamlPath, problem: Problem) {
        self.errors.push(WorkloadError { path: path.to_string(), line: path.line_in(self.text), problem });
    }

    /// Records the error of a result and returns its value.
    pub(crate) fn check<T>(&mut self, path: &YamlPath, result: Result<T, Problem>) -> Option<T> {
        result.map_err(|problem| self.push(path, problem)).ok()
    }
}
