//! Checks one processed run of a run database: that the run completed, that
//! loadgen, the collector and processing each wrote their rows, that the run
//! summary accounts for every call, and that every training row and worker
//! sample lies within the ranges of `docs/units.md`. `process check` runs it,
//! and so do the end-to-end tests and `scripts/test-two-host.sh`, so that one
//! definition of "a good run" serves them all.
//!
//! ```no_run
//! use processing::check::{CheckOptions, Host, check_run};
//! let options = CheckOptions::new(Host::this_machine()?);
//! let report = check_run("training_data/run1.db".as_ref(), "run1", &options)?;
//! print!("{report}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use rundb::calls::{CALLS_TABLE, RUNS_TABLE};
use rundb::collector::{CONTAINER_SAMPLES_TABLE, INSTANCE_EVENTS_TABLE, WORKER_SAMPLES_TABLE};
use rundb::training::{INPUTS, RUN_SUMMARY_TABLE, TARGETS, TRAINING_DATA_TABLE};
use rundb::{CallStatus, RunStatus};
use rusqlite::types::ToSql;
use rusqlite::{Connection, Statement};

use crate::error::{ProcessError, Result};
use crate::raw;
use crate::summary::DropReason;

/// Slack on the CPU-quota check: samples 100–250 ms apart straddle CFS
/// periods, so a call's interpolated CPU may exceed the quota by up to about
/// one period's quota over the sample interval (docs/units.md).
pub const CPU_QUOTA_SLACK: f64 = 1.5;
/// Absolute slack on the CPU checks, cores.
pub const CPU_ABS_SLACK: f64 = 0.05;
/// The largest fraction of a run's calls that may fail (status other than
/// OK). A run where more fail measured a broken or saturated platform, whose
/// few training rows say little about its normal behaviour.
pub const MAX_FAILED_FRACTION: f64 = 0.5;
/// Violating rows a failure quotes.
const EXAMPLES: usize = 5;

/// Every table a measured and processed run has rows in.
const TABLES: [&str; 7] = [
    RUNS_TABLE,
    CALLS_TABLE,
    INSTANCE_EVENTS_TABLE,
    CONTAINER_SAMPLES_TABLE,
    WORKER_SAMPLES_TABLE,
    TRAINING_DATA_TABLE,
    RUN_SUMMARY_TABLE,
];
/// The collector's tables that name a worker.
const WORKER_TABLES: [&str; 3] = [INSTANCE_EVENTS_TABLE, CONTAINER_SAMPLES_TABLE, WORKER_SAMPLES_TABLE];

// === impl Check ===

/// One check of a run. [`Check::ALL`] lists them in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    /// The database has loadgen's, the collector's and processing's tables.
    Tables,
    /// `runs.status` is `completed`.
    Completed,
    /// Every scheduled call has a `calls` row (`runs.calls_scheduled`).
    CallsRecorded,
    /// At most [`CheckOptions::max_failed_fraction`] of the calls failed.
    FailedCalls,
    /// `runs.leaf_address` is [`CheckOptions::leaf_address`] (when given).
    Leaf,
    /// Something was measured and processed: instance events, container
    /// samples, worker samples and training rows.
    Measured,
    /// Every collector row names one of [`CheckOptions::workers`], and each
    /// of them sent worker samples (when given).
    Workers,
    /// `run_summary` accounts for every call: per image, training rows +
    /// dropped = calls and training rows + dropped other than failed +
    /// function errors = OK calls; its training rows are those in
    /// `training_data`; its calls add up to the run's.
    Summary,
    /// Every image of the run summary has rows in `training_data`.
    ImageRows,
    /// Every training row is an OK call of the run.
    RowIsOkCall,
    /// No training row has a NULL target.
    Targets,
    /// `active_function_calls_count` ≥ 1 (the call itself is active).
    ActiveCalls,
    /// `function_instances_count` ≥ 1 (the instance serving it).
    Instances,
    /// 0 ≤ `function_processing_time_ns` ≤ `latency_ns` (the handler runs
    /// inside the client's round trip).
    RuntimeWithinLatency,
    /// 0 ≤ `function_cpu_usage` ≤ the function's CPU quota × [`CPU_QUOTA_SLACK`] + [`CPU_ABS_SLACK`].
    FunctionCpu,
    /// 0 < `function_ram_usage` ≤ the host's memory.
    FunctionRam,
    /// 0 ≤ `worker_cpu_usage` ≤ the host's cores + [`CPU_ABS_SLACK`].
    WorkerCpu,
    /// 0 < `worker_ram_usage` ≤ the host's memory.
    WorkerRam,
    /// Worker samples within the host: cores in [0, cores], bytes in (0, memory].
    WorkerSamples,
}

