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
    // simul takes 100-200 ms; one call per instance at a time; idle after 3 s.
    // A round of 12 calls finds one instance: the calls it cannot take wait
    // at the leaf while the scale-ups start, and take the new instances as
    // they come up. The idle timeout outlasts a round (~2 s), so instances
    // stay up between rounds.
    let f = ctx.function(SIMUL, config(64, None, 3, 1)).await;
    let mut seen = HashSet::new();
    // The most instances alive at once, sampled on the worker during the load.
    // (Distinct ids over the whole run may exceed max_instances: an instance
    // that idles out between rounds is replaced by a new one.)
    let mut peak = 0;
    let load = async {
        for _ in 0..4 {
            let responses = futures::future::join_all((0..12).map(|_| ctx.call(&f, b""))).await;
            for r in responses {
                let r = r.unwrap_or_else(|s| panic!("{s:?}\n{}", ctx.debug()));
                seen.insert(r.get_ref().instance_id.clone().unwrap().id);
            }
        }
    };
    let sample = async {
        loop {
            peak = peak.max(ctx.worker_instances(0, &f).len());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::select! {
        () = load => {}
        () = sample => unreachable!("sampling never ends"),
    }
    let started = ctx.leaf.scheduler().stats.instances_started.load(Ordering::Relaxed);
    assert!(seen.len() > 1, "load never scaled up: {seen:?}");
    assert!(peak <= 3, "{peak} instances alive at once, max_instances is 3\n{}", ctx.debug());
    assert!(seen.len() as u64 <= started, "calls answered by instances the leaf never started: {seen:?}");
    eventually(Duration::from_secs(20), "every instance stopped after the idle timeout", || {
        ctx.worker_instances(0, &f).is_empty() && ctx.leaf.scheduler().instances_of(&f).is_empty()
    })
    .await;
    // Scaled to zero, the function still answers (a new cold start).
    ctx.call(&f, b"").await.unwrap();
}
