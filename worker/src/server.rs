//! Serving a worker: the controller service plus background tasks, until shutdown.

use std::future::Future;
use std::sync::Arc;

use hyperfake_core::defaults::MAX_MESSAGE_SIZE;
use proto::auth::{RequireToken, TokenError};
use proto::controller::controller_server::ControllerServer;
use tokio::net::TcpListener;

use crate::service::ControllerService;
use crate::worker::Worker;

/// How to serve, beyond what every worker does.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// Require `authorization: Bearer <token>` on every request (refused with
    /// UNAUTHENTICATED otherwise). By default, no token is required.
    pub token: Option<String>,
}

/// Why a worker could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("invalid token")]
    Token(#[from] TokenError),
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
}

/// Serves `worker` on `listener` until `shutdown` resolves.
pub async fn serve(
    worker: Arc<Worker>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    match serve_with(worker, listener, shutdown, ServeOptions::default()).await {
        Ok(()) => Ok(()),
        Err(ServeError::Transport(e)) => Err(e),
        Err(ServeError::Token(_)) => unreachable!("no token was given, so none can be invalid"),
    }
}

/// Serves `worker` on `listener` with `options` until `shutdown` resolves.
pub async fn serve_with(
    worker: Arc<Worker>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    options: ServeOptions,
) -> Result<(), ServeError> {
    let ServeOptions { token } = options;
    let auth = RequireToken::new(token.as_deref())?;
    let background = worker.spawn_background();
    // Graceful shutdown waits for open streams; Status and Resources streams
    // never end on their own, so they are ended when shutdown begins.
    let closing = Arc::clone(&worker);
    let shutdown = async move {
        shutdown.await;
        closing.close_streams();
    };
    let service = ControllerServer::new(ControllerService::new(worker))
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE);
    // `proto::net::incoming` sets TCP_NODELAY on accepted sockets: the
    // builder's `tcp_nodelay` is ignored by `serve_with_incoming*`. The
    // builder's limits give every call a deadline (see `proto::server`).
    let result = proto::server::builder()
        .layer(auth.layer())
        .add_service(service)
        .serve_with_incoming_shutdown(proto::net::incoming(listener), shutdown)
        .await;
    for task in background {
        task.abort();
    }
    Ok(result?)
}
