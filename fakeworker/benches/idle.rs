//! What an idle simulated worker costs (not a test):
//! `cargo test --workspace --bench idle` (dev profile) or
//! `cargo bench --workspace --bench idle` (release).
//!
//! Starts the `fakeworker` binary with `--workers N` for N = 1, 10, 100,
//! 1000 (no database reachable: idle workers never ask it), waits until
//! every worker has announced its address, and reads the process's resident
//! memory, threads and open file descriptors from `/proc`:
//! 1. idle, nobody connected;
//! 2. idle, each worker with one client as a leaf holds it (an HTTP/2
//!    connection, a `Status` subscription and one `State` call).
//!
//! The cost per worker is the least-squares slope over N, measured with one
//! small JSON model. With the committed random forests the slope cannot be
//! read from RSS: loading them through ONNX Runtime leaves ~13 MB of freed
//! heap resident, which the first thousand workers reuse (N = 1 and N = 1000
//! with those models are reported beside, to show it). The baseline, in the
//! same run: 10 separate one-worker processes, the cost per process of
//! serving workers one process each.
//!
//! Writes `bench-results/fakeworker-idle.{json,md}` (or `$HYPERFAKE_BENCH_OUT`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use proto::controller::controller_client::ControllerClient;
use proto::controller::{StateRequest, StatusRequest};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const COUNTS: [usize; 4] = [1, 10, 100, 1000];
const SEPARATE_PROCESSES: usize = 10;
/// Time given to a process after start-up (and after clients connect)
/// before it is measured, for allocations made on the first ticks.
const SETTLE: Duration = Duration::from_secs(2);

/// Resident memory, threads and open files of a process.
#[derive(Clone, Copy, Debug, serde::Serialize)]
struct Footprint {
    rss_kib: u64,
    threads: u64,
    open_files: u64,
}

fn footprint(pid: u32) -> Footprint {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process is alive");
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("/proc/{pid}/status has no {name}"))
    };
    let open_files = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
    Footprint { rss_kib: field("VmRSS:"), threads: field("Threads:"), open_files }
}

/// A directory with one JSON linear model for the echo image.
fn json_model() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let entry = serde_json::json!({ "hyperfaas-echo:latest": {
        "image_tag": "hyperfaas-echo:latest", "runtime_unit": "ns",
        "runtime_coeffs": [0, 0, 0, 0, 0, 1e6], "cpu_coeffs": [0, 0, 0, 0, 0, 0.1],
        "ram_coeffs": [0, 0, 0, 0, 0, 1e6],
    }});
    std::fs::write(dir.path().join("m.json"), entry.to_string()).unwrap();
    dir
}

fn committed_models() -> PathBuf {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let mut runs: Vec<PathBuf> = std::fs::read_dir(&models)
        .expect("models/")
        .filter_map(|e| Some(e.ok()?.path().join("random-forest")))
        .filter(|d| d.is_dir())
        .collect();
    runs.sort();
    runs.pop().expect("a committed run with random forests in models/")
}

/// A running `fakeworker --workers n` and its workers' addresses.
struct Process {
    child: Child,
    addresses: Vec<String>,
    started_in: Duration,
}

async fn spawn(workers: usize, models: &Path) -> Process {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fakeworker"))
        .args(["--workers", &workers.to_string(), "--address", "127.0.0.1:0"])
        // Never reached: idle workers do not look functions up.
        .args(["--database", "127.0.0.1:9", "--models"])
        .arg(models)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting the fakeworker binary");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addresses = Vec::with_capacity(workers);
    while addresses.len() < workers {
        let line = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{workers} workers: {} announced within 120 s", addresses.len()))
            .expect("reading the announcements")
            .unwrap_or_else(|| panic!("fakeworker exited after announcing {} of {workers}", addresses.len()));
        let announced: serde_json::Value = serde_json::from_str(&line).expect("a JSON announcement");
        addresses.push(announced["address"].as_str().expect("an address").to_string());
    }
    Process { child, addresses, started_in: started.elapsed() }
}

/// Connects to every worker as a leaf does: a channel, a `Status`
/// subscription kept open, one `State` call. Returns what must stay alive.
async fn connect_all(addresses: &[String]) -> Vec<impl Sized> {
    let mut held = Vec::with_capacity(addresses.len());
    for address in addresses {
        let channel = proto::endpoint(address).unwrap().connect().await.expect("connecting to a worker");
        let mut client = ControllerClient::new(channel);
        let events = client
            .status(StatusRequest { node_id: "bench".into() })
            .await
            .expect("subscribing to Status")
            .into_inner();
        client.state(StateRequest::default()).await.expect("State");
        held.push((client, events));
    }
    held
}

#[derive(Debug, serde::Serialize)]
struct Row {
    workers: usize,
    start_s: f64,
    idle: Footprint,
    connected: Footprint,
}

/// Least-squares slope and intercept of `y` over `x`.
fn fit(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = points.iter().map(|(x, _)| (x - mx).powi(2)).sum();
    let slope = sxy / sxx;
    (slope, my - slope * mx)
}

/// One measurement of `fakeworker --workers n` over `models`.
async fn measure(workers: usize, models: &Path) -> Row {
    let mut process = spawn(workers, models).await;
    let pid = process.child.id().expect("running");
    tokio::time::sleep(SETTLE).await;
    let idle = footprint(pid);
    let held = connect_all(&process.addresses).await;
    tokio::time::sleep(SETTLE).await;
    let connected = footprint(pid);
    drop(held);
    process.child.kill().await.expect("stopping fakeworker");
    eprintln!(
        "{workers:>5} workers: start {:.2} s, idle {} KiB / {} threads / {} files, connected {} KiB / {} files",
        process.started_in.as_secs_f64(),
        idle.rss_kib,
        idle.threads,
        idle.open_files,
        connected.rss_kib,
        connected.open_files
    );
    Row { workers, start_s: process.started_in.as_secs_f64(), idle, connected }
}

