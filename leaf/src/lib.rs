//! The leaf and load-balancer nodes of a HyperFaaS-style platform, serving
//! `leaf.Leaf`.
//!
//! A **leaf** stores functions in the database, starts instances on its workers
//! (single-flight cold starts, scale-up under load, scale-to-zero when idle),
//! and forwards calls to them with the HyperFaaS timing metadata. A
//! **load-balancer node** serves the same API over children that are leaves or
//! other load-balancer nodes, routing calls to warm capacity.
//!
//! - [`config`]: flags, config file, validated [`NodeSettings`];
//! - [`workers`]: the worker pool, status followers and reconciliation;
//! - [`health`]: whether a worker or child is in rotation, as named states;
//! - [`failure`]: the one classification of statuses from workers and children;
//! - [`instances`]: one function's instances by id;
//! - [`worker_functions`]: which functions have instances on each worker;
//! - [`scheduler`]: forwarding, cold start, scaling, placement, reconciliation,
//!   scale to zero (one file each);
//! - [`service`] / [`lb`]: `leaf.Leaf` for a leaf / a load-balancer node;
//! - [`error`]: [`LeafError`] and its one mapping to gRPC codes;
//! - [`server`]: building a [`Node`] and serving it.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use leaf::{Node, NodeSettings};
//! let settings = NodeSettings::leaf("127.0.0.1:8999", vec!["127.0.0.1:50051".into()]);
//! let node = Node::start(&settings).await?;
//! let listener = tokio::net::TcpListener::bind(&settings.address).await?;
//! node.serve(listener, std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```

pub mod config;
pub mod deadline;
pub mod error;
pub mod failure;
pub mod health;
pub mod instances;
pub mod lb;
pub mod metadata;
pub mod scheduler;
pub mod server;
pub mod service;
pub mod worker_functions;
pub mod workers;

pub use config::{NodeSettings, PoolSettings, Role, SchedulerSettings};
pub use error::{LeafError, StartError};
pub use lb::Balancer;
pub use scheduler::Scheduler;
pub use server::{Node, NodeKind, NodeLimits, StartupError};
