use std::sync::Arc;
use std::time::Duration;

use fakeworker::{ModelRegistry, SimRuntime, SimSettings};
use hyperfake_core::{ImageTag, trailers};
use hyperfake_testkit::{TestDatabase, TestLeaf, TestWorker, leaf_settings, unique};
use proto::leaf::{CreateFunctionRequest, ScheduleCallRequest};
use worker::WorkerSettings;

use crate::common::*;

/// Two fake workers behind a real leaf: every call succeeds, and each call's
/// handler time is the model's prediction for the state it met (runtime =
/// 20 ms + 1 ms per byte of payload / 1000), while client-side latency is at
/// least that and not wildly more.
#[tokio::test]
async fn a_leaf_driving_fake_workers_serves_calls_with_the_predicted_latency() {
    let dir = tempfile::tempdir().unwrap();
    write_json(
        dir.path(),
        "m.json",
        IMAGE,
        [1e3, 0.0, 0.0, 0.0, 0.0, 20e6],
        constant(0.1),
        constant(1e6),
        Some("ns"),
    );
    let (registry, _) = ModelRegistry::load(Some(dir.path().into()), vec![]).unwrap();
    let registry = Arc::new(registry);
    let database = TestDatabase::start().await;
    let mut workers = Vec::new();
    for _ in 0..2 {
        let runtime = SimRuntime::new(
            Arc::clone(&registry),
            SimSettings { cold_start: Duration::from_millis(50), ..Default::default() },
        );
        workers.push(
            TestWorker::with_runtime(
                WorkerSettings::new(unique("fake")),
                Arc::new(runtime),
                database.client.clone(),
            )
            .await,
        );
    }
    let leaf = TestLeaf::start(leaf_settings(
        &database.address,
        workers.iter().map(|w| w.address.clone()).collect(),
    ))
    .await;
    let mut client = leaf.client().await;
    let config: proto::common::Config = (&config(64, None, 0, 0)).into();
    let function = client
        .create_function(CreateFunctionRequest {
            image_tag: Some((&ImageTag::from(IMAGE)).into()),
            config: Some(config),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .function_id
        .unwrap();
    let calls = (0..40).map(|i| {
        let mut client = client.clone();
        let function = function.clone();
        async move {
            let payload = vec![0u8; 1000 * (i % 5)];
            let started = std::time::Instant::now();
            let r = client
                .schedule_call(ScheduleCallRequest { function_id: Some(function), data: payload.clone() })
                .await;
            (payload.len(), started.elapsed(), r)
        }
    });
    for (size, elapsed, response) in futures::future::join_all(calls).await {
        let response = response.expect("every call through the leaf succeeds");
        let expected_ns = 20_000_000 + 1_000 * size as u64;
        assert_eq!(metadata_u64(&response, trailers::FUNCTION_HANDLER_TIME), expected_ns, "payload {size} B");
        assert!(elapsed >= Duration::from_nanos(expected_ns), "answered before the simulated runtime");
        assert_eq!(response.get_ref().data.len(), size, "echo response");
    }
}
