//! `loadgen bench`: how fast can the generator itself send on schedule?
//!
//! Starts a no-op `leaf.Leaf` as a process of its own ([`noop`]), measures
//! its ceiling with a minimal closed-loop client ([`ceiling`]), then runs the
//! real `run` path (schedule, payloads, dispatcher, recorder) against it at
//! increasing constant rates. For each rate it reads the run database back
//! ([`report`]) and reports achieved rate, send lag (actual − scheduled send
//! time) p50/p99/max, whether every call that came due has its row, and the
//! CPU the generator and the leaf used ([`cpu`]). The sustained rate is the
//! highest rate with no lost row, no error, achieved ≥ 95 % of target and
//! send lag p99 within the limit.

pub mod ceiling;
pub mod cpu;
pub mod noop;
mod report;
pub mod wakeup;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::sync::watch;

pub use ceiling::Ceiling;
pub use noop::{NoopLeaf, NoopLeafProcess, run_noop_leaf, serve_noop};
pub use report::markdown;

use crate::config::Workload;
use crate::run::{RunOptions, run};
use cpu::CpuMeter;
use wakeup::{Lateness, WakeupProbe};

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Target rates, calls per second, in the order run.
    pub rates: Vec<u32>,
    /// Times every rate is measured: the rates run in order, then again,
    /// so that a shared machine's drift hits each alike.
    pub rounds: u32,
    /// Length of each step.
    pub step: Duration,
    /// Length of the ceiling run; zero skips it.
    pub ceiling: Duration,
    /// Request body size.
    pub body_bytes: u64,
    /// Highest acceptable send-lag p99 for a rate to count as sustained.
    pub max_lag_p99: Duration,
    /// Where the JSON and Markdown reports go.
    pub out_dir: PathBuf,
    /// The `loadgen` executable, started as `loadgen noop-leaf`.
    pub loadgen_exe: PathBuf,
}

/// One rate's result in one round.
#[derive(Clone, Debug, Serialize)]
pub struct BenchStep {
    pub target_rps: u32,
    /// Which round (from 1).
    pub round: u32,
    pub seconds: f64,
    pub scheduled: u64,
    pub due: u64,
    pub rows: u64,
    pub lost_rows: u64,
    pub errors: u64,
    /// Calls that were not OK, by status (`DEADLINE_EXCEEDED`, …).
    pub errors_by_status: std::collections::BTreeMap<String, u64>,
    pub achieved_rps: f64,
    pub send_lag_p50_us: f64,
    pub send_lag_p99_us: f64,
    pub send_lag_max_us: f64,
    pub latency_p50_us: f64,
    pub latency_p99_us: f64,
    /// CPU the generator used during the step (its whole run: schedule,
    /// bodies, sending, recording), in cores.
    pub loadgen_cpu_cores: f64,
    /// CPU the no-op leaf used during the step, in cores.
    pub leaf_cpu_cores: f64,
    /// How late a plain thread sleeping 1 ms at a time woke during the step
    /// ([`wakeup`]): the machine's share of the send lag.
    pub wakeup: Lateness,
    pub sustained: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// The baseline: the no-op leaf's own ceiling, measured first (unless skipped).
    pub ceiling: Option<Ceiling>,
    /// How late a plain sleeping thread woke with nothing else of the bench
    /// running, measured first ([`wakeup`]).
    pub idle_wakeup: Lateness,
    pub steps: Vec<BenchStep>,
    pub rounds: u32,
    /// Highest target rate that met every criterion in every round, if any.
    pub sustained_rps: Option<u32>,
    /// Whether every step recorded a row for every call that came due.
    pub zero_lost_rows: bool,
    pub max_lag_p99_us: f64,
    pub body_bytes: u64,
    pub cpus: usize,
    pub cpu_model: String,
    /// 1-minute load average when the benchmark started.
    pub load_average: f64,
    /// The build profile (`hyperfake_core::build::profile`).
    pub profile: String,
}

/// How long the wake-up probe runs alone before the steps.
const IDLE_PROBE: Duration = Duration::from_secs(3);

/// The workload of one bench step.
pub fn step_workload(addr: SocketAddr, rate: u32, step: Duration, body_bytes: u64) -> String {
    let ms = step.as_millis();
    format!(
        "leaf_address: \"{addr}\"
max_duration: {max}ms
timeout: 10s
seed: 1
workload:
  phases:
    - {{name: bench, type: constant, start_time: 0s, duration: {ms}ms, start_rps: {rate}, image_tag: bench-noop:latest}}
function_config:
  bench-noop:latest: {{memory: 64MB}}
data_providers:
  bench-noop:latest: {{type: generic, min_body_size: {body_bytes}, max_body_size: {body_bytes}}}
",
        max = ms + 1000,
    )
}

