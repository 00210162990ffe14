use std::time::Duration;

use hyperfake_core::trailers;
use proto::controller::MetricsRequest;

use crate::common::*;

#[tokio::test]
async fn active_calls_and_instances_feed_the_model_as_in_training() {
    // runtime = 10 ms × active calls (including this one) + 1 ms × instances.
    let ctx = FakeContext::new(|dir| {
        write_json(
            dir,
            "m.json",
            IMAGE,
            [0.0, 1e6, 10e6, 0.0, 0.0, 0.0],
            constant(0.25),
            constant(4e6),
            Some("ns"),
        );
    })
    .await;
    let f = ctx.function(IMAGE, config(64, None, 0, 0)).await;
    ctx.start(&f).await;
    ctx.start(&f).await;
    let first = ctx.call(&f, b"x").await.unwrap();
    assert_eq!(
        metadata_u64(&first, trailers::FUNCTION_HANDLER_TIME),
        12_000_000,
        "1 active call, 2 instances"
    );
    let three = futures::future::join_all((0..3).map(|_| ctx.call(&f, b"x"))).await;
    let mut times: Vec<u64> =
        three.iter().map(|r| metadata_u64(r.as_ref().unwrap(), trailers::FUNCTION_HANDLER_TIME)).collect();
    times.sort();
    assert_eq!(times, [12_000_000, 22_000_000, 32_000_000]);
}

#[tokio::test]
async fn request_size_is_payload_bytes() {
    // runtime = 1 µs per request byte.
    let ctx = FakeContext::new(|dir| {
        write_json(
            dir,
            "m.json",
            IMAGE,
            [1e3, 0.0, 0.0, 0.0, 0.0, 0.0],
            constant(0.1),
            constant(1e6),
            Some("ns"),
        );
    })
    .await;
    let f = ctx.function(IMAGE, config(64, None, 0, 0)).await;
    ctx.start(&f).await;
    let r = ctx.call(&f, &[0u8; 2000]).await.unwrap();
    assert_eq!(metadata_u64(&r, trailers::FUNCTION_HANDLER_TIME), 2_000_000);
}

#[tokio::test]
async fn metrics_and_resources_report_the_simulated_usage() {
    let ctx = FakeContext::new(|dir| {
        write_json(dir, "m.json", IMAGE, constant(400e6), constant(0.5), constant(32e6), Some("ns"));
    })
    .await;
    let f = ctx.function(IMAGE, config(64, None, 0, 0)).await;
    ctx.start(&f).await;
    let calls = futures::future::join_all((0..2).map(|_| ctx.call(&f, b"x")));
    let probe = async {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let m = ctx.client.clone().metrics(MetricsRequest::default()).await.unwrap().into_inner();
            if m.cpu_cores_used > 0.9 {
                return m;
            }
            assert!(std::time::Instant::now() < deadline, "metrics never showed both calls: {m:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let (responses, m) = tokio::join!(calls, probe);
    assert!(responses.iter().all(|r| r.is_ok()));
    assert!((m.cpu_cores_used - 1.0).abs() < 1e-6, "two calls × 0.5 cores: {m:?}");
    assert_eq!(m.ram_used_bytes, 64_000_000);
    let idle = ctx.client.clone().metrics(MetricsRequest::default()).await.unwrap().into_inner();
    assert_eq!((idle.cpu_cores_used, idle.ram_used_bytes), (0.0, 0), "usage released after the calls");
}

#[tokio::test]
async fn the_host_baseline_is_added_to_the_worker_usage_the_model_sees_and_reports() {
    // runtime = 100 ms per core of worker CPU + 1 ms per GB of worker RAM.
    // The training run's host used 0.4 cores and 0.6 GB besides the calls
    // (a constant baseline, so every draw gives it).
    let ctx = FakeContext::new(|dir| {
        write_entries(
            dir,
            "m.json",
            &[serde_json::json!({
                "image_tag": IMAGE, "runtime_unit": "ns",
                "runtime_coeffs": [0.0, 0.0, 0.0, 100e6, 1e-3, 0.0],
                "cpu_coeffs": constant(0.25), "ram_coeffs": constant(1e8),
                "host_baseline": {"cpu_cores": [0.4, 0.4], "ram_bytes": [6e8, 6e8]},
            })],
        );
    })
    .await;
    let f = ctx.function(IMAGE, config(64, None, 0, 0)).await;
    ctx.start(&f).await;
    let r = ctx.call(&f, b"x").await.unwrap();
    // Without the baseline an idle simulated host gives 0 (the first call
    // sees no other call in flight).
    let handler = metadata_u64(&r, trailers::FUNCTION_HANDLER_TIME);
    assert!(handler.abs_diff(40_600_000) < 1_000, "0.4 cores and 0.6 GB give 40.6 ms: {handler} ns");
    let idle = ctx.client.clone().metrics(MetricsRequest::default()).await.unwrap().into_inner();
    assert_eq!(
        (idle.cpu_cores_used, idle.ram_used_bytes),
        (0.4, 600_000_000),
        "an idle simulated host reports the baseline"
    );
}

#[tokio::test]
async fn an_idle_instance_holds_the_smallest_ram_seen_in_training() {
    // Container RAM in training ran from 5 MB (at rest) to 50 MB; each call
    // is predicted at 20 MB.
    let ctx = FakeContext::new(|dir| {
        write_entries(
            dir,
            "m.json",
            &[serde_json::json!({
                "image_tag": IMAGE, "runtime_unit": "ns",
                "runtime_coeffs": constant(1e6), "cpu_coeffs": constant(0.25), "ram_coeffs": constant(20e6),
                "output_ranges": [{"min": 0, "max": 1e9}, {"min": 0, "max": 1}, {"min": 5e6, "max": 5e7}],
            })],
        );
    })
    .await;
    let f = ctx.function(IMAGE, config(64, None, 0, 0)).await;
    ctx.start(&f).await;
    let mut stream = ctx
        .client
        .clone()
        .resources(proto::controller::ResourcesRequest { interval_ms: 20 })
        .await
        .unwrap()
        .into_inner();
    let sample = stream.message().await.unwrap().expect("a resource sample");
    let memory: Vec<u64> = sample.containers.iter().map(|c| c.memory_bytes).collect();
    // Without a resting RAM an idle simulated instance reported 0 bytes,
    // which no real container does.
    assert_eq!(memory, [5_000_000], "one idle instance at its resting RAM");
}
