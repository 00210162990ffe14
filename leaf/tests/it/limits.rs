use std::sync::Arc;
use std::time::Duration;

use hyperfake_testkit::{ContainerSweeper, SLEEP, TestDatabase, TestWorker, connect_leaf};
use leaf::{Node, NodeLimits, NodeSettings};
use proto::leaf::leaf_server::{Leaf, LeafServer};
use proto::leaf::{
    CreateFunctionRequest, CreateFunctionResponse, LeafStateRequest, LeafStateResponse, ScheduleCallRequest,
    ScheduleCallResponse,
};
use proto::server::ServerLimits;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::{Code, Request, Response, Status};
use worker::WorkerSettings;

use crate::common::*;

/// Longest a test waits for a call that must end; only a missing bound gets
/// there (the call would otherwise wait forever).
const HANG_GUARD: Duration = Duration::from_secs(30);

/// A node started with `limits` (a `TestLeaf` has the defaults) and served
/// on 127.0.0.1:0; stops when dropped.
struct LimitedNode {
    node: Arc<Node>,
    address: String,
    task: JoinHandle<()>,
}

impl Drop for LimitedNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(settings: NodeSettings, limits: NodeLimits) -> LimitedNode {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let node = Arc::new(Node::start_with(&settings, limits).await.expect("starting the node"));
    let served = Arc::clone(&node);
    let task = tokio::spawn(async move {
        served.serve(listener, std::future::pending()).await.unwrap();
    });
    LimitedNode { node, address, task }
}

#[tokio::test]
async fn a_call_without_a_deadline_ends_at_the_servers_maximum_and_frees_its_pending_slot() {
    let sweeper = ContainerSweeper::new();
    let database = TestDatabase::start().await;
    let settings = WorkerSettings::new(format!("limits-{}", sweeper.test_id));
    let worker = TestWorker::docker(&sweeper, settings, database.client.clone()).await;
    let mut settings = leaf_settings(&database.address, vec![worker.address.clone()]);
    settings.scheduler.max_pending_calls = 1;
    let server = ServerLimits { max_call_duration: Duration::from_secs(2), ..ServerLimits::default() };
    let leaf = start(settings, NodeLimits { server, ..NodeLimits::default() }).await;
    let client = connect_leaf(&leaf.address).await;
    // `sleep` answers after 20 s; no call below sets a deadline.
    let f = create(&client, SLEEP, config(64, None, 0, 0)).await;
    for attempt in 1..=2 {
        let status = tokio::time::timeout(HANG_GUARD, call(&client, &f, b""))
            .await
            .expect("the call ended")
            .map(|_| ())
            .unwrap_err();
        // The second call finds the slot the first one held free again
        // (max_pending_calls is 1), so it too ends by the deadline.
        assert_eq!(
            status.code(),
            Code::DeadlineExceeded,
            "call {attempt}: {status:?}\n{}",
            container_logs(&sweeper.label())
        );
    }
}

#[tokio::test]
async fn a_load_balancer_node_refuses_calls_beyond_its_pending_bound() {
    let ctx = TestContext::new().await;
    let f = ctx.function(SLEEP, config(64, None, 0, 0)).await;
    let mut settings = NodeSettings::balancer(&ctx.database.address, vec![ctx.leaf.address.clone()]);
    settings.pool.state_interval = Duration::from_millis(100);
    settings.scheduler.max_pending_calls = 1;
    let lb = start(settings, NodeLimits::default()).await;
    let client = connect_leaf(&lb.address).await;
    let balancer = Arc::clone(lb.node.balancer().expect("a load-balancer node"));

    // `sleep` takes 20 s: the first call stays pending at the node.
    let held = tokio::spawn({
        let (client, f) = (client.clone(), f.clone());
        async move { call(&client, &f, b"").await }
    });
    eventually(Duration::from_secs(10), "the first call is pending at the node", || {
        balancer.pending_calls(&f) == 1
    })
    .await;
    let refused = call(&client, &f, b"").await.map(|_| ()).unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}\n{}", ctx.debug());
    assert!(refused.message().contains(f.as_str()), "names the function: {}", refused.message());

    // A caller that goes away ends its call at the node and frees the slot.
    held.abort();
    eventually(Duration::from_secs(10), "the abandoned call left the node", || {
        balancer.pending_calls(&f) == 0
    })
    .await;
}

/// A child that answers `State` (so it stays in rotation) and HTTP/2 PINGs,
/// but never answers `CreateFunction` or a call: a hung process, which a
/// real leaf cannot be made into on demand.
struct HungChild;

#[tonic::async_trait]
impl Leaf for HungChild {
    async fn schedule_call(
        &self,
        _: Request<ScheduleCallRequest>,
    ) -> Result<Response<ScheduleCallResponse>, Status> {
        std::future::pending().await
    }

    async fn create_function(
        &self,
        _: Request<CreateFunctionRequest>,
    ) -> Result<Response<CreateFunctionResponse>, Status> {
        std::future::pending().await
    }

    async fn state(&self, _: Request<LeafStateRequest>) -> Result<Response<LeafStateResponse>, Status> {
        Ok(Response::new(LeafStateResponse::default()))
    }
}

/// Serves [`HungChild`] with tonic's plain server (no outer timeout, unlike
/// `proto::server`'s), so nothing on its side ends a call.
async fn serve_hung_child() -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(LeafServer::new(HungChild))
            .serve_with_incoming(proto::net::incoming(listener))
            .await
            .unwrap();
    });
    (address, task)
}

#[tokio::test]
async fn a_hung_child_cannot_hold_create_function_at_a_load_balancer_node() {
    let ctx = TestContext::new().await;
    let (hung, hung_task) = serve_hung_child().await;
    let limits = NodeLimits { create_timeout: Duration::from_secs(1), ..NodeLimits::default() };

    // The leaf creates it; registering at the hung child gives up in time,
    // and the function is created all the same.
    let mut settings =
        NodeSettings::balancer(&ctx.database.address, vec![ctx.leaf.address.clone(), hung.clone()]);
    settings.pool.state_interval = Duration::from_millis(100);
    let lb = start(settings, limits).await;
    let client = connect_leaf(&lb.address).await;
    let f = tokio::time::timeout(HANG_GUARD, create(&client, ECHO, config(64, None, 0, 0)))
        .await
        .expect("CreateFunction ended despite the hung child");
    // Created at the leaf (calls through the node might go to the hung child).
    let r = ctx.call(&f, b"created").await.unwrap_or_else(|s| panic!("{s:?}\n{}", ctx.debug()));
    assert_eq!(r.get_ref().data, b"created");

    // With only the hung child, CreateFunction ends with DEADLINE_EXCEEDED
    // naming it (not tried elsewhere: the child may have stored it).
    let settings = NodeSettings::balancer(&ctx.database.address, vec![hung.clone()]);
    let lb = start(settings, limits).await;
    let mut client = connect_leaf(&lb.address).await;
    let request = CreateFunctionRequest {
        image_tag: Some(proto::common::ImageTag { tag: ECHO.into() }),
        config: Some((&config(64, None, 0, 0)).into()),
        function_id: None,
    };
    let status = tokio::time::timeout(HANG_GUARD, client.create_function(request))
        .await
        .expect("CreateFunction ended despite the hung child")
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains(&hung), "names the child: {}", status.message());
    hung_task.abort();
}
