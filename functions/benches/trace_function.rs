//! Trace function benchmark (not a test): how close the `trace` image's
//! handler time comes to the duration asked for, at several CPU quotas, with
//! the paced busy loop and with the naive one (`"pace": false`, spin flat out
//! and let CFS throttle) as the baseline, measured in the same run.
//!
//! `cargo bench --workspace --bench trace_function --profile dev` (the
//! function runs in its image, built by `scripts/build-function-images.sh
//! trace`, so the bench's own profile hardly matters; the report names both).
//! Writes `bench-results/trace-function.{json,md}` (or `$HYPERFAKE_BENCH_OUT`
//! as the file stem). CPU per call is read from the container's cgroup
//! (`cpuacct.usage`, v1, or `cpu.stat`, v2) when the host exposes it.

use std::process::Command;
use std::time::{Duration, Instant};

use functions::image_tag;
use functions::workload::trace::TraceResponse;
use hyperfake_core::defaults::{FUNCTION_PORT, LABEL_MANAGED, LABEL_TEST};
use proto::common::CallRequest;
use proto::function::function_service_client::FunctionServiceClient;
use tonic::transport::Channel;

const QUOTAS: [&str; 3] = ["0.25", "0.5", "1.0"];
const DURATIONS_MS: [u64; 8] = [5, 10, 20, 50, 100, 200, 500, 1000];
const REPEATS: usize = 5;
const MEMORY_MIB: u64 = 32;

struct Container {
    id: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.id]).output();
    }
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker CLI");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Cumulative CPU time of the container (ns), if its cgroup is readable.
fn cpu_ns(id: &str) -> Option<u64> {
    let v1 = format!("/sys/fs/cgroup/cpuacct/docker/{id}/cpuacct.usage");
    if let Ok(text) = std::fs::read_to_string(v1) {
        return text.trim().parse().ok();
    }
    let v2 = format!("/sys/fs/cgroup/system.slice/docker-{id}.scope/cpu.stat");
    let text = std::fs::read_to_string(v2).ok()?;
    let usec: u64 = text.lines().find_map(|l| l.strip_prefix("usage_usec "))?.trim().parse().ok()?;
    Some(usec * 1000)
}

#[derive(Debug)]
struct Row {
    cpus: String,
    paced: bool,
    duration_ms: u64,
    /// Handler time / requested − 1, per repeat.
    errors: Vec<f64>,
    /// CPU time per call / (requested duration × cpus), per repeat.
    cpu_ratio: Vec<f64>,
}

impl Row {
    fn mean_error_pct(&self) -> f64 {
        100.0 * self.errors.iter().sum::<f64>() / self.errors.len() as f64
    }
    fn max_error_pct(&self) -> f64 {
        100.0 * self.errors.iter().cloned().fold(f64::MIN, f64::max)
    }
    fn within_5pct(&self) -> usize {
        self.errors.iter().filter(|e| e.abs() <= 0.05).count()
    }
    fn cpu_pct(&self) -> Option<f64> {
        (!self.cpu_ratio.is_empty())
            .then(|| 100.0 * self.cpu_ratio.iter().sum::<f64>() / self.cpu_ratio.len() as f64)
    }
}

#[tokio::main]
async fn main() {
    let image = image_tag("trace");
    hyperfake_testkit::require_image(image.as_str());
    let profile = hyperfake_core::build::profile(cfg!(debug_assertions));
    let machine = hyperfake_testkit::bench::machine();
    let load_start = hyperfake_testkit::bench::load_average();
    let label = format!("{LABEL_TEST}={}", hyperfake_testkit::unique("bench-trace"));
    let managed = format!("{LABEL_MANAGED}=true");
    let mut rows = Vec::new();
    let mut cpu_readable = true;
    for cpus in QUOTAS {
        let port = format!("127.0.0.1::{FUNCTION_PORT}");
        let id = docker(&[
            "run",
            "-d",
            "--label",
            &label,
            "--label",
            &managed,
            "--cpus",
            cpus,
            "-m",
            "256m",
            "-p",
            &port,
            image.as_str(),
        ]);
        let container = Container { id };
        let ports = docker(&["port", &container.id, &FUNCTION_PORT.to_string()]);
        let addr = ports.lines().find(|l| l.starts_with("127.0.0.1:")).expect("published port").to_string();
        let mut client = connect(&addr).await;
        // Warm the instance as the pipeline's warm-up does: the first call of
        // a size pays the page faults of its buffer, later ones reuse it.
        let warm = format!(r#"{{"duration_us": 0, "memory_mib": {MEMORY_MIB}}}"#);
        client
            .call(CallRequest { request_id: "warm".into(), data: warm.into_bytes(), ..Default::default() })
            .await
            .expect("warm-up call");
        let cores: f64 = cpus.parse().unwrap();
        for paced in [true, false] {
            for duration_ms in DURATIONS_MS {
                let mut row = Row {
                    cpus: cpus.to_string(),
                    paced,
                    duration_ms,
                    errors: Vec::new(),
                    cpu_ratio: Vec::new(),
                };
                for _ in 0..REPEATS {
                    let body = format!(
                        r#"{{"duration_us": {}, "memory_mib": {MEMORY_MIB}, "pace": {paced}}}"#,
                        duration_ms * 1000
                    );
                    let before = cpu_ns(&container.id);
                    let response = client
                        .call(CallRequest {
                            request_id: "bench".into(),
                            data: body.into_bytes(),
                            ..Default::default()
                        })
                        .await
                        .expect("trace call");
                    let after = cpu_ns(&container.id);
                    let handler_ns: u64 = response
                        .metadata()
                        .get(hyperfake_core::trailers::FUNCTION_HANDLER_TIME)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok())
                        .expect("functionhandlertime");
                    let answer = response.into_inner();
                    assert!(answer.error.is_none(), "{:?}", answer.error);
                    let _: TraceResponse = serde_json::from_slice(&answer.data).unwrap();
                    let requested_ns = duration_ms as f64 * 1e6;
                    row.errors.push(handler_ns as f64 / requested_ns - 1.0);
                    match (before, after) {
                        (Some(b), Some(a)) => row.cpu_ratio.push((a - b) as f64 / (requested_ns * cores)),
                        _ => cpu_readable = false,
                    }
                }
                eprintln!(
                    "cpus {cpus} {} {duration_ms} ms: mean error {:+.2} %, max {:+.2} %",
                    if paced { "paced" } else { "naive" },
                    row.mean_error_pct(),
                    row.max_error_pct()
                );
                rows.push(row);
            }
        }
    }
    let load_end = hyperfake_testkit::bench::load_average();
    write_reports(&rows, &profile, &machine, &load_start, &load_end, cpu_readable);
}

