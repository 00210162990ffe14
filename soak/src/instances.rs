//! Instance lifecycles from the collector's `instance_events`: starts and
//! ends per minute, how many instances were alive, and how often the whole
//! platform went down to zero instances (a scale-to-zero cycle) and came
//! back.

use std::collections::{BTreeMap, HashSet};

use anyhow::Context;
use rusqlite::Connection;
use serde::Serialize;

use crate::fit::quantile;

const MINUTE_NS: i64 = 60_000_000_000;

/// One minute of lifecycle events.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MinuteInstances {
    pub minute: u32,
    /// Successful starts (cold starts).
    pub starts: u64,
    /// Instances stopped for being idle (TIMEOUT).
    pub idle_stops: u64,
    /// Stops requested by the leaf (STOP: it scales idle capacity down too).
    pub requested_stops: u64,
    /// Deaths (DOWN).
    pub downs: u64,
    /// Most instances alive at once in the minute.
    pub max_alive: u64,
    /// Fewest alive at any moment of the minute (0: the platform was at zero).
    pub min_alive: u64,
}

/// The run's instances.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct InstanceSummary {
    pub starts: u64,
    pub idle_stops: u64,
    pub requested_stops: u64,
    pub downs: u64,
    pub failed_starts: u64,
    /// Times the alive count fell from above zero to zero.
    pub scale_to_zero: u64,
    /// Alive by the events at the last event (should be 0 once idle timeouts passed).
    pub alive_at_end: u64,
    /// Start → ready, milliseconds.
    pub cold_start_p50_ms: Option<f64>,
    pub cold_start_p99_ms: Option<f64>,
    pub minutes: Vec<MinuteInstances>,
}

/// Reads the lifecycle events of `run_id`; minutes count from `started_at_ns`.
pub fn summarize(conn: &Connection, run_id: &str, started_at_ns: i64) -> anyhow::Result<InstanceSummary> {
    if !rundb::has_table(conn, "instance_events")? {
        anyhow::bail!("the database has no instance_events: was the collector running?");
    }
    let mut statement = conn.prepare(
        "SELECT worker, instance_id, event, status, timestamp_ns, start_duration_ns FROM instance_events
         WHERE run_id = ?1 AND event IN ('START', 'STOP', 'TIMEOUT', 'DOWN') AND timestamp_ns IS NOT NULL
         ORDER BY timestamp_ns",
    )?;
    let mut rows = statement.query([run_id])?;
    let mut summary = InstanceSummary::default();
    let mut minutes: BTreeMap<u32, MinuteInstances> = BTreeMap::new();
    let mut alive: HashSet<(String, String)> = HashSet::new();
    let mut cold_ms = Vec::new();
    // Alive after the last event of each minute.
    let mut end_alive: BTreeMap<u32, u64> = BTreeMap::new();
    while let Some(row) = rows.next().context("cannot read instance_events")? {
        let worker: String = row.get(0)?;
        let instance: Option<String> = row.get(1)?;
        let event: String = row.get(2)?;
        let status: String = row.get(3)?;
        let at: i64 = row.get(4)?;
        let start_ns: Option<i64> = row.get(5)?;
        let minute = u32::try_from((at - started_at_ns).max(0) / MINUTE_NS).unwrap_or(u32::MAX);
        let key = (worker, instance.unwrap_or_default());
        // Minutes without events carry the count they started with.
        let carried = alive.len() as u64;
        let m = minutes.entry(minute).or_insert_with(|| MinuteInstances {
            minute,
            max_alive: carried,
            min_alive: carried,
            ..MinuteInstances::default()
        });
        match (event.as_str(), status.as_str()) {
            ("START", "SUCCESS") => {
                summary.starts += 1;
                m.starts += 1;
                alive.insert(key);
                cold_ms.extend(start_ns.map(|ns| ns as f64 / 1e6));
            }
            ("START", _) => summary.failed_starts += 1,
            (end, _) => {
                match end {
                    "TIMEOUT" => (summary.idle_stops += 1, m.idle_stops += 1),
                    "STOP" => (summary.requested_stops += 1, m.requested_stops += 1),
                    _ => (summary.downs += 1, m.downs += 1),
                };
                if alive.remove(&key) && alive.is_empty() {
                    summary.scale_to_zero += 1;
                }
            }
        }
        let now = alive.len() as u64;
        m.max_alive = m.max_alive.max(now);
        m.min_alive = m.min_alive.min(now);
        end_alive.insert(minute, now);
    }
    // Minutes without any event keep the count the previous one ended with.
    let last = minutes.keys().next_back().copied().unwrap_or(0);
    let mut carried = 0;
    let mut filled = Vec::new();
    for minute in 0..=last {
        filled.push(minutes.remove(&minute).unwrap_or(MinuteInstances {
            minute,
            max_alive: carried,
            min_alive: carried,
            ..MinuteInstances::default()
        }));
        carried = end_alive.get(&minute).copied().unwrap_or(carried);
    }
    summary.minutes = filled;
    summary.alive_at_end = alive.len() as u64;
    cold_ms.sort_by(f64::total_cmp);
    summary.cold_start_p50_ms = quantile(&cold_ms, 0.5);
    summary.cold_start_p99_ms = quantile(&cold_ms, 0.99);
    Ok(summary)
}
