//! Added latency per hop and the leaf's maximum forwarded calls/s.
//!
//! Everything runs on this machine against the real Docker engine: a database,
//! one worker, a leaf over it and a load-balancer node over the leaf, with the
//! `echo` function (its handler does no work, so what is measured is the
//! platform). The same calls are sent at a fixed rate (open loop) to each
//! level:
//!
//! 1. the function container directly (`function.FunctionService/Call`);
//! 2. the worker (`controller.Controller/Call`, naming an instance);
//! 3. the leaf (`leaf.Leaf/ScheduleCall`);
//! 4. the load-balancer node over the leaf.
//!
//! Each level is measured with every payload size of `--payloads` (default
//! 64 B, 8 KiB and 64 KiB: one TCP segment, several, many). The added latency
//! of a hop is the difference between consecutive levels' percentiles. Then a
//! closed loop with many concurrent callers measures the
//! most calls/s the leaf forwards (and, for comparison, the worker alone).
//!
//! ```text
//! cargo bench -p leaf --bench hops -- [--rate 200] [--seconds 5] [--concurrency 64] [--payloads 64,8192,65536] [--out DIR]
//! ```
//! Writes `hops.json` and `hops.md` to `--out` (default `target/bench/leaf`;
//! the committed report is `bench-results/hops.md`), with the build profile,
//! the machine and its load average. `cargo bench -p leaf --profile dev`
//! runs it on the test build (dependencies at opt-level 2).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use hyperfake_core::{FunctionId, ImageTag};
use hyperfake_testkit::{ContainerSweeper, ECHO, TestDatabase, TestLeaf, TestWorker, config, leaf_settings};
use leaf::NodeSettings;
use proto::common::CallRequest;
use proto::function::function_service_client::FunctionServiceClient;
use proto::leaf::ScheduleCallRequest;
use proto::leaf::leaf_client::LeafClient;
use serde_json::json;
use tonic::transport::Channel;
use worker::WorkerSettings;

#[derive(Debug, Parser)]
struct Args {
    /// Calls per second sent to each level.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Seconds per level (after a one-second warm-up).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent callers for the throughput run.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Where the report goes.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Payload sizes in bytes, comma-separated; the throughput run uses the first.
    #[arg(long, value_delimiter = ',', default_values_t = [64, 8 * 1024, 64 * 1024])]
    payloads: Vec<usize>,
    /// Other work shares the machine: the report says it was not idle.
    #[arg(long)]
    busy: bool,
    // `cargo bench` passes `--bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

/// One way to make a call.
#[derive(Clone)]
enum Target {
    Function(FunctionServiceClient<Channel>),
    Worker(proto::controller::controller_client::ControllerClient<Channel>, String),
    Leaf(LeafClient<Channel>),
}

impl Target {
    async fn call(&self, function: &FunctionId, data: Vec<u8>) -> Result<(), tonic::Status> {
        let request = CallRequest {
            request_id: String::new(),
            instance_id: None,
            data,
            function_id: Some(function.into()),
        };
        match self {
            Target::Function(c) => c.clone().call(request).await.map(drop),
            Target::Worker(c, instance) => {
                let mut request = request;
                request.instance_id = Some(proto::common::InstanceId { id: instance.clone() });
                c.clone().call(request).await.map(drop)
            }
            Target::Leaf(c) => c
                .clone()
                .schedule_call(ScheduleCallRequest { function_id: Some(function.into()), data: request.data })
                .await
                .map(drop),
        }
    }
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Percentiles {
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    mean_us: f64,
    calls: usize,
    errors: usize,
}

fn percentiles(mut samples: Vec<Duration>, errors: usize) -> Percentiles {
    samples.sort();
    let at = |q: f64| {
        if samples.is_empty() {
            return f64::NAN;
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i].as_secs_f64() * 1e6
    };
    let mean = samples.iter().map(Duration::as_secs_f64).sum::<f64>() / samples.len().max(1) as f64 * 1e6;
    Percentiles {
        p50_us: at(0.5),
        p90_us: at(0.9),
        p99_us: at(0.99),
        mean_us: mean,
        calls: samples.len(),
        errors,
    }
}

/// Sends `rate` calls/s for `seconds` without waiting for answers (open loop).
async fn fixed_rate(
    target: &Target,
    function: &FunctionId,
    args: &Args,
    payload: usize,
    seconds: u64,
) -> Percentiles {
    let period = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let n = u64::from(args.rate) * seconds;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut calls = Vec::new();
    for _ in 0..n {
        tick.tick().await;
        let (target, function, data) = (target.clone(), function.clone(), vec![7u8; payload]);
        calls.push(tokio::spawn(async move {
            let start = Instant::now();
            target.call(&function, data).await.map(|()| start.elapsed())
        }));
    }
    let mut samples = Vec::new();
    let mut errors = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(d) => samples.push(d),
            Err(e) => {
                if errors == 0 {
                    eprintln!("  first error: {e:?}");
                }
                errors += 1;
            }
        }
    }
    percentiles(samples, errors)
}

