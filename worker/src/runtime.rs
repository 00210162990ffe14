//! What the worker needs from whatever runs its instances: Docker containers on
//! a real worker, timers on the fake worker.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hyperfake_core::{Bytes, Cores, FunctionConfig, FunctionId, ImageTag, InstanceId, Nanos};
use proto::common::{CallRequest, CallResponse};
use tokio::sync::{Notify, mpsc};

/// Everything needed to start one instance.
#[derive(Clone, Debug)]
pub struct StartSpec {
    pub instance_id: InstanceId,
    pub function_id: FunctionId,
    pub image_tag: ImageTag,
    pub config: FunctionConfig,
}

/// A started, ready instance.
#[derive(Debug)]
pub struct Started {
    /// Runtime-specific handle (the container id on Docker).
    pub handle: String,
    /// A human-readable name (the container name).
    pub name: String,
    /// Where the instance is reached (`host:port`), reported in `StartResponse`.
    pub address: String,
    pub conn: Arc<dyn InstanceConn>,
}

/// A call's result as the instance returned it.
#[derive(Debug)]
pub struct CallOutput {
    pub response: CallResponse,
    /// Time inside the function's handler, when the function reported it.
    pub handler_time: Option<Nanos>,
}

/// One instance's call path.
#[async_trait]
pub trait InstanceConn: Send + Sync + std::fmt::Debug {
    /// Runs one call. `timeout` is what remains of the caller's deadline.
    async fn call(&self, request: CallRequest, timeout: Option<Duration>) -> Result<CallOutput, CallError>;
}

/// An instance exited without being asked to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitNotice {
    pub instance_id: InstanceId,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
}

/// One sample of an instance's resource counters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResourceCounters {
    /// Cumulative CPU time the instance has consumed.
    pub cpu_usage: Nanos,
    /// Memory in use now.
    pub memory: Bytes,
}

#[async_trait]
pub trait Runtime: Send + Sync + std::fmt::Debug + 'static {
    /// Starts an instance and returns once it is ready to serve calls. On
    /// failure nothing is left behind.
    async fn start(&self, spec: &StartSpec) -> Result<Started, RuntimeError>;

    /// Stops and removes an instance. Stopping one that is already gone is not an error.
    async fn stop(&self, handle: &str) -> Result<(), RuntimeError>;

    /// Resource counters of a running instance, `None` if they cannot be read.
    async fn sample(&self, handle: &str) -> Option<ResourceCounters>;

    /// Unexpected exits are sent to `exits` for as long as the runtime lives,
    /// and `resync` is notified whenever exits may have been missed: the
    /// runtime's view of its instances was interrupted and is back (on Docker:
    /// the event stream (re)connected; an engine restart loses its event log).
    /// The worker then asks [`vanished`](Runtime::vanished). A runtime whose
    /// instances never exit on their own (the fake worker's) sends nothing and
    /// never notifies.
    fn watch(&self, exits: mpsc::Sender<ExitNotice>, resync: Arc<Notify>);

    /// Of `instances` (id and handle), those that no longer run, each as the
    /// notice its exit would have produced (exit code and OOM flag when still
    /// known). The worker asks after a resync and periodically. By default
    /// none: instances of such a runtime never vanish unreported.
    async fn vanished(&self, instances: &[(InstanceId, String)]) -> Result<Vec<ExitNotice>, RuntimeError> {
        let _ = instances;
        Ok(Vec::new())
    }

    /// The worker's current CPU and RAM usage (real host, or simulated).
    fn usage(&self) -> HostUsage;
}

/// Worker-level resource usage.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostUsage {
    /// Busy percentage of each core over the last sampling interval.
    pub cpu_percent_per_core: Vec<f64>,
    /// Cores busy over the last sampling interval (sum over cores).
    pub cpu: Cores,
    pub ram_used: Bytes,
    pub ram_total: Bytes,
}

/// Why a runtime could not start or stop an instance.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "image {image} is not available on this worker; build it first (scripts/build-function-images.sh)"
    )]
    ImageMissing { image: ImageTag },
    #[error("instance {instance} exited during startup (exit code {exit_code:?}){logs}")]
    ExitedDuringStartup { instance: InstanceId, exit_code: Option<i64>, logs: String },
    #[error("instance {instance} did not become ready within {after:?}")]
    NotReady { instance: InstanceId, after: Duration },
    #[error("no model for image {image} is loaded on this fake worker")]
    NoModel { image: ImageTag },
    #[error("container engine: {0}")]
    Engine(String),
}

/// Why a call to an instance failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The instance could not be reached (connection refused or reset).
    #[error("instance unreachable: {0}")]
    Unreachable(String),
    /// The instance answered with a gRPC error of its own.
    #[error("instance returned {}: {}", .0.code(), .0.message())]
    Status(tonic::Status),
    #[error("deadline exceeded while waiting for the instance")]
    DeadlineExceeded,
    /// Fake worker: the model of the instance's image was unloaded since the
    /// instance started (a reload of a models directory without it).
    #[error("no model for image {image} is loaded any more")]
    ModelUnloaded { image: ImageTag },
    /// Fake worker: the model could not predict this call.
    #[error("model {path} failed: {reason}")]
    ModelFailed { path: std::path::PathBuf, reason: String },
}
