use std::time::Duration;

use hyperfake_core::trailers;
use proto::leaf::{CreateFunctionRequest, ScheduleCallRequest};
use tonic::Code;

use crate::common::*;

#[tokio::test]
async fn a_function_created_through_the_leaf_is_callable_with_the_whole_latency_decomposition() {
    let ctx = TestContext::new().await;
    let f = ctx.function(ECHO, config(64, None, 0, 0)).await;
    let response = ctx.call(&f, b"hello leaf").await.unwrap_or_else(|s| panic!("{s:?}\n{}", ctx.debug()));
    let body = response.get_ref();
    assert_eq!(body.data, b"hello leaf");
    assert!(body.error.is_none());
    assert!(!body.request_id.is_empty());
    let instance = body.instance_id.as_ref().unwrap().id.clone();
    assert_eq!(metadata_str(&response, trailers::INSTANCE_ID), instance);
    assert_eq!(metadata_str(&response, trailers::WORKER_ADDRESS), ctx.workers[0].address);
    let got = metadata_u64(&response, trailers::LEAF_GOT_REQUEST_TIMESTAMP);
    let scheduled = metadata_u64(&response, trailers::LEAF_SCHEDULED_CALL_TIMESTAMP);
    let queued = metadata_u64(&response, trailers::CALL_QUEUED_TIMESTAMP);
    let started = metadata_u64(&response, trailers::CALL_STARTED_TIMESTAMP);
    let answered = metadata_u64(&response, trailers::GOT_RESPONSE_TIMESTAMP);
    assert!(got <= scheduled && scheduled <= queued && queued <= started && started <= answered);
    metadata_u64(&response, trailers::FUNCTION_PROCESSING_TIME);
    metadata_u64(&response, trailers::FUNCTION_HANDLER_TIME);
    assert_eq!(ctx.worker_instances(0, &f), vec![instance.clone()]);
    // A warm call reuses the instance.
    let again = ctx.call(&f, b"2").await.unwrap();
    assert_eq!(again.get_ref().instance_id.as_ref().unwrap().id, instance);
}

#[tokio::test]
async fn expected_conditions_get_clear_codes() {
    let ctx = TestContext::with(1, |s| s.scheduler.max_pending_calls = 2).await;
    let code = |r: Result<_, tonic::Status>| r.map(|_| ()).unwrap_err().code();
    // Unknown function.
    assert_eq!(code(ctx.call(&"no-such-function".into(), b"").await), Code::NotFound);
    // Malformed: no function id, no image, bad config.
    let mut client = ctx.client.clone();
    assert_eq!(code(client.schedule_call(ScheduleCallRequest::default()).await), Code::InvalidArgument);
    let err = client.create_function(CreateFunctionRequest::default()).await.map(|_| ()).unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let bad = CreateFunctionRequest {
        image_tag: Some(proto::common::ImageTag { tag: ECHO.into() }),
        config: Some(proto::common::Config { memory: -1, ..Default::default() }),
        function_id: None,
    };
    let err = client.create_function(bad).await.map(|_| ()).unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("config.memory"), "{}", err.message());
    // An image that is not built: the worker's FAILED_PRECONDITION, passed on.
    let missing = CreateFunctionRequest {
        image_tag: Some(proto::common::ImageTag { tag: "hyperfaas-not-built:latest".into() }),
        config: Some((&config(64, None, 0, 0)).into()),
        function_id: None,
    };
    let id = client.create_function(missing).await.unwrap().into_inner().function_id.unwrap();
    assert_eq!(code(ctx.call(&id.id.as_str().into(), b"").await), Code::FailedPrecondition);

    // Deadline shorter than the function's run time.
    let f = ctx.function(SIMUL, config(64, None, 0, 0)).await;
    ctx.call(&f, b"").await.unwrap_or_else(|s| panic!("{s:?}\n{}", ctx.debug()));
    let mut request =
        tonic::Request::new(ScheduleCallRequest { function_id: Some((&f).into()), data: vec![] });
    request.set_timeout(Duration::from_millis(30));
    assert_eq!(code(client.schedule_call(request).await), Code::DeadlineExceeded);

    // More calls than the function may have pending: RESOURCE_EXHAUSTED, the rest succeed.
    let results = futures::future::join_all((0..12).map(|_| ctx.call(&f, b""))).await;
    let exhausted =
        results.iter().filter(|r| matches!(r, Err(s) if s.code() == Code::ResourceExhausted)).count();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok + exhausted, 12, "{results:?}");
    assert!(ok >= 2 && exhausted >= 1, "ok {ok}, exhausted {exhausted}");
}

#[tokio::test]
async fn a_leaf_without_a_reachable_worker_answers_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = listener.local_addr().unwrap().to_string();
    drop(listener);
    let database = hyperfake_testkit::TestDatabase::start().await;
    let mut settings = leaf_settings(&database.address, vec![nowhere]);
    settings.pool.connect_timeout = Duration::from_millis(200);
    let leaf = hyperfake_testkit::TestLeaf::start(settings).await;
    let client = leaf.client().await;
    let f = create(&client, ECHO, config(64, None, 0, 0)).await;
    let err = call(&client, &f, b"").await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
}
