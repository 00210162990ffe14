//! Binding, health reporting, graceful shutdown and the process entry point.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use hyperfake_core::InstanceId;
use hyperfake_core::defaults::{FUNCTION_HEALTH_SERVICE, FUNCTION_PORT, MAX_MESSAGE_SIZE};
use proto::function::function_service_server::FunctionServiceServer;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tonic_health::ServingStatus;
use tower::util::MapResponseLayer;
use tracing::{error, info};

use super::call::{BoxedHandler, CallService};
use super::instance::instance_id_from;
use super::size_limit::resource_exhausted_for_oversized;

/// Overrides the address [`serve`] listens on (default `0.0.0.0:50052`). Tests
/// run function binaries with `127.0.0.1:0`; containers leave it unset.
pub const LISTEN_ADDRESS_ENV: &str = "HYPERFAKE_FUNCTION_LISTEN_ADDRESS";

/// How long the runtime waits for handler tasks still running after the
/// server stopped (calls whose client went away). Blocking handler work
/// cannot be cancelled, so shutdown must not wait on it indefinitely.
const RUNTIME_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a function could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{LISTEN_ADDRESS_ENV}={value:?} is not a socket address such as 0.0.0.0:50052")]
    ListenAddress { value: String },
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("cannot install the SIGTERM/SIGINT handler: {0}")]
    Signal(#[source] io::Error),
    #[error("cannot start the tokio runtime: {0}")]
    Runtime(#[source] io::Error),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// A function server: one handler and the instance id it reports.
pub struct FunctionServer {
    handler: BoxedHandler,
    instance_id: InstanceId,
}

impl fmt::Debug for FunctionServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FunctionServer").field("instance_id", &self.instance_id).finish_non_exhaustive()
    }
}

impl FunctionServer {
    /// A server for `handler`. The instance id comes from the environment (see
    /// [`instance_id_from`]) unless set with [`FunctionServer::instance_id`].
    pub fn new<F, Fut, E>(handler: F) -> Self
    where
        F: Fn(Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<u8>, E>> + Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        FunctionServer {
            handler: BoxedHandler::new(handler),
            instance_id: instance_id_from(|name| std::env::var(name).ok()),
        }
    }

    /// Sets the instance id put on every response.
    pub fn instance_id(mut self, id: InstanceId) -> Self {
        self.instance_id = id;
        self
    }

    /// Serves on `listener` until `shutdown` completes, then stops accepting,
    /// reports NOT_SERVING, lets in-flight calls finish and returns.
    ///
    /// The health service reports SERVING before the first connection is
    /// accepted: the listener is already bound, so a connection made once a
    /// caller sees SERVING is guaranteed to be served.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let address = listener.local_addr().ok();
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_service_status(FUNCTION_HEALTH_SERVICE, ServingStatus::Serving).await;
        let call_service =
            FunctionServiceServer::new(CallService::new(self.handler, self.instance_id.clone()))
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE);
        info!(address = %DisplayOpt(address), instance_id = %self.instance_id, "listening");

        let on_shutdown = {
            let health = health.clone();
            async move {
                shutdown.await;
                info!("shutting down: refusing new connections, finishing in-flight calls");
                health.set_service_status(FUNCTION_HEALTH_SERVICE, ServingStatus::NotServing).await;
            }
        };
        // Stream limit, keepalive and an outer bound on every call: `proto::server`.
        proto::server::builder()
            .layer(MapResponseLayer::new(resource_exhausted_for_oversized))
            .add_service(health_service)
            .add_service(call_service)
            .serve_with_incoming_shutdown(proto::net::incoming(listener), on_shutdown)
            .await?;
        info!("stopped");
        Ok(())
    }
}

/// Serves `handler` on `listener` until `shutdown` completes, with the
/// instance id taken from the environment. See [`FunctionServer::serve`].
pub async fn serve_on<F, Fut, E>(
    listener: TcpListener,
    handler: F,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError>
where
    F: Fn(Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<u8>, E>> + Send + 'static,
    E: fmt::Display + Send + 'static,
{
    FunctionServer::new(handler).serve(listener, shutdown).await
}

/// Serves `handler` on `0.0.0.0:50052` (or [`LISTEN_ADDRESS_ENV`]) until
/// SIGTERM or SIGINT. Logs go to stderr (filter with `RUST_LOG`, default `info`).
pub async fn serve<F, Fut, E>(handler: F) -> Result<(), ServeError>
where
    F: Fn(Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<u8>, E>> + Send + 'static,
    E: fmt::Display + Send + 'static,
{
    init_tracing();
    let address = listen_address(std::env::var(LISTEN_ADDRESS_ENV).ok())?;
    let shutdown = shutdown_signal().map_err(ServeError::Signal)?;
    let listener = TcpListener::bind(address).await.map_err(|source| ServeError::Bind { address, source })?;
    serve_on(listener, handler, shutdown).await
}

/// The whole `main` of a function binary: starts a runtime, [`serve`]s, and
/// maps the outcome to the exit code (0 after a signal, 1 on an error).
pub fn run<F, Fut, E>(handler: F) -> ExitCode
where
    F: Fn(Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<u8>, E>> + Send + 'static,
    E: fmt::Display + Send + 'static,
{
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)
        .and_then(|runtime| {
            let outcome = runtime.block_on(serve(handler));
            runtime.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
            outcome
        });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            init_tracing();
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on the first SIGTERM (what `docker stop` sends) or SIGINT. The
/// handlers are installed before this returns, so a signal arriving before
/// the future is polled is not lost.
pub fn shutdown_signal() -> io::Result<impl Future<Output = ()> + Send> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => info!("received SIGTERM"),
            _ = interrupt.recv() => info!("received SIGINT"),
        }
    })
}

fn listen_address(value: Option<String>) -> Result<SocketAddr, ServeError> {
    match value {
        None => Ok(SocketAddr::from((Ipv4Addr::UNSPECIFIED, FUNCTION_PORT))),
        Some(value) => value.trim().parse().map_err(|_| ServeError::ListenAddress { value }),
    }
}

/// Logs to stderr without colour (container logs are read as plain text).
/// A second call, or a subscriber set by the caller, is left alone.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ =
        tracing_subscriber::fmt().with_writer(io::stderr).with_ansi(false).with_env_filter(filter).try_init();
}

struct DisplayOpt(Option<SocketAddr>);

impl fmt::Display for DisplayOpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(address) => write!(f, "{address}"),
            None => f.write_str("(unknown)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_address_defaults_to_the_function_port() {
        assert_eq!(listen_address(None).unwrap(), "0.0.0.0:50052".parse().unwrap());
        assert_eq!(listen_address(Some("127.0.0.1:0".into())).unwrap(), "127.0.0.1:0".parse().unwrap());
        assert!(matches!(
            listen_address(Some("localhost:1".into())),
            Err(ServeError::ListenAddress { value }) if value == "localhost:1"
        ));
    }
}
