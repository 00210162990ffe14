//! The fake worker: the worker's `controller.Controller` API, with instances
//! simulated by trained models instead of containers.
//!
//! It is the real [`worker::Worker`] (routing, `max_concurrency`, idle
//! timeouts, lifecycle events, trailers, error codes) over a simulated
//! [`worker::Runtime`]: [`SimRuntime`]. A leaf, load generator or collector
//! cannot tell it from a real worker.

pub mod fleet;
pub mod models;
pub mod sim;
pub mod timer;

pub use fleet::SimFleet;
pub use models::{ExplicitModel, ModelRegistry, Models, RegistryError, Skipped};
pub use sim::{MAX_RESPONSE_BYTES, ResponseMode, Sampling, SimRuntime, SimSettings};
