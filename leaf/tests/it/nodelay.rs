//! Every hop of a call runs without Nagle's algorithm: a load-balancer node,
//! a leaf and a worker in this process, each connection checked at both ends.

use std::net::SocketAddr;

use hyperfake_testkit::TestLeaf;
use hyperfake_testkit::sockets::{assert_dials_without_nagle, assert_no_nagle, clients_of, connect_observed};
use leaf::NodeSettings;

use crate::common::*;

fn socket_addr(address: &str) -> SocketAddr {
    address.parse().unwrap_or_else(|e| panic!("test server address {address:?}: {e}"))
}

#[tokio::test]
async fn every_hop_of_a_call_through_a_load_balancer_runs_without_nagle() {
    let ctx = TestContext::new().await;
    let lb =
        TestLeaf::start(NodeSettings::balancer(&ctx.database.address, vec![ctx.leaf.address.clone()])).await;
    let lb_address = socket_addr(&lb.address);
    // One new connection from the test's client to the load-balancer node: a
    // function created and an 8 KiB payload echoed through every level.
    let payload = vec![7u8; 8 * 1024];
    let (instance, client) = connect_observed(lb_address, async {
        let client = hyperfake_testkit::connect_leaf(&lb.address).await;
        let function = create(&client, ECHO, config(64, None, 0, 0)).await;
        let response =
            call(&client, &function, &payload).await.unwrap_or_else(|s| panic!("{s:?}\n{}", ctx.debug()));
        assert_eq!(response.get_ref().data, payload);
        response.into_inner().instance_id.expect("an instance id").id
    })
    .await;
    assert_no_nagle("load-balancer node", lb_address, client);

    // The connections the nodes made among themselves, all in this process.
    let servers = [
        ("leaf (accepting the load-balancer node)", &ctx.leaf.address),
        ("worker (accepting the leaf)", &ctx.workers[0].address),
        ("database (accepting the leaf and the worker)", &ctx.database.address),
    ];
    for (what, address) in servers {
        let server = socket_addr(address);
        let clients = clients_of(server);
        assert!(!clients.is_empty(), "{what}: no connection to {server} from this process");
        for client in clients {
            assert_no_nagle(what, server, client);
        }
    }

    // The worker's connection to the function container: the container's end
    // is in its own network namespace (the SDK's test covers it), ours is here.
    let live = ctx.workers[0].worker.instances.all();
    let instance = live.iter().find(|i| i.id.as_str() == instance).expect("the called instance is live");
    let container = socket_addr(&instance.address);
    assert_dials_without_nagle("worker -> container", container);
}
