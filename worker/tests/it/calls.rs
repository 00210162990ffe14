use std::time::Duration;

use hyperfake_core::trailers;
use proto::common::CallRequest;

use crate::common::*;

#[tokio::test]
async fn fifty_concurrent_calls_on_max_concurrency_one_are_serialised_not_failed() {
    let ctx = TestContext::new().await;
    let f = ctx.function(SIMUL, config(64, None, 0, 1)).await;
    ctx.start(&f).await;
    let calls = (0..50).map(|_| ctx.call(&f, b""));
    let responses = futures::future::join_all(calls).await;
    let mut intervals: Vec<(u64, u64)> = responses
        .into_iter()
        .map(|r| {
            let r = r.expect("no call may fail");
            assert!(r.get_ref().error.is_none());
            (
                metadata_u64(&r, trailers::CALL_STARTED_TIMESTAMP),
                metadata_u64(&r, trailers::GOT_RESPONSE_TIMESTAMP),
            )
        })
        .collect();
    intervals.sort();
    for pair in intervals.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "calls overlapped on one instance: {pair:?}");
    }
}

#[tokio::test]
async fn calls_honour_a_named_instance_and_otherwise_spread() {
    let ctx = TestContext::new().await;
    let f = ctx.function(ECHO, config(64, None, 0, 0)).await;
    let a = ctx.start(&f).await;
    let b = ctx.start(&f).await;
    for target in [&a, &b] {
        let mut request = call_request(&f, b"x");
        request.instance_id = Some(proto::common::InstanceId { id: target.clone() });
        let r = ctx.client.clone().call(request).await.unwrap();
        assert_eq!(&r.get_ref().instance_id.as_ref().unwrap().id, target);
    }
    // A named instance that does not exist falls back to a live one.
    let mut request = call_request(&f, b"x");
    request.instance_id = Some(proto::common::InstanceId { id: "gone".into() });
    let r = ctx.client.clone().call(request).await.unwrap();
    assert!([&a, &b].contains(&&r.get_ref().instance_id.as_ref().unwrap().id));
}

#[tokio::test]
async fn malformed_calls_get_clear_codes() {
    let ctx = TestContext::new().await;
    let no_function = CallRequest { request_id: "r".into(), ..Default::default() };
    let err = ctx.client.clone().call(no_function).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("function_id"), "{}", err.message());
    let f = ctx.function(ECHO, config(64, None, 0, 0)).await;
    let err = ctx.call(&f, b"x").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "no instance started yet: {err:?}");
    let oversized = vec![0u8; hyperfake_core::defaults::MAX_MESSAGE_SIZE + 1];
    let err = ctx.call(&f, &oversized).await.unwrap_err();
    assert!(
        matches!(err.code(), tonic::Code::ResourceExhausted | tonic::Code::OutOfRange),
        "oversized payload: {err:?}"
    );
    tokio::time::timeout(
        Duration::from_secs(5),
        ctx.client.clone().state(proto::controller::StateRequest::default()),
    )
    .await
    .expect("worker still answers")
    .unwrap();
}
