//! Default addresses, ports, labels and timeouts, with why each value was chosen.

use std::time::Duration;

/// The database service (HyperFaaS's key-value store port).
pub const DATABASE_ADDRESS: &str = "127.0.0.1:8999";
/// The worker's `controller.Controller`.
pub const WORKER_ADDRESS: &str = "127.0.0.1:50051";
/// The leaf's `leaf.Leaf`.
pub const LEAF_ADDRESS: &str = "127.0.0.1:50050";
/// Port every function container serves `function.FunctionService` on.
pub const FUNCTION_PORT: u16 = 50052;
/// Images a worker may start unless configured otherwise.
pub const IMAGE_PREFIX: &str = "hyperfaas-";
/// Service name a function reports as SERVING through grpc.health.v1 once ready.
pub const FUNCTION_HEALTH_SERVICE: &str = "function.FunctionService";

/// Label on every container, network and image hyperfake creates.
pub const LABEL_MANAGED: &str = "hyperfake.managed";
/// Label naming the worker that owns a container.
pub const LABEL_WORKER: &str = "hyperfake.worker";
/// Label naming the function a container runs.
pub const LABEL_FUNCTION: &str = "hyperfake.function";
/// Label that tests put on everything they create, so they can remove it.
pub const LABEL_TEST: &str = "hyperfake.test";

/// How long `Start` waits for a function to report ready. A static binary in a
/// scratch image starts in well under a second; the slack covers a loaded host.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Client timeout for database calls: the store is local and small, so a slow
/// answer means it is down, and callers should hear so quickly.
pub const DATABASE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the resource stream samples cgroups (the collector needs ≤ 250 ms).
pub const RESOURCE_SAMPLE_INTERVAL: Duration = Duration::from_millis(250);

/// Environment variable names read by the binaries (flags take precedence).
pub mod env {
    pub const DATABASE_ADDRESS: &str = "HYPERFAKE_DATABASE_ADDRESS";
    pub const WORKER_ADDRESS: &str = "HYPERFAKE_WORKER_ADDRESS";
    pub const LEAF_ADDRESS: &str = "HYPERFAKE_LEAF_ADDRESS";
    /// Shared token every service requires and every client sends (optional).
    pub const TOKEN: &str = "HYPERFAKE_TOKEN";
    /// Set in function containers by the worker so the SDK knows its instance id.
    pub const INSTANCE_ID: &str = "HYPERFAKE_INSTANCE_ID";
    pub const FUNCTION_ID: &str = "HYPERFAKE_FUNCTION_ID";
    /// Path to `libonnxruntime.so` for the trainer and fake worker.
    pub const ORT_DYLIB_PATH: &str = "ORT_DYLIB_PATH";
}

/// Largest gRPC message any hyperfake service or function accepts. tonic's
/// default of 4 MiB is too small for thumbnailer payloads; a larger request
/// is refused with RESOURCE_EXHAUSTED instead of being buffered without bound.
pub const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;
/// Largest payload (`data`) one call may carry: [`MAX_MESSAGE_SIZE`] less
/// 64 KiB for the envelope each hop wraps around it (ids, the response's
/// fields), so a payload the leaf accepts fits every hop below it, there and
/// back. Leaf and worker refuse a larger one with RESOURCE_EXHAUSTED before
/// forwarding it (the fault suite, e2e `faults::payload_limit`); the load
/// generator's largest body is the same.
pub const MAX_PAYLOAD_SIZE: usize = MAX_MESSAGE_SIZE - 64 * 1024;
