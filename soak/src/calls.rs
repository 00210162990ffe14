//! The calls of a run, read back from its run database: how many were
//! scheduled, came due, were sent and were recorded; errors by code; and the
//! client latency of successful calls minute by minute (a call belongs to
//! the minute of its scheduled time), overall and per image.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use crate::fit::quantile;

const MINUTE_NS: i64 = 60_000_000_000;

/// Calls from schedule to row.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Accounting {
    pub run_id: String,
    /// `runs.status`: completed, interrupted, failed (running: loadgen never finished).
    pub status: String,
    pub run_error: Option<String>,
    pub started_at_ns: i64,
    pub finished_at_ns: Option<i64>,
    pub scheduled: u64,
    /// `runs.calls_due`: calls whose time came before the run stopped.
    pub due: u64,
    /// Calls that went out (`calls.sent_ns` set).
    pub sent: u64,
    /// Calls due but not sent (`NOT_SENT`: the in-flight cap was reached).
    pub not_sent: u64,
    /// Rows in `calls`.
    pub recorded: u64,
    /// `runs.calls_recorded`, what loadgen counted.
    pub recorded_by_loadgen: u64,
    /// due − rows: calls that came due and have no row.
    pub lost: i64,
}

/// Calls that ended with one status.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ErrorCount {
    /// `calls.status`: a gRPC code name or NOT_SENT; `OK (handler error)`
    /// for a call answered with a function error.
    pub status: String,
    pub grpc_code: Option<i32>,
    pub calls: u64,
    /// One of their messages.
    pub example: Option<String>,
}

/// Successful calls' latency in one minute.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MinuteLatency {
    /// From 0: minute of the scheduled time after the run's start.
    pub minute: u32,
    /// Calls due in the minute (any outcome).
    pub due: u64,
    pub ok: u64,
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// The handler's own time (`function_handler_time_ns`; the fake worker's
    /// draw from its model), p50: what the platform cannot make slower.
    pub handler_p50_ms: Option<f64>,
    /// Client latency minus handler time, p50 and p99: the platform's and
    /// the client's share (every hop, queueing, cold starts), which a busy
    /// machine stretches.
    pub overhead_p50_ms: Option<f64>,
    pub overhead_p99_ms: Option<f64>,
}

/// The run's calls, summed up.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CallSummary {
    pub accounting: Accounting,
    pub errors: Vec<ErrorCount>,
    pub minutes: Vec<MinuteLatency>,
    /// Per image, the same per minute.
    pub minutes_by_image: BTreeMap<String, Vec<MinuteLatency>>,
}

/// The only run in `conn`, or `run_id`.
pub fn run_id(conn: &Connection, run_id: Option<&str>) -> anyhow::Result<String> {
    if let Some(id) = run_id {
        return Ok(id.to_string());
    }
    let ids: Vec<String> = conn
        .prepare("SELECT run_id FROM runs ORDER BY started_at_ns")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    match ids.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("the database holds no run"),
        many => bail!("the database holds {} runs ({}): give --run-id", many.len(), many.join(", ")),
    }
}

/// Reads the run `run_id` of `conn`.
pub fn summarize(conn: &Connection, run_id: &str) -> anyhow::Result<CallSummary> {
    let accounting = accounting(conn, run_id)?;
    let errors = errors(conn, run_id)?;
    let (minutes, minutes_by_image) = minutes(conn, run_id, accounting.started_at_ns)?;
    Ok(CallSummary { accounting, errors, minutes, minutes_by_image })
}

fn count(conn: &Connection, sql: &str, run_id: &str) -> anyhow::Result<u64> {
    let n: i64 = conn.query_row(sql, [run_id], |r| r.get(0)).with_context(|| sql.to_string())?;
    Ok(u64::try_from(n).unwrap_or(0))
}

fn accounting(conn: &Connection, run_id: &str) -> anyhow::Result<Accounting> {
    let row = conn
        .query_row(
            "SELECT status, error, started_at_ns, finished_at_ns, calls_scheduled, calls_due, calls_recorded
             FROM runs WHERE run_id = ?1",
            [run_id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                ))
            },
        )
        .optional()
        .context("cannot read the runs table")?;
    let Some((status, run_error, started_at_ns, finished_at_ns, scheduled, due, recorded_by_loadgen)) = row
    else {
        bail!("no run {run_id:?} in the database");
    };
    // Warm-up calls (`warmup:`) come before time 0 and are not calls due.
    let measured = rundb::calls::measured_only(conn)?;
    let recorded = count(conn, &format!("SELECT COUNT(*) FROM calls WHERE run_id = ?1 {measured}"), run_id)?;
    let sent = count(
        conn,
        &format!("SELECT COUNT(*) FROM calls WHERE run_id = ?1 AND sent_ns IS NOT NULL {measured}"),
        run_id,
    )?;
    let not_sent = count(
        conn,
        &format!("SELECT COUNT(*) FROM calls WHERE run_id = ?1 AND status = 'NOT_SENT' {measured}"),
        run_id,
    )?;
    let unsigned = |v: i64| u64::try_from(v).unwrap_or(0);
    // A run that never finished has no calls_due: every row is then all we know.
    let due = due.map_or(recorded, unsigned);
    Ok(Accounting {
        run_id: run_id.to_string(),
        status,
        run_error,
        started_at_ns,
        finished_at_ns,
        scheduled: unsigned(scheduled),
        due,
        sent,
        not_sent,
        recorded,
        recorded_by_loadgen: recorded_by_loadgen.map_or(0, unsigned),
        lost: i64::try_from(due).unwrap_or(i64::MAX) - i64::try_from(recorded).unwrap_or(i64::MAX),
    })
}

