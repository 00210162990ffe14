//! Reading one run from a run database (the load generator's `runs` and
//! `calls` tables, and the collector's `instance_events` when present).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rundb::CallStatus;
use rusqlite::Connection;

use crate::decompose::{CallTimings, Decomposition};

/// One function's calls in a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageCalls {
    /// Client latency of each successful call, sorted (ns).
    pub latencies_ok: Vec<u64>,
    /// Function handler time of each successful call, sorted (ns).
    pub handler_ok: Vec<u64>,
    pub calls: u64,
    pub ok: u64,
    /// Calls that failed, by status (gRPC code name, or `FUNCTION_ERROR`).
    pub errors: BTreeMap<String, u64>,
    /// Distinct instances that served a call.
    pub instances_used: u64,
    /// Where the successful calls' latency went (leaf, hops, worker, handler).
    pub decomposition: Decomposition,
}

/// A run, ready to compare.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunData {
    pub path: PathBuf,
    pub run_id: String,
    pub seed: i64,
    pub config_yaml: String,
    /// From the first scheduled call to the run's end (s).
    pub duration_s: f64,
    pub by_image: BTreeMap<String, ImageCalls>,
    /// Live instances (all functions) at each whole second of the run, from the
    /// collector's events; empty when the run has none.
    pub instances_over_time: Vec<(f64, i64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error("{path}: no run in the database (is it a run database written by loadgen?)")]
    NoRun { path: PathBuf },
    #[error("{path}: {count} runs in the database; name one with --real-run/--fake-run ({runs})")]
    SeveralRuns { path: PathBuf, count: usize, runs: String },
    #[error("{path}: run {run_id} not found")]
    UnknownRun { path: PathBuf, run_id: String },
}

impl RunData {
    /// Loads `run_id` (or the only run) from `path`, read-only.
    pub fn load(path: &Path, run_id: Option<&str>) -> Result<RunData, DataError> {
        let sql = |source| DataError::Sqlite { path: path.into(), source };
        let conn = rundb::open_untrusted(path).map_err(sql)?;
        let run_ids: Vec<String> = {
            let mut stmt = conn.prepare("SELECT run_id FROM runs ORDER BY started_at_ns").map_err(sql)?;
            stmt.query_map([], |r| r.get(0)).map_err(sql)?.collect::<Result<_, _>>().map_err(sql)?
        };
        let run_id = match (run_id, run_ids.len()) {
            (Some(id), _) if run_ids.iter().any(|r| r == id) => id.to_string(),
            (Some(id), _) => return Err(DataError::UnknownRun { path: path.into(), run_id: id.into() }),
            (None, 0) => return Err(DataError::NoRun { path: path.into() }),
            (None, 1) => run_ids[0].clone(),
            (None, count) => {
                return Err(DataError::SeveralRuns { path: path.into(), count, runs: run_ids.join(", ") });
            }
        };
        let (seed, config_yaml, started, finished): (i64, String, i64, Option<i64>) = conn
            .query_row(
                "SELECT seed, config_yaml, started_at_ns, finished_at_ns FROM runs WHERE run_id = ?1",
                [&run_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .map_err(sql)?;
        let last_sent: Option<i64> = conn
            .query_row("SELECT MAX(sent_ns) FROM calls WHERE run_id = ?1", [&run_id], |r| r.get(0))
            .map_err(sql)?;
        let end = finished.or(last_sent).unwrap_or(started);
        let duration_s = (end - started).max(1) as f64 / 1e9;

        let mut by_image: BTreeMap<String, ImageCalls> = BTreeMap::new();
        let mut instances: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        // Warm-up calls (loadgen's `warmup:`) are not part of the measured run.
        let measured = rundb::calls::measured_only(&conn).map_err(sql)?;
        let mut stmt = conn
            .prepare(&format!(
                "SELECT image_tag, status, latency_ns, function_handler_time_ns, function_error, instance_id, \
                 leaf_got_request_ns, leaf_scheduled_call_ns, call_queued_ns, call_started_ns, \
                 function_processing_time_ns FROM calls WHERE run_id = ?1 {measured}"
            ))
            .map_err(sql)?;
        let rows = stmt
            .query_map([&run_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, CallStatus>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    CallTimings {
                        latency_ns: r.get(2)?,
                        function_handler_time_ns: r.get(3)?,
                        leaf_got_request_ns: r.get(6)?,
                        leaf_scheduled_call_ns: r.get(7)?,
                        call_queued_ns: r.get(8)?,
                        call_started_ns: r.get(9)?,
                        function_processing_time_ns: r.get(10)?,
                    },
                ))
            })
            .map_err(sql)?;
        for row in rows {
            let (image, status, latency, handler, function_error, instance, timings) = row.map_err(sql)?;
            let entry = by_image.entry(image.clone()).or_default();
            entry.calls += 1;
            let ok = status.is_ok() && function_error.is_none();
            if ok {
                entry.ok += 1;
                if let Some(l) = latency.and_then(|l| u64::try_from(l).ok()) {
                    entry.latencies_ok.push(l);
                }
                if let Some(h) = handler.and_then(|h| u64::try_from(h).ok()) {
                    entry.handler_ok.push(h);
                }
                entry.decomposition.push(&timings);
            } else {
                let kind = if status.is_ok() { "FUNCTION_ERROR".to_string() } else { status.to_string() };
                *entry.errors.entry(kind).or_default() += 1;
            }
            if let Some(i) = instance {
                instances.entry(image).or_default().insert(i);
            }
        }
        for (image, calls) in &mut by_image {
            calls.latencies_ok.sort_unstable();
            calls.handler_ok.sort_unstable();
            calls.decomposition.finish();
            calls.instances_used = instances.get(image).map_or(0, |s| s.len() as u64);
        }
        let instances_over_time = instance_counts(&conn, &run_id, started, end).map_err(sql)?;
        Ok(RunData {
            path: path.into(),
            run_id,
            seed,
            config_yaml,
            duration_s,
            by_image,
            instances_over_time,
        })
    }
}

/// Live instances at each whole second, from START/STOP/TIMEOUT/DOWN events.
/// Event times are on the workers' clocks; on one host they share the
/// client's clock, so they are placed relative to the run's start.
fn instance_counts(
    conn: &Connection,
    run_id: &str,
    started: i64,
    end: i64,
) -> rusqlite::Result<Vec<(f64, i64)>> {
    if !rundb::has_table(conn, "instance_events")? {
        return Ok(Vec::new());
    }
    // A failed START never made an instance; every STOP/TIMEOUT/DOWN removes one
    // (DOWN is reported as FAILED, and the worker drops an instance even when
    // stopping its container failed).
    let mut stmt = conn.prepare(
        "SELECT timestamp_ns, event FROM instance_events WHERE run_id = ?1 \
         AND ((event = 'START' AND status = 'SUCCESS') OR event IN ('STOP', 'TIMEOUT', 'DOWN')) \
         ORDER BY timestamp_ns",
    )?;
    let events: Vec<(i64, i64)> = stmt
        .query_map([run_id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
        .map(|row| row.map(|(t, e)| (t, if e == "START" { 1 } else { -1 })))
        .collect::<Result<_, _>>()?;
    if events.is_empty() {
        // No collector ran for this run: no instance counts, not a line at 0.
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let (mut live, mut next) = (0i64, 0usize);
    let mut second = 0i64;
    while started + second * 1_000_000_000 <= end {
        let t = started + second * 1_000_000_000;
        while next < events.len() && events[next].0 <= t {
            live += events[next].1;
            next += 1;
        }
        out.push((second as f64, live.max(0)));
        second += 1;
    }
    Ok(out)
}
