//! Serve a handler as a HyperFaaS function.
//!
//! What every function container does, whichever handler it runs:
//! - serves `function.FunctionService/Call` on `0.0.0.0:50052`;
//! - echoes `request_id` and sets `instance_id` (env `HYPERFAKE_INSTANCE_ID`,
//!   else `HOSTNAME`, which Docker sets to the container id) on every response;
//! - turns a handler error or panic into `CallResponse.error` and keeps serving;
//! - reports the time spent in the handler (ns) as response metadata
//!   `functionhandlertime`;
//! - reports `function.FunctionService` as SERVING through `grpc.health.v1`
//!   once it listens, and NOT_SERVING once it shuts down;
//! - on SIGTERM or SIGINT stops accepting, finishes in-flight calls and exits 0;
//! - refuses messages over [`MAX_MESSAGE_SIZE`](hyperfake_core::defaults::MAX_MESSAGE_SIZE)
//!   with RESOURCE_EXHAUSTED.

mod call;
mod instance;
mod server;
mod size_limit;

pub use instance::instance_id_from;
pub use server::{FunctionServer, LISTEN_ADDRESS_ENV, ServeError, run, serve, serve_on, shutdown_signal};
