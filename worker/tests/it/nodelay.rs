//! The worker accepts and dials without Nagle's algorithm (TCP_NODELAY), so a
//! multi-segment answer never waits for the peer's delayed ACK.

use std::net::SocketAddr;

use hyperfake_testkit::sockets::{assert_dials_without_nagle, assert_no_nagle, connect_observed};

use crate::common::*;

fn socket_addr(address: &str) -> SocketAddr {
    address.parse().unwrap_or_else(|e| panic!("test server address {address:?}: {e}"))
}

#[tokio::test]
async fn the_worker_accepts_and_dials_without_nagle() {
    let ctx = TestContext::new().await;
    let function = ctx.function(ECHO, config(64, None, 0, 0)).await;
    let server = socket_addr(&ctx.worker.address);
    let payload = vec![7u8; 8 * 1024];
    // One new connection: start an instance and echo 8 KiB through the worker.
    let (instance, client) = connect_observed(server, async {
        let mut client = hyperfake_testkit::connect_controller(&ctx.worker.address).await;
        let started =
            client.start(proto::common::FunctionId::from(&function)).await.expect("start").into_inner();
        let response = client.call(call_request(&function, &payload)).await.expect("call");
        assert_eq!(response.get_ref().data, payload);
        started.instance_id.expect("an instance id").id
    })
    .await;
    assert_no_nagle("worker", server, client);

    // The worker's own connection to the container it called.
    let live = ctx.worker.worker.instances.all();
    let instance = live.iter().find(|i| i.id.as_str() == instance).expect("the started instance is live");
    let container = socket_addr(&instance.address);
    assert_dials_without_nagle("worker -> container", container);
}
