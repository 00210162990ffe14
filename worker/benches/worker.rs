//! Worker benchmark (not a test): `cargo bench -p worker`.
//!
//! - Cold start: `Start` until ready, next to a bare `docker run` of the same
//!   image until its health service answers SERVING.
//! - Warm calls: echo through the worker vs. calling the function container
//!   directly, sequentially, p50/p99, with 64 B, 8 KiB and 64 KiB payloads.
//!
//! Writes `bench-results/worker.{json,md}` (or `$HYPERFAKE_BENCH_OUT`), with
//! the build profile, the machine and its load average in the header.
//! Without a release build of the dependencies at hand,
//! `cargo bench -p worker --profile dev` runs it on the test build
//! (dependencies at opt-level 2); the report says which profile was used.

use std::time::{Duration, Instant};

use hyperfake_core::ImageTag;
use hyperfake_core::defaults::{FUNCTION_HEALTH_SERVICE, LABEL_TEST};
use hyperfake_testkit::{ContainerSweeper, ECHO, TestDatabase, TestWorker, config, require_image};
use proto::common::{CallRequest, FunctionId, InstanceId};
use proto::function::function_service_client::FunctionServiceClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use worker::WorkerSettings;

const COLD_STARTS: usize = 10;
const WARM_CALLS: usize = 2000;
/// Echo payload sizes for the warm calls: one segment, several segments, many.
const PAYLOADS: [usize; 3] = [64, 8 * 1024, 64 * 1024];

fn payload_name(bytes: usize) -> String {
    if bytes.is_multiple_of(1024) { format!("{} KiB", bytes / 1024) } else { format!("{bytes} B") }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1e3
}

struct Summary {
    name: String,
    p50_ms: f64,
    p99_ms: f64,
    mean_ms: f64,
    n: usize,
}

fn summarize(name: String, mut samples: Vec<Duration>) -> Summary {
    samples.sort();
    let mean = samples.iter().sum::<Duration>().as_secs_f64() * 1e3 / samples.len() as f64;
    Summary {
        name,
        p50_ms: percentile(&samples, 0.5),
        p99_ms: percentile(&samples, 0.99),
        mean_ms: mean,
        n: samples.len(),
    }
}

