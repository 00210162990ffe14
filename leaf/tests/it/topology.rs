use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyperfake_core::trailers;
use hyperfake_testkit::{ContainerSweeper, TestDatabase, TestLeaf, TestWorker};
use leaf::NodeSettings;
use worker::WorkerSettings;

use crate::common::*;

#[tokio::test]
async fn a_restarted_leaf_keeps_functions_callable_and_adopts_live_instances() {
    let mut ctx = TestContext::new().await;
    let f = ctx.function(ECHO, config(64, None, 0, 0)).await;
    let first = ctx.call(&f, b"before").await.unwrap().into_inner().instance_id.unwrap().id;
    ctx.leaf.kill().await;
    let settings = leaf_settings(&ctx.database.address, vec![ctx.workers[0].address.clone()]);
    ctx.leaf = TestLeaf::start(settings).await;
    ctx.client = ctx.leaf.client().await;
    eventually(Duration::from_secs(5), "the new leaf adopted the running instance", || {
        !ctx.leaf.scheduler().instances_of(&f).is_empty()
    })
    .await;
    let r = ctx.call(&f, b"after").await.unwrap_or_else(|s| panic!("{s:?}\n{}", ctx.debug()));
    assert_eq!(r.get_ref().data, b"after");
    assert_eq!(r.get_ref().instance_id.clone().unwrap().id, first, "the live instance was reused");
    assert_eq!(ctx.leaf.scheduler().stats.instances_started.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_three_level_tree_answers_calls() {
    // LB -> 2 leaves -> 2 workers each, one database.
    let sweeper = ContainerSweeper::new();
    let database = TestDatabase::start().await;
    let mut workers = Vec::new();
    let mut leaves = Vec::new();
    for l in 0..2 {
        let mut addresses = Vec::new();
        for w in 0..2 {
            let settings = WorkerSettings::new(format!("l{l}w{w}-{}", sweeper.test_id));
            let worker = TestWorker::docker(&sweeper, settings, database.client.clone()).await;
            addresses.push(worker.address.clone());
            workers.push(worker);
        }
        let mut settings = leaf_settings(&database.address, addresses);
        settings.scheduler.max_instances = 2;
        leaves.push(TestLeaf::start(settings).await);
    }
    let mut settings =
        NodeSettings::balancer(&database.address, leaves.iter().map(|l| l.address.clone()).collect());
    settings.pool.state_interval = Duration::from_millis(100);
    let lb = TestLeaf::start(settings).await;
    let client = lb.client().await;

    // Creation through the LB reaches both leaves under one id.
    let f = create(&client, ECHO, config(64, None, 0, 0)).await;
    let g = create(&client, HELLO, config(64, None, 0, 0)).await;
    for leaf in &leaves {
        assert!(leaf.scheduler().load().iter().any(|l| l.function_id.as_ref().unwrap().id == f.as_str()));
    }

    // Calls through the tree succeed and carry every hop's timestamps.
    let responses =
        futures::future::join_all((0..20).map(|i| call(&client, &f, format!("{i}").into_bytes().leak())))
            .await;
    let mut served_by = HashSet::new();
    for (i, r) in responses.into_iter().enumerate() {
        let r = r.unwrap_or_else(|s| panic!("call {i}: {s:?}\n{}", container_logs(&sweeper.label())));
        assert_eq!(r.get_ref().data, format!("{i}").as_bytes());
        let lb_got = metadata_u64(&r, trailers::LB_GOT_REQUEST_TIMESTAMP);
        let leaf_got = metadata_u64(&r, trailers::LEAF_GOT_REQUEST_TIMESTAMP);
        let queued = metadata_u64(&r, trailers::CALL_QUEUED_TIMESTAMP);
        assert!(lb_got <= leaf_got && leaf_got <= queued);
        served_by.insert(metadata_str(&r, leaf::metadata::LEAF_ADDRESS));
    }
    // The function is warm on the leaf that started it: the LB keeps calls there.
    assert_eq!(served_by.len(), 1, "cold calls went to one leaf by the stable hash: {served_by:?}");
    let warm_leaf = served_by.into_iter().next().unwrap();
    eventually(Duration::from_secs(5), "the LB learnt where the function is warm", || {
        lb.node.balancer().unwrap().children().iter().all(|c| c.in_rotation())
    })
    .await;
    for _ in 0..5 {
        let r = call(&client, &f, b"warm").await.unwrap();
        assert_eq!(metadata_str(&r, leaf::metadata::LEAF_ADDRESS), warm_leaf);
    }
    // A caller's request id travels through the tree to the response.
    let mut request = tonic::Request::new(proto::leaf::ScheduleCallRequest {
        function_id: Some((&f).into()),
        data: vec![],
    });
    request.metadata_mut().insert(trailers::REQUEST_ID, "run-7".parse().unwrap());
    let r = client.clone().schedule_call(request).await.unwrap();
    assert_eq!(r.get_ref().request_id, "run-7");
    // Another function works through the same tree.
    let r = call(&client, &g, b"").await.unwrap_or_else(|s| panic!("{s:?}"));
    assert!(r.get_ref().error.is_none());
    // The LB's State sums the leaves'.
    let state = client.clone().state(proto::leaf::LeafStateRequest::default()).await.unwrap().into_inner();
    assert_eq!(state.nodes_in_rotation, 2);
    let load = state.functions.iter().find(|l| l.function_id.as_ref().unwrap().id == f.as_str()).unwrap();
    assert!(load.ready_instances >= 1);
    // A probe that leaves the functions out (what a parent asks periodically)
    // still counts the nodes, from the LB and from a leaf alike.
    let probe = proto::leaf::LeafStateRequest { omit_functions: true };
    let state = client.clone().state(probe).await.unwrap().into_inner();
    assert_eq!((state.functions.len(), state.nodes_in_rotation), (0, 2));
    let mut leaf_client = proto::leaf::leaf_client::LeafClient::new(
        proto::endpoint(&leaves[0].address).unwrap().connect().await.unwrap(),
    );
    let state = leaf_client.state(probe).await.unwrap().into_inner();
    let full = leaf_client.state(proto::leaf::LeafStateRequest::default()).await.unwrap().into_inner();
    assert_eq!((state.functions.len(), state.nodes_in_rotation), (0, full.nodes_in_rotation));
    assert!(
        full.nodes_in_rotation >= 1 && !full.functions.is_empty(),
        "the same leaf, asked in full: {full:?}"
    );
    // Unknown functions are NOT_FOUND through the tree too.
    let err = call(&client, &"nope".into(), b"").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    drop(lb);
    drop(leaves);
    drop(workers);
}