impl Check {
    pub const ALL: [Check; 19] = [
        Check::Tables,
        Check::Completed,
        Check::CallsRecorded,
        Check::FailedCalls,
        Check::Leaf,
        Check::Measured,
        Check::Workers,
        Check::Summary,
        Check::ImageRows,
        Check::RowIsOkCall,
        Check::Targets,
        Check::ActiveCalls,
        Check::Instances,
        Check::RuntimeWithinLatency,
        Check::FunctionCpu,
        Check::FunctionRam,
        Check::WorkerCpu,
        Check::WorkerRam,
        Check::WorkerSamples,
    ];

    /// The name a failure is reported under.
    pub const fn name(self) -> &'static str {
        match self {
            Check::Tables => "tables",
            Check::Completed => "completed",
            Check::CallsRecorded => "calls-recorded",
            Check::FailedCalls => "failed-calls",
            Check::Leaf => "leaf",
            Check::Measured => "measured",
            Check::Workers => "workers",
            Check::Summary => "summary",
            Check::ImageRows => "image-rows",
            Check::RowIsOkCall => "row-is-ok-call",
            Check::Targets => "targets",
            Check::ActiveCalls => "active-calls",
            Check::Instances => "instances",
            Check::RuntimeWithinLatency => "runtime-within-latency",
            Check::FunctionCpu => "function-cpu",
            Check::FunctionRam => "function-ram",
            Check::WorkerCpu => "worker-cpu",
            Check::WorkerRam => "worker-ram",
            Check::WorkerSamples => "worker-samples",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A check a run failed, and how.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckFailure {
    pub check: Check,
    /// What was found, with up to a few offending rows.
    pub detail: String,
}

/// The checks a run failed (never empty in an error).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckFailures(pub Vec<CheckFailure>);

impl CheckFailures {
    /// Whether `check` is among the failures.
    pub fn contains(&self, check: Check) -> bool {
        self.0.iter().any(|f| f.check == check)
    }

    fn push(&mut self, check: Check, detail: impl Into<String>) {
        self.0.push(CheckFailure { check, detail: detail.into() });
    }
}

impl fmt::Display for CheckFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "fails {n} check{}:", if n == 1 { "" } else { "s" })?;
        for failure in &self.0 {
            write!(f, "\n- {}: {}", failure.check, failure.detail)?;
        }
        Ok(())
    }
}

// === impl Host ===

/// The machine a run was measured on: the bounds of its resource figures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Host {
    /// Logical CPUs.
    pub cores: f64,
    /// Physical memory (`MemTotal`), bytes.
    pub memory_bytes: i64,
}

impl Host {
    /// This machine: its available parallelism and `MemTotal` from /proc/meminfo.
    pub fn this_machine() -> std::io::Result<Host> {
        let cores = std::thread::available_parallelism()?.get() as f64;
        let text = std::fs::read_to_string("/proc/meminfo")?;
        let kib: i64 = text
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "no MemTotal in /proc/meminfo")
            })?;
        Ok(Host { cores, memory_bytes: kib.saturating_mul(1024) })
    }
}

/// What to check a run against.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckOptions {
    /// The host the run was measured on.
    pub host: Host,
    /// The workers the collector followed, as given to it. By default empty:
    /// [`Check::Workers`] is skipped.
    pub workers: Vec<String>,
    /// The leaf the load generator called. By default `None`: [`Check::Leaf`] is skipped.
    pub leaf_address: Option<String>,
    /// By default, [`MAX_FAILED_FRACTION`].
    pub max_failed_fraction: f64,
}

impl CheckOptions {
    /// The defaults for a run measured on `host`.
    pub fn new(host: Host) -> CheckOptions {
        CheckOptions {
            host,
            workers: Vec::new(),
            leaf_address: None,
            max_failed_fraction: MAX_FAILED_FRACTION,
        }
    }

    /// The checks these options skip.
    fn skipped(&self) -> Vec<Check> {
        let mut skipped = Vec::new();
        if self.leaf_address.is_none() {
            skipped.push(Check::Leaf);
        }
        if self.workers.is_empty() {
            skipped.push(Check::Workers);
        }
        skipped
    }
}