async fn wait_serving(address: &str) {
    let channel = proto::endpoint(address).unwrap().connect_lazy();
    let mut health = HealthClient::new(channel);
    loop {
        let req = HealthCheckRequest { service: FUNCTION_HEALTH_SERVICE.into() };
        if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_millis(500), health.check(req)).await
            && r.get_ref().status == 1
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `docker run -d -p 127.0.0.1::50052 <image>` until the function is SERVING.
async fn bare_docker_run(sweeper: &ContainerSweeper) -> Duration {
    let started = Instant::now();
    let label = format!("{LABEL_TEST}={}", sweeper.test_id);
    let out = std::process::Command::new("docker")
        .args(["run", "-d", "--label", &label, "-p", "127.0.0.1::50052", ECHO])
        .output()
        .unwrap();
    assert!(out.status.success(), "docker run: {}", String::from_utf8_lossy(&out.stderr));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let port = std::process::Command::new("docker").args(["port", &id, "50052/tcp"]).output().unwrap();
    let address = String::from_utf8_lossy(&port.stdout).lines().next().unwrap().trim().to_string();
    wait_serving(&address).await;
    let elapsed = started.elapsed();
    std::process::Command::new("docker").args(["rm", "-f", &id]).output().unwrap();
    elapsed
}

#[tokio::main]
async fn main() {
    require_image(ECHO);
    let profile = hyperfake_core::build::profile(cfg!(debug_assertions));
    let machine = hyperfake_testkit::bench::machine();
    let load_start = hyperfake_testkit::bench::load_average();
    // Set HYPERFAKE_BENCH_BUSY=1 when other work shares the machine; the report says so.
    let busy = std::env::var_os("HYPERFAKE_BENCH_BUSY").is_some_and(|v| v != "0");
    let sweeper = ContainerSweeper::new();
    let database = TestDatabase::start().await;
    let settings = WorkerSettings::new(format!("bench-{}", sweeper.test_id));
    let worker = TestWorker::docker(&sweeper, settings, database.client.clone()).await;
    let mut client = worker.client().await;
    let function = database.client.create(&ImageTag::from(ECHO), &config(128, None, 0, 0)).await.unwrap().id;
    let function_id = FunctionId::from(&function);

    eprintln!("cold starts: {COLD_STARTS} through the worker, {COLD_STARTS} bare docker run");
    let mut worker_cold = Vec::new();
    let mut docker_cold = Vec::new();
    for _ in 0..COLD_STARTS {
        let t = Instant::now();
        let started = client.start(function_id.clone()).await.unwrap().into_inner();
        worker_cold.push(t.elapsed());
        client.stop(started.instance_id.unwrap()).await.unwrap();
        docker_cold.push(bare_docker_run(&sweeper).await);
    }

    let started = client.start(function_id.clone()).await.unwrap().into_inner();
    let channel = proto::endpoint(&started.instance_ip).unwrap().connect().await.unwrap();
    let mut direct_client = FunctionServiceClient::new(channel);
    let mut rows = vec![
        summarize("cold start via worker (Start → ready)".into(), worker_cold),
        summarize("cold start bare docker run (→ SERVING)".into(), docker_cold),
    ];
    // (payload, p50 overhead, p99 overhead) in ms.
    let mut overheads = Vec::new();
    for size in PAYLOADS {
        let name = payload_name(size);
        eprintln!("warm calls, {name}: {WARM_CALLS} through the worker and {WARM_CALLS} direct");
        let payload = vec![7u8; size];
        let request = |instance: Option<InstanceId>| CallRequest {
            request_id: "bench".into(),
            instance_id: instance,
            data: payload.clone(),
            function_id: Some(function_id.clone()),
        };
        let mut through_worker = Vec::with_capacity(WARM_CALLS);
        for _ in 0..WARM_CALLS {
            let t = Instant::now();
            let answer = client.call(request(None)).await.unwrap();
            through_worker.push(t.elapsed());
            assert_eq!(answer.get_ref().data.len(), size, "echo through the worker");
        }
        let mut direct = Vec::with_capacity(WARM_CALLS);
        for _ in 0..WARM_CALLS {
            let t = Instant::now();
            let answer = direct_client.call(request(started.instance_id.clone())).await.unwrap();
            direct.push(t.elapsed());
            assert_eq!(answer.get_ref().data.len(), size, "echo from the container");
        }
        let via = summarize(format!("warm call via worker ({name} echo)"), through_worker);
        let bare = summarize(format!("warm call direct to container ({name} echo)"), direct);
        overheads.push((size, via.p50_ms - bare.p50_ms, via.p99_ms - bare.p99_ms));
        rows.push(via);
        rows.push(bare);
    }
    client.stop(started.instance_id.unwrap()).await.unwrap();
    let load_end = hyperfake_testkit::bench::load_average();

    let mut md = format!(
        "# Worker benchmark\n\nProfile: {profile}. Machine: {machine}. Load average (1/5/15 min) {load_start} at the start, {load_end} at the end{busy}.\n\n\
         | measurement | n | p50 ms | p99 ms | mean ms |\n|---|---|---|---|---|\n",
        busy = if busy { " (other builds were running: not an idle machine)" } else { "" },
    );
    for r in &rows {
        md.push_str(&format!(
            "| {} | {} | {:.3} | {:.3} | {:.3} |\n",
            r.name, r.n, r.p50_ms, r.p99_ms, r.mean_ms
        ));
    }
    md.push('\n');
    for (size, p50, p99) in &overheads {
        md.push_str(&format!(
            "Worker overhead per warm call ({}): p50 {p50:.3} ms, p99 {p99:.3} ms.\n",
            payload_name(*size)
        ));
    }
    let json = format!(
        "{{\n  \"profile\": {},\n  \"machine\": {},\n  \"load_average_start\": {},\n  \"load_average_end\": {},\n  \"busy\": {busy},\n  \"rows\": [{}],\n  \"warm_overhead\": [{}]\n}}\n",
        serde_json::Value::from(profile),
        serde_json::Value::from(machine.as_str()),
        serde_json::Value::from(load_start.as_str()),
        serde_json::Value::from(load_end.as_str()),
        rows.iter()
            .map(|r| format!(
                "\n    {{\"name\": \"{}\", \"n\": {}, \"p50_ms\": {:.4}, \"p99_ms\": {:.4}, \"mean_ms\": {:.4}}}",
                r.name, r.n, r.p50_ms, r.p99_ms, r.mean_ms
            ))
            .collect::<Vec<_>>()
            .join(","),
        overheads
            .iter()
            .map(|(size, p50, p99)| format!(
                "\n    {{\"payload_bytes\": {size}, \"p50_ms\": {p50:.4}, \"p99_ms\": {p99:.4}}}"
            ))
            .collect::<Vec<_>>()
            .join(",")
    );
    let out = std::env::var("HYPERFAKE_BENCH_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench-results"));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("worker.md"), &md).unwrap();
    std::fs::write(out.join("worker.json"), json).unwrap();
    println!("{md}\nwritten to {}", out.display());
}
