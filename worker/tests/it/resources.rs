use std::time::Duration;

use proto::controller::{MetricsRequest, ResourcesRequest};

use crate::common::*;

#[tokio::test]
async fn metrics_report_cpu_per_core_and_ram() {
    let ctx = TestContext::new().await;
    // The host monitor needs one interval before its first reading.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let m = ctx.client.clone().metrics(MetricsRequest { node_id: "t".into() }).await.unwrap().into_inner();
    assert_eq!(m.cpu_percent_percpu.len(), std::thread::available_parallelism().unwrap().get());
    assert!(m.cpu_percent_percpu.iter().all(|p| (0.0..=100.0).contains(p)));
    assert!(m.used_ram_percent > 0.0 && m.used_ram_percent < 100.0);
    assert!(m.ram_total_bytes > m.ram_used_bytes && m.ram_used_bytes > 0);
}

#[tokio::test]
async fn resource_stream_samples_each_container() {
    let ctx = TestContext::new().await;
    let f = ctx.function(ECHO, config(64, None, 0, 0)).await;
    let instance = ctx.start(&f).await;
    ctx.call(&f, &vec![1u8; 1 << 20]).await.unwrap();
    let mut stream =
        ctx.client.clone().resources(ResourcesRequest { interval_ms: 100 }).await.unwrap().into_inner();
    let mut samples = Vec::new();
    while samples.len() < 3 {
        let s =
            tokio::time::timeout(Duration::from_secs(10), stream.message()).await.unwrap().unwrap().unwrap();
        samples.push(s);
    }
    for pair in samples.windows(2) {
        let gap = pair[1].timestamp_ns - pair[0].timestamp_ns;
        assert!(gap > 0 && gap < 1_000_000_000, "samples {gap} ns apart");
    }
    let last = samples.last().unwrap();
    let c = last.containers.iter().find(|c| c.instance_id.as_ref().unwrap().id == instance).expect("sampled");
    assert_eq!(c.function_id.as_ref().unwrap().id, f.to_string());
    assert!(c.cpu_usage_ns > 0, "the container has used CPU");
    assert!(c.memory_bytes > 0 && c.memory_bytes <= 64 << 20, "memory {}", c.memory_bytes);
    assert!(last.worker_ram_bytes.is_some_and(|b| b > 0), "worker RAM: {:?}", last.worker_ram_bytes);
}