// === impl RunReport ===

/// What a run's check found: its counts and its run summary.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunReport {
    pub path: PathBuf,
    pub run_id: String,
    /// `runs.status`, `runs.leaf_address` and `runs.calls_scheduled`; `None` without a `runs` row.
    pub status: Option<String>,
    pub leaf_address: Option<String>,
    pub scheduled: Option<i64>,
    pub calls: i64,
    pub calls_ok: i64,
    pub instance_events: i64,
    pub container_samples: i64,
    pub worker_samples: i64,
    pub training_rows: i64,
    /// The workers named in the collector's tables.
    pub workers: BTreeSet<String>,
    /// One per `run_summary` row.
    pub images: Vec<ImageReport>,
    /// The checks that ran and passed (with a failure, the others failed).
    pub passed: Vec<Check>,
    /// The checks the options skipped.
    pub skipped: Vec<Check>,
}

/// One image's `run_summary` row, and what `training_data` holds of it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageReport {
    pub image_tag: String,
    pub calls: i64,
    pub calls_ok: i64,
    pub calls_by_status_json: String,
    pub function_errors: i64,
    pub training_rows: i64,
    /// The image's rows in `training_data`.
    pub training_rows_in_table: i64,
    /// Per reason, in [`DropReason::ALL`] order.
    pub dropped: Vec<(DropReason, i64)>,
    pub cpu_quota_cores: Option<f64>,
    /// The largest `function_cpu_usage` of its training rows.
    pub max_function_cpu: Option<f64>,
}

impl ImageReport {
    fn dropped(&self, reason: DropReason) -> i64 {
        self.dropped.iter().find(|(r, _)| *r == reason).map_or(0, |(_, n)| *n)
    }

    fn dropped_other_than_failed(&self) -> i64 {
        self.dropped.iter().filter(|(r, _)| *r != DropReason::Failed).map(|(_, n)| n).sum()
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        writeln!(
            f,
            "run {} in {}: status {}, leaf {}; {} calls of {} scheduled, {} OK",
            self.run_id,
            self.path.display(),
            or_none(&self.status),
            or_none(&self.leaf_address),
            self.calls,
            self.scheduled.map_or_else(|| "-".into(), |n| n.to_string()),
            self.calls_ok,
        )?;
        writeln!(
            f,
            "  {} instance events, {} container samples, {} worker samples, {} training rows; workers: {}",
            self.instance_events,
            self.container_samples,
            self.worker_samples,
            self.training_rows,
            if self.workers.is_empty() {
                "-".to_owned()
            } else {
                self.workers.iter().cloned().collect::<Vec<_>>().join(" ")
            },
        )?;
        for img in &self.images {
            let dropped: Vec<String> = img
                .dropped
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(r, n)| format!("{} {n}", r.as_str()))
                .collect();
            let cores = |v: Option<f64>| v.map_or_else(|| "-".into(), |c| format!("{c:.3}"));
            writeln!(
                f,
                "  {}: {} calls {}, {} function errors, {} training rows ({} in training_data), dropped: {}; \
                 CPU quota {} cores, max function CPU {}",
                img.image_tag,
                img.calls,
                img.calls_by_status_json,
                img.function_errors,
                img.training_rows,
                img.training_rows_in_table,
                if dropped.is_empty() { "none".to_owned() } else { dropped.join(", ") },
                cores(img.cpu_quota_cores),
                cores(img.max_function_cpu),
            )?;
        }
        let names = |checks: &[Check]| checks.iter().map(|c| c.name()).collect::<Vec<_>>().join(" ");
        writeln!(f, "  passed {} checks: {}", self.passed.len(), names(&self.passed))?;
        if !self.skipped.is_empty() {
            writeln!(f, "  skipped (no expectation given): {}", names(&self.skipped))?;
        }
        Ok(())
    }
}

// === check_run ===

