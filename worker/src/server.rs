//! Serving a worker: the controller service plus background tasks, until shutdown.

use std::future::Future;
use std::sync::Arc;

use hyperfake_core::defaults::MAX_MESSAGE_SIZE;
use proto::controller::controller_server::ControllerServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::service::ControllerService;
use crate::worker::Worker;

/// Serves `worker` on `listener` until `shutdown` resolves.
pub async fn serve(
    worker: Arc<Worker>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let background = worker.spawn_background();
    let service = ControllerServer::new(ControllerService::new(worker))
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE);
    let result = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(service)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await;
    for task in background {
        task.abort();
    }
    result
}
