use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use functions::sdk::{FunctionServer, ServeError};
use hyperfake_core::InstanceId;
use hyperfake_core::defaults::{FUNCTION_HEALTH_SERVICE, MAX_MESSAGE_SIZE};
use proto::common::{CallRequest, CallResponse};
use proto::function::function_service_client::FunctionServiceClient;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Generous bound for anything that should happen "at once" on a loaded 2-core box.
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

pub(crate) const TEST_INSTANCE: &str = "test-instance";

/// A function server on 127.0.0.1:0, shut down when dropped.
pub(crate) struct TestServer {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
}

impl TestServer {
    pub(crate) async fn start<F, Fut, E>(handler: F) -> TestServer
    where
        F: Fn(Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<u8>, E>> + Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let server = FunctionServer::new(handler).instance_id(InstanceId::from(TEST_INSTANCE));
        let task = tokio::spawn(server.serve(listener, async {
            let _ = rx.await;
        }));
        TestServer { addr, shutdown: Some(tx), task: Some(task) }
    }

    /// Signals shutdown and waits (with [`DEADLINE`]) for the server to return.
    pub(crate) async fn shutdown(mut self) -> Result<(), ServeError> {
        let _ = self.shutdown.take().unwrap().send(());
        let task = self.task.take().unwrap();
        tokio::time::timeout(DEADLINE, task).await.expect("server did not stop in time").unwrap()
    }

    pub(crate) async fn client(&self) -> FunctionServiceClient<Channel> {
        client(self.addr).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub(crate) async fn channel(addr: SocketAddr) -> Channel {
    proto::endpoint(&addr.to_string()).unwrap().connect().await.unwrap()
}

/// A client that accepts and sends messages up to the shared limit, and more:
/// the tests decide what is oversized, not the client.
pub(crate) async fn client(addr: SocketAddr) -> FunctionServiceClient<Channel> {
    FunctionServiceClient::new(channel(addr).await)
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(usize::MAX)
}

pub(crate) fn request(request_id: &str, data: impl Into<Vec<u8>>) -> CallRequest {
    CallRequest { request_id: request_id.to_string(), data: data.into(), ..Default::default() }
}

/// One call; returns the response and the `functionhandlertime` metadata (ns).
pub(crate) async fn call(
    client: &mut FunctionServiceClient<Channel>,
    request_id: &str,
    data: impl Into<Vec<u8>>,
) -> Result<(CallResponse, u64), tonic::Status> {
    let response = client.call(request(request_id, data)).await?;
    let handler_time = response
        .metadata()
        .get(hyperfake_core::trailers::FUNCTION_HANDLER_TIME)
        .expect("functionhandlertime metadata missing")
        .to_str()
        .unwrap()
        .parse::<u64>()
        .expect("functionhandlertime is not a decimal integer");
    Ok((response.into_inner(), handler_time))
}

/// The function's health status, or the error from asking.
pub(crate) async fn health(addr: SocketAddr) -> Result<ServingStatus, tonic::Status> {
    let channel = proto::endpoint(&addr.to_string())
        .unwrap()
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest { service: FUNCTION_HEALTH_SERVICE.to_string() })
        .await?;
    Ok(response.into_inner().status())
}

/// Polls health until SERVING, as the worker does; panics after `deadline`.
pub(crate) async fn wait_serving(addr: SocketAddr, deadline: Duration) {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < deadline {
        match health(addr).await {
            Ok(ServingStatus::Serving) => return,
            other => last = Some(other),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{addr} not SERVING after {deadline:?}; last answer: {last:?}");
}
