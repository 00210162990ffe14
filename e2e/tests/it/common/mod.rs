//! Checks shared by the end-to-end tests: what a processed run database must
//! satisfy (docs/units.md), with a dump of the run for failure messages.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

/// Slack on the CPU-quota check: samples 100–250 ms apart straddle CFS
/// periods, so a call's interpolated CPU may exceed the quota by up to about
/// one period's quota over the sample interval (docs/units.md).
pub(crate) const CPU_QUOTA_SLACK: f64 = 1.5;
/// Absolute slack on CPU checks, cores.
pub(crate) const CPU_ABS_SLACK: f64 = 0.05;

/// Counts a run ended with; the checks' evidence that something ran.
#[derive(Debug, Default)]
pub(crate) struct RunCounts {
    pub(crate) scheduled: i64,
    pub(crate) calls: i64,
    pub(crate) calls_ok: i64,
    pub(crate) training_rows: i64,
    pub(crate) instance_events: i64,
    pub(crate) container_samples: i64,
    pub(crate) worker_samples: i64,
}

/// Logical CPUs of this machine.
pub(crate) fn nproc() -> f64 {
    std::thread::available_parallelism().map(|n| n.get() as f64).unwrap_or(1.0)
}

/// `MemTotal` of /proc/meminfo, bytes.
pub(crate) fn mem_total_bytes() -> i64 {
    let text = std::fs::read_to_string("/proc/meminfo").expect("reading /proc/meminfo");
    let kib: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("MemTotal in /proc/meminfo");
    kib * 1024
}