async fn connect(addr: &str) -> FunctionServiceClient<Channel> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(channel) =
            tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await
        {
            let mut client = FunctionServiceClient::new(channel);
            let probe = CallRequest {
                request_id: "probe".into(),
                data: br#"{"duration_us": 0}"#.to_vec(),
                ..Default::default()
            };
            if client.call(probe).await.is_ok() {
                return client;
            }
        }
        assert!(Instant::now() < deadline, "the trace container at {addr} did not answer in 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn write_reports(
    rows: &[Row],
    profile: &str,
    machine: &str,
    load_start: &str,
    load_end: &str,
    cpu_readable: bool,
) {
    let fmt_cpu = |r: &Row| r.cpu_pct().map_or_else(|| "n/a".to_string(), |c| format!("{c:.0} %"));
    let mut md = format!(
        "# Trace function benchmark\n\n\
         The `trace` image (`functions/src/workload/trace/`) asked for D ms of wall time with {MEMORY_MIB} MiB, \
         {REPEATS} calls per row, sequential, one container per CPU quota (`docker run --cpus`, 256 MiB), \
         after one warm-up call that faults the buffer in (the pipeline's `warmup:` does the same). \
         Error = handler time (`functionhandlertime`) / D − 1. \
         *Paced*: the busy loop keeps its thread's CPU time at 95 % of the quota's share (the default); \
         *naive* (`\"pace\": false`): it spins flat out and CFS throttles it, the baseline. \
         CPU = CPU time per call / (D × cpus){}; on a host busier than its cores, a container gets less than \
         its quota whatever the loop does, and at 1 core both loops are the same code (a share of a core or \
         more is not paced), so their difference there is the noise of the machine.\n\n\
         Bench profile: {profile} (the function itself is the `function-image` profile). Machine: {machine}. \
         Load average (1/5/15 min) {load_start} at the start, {load_end} at the end.\n\n\
         | cpus | loop | D (ms) | mean error | worst error | within 5 % | CPU |\n|---|---|---|---|---|---|---|\n",
        if cpu_readable {
            ", from the container's cgroup"
        } else {
            " (the container's cgroup was not readable: n/a)"
        }
    );
    for r in rows {
        md.push_str(&format!(
            "| {} | {} | {} | {:+.2} % | {:+.2} % | {}/{} | {} |\n",
            r.cpus,
            if r.paced { "paced" } else { "naive" },
            r.duration_ms,
            r.mean_error_pct(),
            r.max_error_pct(),
            r.within_5pct(),
            r.errors.len(),
            fmt_cpu(r)
        ));
    }
    let json_rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "cpus": r.cpus, "paced": r.paced, "duration_ms": r.duration_ms,
                "mean_error_pct": r.mean_error_pct(), "worst_error_pct": r.max_error_pct(),
                "within_5pct": r.within_5pct(), "calls": r.errors.len(),
                "errors": r.errors, "cpu_pct_of_quota": r.cpu_pct(),
            })
        })
        .collect();
    let json = serde_json::json!({
        "profile": profile, "machine": machine, "load_average_start": load_start, "load_average_end": load_end,
        "memory_mib": MEMORY_MIB, "repeats": REPEATS, "rows": json_rows,
    });
    let stem = std::env::var("HYPERFAKE_BENCH_OUT")
        .unwrap_or_else(|_| format!("{}/../bench-results/trace-function", env!("CARGO_MANIFEST_DIR")));
    if let Some(dir) = std::path::Path::new(&stem).parent() {
        std::fs::create_dir_all(dir).expect("create the report's directory");
    }
    std::fs::write(format!("{stem}.md"), md).expect("write the markdown report");
    std::fs::write(format!("{stem}.json"), serde_json::to_string_pretty(&json).unwrap() + "\n")
        .expect("write the JSON report");
    eprintln!("wrote {stem}.md and {stem}.json");
}
