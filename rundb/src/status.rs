//! The statuses stored in the run database, as enums: a call's outcome
//! (`calls.status`) and a run's state (`runs.status`).

use std::fmt;
use std::str::FromStr;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

/// `calls.status`: the gRPC status the call ended with, by its canonical
/// name (`DEADLINE_EXCEEDED`); `NOT_SENT` for a call that never left the
/// load generator; `ABANDONED` for one sent but not waited for (a second
/// Ctrl-C: its outcome is unknown). A call whose handler failed is still `OK`; its
/// `function_error` says so.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CallStatus {
    Ok,
    Cancelled,
    Unknown,
    InvalidArgument,
    DeadlineExceeded,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    ResourceExhausted,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    Unimplemented,
    Internal,
    Unavailable,
    DataLoss,
    Unauthenticated,
    /// Never sent: the run stopped first, or the call could not be built.
    #[default]
    NotSent,
    /// Sent, but the load generator stopped waiting for it.
    Abandoned,
}

impl CallStatus {
    /// Every status: gRPC codes in code order, then [`CallStatus::NotSent`]
    /// and [`CallStatus::Abandoned`].
    pub const ALL: [CallStatus; 19] = [
        CallStatus::Ok,
        CallStatus::Cancelled,
        CallStatus::Unknown,
        CallStatus::InvalidArgument,
        CallStatus::DeadlineExceeded,
        CallStatus::NotFound,
        CallStatus::AlreadyExists,
        CallStatus::PermissionDenied,
        CallStatus::ResourceExhausted,
        CallStatus::FailedPrecondition,
        CallStatus::Aborted,
        CallStatus::OutOfRange,
        CallStatus::Unimplemented,
        CallStatus::Internal,
        CallStatus::Unavailable,
        CallStatus::DataLoss,
        CallStatus::Unauthenticated,
        CallStatus::NotSent,
        CallStatus::Abandoned,
    ];

    /// The status of gRPC code `code` (0 = OK … 16 = UNAUTHENTICATED); `None`
    /// for a number outside the gRPC range.
    pub fn from_grpc_code(code: i32) -> Option<CallStatus> {
        usize::try_from(code).ok().filter(|&c| c < 17).map(|c| CallStatus::ALL[c])
    }

    /// The gRPC code; `None` for [`CallStatus::NotSent`] and [`CallStatus::Abandoned`].
    pub fn grpc_code(self) -> Option<i32> {
        CallStatus::ALL[..17].iter().position(|&s| s == self).and_then(|c| i32::try_from(c).ok())
    }

    /// The name stored in `calls.status`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CallStatus::Ok => "OK",
            CallStatus::Cancelled => "CANCELLED",
            CallStatus::Unknown => "UNKNOWN",
            CallStatus::InvalidArgument => "INVALID_ARGUMENT",
            CallStatus::DeadlineExceeded => "DEADLINE_EXCEEDED",
            CallStatus::NotFound => "NOT_FOUND",
            CallStatus::AlreadyExists => "ALREADY_EXISTS",
            CallStatus::PermissionDenied => "PERMISSION_DENIED",
            CallStatus::ResourceExhausted => "RESOURCE_EXHAUSTED",
            CallStatus::FailedPrecondition => "FAILED_PRECONDITION",
            CallStatus::Aborted => "ABORTED",
            CallStatus::OutOfRange => "OUT_OF_RANGE",
            CallStatus::Unimplemented => "UNIMPLEMENTED",
            CallStatus::Internal => "INTERNAL",
            CallStatus::Unavailable => "UNAVAILABLE",
            CallStatus::DataLoss => "DATA_LOSS",
            CallStatus::Unauthenticated => "UNAUTHENTICATED",
            CallStatus::NotSent => "NOT_SENT",
            CallStatus::Abandoned => "ABANDONED",
        }
    }

    pub fn is_ok(self) -> bool {
        self == CallStatus::Ok
    }
}

impl fmt::Display for CallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `calls.status` value this build does not know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownStatus(pub String);

impl fmt::Display for UnknownStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown call status {:?} (expected OK, a gRPC code name, NOT_SENT or ABANDONED)", self.0)
    }
}

impl std::error::Error for UnknownStatus {}

impl FromStr for CallStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CallStatus::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

impl ToSql for CallStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for CallStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value.as_str()?.parse().map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

/// `runs.status`: how a run ended (or that it is still running).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Completed,
    Interrupted,
    Failed,
}

impl RunStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Failed => "failed",
        }
    }
}

impl ToSql for RunStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_name_and_code() {
        for (i, s) in CallStatus::ALL.into_iter().enumerate() {
            assert_eq!(s.as_str().parse::<CallStatus>(), Ok(s));
            if i >= 17 {
                assert_eq!(s.grpc_code(), None);
            } else {
                assert_eq!(s.grpc_code(), Some(i32::try_from(i).unwrap()));
                assert_eq!(CallStatus::from_grpc_code(i32::try_from(i).unwrap()), Some(s));
            }
        }
        assert_eq!(CallStatus::from_grpc_code(17), None);
        assert_eq!(CallStatus::from_grpc_code(-1), None);
        assert_eq!(CallStatus::DeadlineExceeded.grpc_code(), Some(4));
        assert!("ok".parse::<CallStatus>().unwrap_err().to_string().contains("\"ok\""));
    }

    #[test]
    fn a_status_reads_back_from_sqlite_and_an_unknown_one_is_an_error() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let back: CallStatus =
            conn.query_row("SELECT ?1", [CallStatus::ResourceExhausted], |r| r.get(0)).unwrap();
        assert_eq!(back, CallStatus::ResourceExhausted);
        let err = conn.query_row("SELECT 'TIMEOUT'", [], |r| r.get::<_, CallStatus>(0)).unwrap_err();
        assert!(err.to_string().contains("TIMEOUT"), "{err}");
    }
}
