use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyperfake_core::FunctionId;
use hyperfake_testkit::SLEEP;
use leaf::LeafError;
use tonic::Code;

use crate::common::*;

/// Longest a test waits for instances to start or calls to settle; only a
/// broken leaf gets there.
const WITHIN: Duration = Duration::from_secs(60);

/// Calls in flight at the worker, by instance of `function` (the worker's own count).
fn in_flight_by_instance(ctx: &TestContext, function: &FunctionId) -> BTreeMap<String, u32> {
    ctx.workers[0]
        .worker
        .instances
        .all()
        .into_iter()
        .filter(|i| &i.function_id == function)
        .map(|i| (i.id.to_string(), i.in_flight()))
        .collect()
}

/// Calls of `function` the leaf has in flight or holds, as its `State` reports them.
fn leaf_calls(ctx: &TestContext, function: &FunctionId) -> u32 {
    ctx.leaf
        .scheduler()
        .load()
        .into_iter()
        .find(|l| proto::convert::function_id(l.function_id.as_ref()).as_ref() == Some(function))
        .map_or(0, |l| l.in_flight_calls)
}

#[tokio::test]
async fn calls_beyond_max_concurrency_wait_at_the_leaf_and_take_new_instances_as_they_come_up() {
    let ctx = TestContext::with(1, |s| s.scheduler.max_instances = 3).await;
    // `sleep` answers after 20 s: calls stay where the leaf put them. One
    // call per instance at a time.
    let f = ctx.function(SLEEP, config(64, None, 0, 1)).await;
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let (client, f) = (ctx.client.clone(), f.clone());
            tokio::spawn(async move { call(&client, &f, b"").await })
        })
        .collect();
    // Each of the 3 instances (max_instances) gets exactly one call; the
    // fourth waits at the leaf. Forwarding to the least-loaded instance
    // instead would have queued them all in the first instance's worker.
    let spread = || {
        let by_instance = in_flight_by_instance(&ctx, &f);
        by_instance.len() == 3 && by_instance.values().all(|n| *n == 1) && leaf_calls(&ctx, &f) == 4
    };
    let mut seen_at_once = 0;
    let deadline = std::time::Instant::now() + WITHIN;
    while !spread() {
        // Never more than max_concurrency calls inside one instance.
        for (instance, n) in in_flight_by_instance(&ctx, &f) {
            assert!(n <= 1, "{n} calls at once in instance {instance}\n{}", ctx.debug());
            seen_at_once = seen_at_once.max(n);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "calls were not spread over 3 instances: {:?} at the worker, {} at the leaf\n{}",
            in_flight_by_instance(&ctx, &f),
            leaf_calls(&ctx, &f),
            ctx.debug()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = &ctx.leaf.scheduler().stats;
    assert_eq!(stats.instances_started.load(Ordering::Relaxed), 3);
    assert!(stats.calls_held.load(Ordering::Relaxed) >= 1, "the fourth call found every instance full");
    assert_eq!(ctx.leaf.scheduler().instances_of(&f).len(), 3);
    for c in calls {
        c.abort();
    }
    // Callers that went away leave nothing held or in flight at the leaf.
    eventually(WITHIN, "abandoned calls left the leaf", || leaf_calls(&ctx, &f) == 0).await;
}

#[tokio::test]
async fn a_burst_is_served_by_every_instance_the_scale_up_starts() {
    let ctx = TestContext::with(1, |s| s.scheduler.max_instances = 3).await;
    // simul takes 100-200 ms; one call per instance at a time. 24 calls take
    // about 3.6 s on one instance: the scale-up's instances come up well
    // within that and take the calls still waiting at the leaf.
    let f = ctx.function(SIMUL, config(64, None, 0, 1)).await;
    let responses = futures::future::join_all((0..24).map(|_| ctx.call(&f, b""))).await;
    let mut per_instance: BTreeMap<String, usize> = BTreeMap::new();
    for r in responses {
        let r = r.unwrap_or_else(|s| panic!("{s:?}\n{}", ctx.debug()));
        *per_instance.entry(r.get_ref().instance_id.clone().unwrap().id).or_default() += 1;
    }
    let started: HashSet<_> =
        ctx.leaf.scheduler().instances_of(&f).into_iter().map(|(i, _)| i.to_string()).collect();
    eprintln!("calls per instance: {per_instance:?}");
    assert_eq!(per_instance.values().sum::<usize>(), 24);
    assert_eq!(started.len(), 3, "the burst scaled up to max_instances: {started:?}");
    for instance in &started {
        assert!(
            per_instance.get(instance).is_some_and(|n| *n > 0),
            "instance {instance} started by the scale-up served none of the burst: {per_instance:?}\n{}",
            ctx.debug()
        );
    }
}

#[tokio::test]
async fn held_calls_keep_their_deadline_and_the_pending_bound() {
    let ctx = TestContext::with(1, |s| {
        s.scheduler.max_instances = 1;
        s.scheduler.max_pending_calls = 2;
    })
    .await;
    let f = ctx.function(SLEEP, config(64, None, 0, 1)).await;
    let scheduler = std::sync::Arc::clone(ctx.leaf.scheduler());
    // The only instance takes the first call (for 20 s).
    let first = tokio::spawn({
        let (client, f) = (ctx.client.clone(), f.clone());
        async move { call(&client, &f, b"").await }
    });
    eventually(WITHIN, "the first call reached the instance", || {
        in_flight_by_instance(&ctx, &f).values().sum::<u32>() == 1
    })
    .await;

    // A call with a deadline is held and ends at it, never forwarded. (Made
    // in process: a gRPC client's own timer would race the leaf's answer.)
    let expired = scheduler.call(&f, vec![], "held-deadline".into(), Some(Duration::from_millis(500))).await;
    assert!(matches!(expired, Err(LeafError::DeadlineExceeded(_))), "{expired:?}");
    assert_eq!(in_flight_by_instance(&ctx, &f).values().copied().collect::<Vec<_>>(), [1], "never forwarded");
    assert_eq!(scheduler.stats.calls_held.load(Ordering::Relaxed), 1);

    // A held call without a deadline takes the second pending slot; a third
    // call finds none and is refused.
    let held = tokio::spawn({
        let scheduler = std::sync::Arc::clone(&scheduler);
        let f = f.clone();
        async move { scheduler.call(&f, vec![], "held".into(), None).await.map(drop) }
    });
    eventually(WITHIN, "the second call is held", || leaf_calls(&ctx, &f) == 2).await;
    let refused = ctx.call(&f, b"").await.map(|_| ()).unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}\n{}", ctx.debug());
    assert!(refused.message().contains(f.as_str()), "names the function: {}", refused.message());
    assert_eq!(in_flight_by_instance(&ctx, &f).values().copied().collect::<Vec<_>>(), [1]);
    held.abort();
    first.abort();
    eventually(WITHIN, "abandoned calls left the leaf", || leaf_calls(&ctx, &f) == 0).await;
}
