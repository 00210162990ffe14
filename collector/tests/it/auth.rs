use std::time::Duration;

use collector::{Collector, LinkState};
use hyperfake_testkit::TestDatabase;
use proto::controller::StatusRequest;

use crate::common::*;

const TOKEN: &str = "test-token-0123";

/// A worker with a token refuses clients without it, or with another, with
/// UNAUTHENTICATED naming the problem; the collector with it is served.
#[tokio::test]
async fn a_worker_with_a_token_serves_only_the_collector_that_has_it() {
    let database = TestDatabase::start().await;
    let function = echo_function(&database, config(64, None, 0, 0)).await;
    let fake = FakeWorker::serve(&database, Some(TOKEN)).await;

    let refused = fake.client().await.status(StatusRequest { node_id: "anon".into() }).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert!(refused.message().starts_with("missing token"), "{}", refused.message());

    // The collector with a wrong token keeps retrying and says why.
    let run = Run::new();
    let mut wrong = run.settings(&[&fake.address]);
    wrong.token = Some("not-the-token".into());
    wrong.backoff_max = Duration::from_millis(200);
    let rejected = Collector::start(wrong).await.unwrap();
    let stats = &rejected.workers()[0];
    let deadline = tokio::time::Instant::now() + WITHIN;
    while stats.status.last_error().is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no attempt made");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let error = stats.status.last_error().unwrap();
    assert!(error.contains("Unauthenticated") && error.contains("wrong token"), "{error}");
    assert_ne!(stats.status.state(), LinkState::Connected);
    rejected.shutdown().await.unwrap();

    // With the token: served and recorded.
    let run = Run::new();
    let mut settings = run.settings(&[&fake.address]);
    settings.token = Some(TOKEN.into());
    let collector = Collector::start(settings).await.unwrap();
    connected(&collector).await;
    let instance = fake.start_stop(&function).await;
    until(&run, "events through an authenticated stream", |run| {
        run.lifecycle_of(std::slice::from_ref(&instance)).len() == 2
    })
    .await;
    collector.shutdown().await.unwrap();
    assert!(run.count("worker_samples") > 0);
}
