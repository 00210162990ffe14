use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::*;

#[tokio::test]
async fn two_hundred_concurrent_cold_calls_start_exactly_one_instance_and_all_succeed() {
    // A high target keeps the leaf from scaling up, so any second instance
    // would have come from a duplicated cold start.
    let ctx = TestContext::with(1, |s| s.scheduler.target_concurrency = 1000).await;
    let f = ctx.function(ECHO, config(64, None, 0, 0)).await;
    let calls = (0..200).map(|i| ctx.call(&f, format!("{i}").as_bytes().to_vec().leak()));
    let responses = futures::future::join_all(calls).await;
    let mut instances = HashSet::new();
    for (i, r) in responses.into_iter().enumerate() {
        let r = r.unwrap_or_else(|s| panic!("call {i}: {s:?}\n{}", ctx.debug()));
        assert_eq!(r.get_ref().data, format!("{i}").as_bytes());
        instances.insert(r.get_ref().instance_id.clone().unwrap().id);
    }
    let stats = &ctx.leaf.scheduler().stats;
    assert_eq!(stats.cold_starts.load(Ordering::Relaxed), 1);
    assert_eq!(stats.instances_started.load(Ordering::Relaxed), 1);
    assert_eq!(instances.len(), 1);
    assert_eq!(ctx.worker_instances(0, &f).len(), 1);
}

#[tokio::test]
async fn instances_scale_up_under_load_and_back_to_zero_after_the_timeout() {
    let ctx = TestContext::with(1, |s| s.scheduler.max_instances = 3).await;
    // simul takes 100-200 ms; one call per instance at a time; idle after 1 s.
    let f = ctx.function(SIMUL, config(64, None, 1, 1)).await;
    let mut seen = HashSet::new();
    for _ in 0..4 {
        let responses = futures::future::join_all((0..12).map(|_| ctx.call(&f, b""))).await;
        for r in responses {
            let r = r.unwrap_or_else(|s| panic!("{s:?}\n{}", ctx.debug()));
            seen.insert(r.get_ref().instance_id.clone().unwrap().id);
        }
    }
    assert!(seen.len() > 1, "load never scaled up: {seen:?}");
    assert!(seen.len() <= 3, "more instances than max_instances: {seen:?}");
    assert!(ctx.worker_instances(0, &f).len() <= 3);
    eventually(Duration::from_secs(20), "every instance stopped after the idle timeout", || {
        ctx.worker_instances(0, &f).is_empty() && ctx.leaf.scheduler().instances_of(&f).is_empty()
    })
    .await;
    // Scaled to zero, the function still answers (a new cold start).
    ctx.call(&f, b"").await.unwrap();
}