fn errors(conn: &Connection, run_id: &str) -> anyhow::Result<Vec<ErrorCount>> {
    let measured = rundb::calls::measured_only(conn)?;
    let mut statement = conn.prepare(&format!(
        "SELECT CASE WHEN status = 'OK' THEN 'OK (handler error)' ELSE status END, grpc_code, COUNT(*),
                MIN(COALESCE(error, function_error))
         FROM calls WHERE run_id = ?1 AND (status <> 'OK' OR function_error IS NOT NULL) {measured}
         GROUP BY 1, 2 ORDER BY 3 DESC"
    ))?;
    let rows = statement.query_map([run_id], |r| {
        Ok(ErrorCount {
            status: r.get(0)?,
            grpc_code: r.get(1)?,
            calls: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
            example: r.get(3)?,
        })
    })?;
    rows.collect::<Result<_, _>>().context("cannot read the calls' errors")
}

/// Per-minute latency, overall and per image.
type Minutes = (Vec<MinuteLatency>, BTreeMap<String, Vec<MinuteLatency>>);

fn minutes(conn: &Connection, run_id: &str, started_at_ns: i64) -> anyhow::Result<Minutes> {
    #[derive(Default)]
    struct Bucket {
        due: u64,
        errors: u64,
        latencies_ms: Vec<f64>,
        handler_ms: Vec<f64>,
        overhead_ms: Vec<f64>,
    }
    let mut all: BTreeMap<u32, Bucket> = BTreeMap::new();
    let mut by_image: BTreeMap<String, BTreeMap<u32, Bucket>> = BTreeMap::new();
    let measured = rundb::calls::measured_only(conn)?;
    let mut statement = conn.prepare(&format!(
        "SELECT scheduled_ns, image_tag, status = 'OK' AND function_error IS NULL, latency_ns,
                function_handler_time_ns
         FROM calls WHERE run_id = ?1 {measured}"
    ))?;
    let mut rows = statement.query([run_id])?;
    while let Some(row) = rows.next()? {
        let scheduled_ns: i64 = row.get(0)?;
        let image: String = row.get(1)?;
        let ok: bool = row.get(2)?;
        let latency_ns: Option<i64> = row.get(3)?;
        let handler_ns: Option<i64> = row.get(4)?;
        let minute = u32::try_from((scheduled_ns - started_at_ns).max(0) / MINUTE_NS).unwrap_or(u32::MAX);
        for bucket in
            [all.entry(minute).or_default(), by_image.entry(image).or_default().entry(minute).or_default()]
        {
            bucket.due += 1;
            match (ok, latency_ns) {
                (true, Some(ns)) => {
                    bucket.latencies_ms.push(ns as f64 / 1e6);
                    if let Some(handler) = handler_ns {
                        bucket.handler_ms.push(handler as f64 / 1e6);
                        bucket.overhead_ms.push((ns - handler) as f64 / 1e6);
                    }
                }
                _ => bucket.errors += 1,
            }
        }
    }
    let finish = |buckets: BTreeMap<u32, Bucket>| -> Vec<MinuteLatency> {
        buckets
            .into_iter()
            .map(|(minute, mut b)| {
                b.latencies_ms.sort_by(f64::total_cmp);
                b.handler_ms.sort_by(f64::total_cmp);
                b.overhead_ms.sort_by(f64::total_cmp);
                MinuteLatency {
                    minute,
                    due: b.due,
                    ok: b.latencies_ms.len() as u64,
                    errors: b.errors,
                    p50_ms: quantile(&b.latencies_ms, 0.50),
                    p99_ms: quantile(&b.latencies_ms, 0.99),
                    max_ms: b.latencies_ms.last().copied(),
                    handler_p50_ms: quantile(&b.handler_ms, 0.50),
                    overhead_p50_ms: quantile(&b.overhead_ms, 0.50),
                    overhead_p99_ms: quantile(&b.overhead_ms, 0.99),
                }
            })
            .collect()
    };
    let by_image = by_image.into_iter().map(|(image, b)| (image, finish(b))).collect();
    Ok((finish(all), by_image))
}