/// Checks run `run_id` of the processed run database at `path`.
///
/// Returns what it found when every check passes; otherwise
/// [`ProcessError::CheckFailed`] naming the file, the run, each failed
/// check with a few offending rows, and what was found. A file without the
/// run is [`ProcessError::UnknownRun`] (or [`ProcessError::NoRuns`]).
pub fn check_run(path: &Path, run_id: &str, options: &CheckOptions) -> Result<RunReport> {
    let conn = raw::open_read(path)?;
    let known = raw::run_ids(&conn, path)?;
    if !known.iter().any(|k| k == run_id) {
        return Err(ProcessError::UnknownRun {
            path: path.to_owned(),
            run_id: run_id.to_owned(),
            known: known.join(", "),
        });
    }
    let db = Db { conn: &conn, run_id, options };
    let mut failures = CheckFailures::default();
    let mut report = RunReport {
        path: path.to_owned(),
        run_id: run_id.to_owned(),
        skipped: options.skipped(),
        ..RunReport::default()
    };

    let mut missing = Vec::new();
    for table in TABLES {
        if !rundb::has_table(&conn, table).map_err(ProcessError::sql("looking up tables"))? {
            missing.push(table);
        }
    }
    if !missing.is_empty() {
        let processed = [TRAINING_DATA_TABLE, RUN_SUMMARY_TABLE];
        let hint = if missing.iter().any(|t| processed.contains(t)) {
            format!(" (not processed yet? process --db {} --run-id {run_id})", path.display())
        } else {
            String::new()
        };
        failures.push(Check::Tables, format!("no table {}{hint}", missing.join(", ")));
    }
    let has = |table: &str| !missing.contains(&table);
    // Checks that need a missing table: neither passed nor failed.
    let mut not_run = Vec::new();

    // What loadgen recorded.
    if has(RUNS_TABLE) {
        let row = db.optional_row(
            &format!("SELECT status, leaf_address, calls_scheduled FROM {RUNS_TABLE} WHERE run_id = :run"),
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)),
        )?;
        if let Some((status, leaf, scheduled)) = row {
            report.status = Some(status);
            report.leaf_address = Some(leaf);
            report.scheduled = Some(scheduled);
        }
    }
    // Warm-up calls (loadgen's `warmup:`) are neither scheduled nor summarised.
    let measured = if has(CALLS_TABLE) {
        rundb::calls::measured_only(db.conn).map_err(ProcessError::sql("looking up calls.warmup"))?
    } else {
        ""
    };
    report.calls = db.count(CALLS_TABLE, measured)?;
    report.calls_ok = db.count(CALLS_TABLE, &format!("AND status = :ok {measured}"))?;
    match (&report.status, report.scheduled) {
        (None, _) | (_, None) => {
            failures.push(Check::Completed, format!("no {RUNS_TABLE} row"));
            failures.push(
                Check::CallsRecorded,
                format!("no {RUNS_TABLE} row says how many calls were scheduled"),
            );
        }
        (Some(status), Some(scheduled)) => {
            if status != RunStatus::Completed.as_str() {
                failures.push(
                    Check::Completed,
                    format!("run status {status}, not {}", RunStatus::Completed.as_str()),
                );
            }
            if report.calls != scheduled {
                failures.push(
                    Check::CallsRecorded,
                    format!("{} calls recorded, {scheduled} scheduled", report.calls),
                );
            }
        }
    }
    let failed = report.calls - report.calls_ok;
    if failed as f64 > options.max_failed_fraction * report.calls as f64 {
        failures.push(
            Check::FailedCalls,
            format!(
                "{failed} of {} calls failed (status other than {}); at most {:.0}% may",
                report.calls,
                CallStatus::Ok,
                options.max_failed_fraction * 100.0
            ),
        );
    }
    if let Some(expected) = &options.leaf_address
        && report.leaf_address.as_ref() != Some(expected)
    {
        failures.push(
            Check::Leaf,
            format!("leaf address {}, expected {expected}", report.leaf_address.as_deref().unwrap_or("-")),
        );
    }

    // What the collector and processing wrote.
    report.instance_events = db.count(INSTANCE_EVENTS_TABLE, "")?;
    report.container_samples = db.count(CONTAINER_SAMPLES_TABLE, "")?;
    report.worker_samples = db.count(WORKER_SAMPLES_TABLE, "")?;
    report.training_rows = db.count(TRAINING_DATA_TABLE, "")?;
    let empty: Vec<&str> = [
        (INSTANCE_EVENTS_TABLE, report.instance_events),
        (CONTAINER_SAMPLES_TABLE, report.container_samples),
        (WORKER_SAMPLES_TABLE, report.worker_samples),
        (TRAINING_DATA_TABLE, report.training_rows),
    ]
    .into_iter()
    .filter(|(_, n)| *n == 0)
    .map(|(table, _)| table)
    .collect();
    if !empty.is_empty() {
        failures.push(Check::Measured, format!("no {} rows: nothing was measured", empty.join(", ")));
    }

    let expected: BTreeSet<&str> = options.workers.iter().map(String::as_str).collect();
    for table in WORKER_TABLES.into_iter().filter(|t| has(t)) {
        let seen =
            db.strings(&format!("SELECT DISTINCT worker FROM {table} WHERE run_id = :run ORDER BY 1"))?;
        let unexpected: Vec<&String> = seen.iter().filter(|w| !expected.contains(w.as_str())).collect();
        if !expected.is_empty() && !unexpected.is_empty() {
            failures.push(
                Check::Workers,
                format!("{table} names {unexpected:?}, not a worker the collector followed ({expected:?})"),
            );
        }
        if table == WORKER_SAMPLES_TABLE {
            let silent: Vec<&&str> = expected.iter().filter(|w| !seen.iter().any(|s| s == **w)).collect();
            if !silent.is_empty() {
                failures.push(Check::Workers, format!("no {table} rows from {silent:?}"));
            }
        }
        report.workers.extend(seen);
    }

    // The run summary against the calls and the training rows.
    if !(has(RUN_SUMMARY_TABLE) && has(TRAINING_DATA_TABLE)) {
        not_run.extend([Check::Summary, Check::ImageRows]);
    } else {
        report.images = db.images()?;
        if report.images.is_empty() {
            failures.push(Check::Summary, format!("no {RUN_SUMMARY_TABLE} rows"));
        }
        for img in &report.images {
            let (tag, calls, ok, training) = (&img.image_tag, img.calls, img.calls_ok, img.training_rows);
            let (failed, other) = (img.dropped(DropReason::Failed), img.dropped_other_than_failed());
            if training + failed + other != calls {
                failures.push(
                    Check::Summary,
                    format!("{tag}: {training} rows + {failed} dropped as failed + {other} dropped otherwise != {calls} calls"),
                );
            }
            if training + other + img.function_errors != ok {
                failures.push(
                    Check::Summary,
                    format!(
                        "{tag}: {ok} OK calls but {training} rows + {other} dropped + {} function errors",
                        img.function_errors
                    ),
                );
            }
            if img.training_rows_in_table != training {
                failures.push(
                    Check::Summary,
                    format!(
                        "{tag}: {RUN_SUMMARY_TABLE} says {training} training rows, {TRAINING_DATA_TABLE} has {}",
                        img.training_rows_in_table
                    ),
                );
            }
            if img.training_rows_in_table == 0 {
                failures.push(Check::ImageRows, format!("{tag}: no training rows"));
            }
        }
        let summary_calls: i64 = report.images.iter().map(|i| i.calls).sum();
        if summary_calls != report.calls {
            failures.push(
                Check::Summary,
                format!(
                    "{RUN_SUMMARY_TABLE} counts {summary_calls} calls, {CALLS_TABLE} has {}",
                    report.calls
                ),
            );
        }
    }

    // Row by row; each query selects a description of every violating row.
    for (check, tables, sql) in row_checks() {
        if !tables.iter().all(|t| has(t)) {
            not_run.push(check);
            continue;
        }
        let (n, examples) = db.violations(&sql)?;
        if n > 0 {
            failures.push(check, format!("{n} rows, e.g. {examples:?}"));
        }
    }

    report.passed = Check::ALL
        .into_iter()
        .filter(|c| !failures.contains(*c) && !report.skipped.contains(c) && !not_run.contains(c))
        .collect();
    if failures.0.is_empty() {
        Ok(report)
    } else {
        Err(ProcessError::CheckFailed {
            path: path.to_owned(),
            run_id: run_id.to_owned(),
            failures,
            report: Box::new(report),
        })
    }
}