pub async fn bench(options: BenchOptions) -> anyhow::Result<BenchReport> {
    let load_average = cpu::load_average();
    let leaf = NoopLeafProcess::start(&options.loadgen_exe).await?;
    let result = measure_all(&options, &leaf, load_average).await;
    drop(leaf);
    let report = result?;
    report::write_reports(&options.out_dir, &report)?;
    Ok(report)
}

async fn measure_all(
    options: &BenchOptions,
    leaf: &NoopLeafProcess,
    load_average: f64,
) -> anyhow::Result<BenchReport> {
    let leaf_pid = leaf.pid();
    let idle_wakeup = tokio::task::spawn_blocking(|| wakeup::measure_idle(IDLE_PROBE))
        .await
        .context("the wake-up probe failed")?;
    tracing::info!(
        p99_us = format!("{:.0}", idle_wakeup.p99_us),
        "a sleeping thread's wake-up lateness, idle"
    );
    let ceiling = if options.ceiling.is_zero() {
        None
    } else {
        tracing::info!(seconds = options.ceiling.as_secs_f64(), "measuring the no-op leaf's ceiling");
        let ceiling = ceiling::ceiling(leaf.addr, leaf_pid, options.ceiling, options.body_bytes).await?;
        tracing::info!(rps = format!("{:.0}", ceiling.rps), "no-op leaf ceiling");
        Some(ceiling)
    };
    let scratch = std::env::temp_dir().join(format!("loadgen-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).with_context(|| format!("cannot create {}", scratch.display()))?;
    let mut steps = Vec::new();
    let rounds = options.rounds.max(1);
    for (round, &rate) in (1..=rounds).flat_map(|round| options.rates.iter().map(move |rate| (round, rate))) {
        let yaml = step_workload(leaf.addr, rate, options.step, options.body_bytes);
        let workload = Workload::from_yaml(&yaml).map_err(|e| anyhow::anyhow!("{e}"))?;
        let db = scratch.join(format!("rate-{rate}-{round}.db"));
        let (_stop_tx, stop) = watch::channel(crate::Stop::Running);
        tracing::info!(rate, round, rounds, seconds = options.step.as_secs_f64(), "bench step");
        let loadgen_cpu = CpuMeter::start(std::process::id());
        let leaf_cpu = CpuMeter::start(leaf_pid);
        let probe = WakeupProbe::start();
        let report = run(
            RunOptions {
                workload,
                config_yaml: yaml,
                config_path: None,
                out: Some(db.clone()),
                leaf_address: None,
                run_id: Some(format!("bench-{rate}-{round}")),
                max_in_flight: None,
                token: Default::default(),
                progress: false,
                writer: Default::default(),
            },
            stop,
        )
        .await
        .with_context(|| format!("bench step at {rate} calls/s"))?;
        let (loadgen_cores, leaf_cores) = (loadgen_cpu.cores(), leaf_cpu.cores());
        let wakeup = probe.finish();
        let mut step = report::measure(&db, rate, report.scheduled, report.due, options.max_lag_p99)?;
        step.round = round;
        step.wakeup = wakeup;
        step.loadgen_cpu_cores = loadgen_cores;
        step.leaf_cpu_cores = leaf_cores;
        tracing::info!(
            rate,
            achieved = format!("{:.0}", step.achieved_rps),
            lag_p50_us = format!("{:.0}", step.send_lag_p50_us),
            lag_p99_us = format!("{:.0}", step.send_lag_p99_us),
            lost = step.lost_rows,
            loadgen_cpu = format!("{loadgen_cores:.2}"),
            "bench step done"
        );
        steps.push(step);
        let _ = std::fs::remove_file(&db);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(BenchReport {
        ceiling,
        idle_wakeup,
        sustained_rps: options
            .rates
            .iter()
            .copied()
            .filter(|&rate| steps.iter().filter(|s| s.target_rps == rate).all(|s| s.sustained))
            .max(),
        rounds,
        zero_lost_rows: steps.iter().all(|s| s.lost_rows == 0),
        max_lag_p99_us: options.max_lag_p99.as_secs_f64() * 1e6,
        body_bytes: options.body_bytes,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model: cpu::cpu_model(),
        load_average,
        profile: hyperfake_core::build::profile(cfg!(debug_assertions)),
        steps,
    })
}
