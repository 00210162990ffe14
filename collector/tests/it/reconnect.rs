use std::time::Duration;

use collector::{Collector, LinkState};
use hyperfake_testkit::TestDatabase;

use crate::common::*;

/// A worker that is down when the collector starts is retried (not given
/// up on), collected once it comes up, and followed again after it restarts.
#[tokio::test]
async fn a_worker_down_at_start_is_collected_once_up_and_after_a_restart() {
    let database = TestDatabase::start().await;
    let function = echo_function(&database, config(64, None, 0, 0)).await;
    let address = free_address().await;
    let run = Run::new();
    let mut settings = run.settings(&[&address]);
    settings.backoff_max = Duration::from_millis(300);
    let collector = Collector::start(settings).await.unwrap();
    let stats = &collector.workers()[0];

    // Retrying, and saying why.
    let deadline = tokio::time::Instant::now() + WITHIN;
    while stats.status.failures.load(std::sync::atomic::Ordering::Acquire) < 3 {
        assert!(tokio::time::Instant::now() < deadline, "no retries: {:?}", stats.status.last_error());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_ne!(stats.status.state(), LinkState::Connected);
    let error = stats.status.last_error().unwrap();
    assert!(error.contains("onnect"), "the error does not say the connection failed: {error}");

    // The worker comes up on that address.
    let mut fake = FakeWorker::new(&database);
    fake.serve_on(&address, None).await;
    connected(&collector).await;
    let before = fake.start_stop(&function).await;
    until(&run, "events of the worker that came up", |run| {
        run.lifecycle_of(std::slice::from_ref(&before)).len() == 2
    })
    .await;
    assert!(run.count("worker_samples") > 0);
    // The simulated runtime's 5 ms cold start is inside the START's duration.
    let start = run.events().into_iter().find(|e| e.event == "START").unwrap();
    let took = start.start_duration_ns.expect("START carries start_duration_ns");
    assert!((5_000_000..60_000_000_000).contains(&took), "start took {took} ns");

    // It dies and comes back: followed again, nothing duplicated.
    fake.kill();
    let deadline = tokio::time::Instant::now() + WITHIN;
    while stats.status.state() == LinkState::Connected {
        assert!(tokio::time::Instant::now() < deadline, "the broken stream was not noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fake.serve_on(&address, None).await;
    connected(&collector).await;
    let after = fake.start_stop(&function).await;
    until(&run, "events after the worker restarted", |run| {
        run.lifecycle_of(std::slice::from_ref(&after)).len() == 2
    })
    .await;
    assert!(stats.status.subscriptions() >= 2 && stats.resources.subscriptions() >= 2);
    collector.shutdown().await.unwrap();
    assert_eq!(run.lifecycle_of(&[before.clone(), after.clone()]).len(), 4, "{}", run.dump());
    assert!(run.events().iter().all(|e| e.worker == address));
}
