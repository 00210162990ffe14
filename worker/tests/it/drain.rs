//! A requested stop lets the calls in flight finish before the container
//! stops, and refuses new calls meanwhile. `hyperfaas-sleep` answers after
//! `functions::workload::sleep::DURATION` (20 s), well inside the worker's
//! drain limit (30 s) and far beyond the 2 s `docker stop` grace.

use std::time::Duration;

use proto::common::{CallRequest, InstanceId};
use proto::controller::{Event, StateRequest, Status};

use crate::common::*;

fn is(event: Event, instance: &str) -> impl Fn(&proto::controller::StatusUpdate) -> bool + '_ {
    move |e| e.event() == event && e.instance_id.as_ref().is_some_and(|i| i.id == instance)
}

fn to(function: &hyperfake_core::FunctionId, instance: &str) -> CallRequest {
    let mut request = call_request(function, b"");
    request.instance_id = Some(InstanceId { id: instance.to_string() });
    request
}

/// Waits until the worker has begun stopping `instance` (it is Draining).
async fn draining(ctx: &TestContext, instance: &str) {
    let id = hyperfake_core::InstanceId::new(instance.to_string());
    let table = &ctx.worker.worker.instances;
    eventually(Duration::from_secs(10), "the instance is draining", || {
        table.get(&id).is_some_and(|i| !i.lifecycle().can_call())
    })
    .await;
}

#[tokio::test]
async fn stop_finishes_the_call_in_flight_refuses_new_ones_then_stops() {
    let ctx = TestContext::new().await;
    let mut events = ctx.subscribe("observer").await;
    let f = ctx.function(SLEEP, config(64, None, 0, 0)).await;
    let instance = ctx.start(&f).await;
    let in_flight = tokio::spawn({
        let mut client = ctx.client.clone();
        let request = to(&f, &instance);
        async move { client.call(request).await }
    });
    next_event(&mut events, Duration::from_secs(10), is(Event::Call, &instance)).await;
    let stop = tokio::spawn({
        let mut client = ctx.client.clone();
        let id = InstanceId { id: instance.clone() };
        async move { client.stop(id).await }
    });
    draining(&ctx, &instance).await;

    // A stopping instance takes no new call: refused as for a stopped one.
    let refused = ctx.client.clone().call(to(&f, &instance)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
    // Nor is it offered to a leaf reconciling with State.
    let state = ctx.client.clone().state(StateRequest::default()).await.unwrap().into_inner();
    assert!(state.functions.is_empty(), "a draining instance is listed: {state:?}");

    let answer = in_flight.await.unwrap().expect("the call in flight completes");
    assert!(answer.get_ref().error.is_none(), "{:?}", answer.get_ref().error);
    assert_eq!(answer.get_ref().instance_id.as_ref().unwrap().id, instance);
    let stopped = stop.await.unwrap().expect("the stop succeeds once the call has finished");
    assert_eq!(stopped.get_ref().id, instance);
    // In this order: the call's RESPONSE, then STOP.
    let response = next_event(&mut events, Duration::from_secs(10), |e| {
        is(Event::Response, &instance)(e) || is(Event::Stop, &instance)(e)
    })
    .await;
    assert_eq!((response.event(), response.status()), (Event::Response, Status::Success));
    next_event(&mut events, Duration::from_secs(10), is(Event::Stop, &instance)).await;
    assert!(containers_labelled(&ctx.label()).is_empty(), "the stop removes the container");
}

#[tokio::test]
async fn a_stop_whose_caller_gives_up_still_drains_and_stops() {
    let ctx = TestContext::new().await;
    let mut events = ctx.subscribe("observer").await;
    let f = ctx.function(SLEEP, config(64, None, 0, 0)).await;
    let instance = ctx.start(&f).await;
    let in_flight = tokio::spawn({
        let mut client = ctx.client.clone();
        let request = to(&f, &instance);
        async move { client.call(request).await }
    });
    next_event(&mut events, Duration::from_secs(10), is(Event::Call, &instance)).await;
    let mut stop = tonic::Request::new(InstanceId { id: instance.clone() });
    stop.set_timeout(Duration::from_millis(500));
    let err = ctx.client.clone().stop(stop).await.unwrap_err();
    // The client's own timer or the server's deadline, whichever fires first.
    assert!(matches!(err.code(), tonic::Code::DeadlineExceeded | tonic::Code::Cancelled), "{err:?}");
    draining(&ctx, &instance).await;

    let answer = in_flight.await.unwrap().expect("the call in flight completes");
    assert!(answer.get_ref().error.is_none());
    next_event(&mut events, Duration::from_secs(10), is(Event::Stop, &instance)).await;
    eventually(Duration::from_secs(10), "the stopped container is removed", || {
        containers_labelled(&ctx.label()).is_empty()
    })
    .await;
    assert!(ctx.worker.worker.instances.is_empty(), "the instance left the table");
}
