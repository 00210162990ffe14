//! Reading one run's raw tables (loadgen's `calls` and `functions`, the
//! collector's `instance_events`, `container_samples`, `worker_samples` and
//! `collector_sessions`) into column vectors; [`crate::frame`] turns them into rows.
//!
//! A collector table that does not exist reads as empty: every feature that
//! needs it is then NULL, which the run summary shows.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use hyperfake_core::FunctionConfig;
use hyperfake_core::payload::PayloadFeatures;
use indicatif::ProgressBar;
use rusqlite::{Connection, Row};

use crate::error::{ProcessError, Result};

/// One run's `calls` rows, as columns (all the same length), ordered by `call_index`.
#[derive(Debug, Default, Clone)]
pub struct Calls {
    pub call_index: Vec<i64>,
    pub request_id: Vec<String>,
    pub image_tag: Vec<String>,
    pub status: Vec<String>,
    pub function_error: Vec<Option<String>>,
    pub request_bytes: Vec<i64>,
    /// Client clock.
    pub scheduled_ns: Vec<i64>,
    /// Client clock.
    pub sent_ns: Vec<Option<i64>>,
    pub latency_ns: Vec<Option<i64>>,
    pub bfs_size: Vec<Option<i64>>,
    pub thumb_width: Vec<Option<i64>>,
    pub thumb_height: Vec<Option<i64>>,
    pub instance_id: Vec<Option<String>>,
    /// Leaf clock.
    pub leaf_got_request_ns: Vec<Option<i64>>,
    /// Leaf clock.
    pub leaf_scheduled_call_ns: Vec<Option<i64>>,
    /// Worker clock.
    pub call_queued_ns: Vec<Option<i64>>,
    /// Worker clock.
    pub call_started_ns: Vec<Option<i64>>,
    /// Worker clock.
    pub got_response_ns: Vec<Option<i64>>,
    /// Worker-measured.
    pub function_processing_time_ns: Vec<Option<i64>>,
    /// Function-measured (the runtime target).
    pub function_handler_time_ns: Vec<Option<i64>>,
    /// Bytes of the response payload; NULL when there was no response.
    pub response_bytes: Vec<Option<i64>>,
    /// The call's payload feature values, in the declaration order of its
    /// image (`calls.payload_features` parsed; `None` for NULL, for a run
    /// database from before features, or for a value that is not a number).
    pub payload_features: Vec<Option<Vec<Option<f64>>>>,
}

impl Calls {
    pub fn len(&self) -> usize {
        self.call_index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.call_index.is_empty()
    }
}

/// The collector's `instance_events` rows (worker clock).
#[derive(Debug, Default, Clone)]
pub struct InstanceEvents {
    pub worker: Vec<String>,
    pub instance_id: Vec<String>,
    /// START | STOP | TIMEOUT | DOWN | CALL | RESPONSE.
    pub event: Vec<String>,
    /// `FAILED` marks a START that did not produce a live instance.
    pub status: Vec<Option<String>>,
    pub timestamp_ns: Vec<i64>,
    pub function_id: Vec<Option<String>>,
    /// Successful START: ns from the worker accepting `Start` to the instance
    /// being ready. NULL otherwise, and in databases from before the column.
    pub start_duration_ns: Vec<Option<i64>>,
}

/// The collector's `container_samples` rows (worker clock).
#[derive(Debug, Default, Clone)]
pub struct ContainerSamples {
    pub instance_id: Vec<String>,
    pub timestamp_ns: Vec<i64>,
    /// Cumulative cgroup CPU time, ns.
    pub cpu_usage_ns: Vec<Option<i64>>,
    pub memory_bytes: Vec<Option<i64>>,
}

/// The collector's `worker_samples` rows (worker clock).
#[derive(Debug, Default, Clone)]
pub struct WorkerSamples {
    pub worker: Vec<String>,
    /// End of the sample interval.
    pub timestamp_ns: Vec<i64>,
    /// Cores busy over the interval ending at `timestamp_ns`.
    pub cpu_cores: Vec<Option<f64>>,
    pub ram_bytes: Vec<Option<i64>>,
}

/// Everything one run's processing reads.
#[derive(Debug, Default, Clone)]
pub struct RawRun {
    pub run_id: String,
    pub calls: Calls,
    pub events: InstanceEvents,
    pub container_samples: ContainerSamples,
    pub worker_samples: WorkerSamples,
    /// The collector's sampling interval (largest over the run's sessions), if known.
    pub sample_interval_ns: Option<i64>,
    /// `functions.config_json` per image tag (as loadgen wrote it).
    pub function_configs: HashMap<String, FunctionConfig>,
    /// `functions.payload_features` per image tag: the features each image
    /// declared (absent: none, or a database from before features).
    pub payload_features: BTreeMap<String, PayloadFeatures>,
    /// `functions.function_id` → image tag (every copy).
    pub function_images: HashMap<String, String>,
    /// Collector tables that were missing from the file (their features are NULL).
    pub missing_tables: Vec<&'static str>,
}

