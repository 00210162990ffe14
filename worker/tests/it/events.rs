//! Events beyond the contract (fakeworker's `contract.rs` checks START,
//! CALL, RESPONSE, STOP and TIMEOUT ids against both runtimes): DOWN with exit
//! codes and OOM, and the idle clock reset by calls, which only real
//! containers can show.

use std::time::Duration;

use proto::controller::{Event, Status};

use crate::common::*;

fn is(event: Event, instance: &str) -> impl Fn(&proto::controller::StatusUpdate) -> bool + '_ {
    move |e| e.event() == event && e.instance_id.as_ref().is_some_and(|i| i.id == instance)
}

#[tokio::test]
async fn crash_yields_down_with_the_exit_code() {
    let ctx = TestContext::new().await;
    let mut events = ctx.subscribe("observer").await;
    let f = ctx.function(CRASH, config(64, None, 0, 0)).await;
    let instance = ctx.start(&f).await;
    let err = ctx.call(&f, b"").await;
    assert!(err.is_err(), "a crashing function cannot answer: {err:?}");
    let down = next_event(&mut events, Duration::from_secs(15), is(Event::Down, &instance)).await;
    assert_eq!(down.status(), Status::Failed);
    assert_eq!(down.function_id.unwrap().id, f.to_string());
    assert!(down.exit_code.is_some_and(|c| c != 0), "exit code: {:?}", down.exit_code);
    eventually(Duration::from_secs(10), "crashed container removed", || {
        containers_labelled(&ctx.label()).is_empty()
    })
    .await;
    let after = ctx.call(&f, b"").await.unwrap_err();
    assert_eq!(after.code(), tonic::Code::FailedPrecondition, "a dead instance is never routed to");
}

#[tokio::test]
async fn idle_instance_times_out_after_config_timeout() {
    let ctx = TestContext::new().await;
    let mut events = ctx.subscribe("observer").await;
    let f = ctx.function(ECHO, config(64, None, 1, 0)).await;
    let instance = ctx.start(&f).await;
    let started = std::time::Instant::now();
    // A call resets the idle clock.
    tokio::time::sleep(Duration::from_millis(600)).await;
    ctx.call(&f, b"keep alive").await.unwrap();
    let last_call = std::time::Instant::now();
    let timeout = next_event(&mut events, Duration::from_secs(10), is(Event::Timeout, &instance)).await;
    assert_eq!(timeout.function_id.unwrap().id, f.to_string());
    let idle = last_call.elapsed();
    assert!(idle >= Duration::from_secs(1), "expired after only {idle:?} idle");
    assert!(started.elapsed() >= Duration::from_millis(1600), "the call did not reset the idle clock");
    eventually(Duration::from_secs(10), "timed-out container removed", || {
        containers_labelled(&ctx.label()).is_empty()
    })
    .await;
}

#[tokio::test]
async fn oom_is_recognised() {
    let ctx = TestContext::new().await;
    let mut events = ctx.subscribe("observer").await;
    // 6 MiB is Docker's minimum; a 12 MiB payload cannot fit in it.
    let f = ctx.function(ECHO, config(6, None, 0, 0)).await;
    let instance = ctx.start(&f).await;
    let payload = vec![7u8; 12 * 1024 * 1024];
    let _ = ctx.call(&f, &payload).await;
    let down = next_event(&mut events, Duration::from_secs(15), is(Event::Down, &instance)).await;
    assert!(down.oom_killed, "DOWN without OOM flag: {down:?}");
}