/// Most calls/s `concurrency` callers get through in `seconds` (closed loop).
async fn max_throughput(target: &Target, function: &FunctionId, args: &Args) -> (f64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let loops: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (target, function, stop, done, errors) =
                (target.clone(), function.clone(), stop.clone(), done.clone(), errors.clone());
            let payload = args.payloads[0];
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match target.call(&function, vec![7u8; payload]).await {
                        Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start_count = done.load(Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let count = done.load(Ordering::Relaxed) - start_count;
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        let _ = l.await;
    }
    (count as f64 / elapsed.as_secs_f64(), errors.load(Ordering::Relaxed))
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    assert!(!args.payloads.is_empty(), "--payloads needs at least one size");
    let profile = hyperfake_core::build::profile(cfg!(debug_assertions));
    let machine = hyperfake_testkit::bench::machine();
    let load_start = hyperfake_testkit::bench::load_average();
    let out = args.out.clone().unwrap_or_else(|| {
        let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
        PathBuf::from(target).join("bench").join("leaf")
    });
    hyperfake_testkit::require_image(ECHO);
    let sweeper = ContainerSweeper::new();
    let database = TestDatabase::start().await;
    let worker = TestWorker::docker(
        &sweeper,
        WorkerSettings::new(format!("bench-{}", sweeper.test_id)),
        database.client.clone(),
    )
    .await;
    let mut settings = leaf_settings(&database.address, vec![worker.address.clone()]);
    // One instance, so every level calls the same kind of warm instance.
    settings.scheduler.target_concurrency = 1_000_000;
    settings.scheduler.max_pending_calls = 100_000;
    let leaf = TestLeaf::start(settings).await;
    let lb = TestLeaf::start(NodeSettings::balancer(&database.address, vec![leaf.address.clone()])).await;

    let function =
        database.client.create(&ImageTag::from(ECHO), &config(128, None, 0, 0)).await.expect("create").id;
    let mut controller = worker.client().await;
    let started =
        controller.start(proto::common::FunctionId::from(&function)).await.expect("start").into_inner();
    let instance = started.instance_id.unwrap().id;
    let function_client =
        FunctionServiceClient::new(proto::endpoint(&started.instance_ip).unwrap().connect().await.unwrap());
    let levels = [
        ("function", Target::Function(function_client)),
        ("worker", Target::Worker(controller.clone(), instance)),
        ("leaf", Target::Leaf(leaf.client().await)),
        ("lb", Target::Leaf(lb.client().await)),
    ];
    // Per payload size: each level's percentiles, then the latency each hop adds.
    let mut by_payload = Vec::new();
    for &payload in &args.payloads {
        eprintln!("{payload} B payload");
        let mut results = Vec::new();
        for (name, target) in &levels {
            fixed_rate(target, &function, &args, payload, 1).await; // warm-up (and the leaf's cold start)
            let p = fixed_rate(target, &function, &args, payload, args.seconds).await;
            eprintln!(
                "{name:>8}: p50 {:>8.0} µs  p99 {:>8.0} µs  ({} calls, {} errors)",
                p.p50_us, p.p99_us, p.calls, p.errors
            );
            results.push((*name, p));
        }
        let hops = [("client→function", 0), ("worker", 1), ("leaf", 2), ("lb", 3)];
        let added: Vec<_> = hops
            .iter()
            .map(|(hop, i)| {
                let p = results[*i].1;
                let (b50, b99) =
                    if *i == 0 { (0.0, 0.0) } else { (results[i - 1].1.p50_us, results[i - 1].1.p99_us) };
                (*hop, p.p50_us - b50, p.p99_us - b99)
            })
            .collect();
        by_payload.push((payload, results, added));
    }

    eprintln!("throughput: {} concurrent callers, {} s each", args.concurrency, args.seconds);
    let (leaf_rate, leaf_errors) = max_throughput(&levels[2].1, &function, &args).await;
    eprintln!("    leaf: {leaf_rate:.0} calls/s ({leaf_errors} errors)");
    let (worker_rate, worker_errors) = max_throughput(&levels[1].1, &function, &args).await;
    eprintln!("  worker: {worker_rate:.0} calls/s ({worker_errors} errors)");

    let load_end = hyperfake_testkit::bench::load_average();

    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let report = json!({
        "setup": {
            "function": ECHO, "payload_bytes": args.payloads, "rate_per_s": args.rate,
            "seconds_per_level": args.seconds, "concurrency": args.concurrency, "cpus": cpus,
            "throughput_payload_bytes": args.payloads[0],
            "profile": profile, "machine": machine, "load_average_start": load_start,
            "load_average_end": load_end, "busy": args.busy,
            "note": "client, LB, leaf, worker and database share one process and this machine's CPUs",
        },
        "by_payload": by_payload.iter().map(|(payload, results, added)| json!({
            "payload_bytes": payload,
            "latency_us": results.iter().map(|(n, p)| (n.to_string(), json!(p))).collect::<serde_json::Map<_, _>>(),
            "added_latency_us": added.iter().map(|(h, a50, a99)| (h.to_string(), json!({"p50": a50, "p99": a99}))).collect::<serde_json::Map<_, _>>(),
        })).collect::<Vec<_>>(),
        "max_calls_per_s": { "leaf": leaf_rate, "leaf_errors": leaf_errors, "worker": worker_rate, "worker_errors": worker_errors },
    });
    let sizes = args.payloads.iter().map(|p| format!("{p} B")).collect::<Vec<_>>().join(", ");
    let mut md = format!(
        "# Leaf hops benchmark\n\n`{ECHO}`, payloads {sizes}, {} calls/s for {} s per level and payload; client and every node in one process.\n\n\
         Profile: {profile}. Machine: {machine}. Load average (1/5/15 min) {load_start} at the start, {load_end} at the end{}.\n\n\
         | payload | level | p50 (µs) | p90 (µs) | p99 (µs) | calls | errors |\n|---:|---|---:|---:|---:|---:|---:|\n",
        args.rate,
        args.seconds,
        if args.busy { " (other builds were running: not an idle machine)" } else { "" },
    );
    for (payload, results, _) in &by_payload {
        for (name, p) in results {
            md.push_str(&format!(
                "| {payload} B | {name} | {:.0} | {:.0} | {:.0} | {} | {} |\n",
                p.p50_us, p.p90_us, p.p99_us, p.calls, p.errors
            ));
        }
    }
    md.push_str("\n| payload | hop | added p50 (µs) | added p99 (µs) |\n|---:|---|---:|---:|\n");
    for (payload, _, added) in &by_payload {
        for (hop, a50, a99) in added {
            md.push_str(&format!("| {payload} B | {hop} | {a50:.0} | {a99:.0} |\n"));
        }
    }
    md.push_str(&format!(
        "\nMaximum forwarded calls/s with {} concurrent callers and {} B payloads: leaf {leaf_rate:.0} ({leaf_errors} errors), worker alone {worker_rate:.0} ({worker_errors} errors).\n",
        args.concurrency, args.payloads[0]
    ));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("hops.json"), serde_json::to_string_pretty(&report).unwrap()).unwrap();
    std::fs::write(out.join("hops.md"), &md).unwrap();
    println!("{md}");
    eprintln!("report: {}", out.join("hops.md").display());
    drop((lb, leaf, worker, database));
}
