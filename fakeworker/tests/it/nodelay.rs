//! The fake worker serves through the worker's server code (`worker::serve_with`,
//! as `fakeworker`'s main does), so it accepts connections without Nagle's
//! algorithm (TCP_NODELAY) too.

use std::net::SocketAddr;

use hyperfake_testkit::sockets::{assert_no_nagle, connect_observed};

use crate::common::*;

#[tokio::test]
async fn the_fake_worker_accepts_without_nagle() {
    let ctx = FakeContext::new(|dir| {
        let zero = constant(0.0);
        write_json(dir, "echo.json", IMAGE, zero, zero, constant(1e6), Some("ns"));
    })
    .await;
    let function = ctx.function(IMAGE, config(64, None, 0, 0)).await;
    let server: SocketAddr = ctx.worker.address.parse().unwrap();
    // One new connection: start a simulated instance and call it with 8 KiB.
    let ((), client) = connect_observed(server, async {
        let mut client = hyperfake_testkit::connect_controller(&ctx.worker.address).await;
        client.start(proto::common::FunctionId::from(&function)).await.expect("start");
        let request = proto::common::CallRequest {
            request_id: "nodelay".into(),
            instance_id: None,
            data: vec![7u8; 8 * 1024],
            function_id: Some((&function).into()),
        };
        client.call(request).await.expect("call");
    })
    .await;
    assert_no_nagle("fake worker", server, client);
}