#[tokio::main]
async fn main() {
    let json = json_model();
    let mut rows = Vec::new();
    for workers in COUNTS {
        rows.push(measure(workers, json.path()).await);
    }
    let models = committed_models();
    let mut forests = Vec::new();
    for workers in [1, 1000] {
        forests.push(measure(workers, &models).await);
    }

    // The baseline: the same workers, one process each.
    let mut separate = Vec::new();
    for _ in 0..SEPARATE_PROCESSES {
        separate.push(spawn(1, json.path()).await);
    }
    tokio::time::sleep(SETTLE).await;
    let separate_kib: Vec<u64> =
        separate.iter().map(|p| footprint(p.child.id().expect("running")).rss_kib).collect();
    for mut p in separate {
        p.child.kill().await.expect("stopping fakeworker");
    }
    let per_process_kib = separate_kib.iter().sum::<u64>() as f64 / SEPARATE_PROCESSES as f64;

    let slope = |pick: fn(&Row) -> u64| {
        fit(&rows.iter().map(|r| (r.workers as f64, pick(r) as f64)).collect::<Vec<_>>())
    };
    let (idle_kib, idle_base) = slope(|r| r.idle.rss_kib);
    let (connected_kib, connected_base) = slope(|r| r.connected.rss_kib);
    let (idle_files, _) = slope(|r| r.idle.open_files);
    let (connected_files, _) = slope(|r| r.connected.open_files);
    let threads: Vec<u64> = rows.iter().map(|r| r.idle.threads).collect();

    let profile = hyperfake_core::build::profile(cfg!(debug_assertions));
    let machine = hyperfake_testkit::bench::machine();
    let load = hyperfake_testkit::bench::load_average();
    let models_name =
        models.strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).unwrap_or(&models).display();
    let table = |rows: &[Row]| {
        let mut t = String::from(
            "| workers | start-up s | idle RSS MiB | threads | open files | connected RSS MiB | connected open files |\n\
             |---|---|---|---|---|---|---|\n",
        );
        for r in rows {
            t.push_str(&format!(
                "| {} | {:.2} | {:.1} | {} | {} | {:.1} | {} |\n",
                r.workers,
                r.start_s,
                r.idle.rss_kib as f64 / 1024.0,
                r.idle.threads,
                r.idle.open_files,
                r.connected.rss_kib as f64 / 1024.0,
                r.connected.open_files
            ));
        }
        t
    };
    let md = format!(
        "# Idle simulated workers: memory, threads and files per worker\n\n\
         `fakeworker --workers N`: one process, N `controller.Controller` servers on their own ports, \
         measured from `/proc` {settle} s after every worker announced its address (idle), then again \
         {settle} s after one client per worker connected as a leaf does (HTTP/2 connection, `Status` \
         subscription, one `State` call).\n\n\
         Build profile: {profile}. Machine: {machine}. Load average at the end: {load}.\n\n\
         ## One JSON linear model (the per-worker cost)\n\n{}\n\
         Per worker (least-squares slope over N): **{idle_kib:.1} KiB idle**, **{connected_kib:.1} KiB \
         with a leaf connected**; {idle_files:.2} open files idle, {connected_files:.2} connected. Fixed \
         part (intercept): {:.1} MiB idle, {:.1} MiB connected. Threads do not grow with N ({threads:?}): \
         one tokio runtime and one timer thread serve every worker.\n\n\
         Baseline in the same run: {SEPARATE_PROCESSES} separate one-worker processes take {:.1} MiB each, \
         so a worker in a shared process costs {:.1}% of a worker in a process of its own.\n\n\
         ## The committed random forests (`{models_name}`)\n\n{}\n\
         Loading the forests through ONNX Runtime adds to the fixed part and leaves freed heap \
         resident, which the workers' allocations reuse: idle RSS grows by only {:.1} MiB from 1 to \
         1000 workers here (connected: {:.1} MiB), so the per-worker cost is read from the JSON runs; \
         the workers share the one registry either way.\n",
        table(&rows),
        idle_base / 1024.0,
        connected_base / 1024.0,
        per_process_kib / 1024.0,
        100.0 * idle_kib / per_process_kib,
        table(&forests),
        (forests[1].idle.rss_kib as f64 - forests[0].idle.rss_kib as f64) / 1024.0,
        (forests[1].connected.rss_kib as f64 - forests[0].connected.rss_kib as f64) / 1024.0,
        settle = SETTLE.as_secs(),
    );
    let json = serde_json::json!({
        "profile": profile, "machine": machine, "load_average": load,
        "settle_s": SETTLE.as_secs(),
        "json_model": { "rows": rows },
        "random_forests": { "models": models_name.to_string(), "rows": forests },
        "per_worker": {
            "idle_rss_kib": idle_kib, "connected_rss_kib": connected_kib,
            "idle_open_files": idle_files, "connected_open_files": connected_files,
        },
        "intercept_kib": { "idle": idle_base, "connected": connected_base },
        "separate_processes": { "count": SEPARATE_PROCESSES, "rss_kib": separate_kib, "mean_rss_kib": per_process_kib },
    });
    let out = std::env::var("HYPERFAKE_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench-results"));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("fakeworker-idle.md"), &md).unwrap();
    std::fs::write(out.join("fakeworker-idle.json"), serde_json::to_string_pretty(&json).unwrap() + "\n")
        .unwrap();
    print!("{md}");
}