/// The row-level checks: the check, the tables it reads and a query selecting
/// one description per violating row. Parameters: `:run`, `:ok` (the OK
/// status), `:cores` and `:memory` (the host), `:quota_slack`, `:abs_slack`.
fn row_checks() -> Vec<(Check, Vec<&'static str>, String)> {
    /// Training rows whose bytes `column` is not in (0, the host's memory].
    fn bytes_outside_memory(column: &str) -> String {
        format!(
            "SELECT request_id || ' ' || {column} FROM {TRAINING_DATA_TABLE}
             WHERE run_id = :run AND ({column} <= 0 OR {column} > :memory)"
        )
    }

    let [_, instances, active, worker_cpu, worker_ram] = INPUTS;
    let [runtime, function_cpu, function_ram] = TARGETS;
    let t = TRAINING_DATA_TABLE;
    let nulls = TARGETS.map(|c| format!("{c} IS NULL")).join(" OR ");
    vec![
        (
            Check::RowIsOkCall,
            vec![t, CALLS_TABLE],
            format!(
                "SELECT t.request_id || ' ' || quote(c.status) FROM {t} t LEFT JOIN {CALLS_TABLE} c
                   ON c.run_id = t.run_id AND c.request_id = t.request_id
                 WHERE t.run_id = :run AND (c.status IS NULL OR c.status != :ok)"
            ),
        ),
        (Check::Targets, vec![t], format!("SELECT request_id FROM {t} WHERE run_id = :run AND ({nulls})")),
        (
            Check::ActiveCalls,
            vec![t],
            format!(
                "SELECT request_id || ' ' || quote({active}) FROM {t}
                 WHERE run_id = :run AND ({active} IS NULL OR {active} < 1)"
            ),
        ),
        (
            Check::Instances,
            vec![t],
            format!(
                "SELECT request_id || ' ' || quote({instances}) FROM {t}
                 WHERE run_id = :run AND ({instances} IS NULL OR {instances} < 1)"
            ),
        ),
        (
            Check::RuntimeWithinLatency,
            vec![t],
            format!(
                "SELECT request_id || ' ' || quote({runtime}) || ' ns > latency ' || quote(latency_ns) FROM {t}
                 WHERE run_id = :run AND (latency_ns IS NULL OR {runtime} > latency_ns OR {runtime} < 0)"
            ),
        ),
        (
            Check::FunctionCpu,
            vec![t, RUN_SUMMARY_TABLE],
            format!(
                "SELECT t.request_id || ' ' || t.image_tag || ' ' || t.{function_cpu} || ' cores, quota '
                   || quote(s.cpu_quota_cores) FROM {t} t JOIN {RUN_SUMMARY_TABLE} s
                   ON s.run_id = t.run_id AND s.image_tag = t.image_tag
                 WHERE t.run_id = :run AND (t.{function_cpu} < 0 OR (s.cpu_quota_cores IS NOT NULL
                   AND t.{function_cpu} > s.cpu_quota_cores * :quota_slack + :abs_slack))"
            ),
        ),
        (
            Check::FunctionRam,
            vec![t],
            bytes_outside_memory(function_ram),
        ),
        (
            Check::WorkerCpu,
            vec![t],
            format!(
                "SELECT request_id || ' ' || {worker_cpu} FROM {t}
                 WHERE run_id = :run AND ({worker_cpu} < 0 OR {worker_cpu} > :cores + :abs_slack)"
            ),
        ),
        (
            Check::WorkerRam,
            vec![t],
            bytes_outside_memory(worker_ram),
        ),
        (
            Check::WorkerSamples,
            vec![WORKER_SAMPLES_TABLE],
            // Before its first reading a worker sends no totals: NULL, never 0.
            format!(
                "SELECT worker || ' ' || quote(cpu_cores) || ' cores ' || quote(ram_bytes) || ' bytes'
                 FROM {WORKER_SAMPLES_TABLE}
                 WHERE run_id = :run AND (cpu_cores < 0 OR cpu_cores > :cores + :abs_slack
                   OR ram_bytes <= 0 OR ram_bytes > :memory)"
            ),
        ),
    ]
}

