//! `loadgen bench`: how fast can the generator itself send on schedule?
//!
//! Starts an in-process no-op `leaf.Leaf` on 127.0.0.1:0 and runs the real
//! `run` path (schedule, payloads, dispatcher, recorder) against it at
//! increasing constant rates. For each rate it reads the run database back and
//! reports achieved rate, send lag (actual − scheduled send time) p50/p99/max,
//! and whether every call that came due has its row. The sustained rate is the
//! highest rate with no lost row, no error, achieved ≥ 95 % of target and send
//! lag p99 within the limit.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use proto::leaf::leaf_server::{Leaf, LeafServer};
use proto::leaf::{
    CreateFunctionRequest, CreateFunctionResponse, LeafStateRequest, LeafStateResponse, ScheduleCallRequest,
    ScheduleCallResponse,
};
use serde::Serialize;
use tokio::sync::{oneshot, watch};
use tonic::{Request, Response, Status};

use crate::config::Workload;
use crate::run::{RunOptions, run};

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Target rates, calls per second, in the order run.
    pub rates: Vec<u32>,
    /// Length of each step.
    pub step: Duration,
    /// Request body size.
    pub body_bytes: u64,
    /// Highest acceptable send-lag p99 for a rate to count as sustained.
    pub max_lag_p99: Duration,
    /// Where the JSON and Markdown reports go.
    pub out_dir: PathBuf,
}

/// One rate's result.
#[derive(Clone, Debug, Serialize)]
pub struct BenchStep {
    pub target_rps: u32,
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
    pub sustained: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub steps: Vec<BenchStep>,
    /// Highest target rate that met every criterion, if any.
    pub sustained_rps: Option<u32>,
    /// Whether every step recorded a row for every call that came due.
    pub zero_lost_rows: bool,
    pub max_lag_p99_us: f64,
    pub body_bytes: u64,
    pub cpus: usize,
    /// The build profile (`hyperfake_core::build::profile`).
    pub profile: String,
}

/// A leaf that answers every call at once with an empty body: the cheapest
/// possible target, so what is measured is the generator.
#[derive(Debug, Default)]
pub struct NoopLeaf;

#[tonic::async_trait]
impl Leaf for NoopLeaf {
    async fn schedule_call(
        &self,
        _request: Request<ScheduleCallRequest>,
    ) -> Result<Response<ScheduleCallResponse>, Status> {
        Ok(Response::new(ScheduleCallResponse::default()))
    }

    async fn create_function(
        &self,
        request: Request<CreateFunctionRequest>,
    ) -> Result<Response<CreateFunctionResponse>, Status> {
        let tag = request.into_inner().image_tag.map(|t| t.tag).unwrap_or_default();
        Ok(Response::new(CreateFunctionResponse {
            function_id: Some(proto::common::FunctionId { id: format!("noop-{tag}") }),
        }))
    }

    async fn state(
        &self,
        _request: Request<LeafStateRequest>,
    ) -> Result<Response<LeafStateResponse>, Status> {
        Ok(Response::new(LeafStateResponse::default()))
    }
}

