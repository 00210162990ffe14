use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyperfake_core::defaults::MAX_MESSAGE_SIZE;
use tokio::sync::mpsc;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::common::{DEADLINE, TEST_INSTANCE, TestServer, call, client, health, wait_serving};

async fn echo(input: Bytes) -> Result<Vec<u8>, Infallible> {
    Ok(input.to_vec())
}

/// Fails on "fail", panics on "panic", echoes anything else.
async fn picky(input: Bytes) -> Result<Vec<u8>, String> {
    match &input[..] {
        b"fail" => Err("you asked me to fail".to_string()),
        b"panic" => panic!("you asked me to panic"),
        _ => Ok(input.to_vec()),
    }
}

#[tokio::test]
async fn echo_round_trip_sets_ids_and_handler_time() {
    let server = TestServer::start(echo).await;
    let mut client = server.client().await;

    let (response, handler_time) = call(&mut client, "req-1", b"hello".to_vec()).await.unwrap();
    assert_eq!(response.data, b"hello");
    assert_eq!(response.request_id, "req-1");
    assert_eq!(response.instance_id.unwrap().id, TEST_INSTANCE);
    assert!(response.error.is_none());
    assert!(handler_time > 0, "an echo takes some nanoseconds");

    let (empty, _) = call(&mut client, "", Vec::new()).await.unwrap();
    assert!(empty.data.is_empty());
    assert_eq!(empty.request_id, "");
}

#[tokio::test]
async fn echoes_one_mebibyte_byte_for_byte() {
    let server = TestServer::start(echo).await;
    let mut client = server.client().await;
    // Not all one value, so a truncated or shifted echo cannot pass.
    let payload: Vec<u8> =
        (0..1024 * 1024).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let (response, _) = call(&mut client, "big", payload.clone()).await.unwrap();
    assert_eq!(response.data.len(), payload.len());
    assert!(response.data == payload, "1 MiB echo differs from the request");
}

#[tokio::test]
async fn handler_time_covers_the_handler_and_not_more_than_the_call() {
    let server = TestServer::start(|_input: Bytes| async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok::<_, Infallible>(Vec::new())
    })
    .await;
    let mut client = server.client().await;
    let start = Instant::now();
    let (_, handler_time) = call(&mut client, "t", Vec::new()).await.unwrap();
    let call_time = start.elapsed();
    assert!(handler_time >= 50_000_000, "handler time {handler_time} ns < the 50 ms slept");
    assert!(
        u128::from(handler_time) <= call_time.as_nanos(),
        "handler time {handler_time} ns exceeds the whole call ({call_time:?})"
    );
}

#[tokio::test]
async fn handler_error_becomes_call_error_and_serving_continues() {
    let server = TestServer::start(picky).await;
    let mut client = server.client().await;

    let (failed, handler_time) = call(&mut client, "f", b"fail".to_vec()).await.unwrap();
    assert_eq!(failed.error.unwrap().message, "you asked me to fail");
    assert_eq!(failed.request_id, "f");
    assert_eq!(failed.instance_id.unwrap().id, TEST_INSTANCE);
    assert!(failed.data.is_empty());
    assert!(handler_time > 0);

    let (ok, _) = call(&mut client, "ok", b"after".to_vec()).await.unwrap();
    assert_eq!(ok.data, b"after");
    assert!(ok.error.is_none());
}

#[tokio::test]
async fn panic_is_caught_and_serving_continues() {
    let server = TestServer::start(picky).await;
    let mut client = server.client().await;

    let (panicked, _) = call(&mut client, "p", b"panic".to_vec()).await.unwrap();
    let message = panicked.error.expect("a panic must become CallResponse.error").message;
    assert!(message.contains("panicked") && message.contains("you asked me to panic"), "{message}");
    assert_eq!(panicked.request_id, "p");

    let (ok, _) = call(&mut client, "ok", b"still here".to_vec()).await.unwrap();
    assert_eq!(ok.data, b"still here");
    assert_eq!(health(server.addr).await.unwrap(), ServingStatus::Serving);
}

#[tokio::test]
async fn reports_serving_through_grpc_health() {
    let server = TestServer::start(echo).await;
    wait_serving(server.addr, DEADLINE).await;
    // The listener is bound before serve() starts, so the first answer is already SERVING.
    assert_eq!(health(server.addr).await.unwrap(), ServingStatus::Serving);
}

#[tokio::test]
async fn oversized_request_is_resource_exhausted_and_serving_continues() {
    let server = TestServer::start(echo).await;
    let mut client = server.client().await;

    let status = call(&mut client, "huge", vec![7u8; MAX_MESSAGE_SIZE + 1]).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    let mut client = server.client().await;
    let (ok, _) = call(&mut client, "ok", b"small".to_vec()).await.unwrap();
    assert_eq!(ok.data, b"small");
}

#[tokio::test]
async fn oversized_response_is_resource_exhausted() {
    let server =
        TestServer::start(|_input: Bytes| async { Ok::<_, Infallible>(vec![1u8; MAX_MESSAGE_SIZE]) }).await;
    let mut client = server.client().await;
    let status = call(&mut client, "r", Vec::new()).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
}

#[tokio::test]
async fn shutdown_finishes_in_flight_calls_then_refuses_connections() {
    let (started_tx, mut started_rx) = mpsc::unbounded_channel::<()>();
    let server = TestServer::start(move |input: Bytes| {
        let started = started_tx.clone();
        async move {
            let _ = started.send(());
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok::<_, Infallible>(input.to_vec())
        }
    })
    .await;
    let addr = server.addr;
    let mut client = server.client().await;
    let in_flight = tokio::spawn(async move { call(&mut client, "slow", b"finish me".to_vec()).await });
    tokio::time::timeout(DEADLINE, started_rx.recv()).await.expect("handler never started");

    server.shutdown().await.expect("server must stop cleanly");

    let (response, _) = in_flight.await.unwrap().expect("the in-flight call must complete");
    assert_eq!(response.data, b"finish me");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener must be closed after shutdown"
    );
}

#[tokio::test]
async fn serve_on_takes_the_instance_id_from_the_environment() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(functions::sdk::serve_on(listener, echo, async {
        let _ = rx.await;
    }));
    let mut client = client(addr).await;
    let (response, _) = call(&mut client, "env", b"x".to_vec()).await.unwrap();
    let expected = functions::sdk::instance_id_from(|name| std::env::var(name).ok());
    assert_eq!(response.instance_id.unwrap().id, expected.as_str());
    assert!(!expected.is_empty());
    tx.send(()).unwrap();
    tokio::time::timeout(DEADLINE, task).await.unwrap().unwrap().unwrap();
}

/// The SDK accepts connections without Nagle's algorithm (TCP_NODELAY): an
/// answer in several segments never waits for the caller's delayed ACK.
#[tokio::test]
async fn accepted_connections_run_without_nagle() {
    let server = TestServer::start(echo).await;
    let payload = vec![7u8; 8 * 1024];
    let ((), local) = hyperfake_testkit::sockets::connect_observed(server.addr, async {
        let mut client = server.client().await;
        let (response, _) = call(&mut client, "nodelay", payload.clone()).await.unwrap();
        assert_eq!(response.data, payload);
    })
    .await;
    hyperfake_testkit::sockets::assert_no_nagle("function SDK", server.addr, local);
}