/// One run of an open database, and the values the checks' queries bind.
struct Db<'a> {
    conn: &'a Connection,
    run_id: &'a str,
    options: &'a CheckOptions,
}

impl Db<'_> {
    /// Prepares `sql` and binds those of the named parameters it uses.
    fn prepare(&self, sql: &str) -> Result<Statement<'_>> {
        let mut stmt = self.conn.prepare(sql).map_err(ProcessError::sql(format!("preparing {sql}")))?;
        let host = &self.options.host;
        let values: [(&str, &dyn ToSql); 6] = [
            (":run", &self.run_id),
            (":ok", &CallStatus::Ok),
            (":cores", &host.cores),
            (":memory", &host.memory_bytes),
            (":quota_slack", &CPU_QUOTA_SLACK),
            (":abs_slack", &CPU_ABS_SLACK),
        ];
        for (name, value) in values {
            let index = stmt.parameter_index(name).map_err(ProcessError::sql(format!("binding {name}")))?;
            if let Some(i) = index {
                stmt.raw_bind_parameter(i, value).map_err(ProcessError::sql(format!("binding {name}")))?;
            }
        }
        Ok(stmt)
    }

    /// Rows of the run in `table` matching `and` (0 when there is no such table).
    fn count(&self, table: &str, and: &str) -> Result<i64> {
        if !rundb::has_table(self.conn, table).map_err(ProcessError::sql("looking up tables"))? {
            return Ok(0);
        }
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE run_id = :run {and}");
        let mut stmt = self.prepare(&sql)?;
        let mut rows = stmt.raw_query();
        let row = rows.next().map_err(ProcessError::sql(format!("counting {table}")))?;
        row.map_or(Ok(0), |r| r.get(0)).map_err(ProcessError::sql(format!("counting {table}")))
    }

    fn optional_row<T>(
        &self,
        sql: &str,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>> {
        let mut stmt = self.prepare(sql)?;
        let mut rows = stmt.raw_query();
        let row = rows.next().map_err(ProcessError::sql(format!("running {sql}")))?;
        row.map(f).transpose().map_err(ProcessError::sql(format!("reading {sql}")))
    }

    /// The first column of every row, as text.
    fn strings(&self, sql: &str) -> Result<Vec<String>> {
        let mut stmt = self.prepare(sql)?;
        stmt.raw_query()
            .mapped(|r| r.get::<_, Option<String>>(0).map(Option::unwrap_or_default))
            .collect::<rusqlite::Result<_>>()
            .map_err(ProcessError::sql(format!("running {sql}")))
    }

    /// How many rows `sql` selects, and the first few.
    fn violations(&self, sql: &str) -> Result<(usize, Vec<String>)> {
        let mut stmt = self.prepare(sql)?;
        let mut rows = stmt.raw_query();
        let (mut n, mut examples) = (0, Vec::new());
        while let Some(row) = rows.next().map_err(ProcessError::sql(format!("running {sql}")))? {
            if examples.len() < EXAMPLES {
                let text: Option<String> = row.get(0).map_err(ProcessError::sql(format!("reading {sql}")))?;
                examples.push(text.unwrap_or_else(|| "NULL".into()));
            }
            n += 1;
        }
        Ok((n, examples))
    }

    /// The run's `run_summary` rows with their `training_data` counts.
    fn images(&self) -> Result<Vec<ImageReport>> {
        let dropped: Vec<String> =
            DropReason::ALL.iter().map(|r| format!("s.dropped_{}", r.as_str())).collect();
        let sql = format!(
            "SELECT s.image_tag, s.calls, s.calls_ok, s.calls_by_status_json, s.function_errors, s.training_rows,
                    s.cpu_quota_cores,
                    (SELECT COUNT(*) FROM {t} t WHERE t.run_id = s.run_id AND t.image_tag = s.image_tag),
                    (SELECT MAX(t.{cpu}) FROM {t} t WHERE t.run_id = s.run_id AND t.image_tag = s.image_tag),
                    {dropped}
             FROM {RUN_SUMMARY_TABLE} s WHERE s.run_id = :run ORDER BY s.image_tag",
            t = TRAINING_DATA_TABLE,
            cpu = TARGETS[1],
            dropped = dropped.join(", "),
        );
        let mut stmt = self.prepare(&sql)?;
        stmt.raw_query()
            .mapped(|r| {
                let mut dropped = Vec::with_capacity(DropReason::ALL.len());
                for (i, reason) in DropReason::ALL.into_iter().enumerate() {
                    dropped.push((reason, r.get(9 + i)?));
                }
                Ok(ImageReport {
                    image_tag: r.get(0)?,
                    calls: r.get(1)?,
                    calls_ok: r.get(2)?,
                    calls_by_status_json: r.get(3)?,
                    function_errors: r.get(4)?,
                    training_rows: r.get(5)?,
                    cpu_quota_cores: r.get(6)?,
                    training_rows_in_table: r.get(7)?,
                    max_function_cpu: r.get(8)?,
                    dropped,
                })
            })
            .collect::<rusqlite::Result<_>>()
            .map_err(ProcessError::sql(format!("reading {RUN_SUMMARY_TABLE}")))
    }
}

impl fmt::Debug for Db<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db").field("run_id", &self.run_id).finish_non_exhaustive()
    }
}
