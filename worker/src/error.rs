//! The worker's errors, and the one place they become gRPC statuses.

use std::time::Duration;

use database::ClientError;
use hyperfake_core::{FunctionId, ImageTag, InstanceId};

use crate::instance::Lifecycle;
use crate::runtime::{CallError, RuntimeError};

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("function {0} does not exist")]
    UnknownFunction(FunctionId),
    #[error("function database: {0}")]
    Database(#[source] ClientError),
    #[error("image {image} is not allowed on this worker (allowed prefixes: {allowed:?})")]
    ImageNotAllowed { image: ImageTag, allowed: Vec<String> },
    #[error("starting an instance of function {function}: {source}")]
    Start { function: FunctionId, source: RuntimeError },
    #[error("stopping instance {instance}: {source}")]
    Stop { instance: InstanceId, source: RuntimeError },
    #[error("instance {0} does not exist on this worker")]
    UnknownInstance(InstanceId),
    #[error("instance {instance} cannot be stopped: it is {state:?}")]
    AlreadyStopping { instance: InstanceId, state: Lifecycle },
    #[error("function {0} has no ready instance on this worker; call Start first")]
    NoReadyInstance(FunctionId),
    #[error("call on instance {instance}: {source}")]
    Call { instance: InstanceId, source: CallError },
    #[error("deadline of {0:?} exceeded")]
    DeadlineExceeded(Duration),
}

impl From<WorkerError> for tonic::Status {
    fn from(e: WorkerError) -> Self {
        use tonic::Status;
        let message = e.to_string();
        match e {
            WorkerError::InvalidArgument(_) => Status::invalid_argument(message),
            WorkerError::UnknownFunction(_) | WorkerError::UnknownInstance(_) => Status::not_found(message),
            WorkerError::Database(ref d) if d.is_not_found() => Status::not_found(message),
            WorkerError::Database(_) => Status::unavailable(message),
            WorkerError::ImageNotAllowed { .. } => Status::permission_denied(message),
            WorkerError::Start {
                source: RuntimeError::ImageMissing { .. } | RuntimeError::NoModel { .. },
                ..
            } => Status::failed_precondition(message),
            WorkerError::Start { source: RuntimeError::NotReady { .. }, .. } => {
                Status::deadline_exceeded(message)
            }
            WorkerError::Start { .. } | WorkerError::Stop { .. } => Status::unavailable(message),
            WorkerError::AlreadyStopping { .. } | WorkerError::NoReadyInstance(_) => {
                Status::failed_precondition(message)
            }
            // The function's own gRPC error is passed through as it is.
            WorkerError::Call { source: CallError::Status(s), .. } => s,
            WorkerError::Call { source: CallError::Unreachable(_), .. } => Status::unavailable(message),
            WorkerError::Call { source: CallError::ModelUnloaded { .. }, .. } => {
                Status::failed_precondition(message)
            }
            WorkerError::Call { source: CallError::ModelFailed { .. }, .. } => {
                tracing::warn!("{message}");
                Status::internal(message)
            }
            WorkerError::Call { source: CallError::DeadlineExceeded, .. }
            | WorkerError::DeadlineExceeded(_) => Status::deadline_exceeded(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_error(source: CallError) -> tonic::Status {
        WorkerError::Call { instance: "i".into(), source }.into()
    }

    #[test]
    fn statuses_the_fake_worker_invents_are_mapped_here() {
        let unloaded = call_error(CallError::ModelUnloaded { image: "hyperfaas-echo:latest".into() });
        assert_eq!(unloaded.code(), tonic::Code::FailedPrecondition);
        assert!(unloaded.message().contains("hyperfaas-echo:latest"), "{}", unloaded.message());
        let failed = call_error(CallError::ModelFailed { path: "m.onnx".into(), reason: "shape".into() });
        assert_eq!(failed.code(), tonic::Code::Internal);
        assert!(failed.message().contains("m.onnx") && failed.message().contains("shape"));
        let missing: tonic::Status = WorkerError::Start {
            function: "f".into(),
            source: RuntimeError::NoModel { image: "x:1".into() },
        }
        .into();
        assert_eq!(missing.code(), tonic::Code::FailedPrecondition);
    }

    #[test]
    fn a_functions_own_status_passes_through() {
        let own = call_error(CallError::Status(tonic::Status::aborted("mine")));
        assert_eq!((own.code(), own.message()), (tonic::Code::Aborted, "mine"));
    }
}
