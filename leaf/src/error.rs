//! The leaf's and load-balancer node's errors, and the one place they become
//! gRPC statuses ([`From<LeafError> for tonic::Status`]).

use std::time::Duration;

use database::ClientError;
use hyperfake_core::{FunctionConfigError, FunctionId};
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::{Code, Status};

/// Why an instance could not be started. Cloned to every caller waiting on the
/// same cold start.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StartError {
    #[error("no worker is in rotation to start function {0} on")]
    NoWorker(FunctionId),
    /// The worker refused or failed the start; its status says why (an image
    /// that is not built is FAILED_PRECONDITION, a function that never became
    /// ready is DEADLINE_EXCEEDED).
    #[error("worker {worker} could not start function {function}: {}", .status.message())]
    Worker { worker: String, function: FunctionId, status: Status },
    #[error("starting an instance of function {0} was interrupted")]
    Interrupted(FunctionId),
}

#[derive(Debug, thiserror::Error)]
pub enum LeafError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidConfig(#[from] FunctionConfigError),
    #[error("function {0} does not exist")]
    UnknownFunction(FunctionId),
    #[error("function database: {0}")]
    Database(#[source] ClientError),
    #[error("function {function} has {limit} calls pending in this leaf; try again later")]
    Overloaded { function: FunctionId, limit: u32 },
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("function {function} had no ready instance within the cold-start timeout of {after:?}")]
    ColdStartTimeout { function: FunctionId, after: Duration },
    #[error("deadline of {0:?} exceeded")]
    DeadlineExceeded(Duration),
    /// A call failed before reaching a function on every instance tried.
    #[error("function {function}: no instance could take the call after {attempts} attempts; last: {}", .last.message())]
    RetriesExhausted { function: FunctionId, attempts: u32, last: Status },
    /// The worker (or, for a load-balancer node, the child) answered with this
    /// status: a function's own error, or a deadline; passed through as it is.
    #[error("{}", .0.message())]
    Downstream(Status),
    #[error("no child of this load-balancer node is in rotation")]
    NoChild,
    /// The connection to a worker or child broke with the call in flight; the
    /// call may have run, so it is not retried.
    #[error("connection to {node} lost during the call: {}", .status.message())]
    ConnectionLost { node: String, status: Status },
}

impl From<LeafError> for Status {
    fn from(e: LeafError) -> Self {
        let message = e.to_string();
        match e {
            LeafError::InvalidArgument(_) | LeafError::InvalidConfig(_) => Status::invalid_argument(message),
            LeafError::UnknownFunction(_) => Status::not_found(message),
            LeafError::Database(ref d) if d.is_not_found() => Status::not_found(message),
            LeafError::Database(ClientError::Invalid(_)) => Status::invalid_argument(message),
            // The function exists but cannot be served until its row is fixed
            // or the function re-created: not worth retrying.
            LeafError::Database(ClientError::StoredInvalid { .. }) => Status::failed_precondition(message),
            LeafError::Database(_) => Status::unavailable(message),
            LeafError::Overloaded { .. } => refused(message),
            LeafError::Start(StartError::NoWorker(_) | StartError::Interrupted(_)) | LeafError::NoChild => {
                Status::unavailable(message)
            }
            LeafError::Start(StartError::Worker { ref status, .. }) => match status.code() {
                // The worker's own answer for an expected condition keeps its code.
                code @ (Code::FailedPrecondition
                | Code::PermissionDenied
                | Code::NotFound
                | Code::DeadlineExceeded
                | Code::ResourceExhausted
                | Code::InvalidArgument) => Status::new(code, message),
                Code::Unavailable => Status::unavailable(message),
                other => {
                    tracing::warn!(code = ?other, "unexpected start failure: {message}");
                    Status::unavailable(message)
                }
            },
            LeafError::ColdStartTimeout { .. } | LeafError::DeadlineExceeded(_) => {
                Status::deadline_exceeded(message)
            }
            LeafError::RetriesExhausted { .. } | LeafError::ConnectionLost { .. } => {
                Status::unavailable(message)
            }
            LeafError::Downstream(status) => status,
        }
    }
}

/// RESOURCE_EXHAUSTED for a call this node refused before anything ran,
/// marked so that a load-balancer node above may give it to another child.
fn refused(message: String) -> Status {
    let mut md = MetadataMap::new();
    md.insert(crate::metadata::REFUSED, AsciiMetadataValue::from_static("overloaded"));
    Status::with_metadata(Code::ResourceExhausted, message, md)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_conditions_never_become_internal() {
        let f = FunctionId::from("f");
        let cases = [
            (LeafError::UnknownFunction(f.clone()), Code::NotFound),
            (LeafError::InvalidArgument("function_id: missing".into()), Code::InvalidArgument),
            (LeafError::InvalidConfig(FunctionConfigError::MissingImageTag), Code::InvalidArgument),
            (LeafError::Overloaded { function: f.clone(), limit: 1 }, Code::ResourceExhausted),
            (LeafError::Start(StartError::NoWorker(f.clone())), Code::Unavailable),
            (
                LeafError::ColdStartTimeout { function: f.clone(), after: Duration::from_secs(1) },
                Code::DeadlineExceeded,
            ),
            (LeafError::DeadlineExceeded(Duration::from_secs(1)), Code::DeadlineExceeded),
            (
                LeafError::Start(StartError::Worker {
                    worker: "w".into(),
                    function: f.clone(),
                    status: Status::failed_precondition("image missing"),
                }),
                Code::FailedPrecondition,
            ),
            (
                LeafError::RetriesExhausted { function: f, attempts: 3, last: Status::unavailable("x") },
                Code::Unavailable,
            ),
            (LeafError::Downstream(Status::aborted("function said so")), Code::Aborted),
            (LeafError::NoChild, Code::Unavailable),
        ];
        for (error, code) in cases {
            let text = error.to_string();
            let status = Status::from(error);
            assert_eq!(status.code(), code, "{text}");
        }
    }
}