/// Serves [`NoopLeaf`] on 127.0.0.1:0 until the returned sender is dropped or fired.
pub async fn serve_noop() -> anyhow::Result<(SocketAddr, oneshot::Sender<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("cannot bind 127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let result = tonic::transport::Server::builder()
            .add_service(LeafServer::new(NoopLeaf))
            .serve_with_incoming_shutdown(proto::net::incoming(listener), async {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!("no-op leaf failed: {e}");
        }
    });
    Ok((addr, tx))
}

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
    let (addr, shutdown) = serve_noop().await?;
    let scratch = std::env::temp_dir().join(format!("loadgen-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).with_context(|| format!("cannot create {}", scratch.display()))?;
    let mut steps = Vec::new();
    for &rate in &options.rates {
        let yaml = step_workload(addr, rate, options.step, options.body_bytes);
        let workload = Workload::from_yaml(&yaml).map_err(|e| anyhow::anyhow!("{e}"))?;
        let db = scratch.join(format!("rate-{rate}.db"));
        let (_stop_tx, stop) = watch::channel(crate::Stop::Running);
        tracing::info!(rate, seconds = options.step.as_secs_f64(), "bench step");
        let report = run(
            RunOptions {
                workload,
                config_yaml: yaml,
                config_path: None,
                out: Some(db.clone()),
                leaf_address: None,
                run_id: Some(format!("bench-{rate}")),
                max_in_flight: None,
                token: Default::default(),
                progress: false,
            },
            stop,
        )
        .await
        .with_context(|| format!("bench step at {rate} calls/s"))?;
        let step = measure(&db, rate, report.scheduled, report.due, options.max_lag_p99)?;
        tracing::info!(
            rate,
            achieved = format!("{:.0}", step.achieved_rps),
            lag_p50_us = format!("{:.0}", step.send_lag_p50_us),
            lag_p99_us = format!("{:.0}", step.send_lag_p99_us),
            lost = step.lost_rows,
            "bench step done"
        );
        steps.push(step);
        let _ = std::fs::remove_file(&db);
    }
    let _ = shutdown.send(());
    let _ = std::fs::remove_dir_all(&scratch);
    let report = BenchReport {
        sustained_rps: steps.iter().filter(|s| s.sustained).map(|s| s.target_rps).max(),
        zero_lost_rows: steps.iter().all(|s| s.lost_rows == 0),
        max_lag_p99_us: options.max_lag_p99.as_secs_f64() * 1e6,
        body_bytes: options.body_bytes,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        profile: hyperfake_core::build::profile(cfg!(debug_assertions)),
        steps,
    };
    write_reports(&options.out_dir, &report)?;
    Ok(report)
}

fn measure(
    db: &Path,
    rate: u32,
    scheduled: u64,
    due: u64,
    max_lag_p99: Duration,
) -> anyhow::Result<BenchStep> {
    let conn = rusqlite::Connection::open(db)?;
    let column = |sql: &str| -> anyhow::Result<Vec<i64>> {
        let mut stmt = conn.prepare(sql)?;
        let values = stmt.query_map([], |r| r.get::<_, i64>(0))?.collect::<Result<Vec<_>, _>>()?;
        Ok(values)
    };
    let lags = column("SELECT send_lag_ns FROM calls WHERE send_lag_ns IS NOT NULL ORDER BY send_lag_ns")?;
    let latencies = column("SELECT latency_ns FROM calls WHERE latency_ns IS NOT NULL ORDER BY latency_ns")?;
    let sent = column("SELECT sent_ns FROM calls WHERE sent_ns IS NOT NULL ORDER BY sent_ns")?;
    let rows: i64 = conn.query_row("SELECT COUNT(*) FROM calls", [], |r| r.get(0))?;
    let errors: i64 = conn.query_row("SELECT COUNT(*) FROM calls WHERE status != 'OK'", [], |r| r.get(0))?;
    let rows = u64::try_from(rows).unwrap_or(0);
    {
        let mut examples =
            conn.prepare("SELECT status, MIN(error) FROM calls WHERE status != 'OK' GROUP BY status")?;
        for row in examples.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)))? {
            let (status, error) = row?;
            tracing::warn!(rate, status, example = error.unwrap_or_default(), "calls not OK");
        }
    }
    let mut stmt = conn.prepare("SELECT status, COUNT(*) FROM calls WHERE status != 'OK' GROUP BY status")?;
    let errors_by_status = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0))))?
        .collect::<Result<_, _>>()?;
    let errors = u64::try_from(errors).unwrap_or(0);
    let seconds = match (sent.first(), sent.last()) {
        (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e9,
        _ => 0.0,
    };
    // n calls span n-1 gaps.
    let achieved_rps = if seconds > 0.0 { (sent.len() as f64 - 1.0) / seconds } else { 0.0 };
    let us = |sorted: &[i64], q: f64| percentile(sorted, q) / 1e3;
    let lost_rows = scheduled.saturating_sub(rows);
    let send_lag_p99_us = us(&lags, 0.99);
    Ok(BenchStep {
        target_rps: rate,
        seconds,
        scheduled,
        due,
        rows,
        lost_rows,
        errors,
        errors_by_status,
        achieved_rps,
        send_lag_p50_us: us(&lags, 0.50),
        send_lag_p99_us,
        send_lag_max_us: lags.last().map_or(0.0, |v| *v as f64 / 1e3),
        latency_p50_us: us(&latencies, 0.50),
        latency_p99_us: us(&latencies, 0.99),
        sustained: lost_rows == 0
            && errors == 0
            && achieved_rps >= 0.95 * f64::from(rate)
            && send_lag_p99_us <= max_lag_p99.as_secs_f64() * 1e6,
    })
}

/// Nearest-rank percentile of sorted values.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // rank is in 1..=len
fn percentile(sorted: &[i64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1] as f64
}

fn write_reports(dir: &Path, report: &BenchReport) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let json = dir.join("loadgen.json");
    std::fs::write(&json, serde_json::to_string_pretty(report)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    let md = dir.join("loadgen.md");
    std::fs::write(&md, markdown(report)).with_context(|| format!("cannot write {}", md.display()))?;
    Ok(())
}

pub fn markdown(report: &BenchReport) -> String {
    let mut out = String::from("# loadgen benchmark: open-loop send rate against a no-op leaf\n\n");
    out.push_str(&format!(
        "Body {} bytes, {} CPUs, build profile: {}. Sustained = no lost row, no error, achieved ≥ 95 % of target, \
         send lag p99 ≤ {:.0} µs.\n\n",
        report.body_bytes, report.cpus, report.profile, report.max_lag_p99_us
    ));
    out.push_str(
        "| target rps | achieved rps | calls | rows | lost | errors | lag p50 µs | lag p99 µs | lag max µs | latency p50 µs | latency p99 µs | sustained |\n",
    );
    out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|\n");
    let mut errors = String::new();
    for s in &report.steps {
        out.push_str(&format!(
            "| {} | {:.0} | {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} |\n",
            s.target_rps,
            s.achieved_rps,
            s.scheduled,
            s.rows,
            s.lost_rows,
            s.errors,
            s.send_lag_p50_us,
            s.send_lag_p99_us,
            s.send_lag_max_us,
            s.latency_p50_us,
            s.latency_p99_us,
            if s.sustained { "yes" } else { "no" }
        ));
        for (status, n) in &s.errors_by_status {
            errors.push_str(&format!("- {} calls/s: {n} × {status}\n", s.target_rps));
        }
    }
    if !errors.is_empty() {
        out.push_str("\nErrors:\n");
        out.push_str(&errors);
    }
    out.push_str(&format!(
        "\nSustained rate: **{}**. Zero lost rows: **{}**.\n",
        report.sustained_rps.map_or("none".to_string(), |r| format!("{r} calls/s")),
        if report.zero_lost_rows { "yes" } else { "no" }
    ));
    out
}
