//! The worker: runs function instances and serves `controller.Controller`.
//!
//! The worker's logic (instance table, routing, concurrency limits, idle
//! timeouts, lifecycle events) is independent of how instances run: a
//! [`Runtime`] starts, calls and stops them. [`DockerRuntime`] runs real
//! containers; the fake worker plugs in a simulated runtime and reuses the rest.

pub mod catalog;
pub mod cli;
pub mod config;
pub mod docker;
pub mod error;
pub mod events;
pub mod host;
pub mod idle;
pub mod instance;
pub mod limits;
pub mod reconcile;
pub mod runtime;
pub mod server;
pub mod service;
pub mod worker;

pub use catalog::FunctionCatalog;
pub use cli::{RuntimeSource, ServeArgs};
pub use config::WorkerSettings;
pub use docker::{DockerRuntime, DockerSettings};
pub use error::WorkerError;
pub use events::EventHub;
pub use runtime::{
    CallError, CallOutput, ExitNotice, HostUsage, InstanceConn, ResourceCounters, Runtime, RuntimeError,
    StartSpec, Started,
};
pub use server::{ServeOptions, serve, serve_with};
pub use worker::Worker;
