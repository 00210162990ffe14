//! Building a node from its settings and serving it until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use database::DatabaseClient;
use hyperfake_core::defaults::MAX_MESSAGE_SIZE;
use proto::auth::{BearerToken, RequireToken};
use proto::leaf::leaf_server::LeafServer;
use proto::server::ServerLimits;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;

use crate::config::{NodeSettings, Role};
use crate::error::LeafError;
use crate::lb::{Balancer, BalancerLimits, BalancerService, DEFAULT_CREATE_TIMEOUT};
use crate::scheduler::Scheduler;
use crate::service::LeafService;
use crate::workers::WorkerPool;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("invalid address {address:?}")]
    Address {
        address: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("database at {address}: {source}")]
    Database {
        address: String,
        #[source]
        source: database::ClientError,
    },
    #[error("loading functions from the database at {address} (waited {waited:?})")]
    Load {
        address: String,
        waited: Duration,
        #[source]
        source: LeafError,
    },
}

/// Bounds a node keeps that its settings do not name: the defaults, which
/// tests shorten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeLimits {
    /// The gRPC server's: streams per connection, keepalive, and the
    /// deadline a call without one gets (`proto::server`).
    pub server: ServerLimits,
    /// A load-balancer node's `CreateFunction` fan-out. Default:
    /// [`DEFAULT_CREATE_TIMEOUT`].
    pub create_timeout: Duration,
}

impl Default for NodeLimits {
    fn default() -> Self {
        NodeLimits { server: ServerLimits::default(), create_timeout: DEFAULT_CREATE_TIMEOUT }
    }
}

/// A running node: a leaf or a load-balancer node, with its background tasks
/// (aborted when dropped).
#[derive(Debug)]
pub struct Node {
    pub kind: NodeKind,
    /// Checks every request's shared token (a no-op without one).
    auth: RequireToken,
    server: ServerLimits,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    Leaf(Arc<Scheduler>),
    Balancer(Arc<Balancer>),
}

impl Drop for Node {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Node {
    /// Connects to the nodes below and (for a leaf) loads every function from
    /// the database, waiting up to `database_wait` for it to answer.
    pub async fn start(settings: &NodeSettings) -> Result<Node, StartupError> {
        Self::start_with(settings, NodeLimits::default()).await
    }

    /// [`Node::start`] with other [`NodeLimits`] than the defaults.
    pub async fn start_with(settings: &NodeSettings, limits: NodeLimits) -> Result<Node, StartupError> {
        let NodeLimits { server, create_timeout } = limits;
        let token = settings.token.as_ref();
        let (auth, bearer) = (RequireToken::from_token(token), BearerToken::from_token(token));
        match &settings.role {
            Role::Leaf { workers } => {
                let database = DatabaseClient::connect(&settings.database)
                    .map_err(|source| StartupError::Database { address: settings.database.clone(), source })?
                    .with_bearer(bearer.clone());
                let pool = WorkerPool::new(workers, settings.pool.clone(), &bearer)
                    .map_err(|source| StartupError::Address { address: workers.join(","), source })?;
                let scheduler = Scheduler::new(settings.scheduler.clone(), pool, database);
                let started = Instant::now();
                let mut wait = Duration::from_millis(100);
                let loaded = loop {
                    match scheduler.load_functions().await {
                        Ok(n) => break n,
                        Err(LeafError::Database(e))
                            if e.is_unavailable() && started.elapsed() < settings.database_wait =>
                        {
                            tracing::info!("waiting for the database at {}: {e}", settings.database);
                            tokio::time::sleep(wait).await;
                            wait = (wait * 2).min(Duration::from_secs(2));
                        }
                        Err(source) => {
                            return Err(StartupError::Load {
                                address: settings.database.clone(),
                                waited: started.elapsed(),
                                source,
                            });
                        }
                    }
                };
                tracing::info!(functions = loaded, "loaded functions from the database");
                let tasks = scheduler.spawn();
                // Give the followers one connect timeout to bring workers into
                // rotation, so the first calls do not find none.
                let until = Instant::now() + settings.pool.connect_timeout * 2;
                while scheduler.pool().in_rotation_count() < workers.len() && Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok(Node { kind: NodeKind::Leaf(scheduler), auth, server, tasks })
            }
            Role::Balancer { children } => {
                // The same bound on pending calls as a leaf's, from the same setting.
                let balancer_limits = BalancerLimits {
                    max_pending_calls: settings.scheduler.max_pending_calls,
                    create_timeout,
                };
                let balancer = Balancer::new(children, settings.pool.clone(), balancer_limits, &bearer)
                    .map_err(|source| StartupError::Address { address: children.join(","), source })?;
                balancer.refresh(false).await;
                let tasks = balancer.spawn();
                Ok(Node { kind: NodeKind::Balancer(balancer), auth, server, tasks })
            }
        }
    }

    /// Serves `leaf.Leaf` (and `grpc.health.v1`) on `listener` until `shutdown`.
    /// With a shared token, every `leaf.Leaf` request must carry it; health
    /// checks stay open, as the database's do, so probes need no secret.
    /// A call without a deadline gets the server's maximum, so it ends with
    /// DEADLINE_EXCEEDED and frees its pending slot (see `proto::server`).
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), tonic::transport::Error> {
        let (reporter, health) = tonic_health::server::health_reporter();
        let builder = self.server.builder().add_service(health);
        let auth = self.auth.clone();
        // TCP_NODELAY on every accepted socket (the builder's `tcp_nodelay`
        // is ignored by `serve_with_incoming*`): see `proto::net`.
        let incoming = proto::net::incoming(listener);
        match &self.kind {
            NodeKind::Leaf(scheduler) => {
                let service = LeafServer::new(LeafService::new(Arc::clone(scheduler)))
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(MAX_MESSAGE_SIZE);
                reporter.set_serving::<LeafServer<LeafService>>().await;
                builder
                    .add_service(InterceptedService::new(service, auth))
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await
            }
            NodeKind::Balancer(balancer) => {
                let service = LeafServer::new(BalancerService::new(Arc::clone(balancer)))
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(MAX_MESSAGE_SIZE);
                reporter.set_serving::<LeafServer<BalancerService>>().await;
                builder
                    .add_service(InterceptedService::new(service, auth))
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await
            }
        }
    }

    pub fn scheduler(&self) -> Option<&Arc<Scheduler>> {
        match &self.kind {
            NodeKind::Leaf(s) => Some(s),
            NodeKind::Balancer(_) => None,
        }
    }

    pub fn balancer(&self) -> Option<&Arc<Balancer>> {
        match &self.kind {
            NodeKind::Balancer(b) => Some(b),
            NodeKind::Leaf(_) => None,
        }
    }
}
