use std::time::Duration;

use hyperfake_core::trailers;
use proto::common::InstanceId;
use proto::controller::Event;

use crate::common::*;

async fn ctx_with_runtime(ms: f64) -> FakeContext {
    FakeContext::new(move |dir| {
        write_json(dir, "m.json", IMAGE, constant(ms * 1e6), constant(0.2), constant(8e6), Some("ns"));
    })
    .await
}

#[tokio::test]
async fn idle_instances_time_out_and_emit_timeout() {
    let ctx = ctx_with_runtime(1.0).await;
    let mut events = ctx
        .client
        .clone()
        .status(proto::controller::StatusRequest { node_id: "t".into() })
        .await
        .unwrap()
        .into_inner();
    let f = ctx.function(IMAGE, config(64, None, 1, 0)).await;
    let instance = ctx.start(&f).await;
    let start = next_event(&mut events, Duration::from_secs(5), |e| e.event() == Event::Start).await;
    assert_eq!(start.function_id.unwrap().id, f.to_string());
    ctx.call(&f, b"x").await.unwrap();
    let last_call = std::time::Instant::now();
    let timeout = next_event(&mut events, Duration::from_secs(5), |e| e.event() == Event::Timeout).await;
    assert_eq!(timeout.instance_id.unwrap().id, instance);
    assert!(last_call.elapsed() >= Duration::from_secs(1), "expired early");
    let err = ctx.call(&f, b"x").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "expired instances are never routed to");
}

#[tokio::test]
async fn a_busy_instance_does_not_expire() {
    let ctx = ctx_with_runtime(1500.0).await;
    let f = ctx.function(IMAGE, config(64, None, 1, 0)).await;
    ctx.start(&f).await;
    // The call outlasts the 1 s idle timeout; the instance must survive it.
    let r = ctx.call(&f, b"x").await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(ctx.worker.worker.instances.len(), 1);
}

#[tokio::test]
async fn stop_removes_at_once_and_stopped_instances_get_no_calls() {
    let ctx = ctx_with_runtime(1.0).await;
    let f = ctx.function(IMAGE, config(64, None, 0, 0)).await;
    let instance = ctx.start(&f).await;
    ctx.client.clone().stop(InstanceId { id: instance.clone() }).await.unwrap();
    assert!(ctx.worker.worker.instances.is_empty());
    let err = ctx.client.clone().stop(InstanceId { id: instance.clone() }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err =
        tokio::time::timeout(Duration::from_secs(2), ctx.call(&f, b"x")).await.expect("no hang").unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
}

#[tokio::test]
async fn max_concurrency_serialises_simulated_calls() {
    let ctx = ctx_with_runtime(30.0).await;
    let f = ctx.function(IMAGE, config(64, None, 0, 1)).await;
    ctx.start(&f).await;
    let responses = futures::future::join_all((0..10).map(|_| ctx.call(&f, b"x"))).await;
    let mut intervals: Vec<(u64, u64)> = responses
        .iter()
        .map(|r| {
            let r = r.as_ref().expect("queued, not failed");
            (
                metadata_u64(r, trailers::CALL_STARTED_TIMESTAMP),
                metadata_u64(r, trailers::GOT_RESPONSE_TIMESTAMP),
            )
        })
        .collect();
    intervals.sort();
    for pair in intervals.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "overlapping calls on a max_concurrency=1 instance: {pair:?}");
    }
}

#[tokio::test]
async fn start_without_a_model_is_refused_by_name() {
    let ctx = ctx_with_runtime(1.0).await;
    let f = ctx.function("hyperfaas-bfs:latest", config(64, None, 0, 0)).await;
    let err = ctx.client.clone().start(proto::common::FunctionId::from(&f)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("hyperfaas-bfs"), "{}", err.message());
}