/// Opens a run database for reading: read-only, and not trusting the file's
/// schema ([`rundb::open_untrusted`]). WAL lets loadgen and the collector keep
/// writing while it is read.
pub fn open_read(path: &Path) -> Result<Connection> {
    rundb::open_untrusted(path).map_err(|source| ProcessError::Open { path: path.to_owned(), source })
}

/// Whether `table` has `column` (older run databases lack the newer ones).
pub(crate) fn column_exists(conn: &Connection, table: &str, column: &str) -> Result<bool> {
    rundb::has_column(conn, table, column)
        .map_err(ProcessError::sql(format!("looking up the columns of {table}")))
}

pub(crate) fn table_exists(conn: &Connection, table: &str) -> Result<bool> {
    rundb::has_table(conn, table).map_err(ProcessError::sql("looking up tables"))
}

/// Every run in the file: `runs` rows and any `run_id` that has calls.
pub fn run_ids(conn: &Connection, path: &Path) -> Result<Vec<String>> {
    if !table_exists(conn, "calls")? {
        return Err(ProcessError::NoRuns { path: path.to_owned() });
    }
    let sql = if table_exists(conn, "runs")? {
        "SELECT run_id FROM runs UNION SELECT DISTINCT run_id FROM calls ORDER BY 1"
    } else {
        "SELECT DISTINCT run_id FROM calls ORDER BY 1"
    };
    let mut stmt = conn.prepare(sql).map_err(ProcessError::sql("listing runs"))?;
    let ids = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(ProcessError::sql("listing runs"))?;
    if ids.is_empty() {
        return Err(ProcessError::NoRuns { path: path.to_owned() });
    }
    Ok(ids)
}