fn count(conn: &Connection, sql: &str, run_id: &str) -> i64 {
    conn.query_row(sql, [run_id], |r| r.get(0)).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Checks every invariant of a processed run; returns the counts, or every
/// violation found (up to a few examples each) followed by a dump of the run.
pub(crate) fn check_run(db: &Path, run_id: &str) -> Result<RunCounts, String> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("opening {}: {e}", db.display()));
    let mut problems = Vec::new();
    let c = RunCounts {
        scheduled: count(&conn, "SELECT calls_scheduled FROM runs WHERE run_id = ?1", run_id),
        calls: count(&conn, "SELECT COUNT(*) FROM calls WHERE run_id = ?1", run_id),
        calls_ok: count(&conn, "SELECT COUNT(*) FROM calls WHERE run_id = ?1 AND status = 'OK'", run_id),
        training_rows: count(&conn, "SELECT COUNT(*) FROM training_data WHERE run_id = ?1", run_id),
        instance_events: count(&conn, "SELECT COUNT(*) FROM instance_events WHERE run_id = ?1", run_id),
        container_samples: count(&conn, "SELECT COUNT(*) FROM container_samples WHERE run_id = ?1", run_id),
        worker_samples: count(&conn, "SELECT COUNT(*) FROM worker_samples WHERE run_id = ?1", run_id),
    };
    let status: String =
        conn.query_row("SELECT status FROM runs WHERE run_id = ?1", [run_id], |r| r.get(0)).unwrap();
    if status != "completed" {
        problems.push(format!("run status {status}, not completed"));
    }
    if c.calls != c.scheduled {
        problems.push(format!("{} calls recorded, {} scheduled", c.calls, c.scheduled));
    }
    for (name, n) in [
        ("instance_events", c.instance_events),
        ("container_samples", c.container_samples),
        ("worker_samples", c.worker_samples),
        ("training_data", c.training_rows),
    ] {
        if n == 0 {
            problems.push(format!("no {name} rows: nothing was measured"));
        }
    }
    if c.calls_ok * 2 < c.calls {
        problems.push(format!("only {} of {} calls OK", c.calls_ok, c.calls));
    }

    // Every call is a training row or dropped for a counted reason; every OK
    // call without a function error that is not a row has a non-`failed` reason.
    let mut summary = conn
        .prepare(
            "SELECT image_tag, calls, calls_ok, function_errors, training_rows, dropped_failed,
                    dropped_unknown_instance + dropped_no_runtime + dropped_no_function_cpu
                    + dropped_no_function_ram + dropped_runtime_exceeds_latency
             FROM run_summary WHERE run_id = ?1",
        )
        .unwrap();
    let rows: Vec<(String, i64, i64, i64, i64, i64, i64)> = summary
        .query_map([run_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    if rows.is_empty() {
        problems.push("no run_summary rows".into());
    }
    let mut summary_calls = 0;
    for (image, calls, ok, function_errors, training, dropped_failed, dropped_other) in &rows {
        summary_calls += calls;
        if training + dropped_failed + dropped_other != *calls {
            problems.push(format!(
                "{image}: {training} rows + {dropped_failed} failed + {dropped_other} dropped != {calls} calls"
            ));
        }
        if training + dropped_other + function_errors != *ok {
            problems.push(format!(
                "{image}: {ok} OK calls but {training} rows + {dropped_other} dropped + {function_errors} function errors"
            ));
        }
        if *training == 0 {
            problems.push(format!("{image}: no training rows"));
        }
        let in_table = conn
            .query_row(
                "SELECT COUNT(*) FROM training_data WHERE run_id = ?1 AND image_tag = ?2",
                [run_id, image.as_str()],
                |r| r.get::<_, i64>(0),
            )
            .unwrap();
        if in_table != *training {
            problems.push(format!("{image}: run_summary says {training} rows, training_data has {in_table}"));
        }
    }
    if summary_calls != c.calls {
        problems.push(format!("run_summary counts {summary_calls} calls, calls has {}", c.calls));
    }

    // Row-level invariants; each query selects the violating rows.
    let nproc = nproc();
    let mem_total = mem_total_bytes();
    let checks: Vec<(&str, String)> = vec![
        (
            "training row that is not an OK call of this run",
            "SELECT t.request_id FROM training_data t LEFT JOIN calls c
               ON c.run_id = t.run_id AND c.request_id = t.request_id
             WHERE t.run_id = ?1 AND (c.status IS NULL OR c.status != 'OK')"
                .into(),
        ),
        (
            "NULL target",
            "SELECT request_id FROM training_data WHERE run_id = ?1 AND (function_processing_time_ns IS NULL
               OR function_cpu_usage IS NULL OR function_ram_usage IS NULL)"
                .into(),
        ),
        (
            "active_function_calls_count < 1",
            "SELECT request_id || ' ' || quote(active_function_calls_count) FROM training_data
             WHERE run_id = ?1 AND (active_function_calls_count IS NULL OR active_function_calls_count < 1)"
                .into(),
        ),
        (
            "function_instances_count < 1",
            "SELECT request_id || ' ' || quote(function_instances_count) FROM training_data
             WHERE run_id = ?1 AND (function_instances_count IS NULL OR function_instances_count < 1)"
                .into(),
        ),
        (
            "function_processing_time_ns > latency_ns (or no latency)",
            "SELECT request_id || ' ' || function_processing_time_ns || ' > ' || quote(latency_ns) FROM training_data
             WHERE run_id = ?1 AND (latency_ns IS NULL OR function_processing_time_ns > latency_ns
               OR function_processing_time_ns < 0)"
                .into(),
        ),
        (
            "function_cpu_usage above its function's quota (or negative)",
            format!(
                "SELECT t.request_id || ' ' || t.image_tag || ' ' || t.function_cpu_usage || ' cores > quota '
                   || s.cpu_quota_cores FROM training_data t JOIN run_summary s
                   ON s.run_id = t.run_id AND s.image_tag = t.image_tag
                 WHERE t.run_id = ?1 AND (t.function_cpu_usage < 0 OR (s.cpu_quota_cores IS NOT NULL
                   AND t.function_cpu_usage > s.cpu_quota_cores * {CPU_QUOTA_SLACK} + {CPU_ABS_SLACK}))"
            ),
        ),
        (
            "function_ram_usage not in (0, MemTotal]",
            format!(
                "SELECT request_id || ' ' || function_ram_usage FROM training_data
                 WHERE run_id = ?1 AND (function_ram_usage <= 0 OR function_ram_usage > {mem_total})"
            ),
        ),
        (
            "worker_cpu_usage not in [0, nproc]",
            format!(
                "SELECT request_id || ' ' || worker_cpu_usage FROM training_data
                 WHERE run_id = ?1 AND (worker_cpu_usage < 0 OR worker_cpu_usage > {nproc} + {CPU_ABS_SLACK})"
            ),
        ),
        (
            "worker_ram_usage not in (0, MemTotal]",
            format!(
                "SELECT request_id || ' ' || worker_ram_usage FROM training_data
                 WHERE run_id = ?1 AND (worker_ram_usage <= 0 OR worker_ram_usage > {mem_total})"
            ),
        ),
        (
            "worker sample out of range (cores not in [0, nproc], bytes not in (0, MemTotal])",
            // Before its first reading a worker sends no totals: NULL, never 0.
            format!(
                "SELECT s.worker || ' ' || quote(s.cpu_cores) || ' ' || quote(s.ram_bytes) FROM worker_samples s
                 WHERE s.run_id = ?1 AND (s.cpu_cores < 0 OR s.cpu_cores > {nproc} + {CPU_ABS_SLACK}
                   OR s.ram_bytes <= 0 OR s.ram_bytes > {mem_total})"
            ),
        ),
    ];
    for (what, sql) in &checks {
        let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let bad: Vec<String> =
            stmt.query_map([run_id], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap();
        if !bad.is_empty() {
            problems.push(format!("{} × {what}, e.g. {:?}", bad.len(), &bad[..bad.len().min(5)]));
        }
    }
    if problems.is_empty() {
        Ok(c)
    } else {
        Err(format!(
            "run {run_id} in {}:\n- {}\n{}",
            db.display(),
            problems.join("\n- "),
            dump(&conn, run_id, &c)
        ))
    }
}

/// Counts, the run summary and the largest CPU ratios, for failure messages.
pub(crate) fn dump(conn: &Connection, run_id: &str, c: &RunCounts) -> String {
    let mut out = format!("{c:?}\nrun_summary:\n");
    let mut stmt = conn
        .prepare(
            "SELECT image_tag, calls, calls_ok, calls_by_status_json, function_errors, training_rows,
                    dropped_failed, dropped_unknown_instance, dropped_no_runtime, dropped_no_function_cpu,
                    dropped_no_function_ram, dropped_runtime_exceeds_latency, quote(cpu_quota_cores)
             FROM run_summary WHERE run_id = ?1",
        )
        .unwrap();
    let rows = stmt
        .query_map([run_id], |r| {
            Ok(format!(
                "  {} calls={} ok={} {} fn_err={} rows={} dropped: failed={} unknown_instance={} no_runtime={} \
                 no_cpu={} no_ram={} runtime>latency={} quota={}",
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, i64>(8)?,
                r.get::<_, i64>(9)?,
                r.get::<_, i64>(10)?,
                r.get::<_, i64>(11)?,
                r.get::<_, String>(12)?,
            ))
        })
        .unwrap();
    for row in rows {
        let _ = writeln!(out, "{}", row.unwrap());
    }
    let mut stmt = conn
        .prepare(
            "SELECT t.image_tag, MAX(t.function_cpu_usage), s.cpu_quota_cores FROM training_data t
             JOIN run_summary s ON s.run_id = t.run_id AND s.image_tag = t.image_tag
             WHERE t.run_id = ?1 GROUP BY t.image_tag",
        )
        .unwrap();
    let rows = stmt
        .query_map([run_id], |r| {
            Ok(format!(
                "  max function_cpu_usage of {}: {:?} (quota {:?})",
                r.get::<_, String>(0)?,
                r.get::<_, Option<f64>>(1)?,
                r.get::<_, Option<f64>>(2)?
            ))
        })
        .unwrap();
    for row in rows {
        let _ = writeln!(out, "{}", row.unwrap());
    }
    out
}