/// Reads one run. `progress` counts rows.
pub fn read_run(conn: &Connection, run_id: &str, progress: &ProgressBar) -> Result<RawRun> {
    let mut run = RawRun { run_id: run_id.to_owned(), ..RawRun::default() };
    let total = count(conn, "calls", run_id)?
        + count(conn, "instance_events", run_id)?
        + count(conn, "container_samples", run_id)?
        + count(conn, "worker_samples", run_id)?;
    progress.set_length(progress.length().unwrap_or(0) + total);

    run.calls = read_calls(conn, run_id, progress)?;
    for table in ["instance_events", "container_samples", "worker_samples"] {
        if !table_exists(conn, table)? {
            tracing::warn!(table, run_id, "collector table missing: its features will be NULL");
            run.missing_tables.push(table);
        }
    }
    if table_exists(conn, "instance_events")? {
        run.events = read_events(conn, run_id, progress)?;
    }
    if table_exists(conn, "container_samples")? {
        run.container_samples = read_container_samples(conn, run_id, progress)?;
    }
    if table_exists(conn, "worker_samples")? {
        run.worker_samples = read_worker_samples(conn, run_id, progress)?;
    }
    if table_exists(conn, "collector_sessions")? {
        run.sample_interval_ns = conn
            .query_row("SELECT MAX(interval_ms) FROM collector_sessions WHERE run_id = ?1", [run_id], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .map_err(ProcessError::sql("reading collector_sessions"))?
            .filter(|ms| *ms > 0)
            .map(|ms| ms.saturating_mul(1_000_000));
    }
    if table_exists(conn, "functions")? {
        run.function_configs = read_function_configs(conn, run_id)?;
        run.function_images = read_function_images(conn, run_id)?;
        if column_exists(conn, "functions", "payload_features")? {
            run.payload_features = read_payload_features(conn, run_id)?;
        }
    }
    Ok(run)
}

fn count(conn: &Connection, table: &str, run_id: &str) -> Result<u64> {
    if !table_exists(conn, table)? {
        return Ok(0);
    }
    conn.query_row(&format!("SELECT COUNT(*) FROM {table} WHERE run_id = ?1"), [run_id], |r| {
        r.get::<_, i64>(0)
    })
    .map(i64::unsigned_abs)
    .map_err(ProcessError::sql(format!("counting {table}")))
}

/// Runs `sql` (one `?1` = run id) and hands every row to `push`.
fn each_row(
    conn: &Connection,
    what: &str,
    sql: &str,
    run_id: &str,
    progress: &ProgressBar,
    mut push: impl FnMut(&Row<'_>) -> rusqlite::Result<()>,
) -> Result<()> {
    let err = || ProcessError::sql(format!("reading {what}"));
    let mut stmt = conn.prepare(sql).map_err(err())?;
    let mut rows = stmt.query([run_id]).map_err(err())?;
    let mut n = 0u64;
    while let Some(row) = rows.next().map_err(err())? {
        push(row).map_err(err())?;
        n += 1;
        if n % 8192 == 0 {
            progress.inc(8192);
        }
    }
    progress.inc(n % 8192);
    Ok(())
}

fn read_calls(conn: &Connection, run_id: &str, progress: &ProgressBar) -> Result<Calls> {
    let mut c = Calls::default();
    // A run database from before payload features has no such column: NULL.
    let features =
        if column_exists(conn, "calls", "payload_features")? { "payload_features" } else { "NULL" };
    // Warm-up calls (loadgen's `warmup:`) make no training rows and stay out
    // of the summaries: they are not read at all.
    let measured = if column_exists(conn, "calls", "warmup")? { "AND warmup = 0" } else { "" };
    let sql = format!(
        "SELECT call_index, request_id, image_tag, status, function_error, request_bytes, scheduled_ns,
                sent_ns, latency_ns, bfs_size, thumb_width, thumb_height, instance_id, leaf_got_request_ns,
                leaf_scheduled_call_ns, call_queued_ns, call_started_ns, got_response_ns,
                function_processing_time_ns, function_handler_time_ns, response_bytes, {features}
         FROM calls WHERE run_id = ?1 {measured} ORDER BY call_index"
    );
    each_row(conn, "calls", &sql, run_id, progress, |r| {
        c.call_index.push(r.get(0)?);
        c.request_id.push(r.get(1)?);
        c.image_tag.push(r.get(2)?);
        c.status.push(r.get(3)?);
        c.function_error.push(r.get(4)?);
        c.request_bytes.push(r.get(5)?);
        c.scheduled_ns.push(r.get(6)?);
        c.sent_ns.push(r.get(7)?);
        c.latency_ns.push(r.get(8)?);
        c.bfs_size.push(r.get(9)?);
        c.thumb_width.push(r.get(10)?);
        c.thumb_height.push(r.get(11)?);
        // An empty instance id (a response without one) is no instance.
        c.instance_id.push(r.get::<_, Option<String>>(12)?.filter(|s| !s.is_empty()));
        c.leaf_got_request_ns.push(r.get(13)?);
        c.leaf_scheduled_call_ns.push(r.get(14)?);
        c.call_queued_ns.push(r.get(15)?);
        c.call_started_ns.push(r.get(16)?);
        c.got_response_ns.push(r.get(17)?);
        c.function_processing_time_ns.push(r.get(18)?);
        c.function_handler_time_ns.push(r.get(19)?);
        c.response_bytes.push(r.get(20)?);
        c.payload_features.push(r.get::<_, Option<String>>(21)?.as_deref().map(parse_feature_values));
        Ok(())
    })?;
    Ok(c)
}

fn read_events(conn: &Connection, run_id: &str, progress: &ProgressBar) -> Result<InstanceEvents> {
    let mut e = InstanceEvents::default();
    let duration = if column_exists(conn, "instance_events", "start_duration_ns")? {
        "start_duration_ns"
    } else {
        "NULL"
    };
    let sql = format!(
        "SELECT worker, instance_id, event, status, timestamp_ns, function_id, {duration} FROM instance_events
         WHERE run_id = ?1 AND timestamp_ns IS NOT NULL AND instance_id IS NOT NULL ORDER BY timestamp_ns"
    );
    each_row(conn, "instance_events", &sql, run_id, progress, |r| {
        e.worker.push(r.get(0)?);
        e.instance_id.push(r.get(1)?);
        e.event.push(r.get(2)?);
        e.status.push(r.get(3)?);
        e.timestamp_ns.push(r.get(4)?);
        e.function_id.push(r.get(5)?);
        e.start_duration_ns.push(r.get(6)?);
        Ok(())
    })?;
    Ok(e)
}

fn read_container_samples(
    conn: &Connection,
    run_id: &str,
    progress: &ProgressBar,
) -> Result<ContainerSamples> {
    let mut s = ContainerSamples::default();
    let sql = "SELECT instance_id, timestamp_ns, cpu_usage_ns, memory_bytes FROM container_samples
               WHERE run_id = ?1 AND timestamp_ns IS NOT NULL AND instance_id IS NOT NULL
               ORDER BY instance_id, timestamp_ns";
    each_row(conn, "container_samples", sql, run_id, progress, |r| {
        s.instance_id.push(r.get(0)?);
        s.timestamp_ns.push(r.get(1)?);
        s.cpu_usage_ns.push(r.get(2)?);
        s.memory_bytes.push(r.get(3)?);
        Ok(())
    })?;
    Ok(s)
}

fn read_worker_samples(conn: &Connection, run_id: &str, progress: &ProgressBar) -> Result<WorkerSamples> {
    let mut s = WorkerSamples::default();
    let sql = "SELECT worker, timestamp_ns, cpu_cores, ram_bytes FROM worker_samples
               WHERE run_id = ?1 AND timestamp_ns IS NOT NULL AND worker IS NOT NULL ORDER BY timestamp_ns";
    each_row(conn, "worker_samples", sql, run_id, progress, |r| {
        let cores: Option<f64> = r.get(2)?;
        let ram: Option<i64> = r.get(3)?;
        // A worker's first interval, before its host monitor has a reading,
        // is sent as 0 cores and 0 bytes: no host runs on 0 bytes, so missing.
        let unread = ram == Some(0) && cores.is_none_or(|c| c == 0.0);
        s.worker.push(r.get(0)?);
        s.timestamp_ns.push(r.get(1)?);
        s.cpu_cores.push(if unread { None } else { cores });
        s.ram_bytes.push(if unread { None } else { ram });
        Ok(())
    })?;
    Ok(s)
}

fn read_function_configs(conn: &Connection, run_id: &str) -> Result<HashMap<String, FunctionConfig>> {
    let mut stmt = conn
        .prepare("SELECT image_tag, config_json FROM functions WHERE run_id = ?1")
        .map_err(ProcessError::sql("reading functions"))?;
    let rows = stmt
        .query_map([run_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(ProcessError::sql("reading functions"))?;
    let mut configs = HashMap::new();
    for (image, json) in rows {
        match serde_json::from_str::<FunctionConfig>(&json) {
            Ok(config) => {
                configs.insert(image, config);
            }
            // Only used for the summary's quota column: not worth failing over.
            Err(e) => tracing::warn!(image, error = %e, "unreadable functions.config_json"),
        }
    }
    Ok(configs)
}

/// `calls.payload_features` as numbers: an element that is not a number
/// (JSON `null`) is `None`; text that is not a JSON array is no values at all
/// (every feature of the call NULL), with a warning.
fn parse_feature_values(json: &str) -> Vec<Option<f64>> {
    match serde_json::from_str::<Vec<serde_json::Value>>(json) {
        Ok(values) => values.iter().map(|v| v.as_f64().filter(|x| x.is_finite())).collect(),
        Err(e) => {
            tracing::warn!(value = json, error = %e, "calls.payload_features is not a JSON array; its features are NULL");
            Vec::new()
        }
    }
}

fn read_function_images(conn: &Connection, run_id: &str) -> Result<HashMap<String, String>> {
    let mut stmt = conn
        .prepare("SELECT function_id, image_tag FROM functions WHERE run_id = ?1")
        .map_err(ProcessError::sql("reading functions"))?;
    stmt.query_map([run_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .and_then(|rows| rows.collect::<rusqlite::Result<HashMap<_, _>>>())
        .map_err(ProcessError::sql("reading functions"))
}

/// Each image's declared payload features. A declaration that does not parse
/// is an error naming the image: its columns would otherwise silently vanish.
fn read_payload_features(conn: &Connection, run_id: &str) -> Result<BTreeMap<String, PayloadFeatures>> {
    let mut stmt = conn
        .prepare(
            "SELECT image_tag, payload_features FROM functions
             WHERE run_id = ?1 AND payload_features IS NOT NULL ORDER BY image_tag, copy",
        )
        .map_err(ProcessError::sql("reading functions.payload_features"))?;
    let rows = stmt
        .query_map([run_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(ProcessError::sql("reading functions.payload_features"))?;
    let mut out = BTreeMap::new();
    for (image, json) in rows {
        let features: PayloadFeatures =
            serde_json::from_str(&json).map_err(|e| ProcessError::PayloadFeatures {
                run_id: run_id.to_owned(),
                image_tag: image.clone(),
                reason: e.to_string(),
            })?;
        // Every copy of an image declares the same features (one workload entry).
        if !features.is_empty() {
            out.entry(image).or_insert(features);
        }
    }
    Ok(out)
}
