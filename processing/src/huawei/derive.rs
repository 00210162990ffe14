//! The inputs the trace has no column for, derived per function from its
//! own requests (`docs/units.md`, "Huawei 2025 per-request data"): the
//! function's pods stand for hyperfake's worker.
//!
//! Rows are swept in (function, start) order, which SQLite sorts on disk, so
//! memory holds only one function's requests in flight and live pods.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use indicatif::ProgressBar;
use rusqlite::{Connection, params};

use super::error::ImportError;

/// Rows updated per transaction.
const BATCH: usize = 50_000;

/// What the sweep needs of one imported row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Call {
    pub(crate) rowid: i64,
    pub(crate) started_ns: i64,
    pub(crate) ended_ns: i64,
    pub(crate) pod: String,
    pub(crate) cpu_cores: f64,
    pub(crate) ram_bytes: i64,
}

/// The derived inputs of one row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Derived {
    pub(crate) rowid: i64,
    /// Pods of the function live at the start (this one included).
    pub(crate) instances: i64,
    /// Requests of the function in flight at the start (this one included).
    pub(crate) active: i64,
    /// `cpu_usage` summed over the other requests in flight, cores.
    pub(crate) worker_cpu: f64,
    /// `memory_usage` summed over the other requests in flight, bytes.
    pub(crate) worker_ram: i64,
}

/// The sweep over one function at a time.
#[derive(Debug)]
pub(crate) struct Sweep {
    keep_alive_ns: i64,
    image: Option<String>,
    /// Requests with the same start, not yet placed.
    group: Vec<Call>,
    /// Requests started so far, by end: (end, CPU in nanocores, RAM).
    in_flight: BinaryHeap<Reverse<(i64, i64, i64)>>,
    cpu_nanocores: i64,
    ram_bytes: i64,
    /// Live pods and when each expires (last end + keep-alive).
    pods: HashMap<String, i64>,
    /// (expiry, pod), stale entries skipped when popped.
    expiries: BinaryHeap<Reverse<(i64, String)>>,
}

impl Sweep {
    pub(crate) fn new(keep_alive_ns: i64) -> Sweep {
        Sweep {
            keep_alive_ns,
            image: None,
            group: Vec::new(),
            in_flight: BinaryHeap::new(),
            cpu_nanocores: 0,
            ram_bytes: 0,
            pods: HashMap::new(),
            expiries: BinaryHeap::new(),
        }
    }

    /// Feeds the next row, in (image, start) order; rows whose values are
    /// final go to `out`.
    pub(crate) fn push(&mut self, image: &str, call: Call, out: &mut Vec<Derived>) {
        if self.image.as_deref() != Some(image) {
            self.flush(out);
            *self = Sweep { image: Some(image.to_owned()), ..Sweep::new(self.keep_alive_ns) };
        } else if self.group.first().is_some_and(|g| g.started_ns != call.started_ns) {
            self.flush(out);
        }
        self.group.push(call);
    }

    /// Places the rows still held.
    pub(crate) fn finish(&mut self, out: &mut Vec<Derived>) {
        self.flush(out);
    }

    /// Places the group starting at `s`: hyperfake counts the calls whose
    /// closed interval contains `s` (`#(starts ≤ s) − #(ends < s)`), so
    /// calls starting together count each other.
    fn flush(&mut self, out: &mut Vec<Derived>) {
        let Some(s) = self.group.first().map(|c| c.started_ns) else { return };
        while let Some(Reverse((end, cpu, ram))) = self.in_flight.peek().copied()
            && end < s
        {
            self.in_flight.pop();
            self.cpu_nanocores = self.cpu_nanocores.saturating_sub(cpu);
            self.ram_bytes = self.ram_bytes.saturating_sub(ram);
        }
        while let Some(Reverse((expiry, _))) = self.expiries.peek()
            && *expiry < s
        {
            let Some(Reverse((expiry, pod))) = self.expiries.pop() else { break };
            if self.pods.get(&pod) == Some(&expiry) {
                self.pods.remove(&pod);
            }
        }
        for c in &self.group {
            self.in_flight.push(Reverse((c.ended_ns, nanocores(c.cpu_cores), c.ram_bytes)));
            self.cpu_nanocores = self.cpu_nanocores.saturating_add(nanocores(c.cpu_cores));
            self.ram_bytes = self.ram_bytes.saturating_add(c.ram_bytes);
            let expiry = c.ended_ns.saturating_add(self.keep_alive_ns);
            let known = self.pods.entry(c.pod.clone()).or_insert(i64::MIN);
            if expiry > *known {
                *known = expiry;
                self.expiries.push(Reverse((expiry, c.pod.clone())));
            }
        }
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        for c in self.group.drain(..) {
            #[allow(clippy::cast_precision_loss)]
            let others = self.cpu_nanocores.saturating_sub(nanocores(c.cpu_cores)) as f64 / 1e9;
            out.push(Derived {
                rowid: c.rowid,
                instances: count(self.pods.len()),
                active: count(self.in_flight.len()),
                worker_cpu: others,
                worker_ram: self.ram_bytes.saturating_sub(c.ram_bytes),
            });
        }
    }
}

/// Cores as an integer count of nanocores, so that sums taken and given
/// back are exact. The rows were checked finite and non-negative; a huge
/// value saturates (at 9·10⁶ cores, leaving room to add many).
#[allow(clippy::cast_possible_truncation)]
fn nanocores(cores: f64) -> i64 {
    const MAX: i64 = 9_000_000_000_000_000;
    let n = (cores * 1e9).round();
    if n >= MAX as f64 { MAX } else { n as i64 }
}

/// Sweeps the run's rows (read through a second, read-only connection on
/// `path`, whose snapshot the updates do not disturb) and writes the four
/// derived inputs. Returns the number of functions.
pub(crate) fn apply(
    path: &std::path::Path,
    conn: &mut Connection,
    run_id: &str,
    keep_alive_ns: i64,
    progress: &ProgressBar,
) -> Result<u64, ImportError> {
    let reader =
        rundb::open_untrusted(path).map_err(ImportError::sql("opening the imported rows to read"))?;
    let total: i64 = reader
        .query_row("SELECT COUNT(*) FROM training_data WHERE run_id = ?1", [run_id], |r| r.get(0))
        .map_err(ImportError::sql("counting the imported rows"))?;
    progress.set_length(total.unsigned_abs());
    let mut stmt = reader
        .prepare(
            "SELECT rowid, image_tag, call_started_ns,
                    COALESCE(got_response_ns, call_started_ns + function_processing_time_ns),
                    instance_id, function_cpu_usage, function_ram_usage
             FROM training_data WHERE run_id = ?1
             ORDER BY image_tag, call_started_ns, rowid",
        )
        .map_err(ImportError::sql("sorting the imported rows"))?;
    let mut rows = stmt.query([run_id]).map_err(ImportError::sql("sorting the imported rows"))?;
    let mut sweep = Sweep::new(keep_alive_ns);
    let mut done = Vec::with_capacity(BATCH);
    let mut functions = 0u64;
    let mut image = String::new();
    loop {
        let row = rows.next().map_err(ImportError::sql("reading the imported rows"))?;
        let Some(row) = row else { break };
        let get = |row: &rusqlite::Row<'_>| -> rusqlite::Result<(String, Call)> {
            Ok((
                row.get(1)?,
                Call {
                    rowid: row.get(0)?,
                    started_ns: row.get(2)?,
                    ended_ns: row.get(3)?,
                    pod: row.get(4)?,
                    cpu_cores: row.get(5)?,
                    ram_bytes: row.get(6)?,
                },
            ))
        };
        let (tag, call) = get(row).map_err(ImportError::sql("reading the imported rows"))?;
        if tag != image {
            functions += 1;
            image = tag;
        }
        sweep.push(&image, call, &mut done);
        if done.len() >= BATCH {
            update(conn, &done)?;
            progress.inc(done.len() as u64);
            done.clear();
        }
    }
    sweep.finish(&mut done);
    update(conn, &done)?;
    progress.inc(done.len() as u64);
    Ok(functions)
}

fn update(conn: &mut Connection, rows: &[Derived]) -> Result<(), ImportError> {
    let err = || ImportError::sql("writing the derived inputs");
    let tx = conn.transaction().map_err(err())?;
    {
        let mut stmt = tx
            .prepare_cached(
                "UPDATE training_data SET function_instances_count = ?2, active_function_calls_count = ?3,
                     worker_cpu_usage = ?4, worker_ram_usage = ?5
                 WHERE rowid = ?1",
            )
            .map_err(err())?;
        for d in rows {
            stmt.execute(params![d.rowid, d.instances, d.active, d.worker_cpu, d.worker_ram])
                .map_err(err())?;
        }
    }
    tx.commit().map_err(err())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(rowid: i64, started_ns: i64, ended_ns: i64, pod: &str, cpu_cores: f64) -> Call {
        Call { rowid, started_ns, ended_ns, pod: pod.into(), cpu_cores, ram_bytes: 1000 * rowid }
    }

    fn sweep(keep_alive_ns: i64, calls: Vec<(&str, Call)>) -> Vec<Derived> {
        let mut s = Sweep::new(keep_alive_ns);
        let mut out = vec![];
        for (image, c) in calls {
            s.push(image, c, &mut out);
        }
        s.finish(&mut out);
        out
    }

    #[test]
    fn counts_calls_in_flight_and_live_pods_of_each_function() {
        let out = sweep(
            50,
            vec![
                ("a", call(1, 0, 100, "p1", 0.5)),
                // Starts together with 3: they count each other.
                ("a", call(2, 10, 30, "p2", 0.25)),
                ("a", call(3, 10, 120, "p1", 0.125)),
                // 1 ended at 100 (closed interval: still counts at 100), 2 at 30.
                ("a", call(4, 100, 110, "p1", 1.0)),
                // p2 expired at 30 + 50 < 200; p1 lives until 120 + 50 = 170 < 200.
                ("a", call(5, 200, 210, "p3", 1.0)),
                // Another function starts afresh.
                ("b", call(6, 10, 20, "p1", 1.0)),
            ],
        );
        let got: Vec<(i64, i64, i64, f64, i64)> =
            out.iter().map(|d| (d.rowid, d.instances, d.active, d.worker_cpu, d.worker_ram)).collect();
        assert_eq!(
            got,
            [
                (1, 1, 1, 0.0, 0),
                (2, 2, 3, 0.625, 4000),
                (3, 2, 3, 0.75, 3000),
                // p2 expired at 30 + 50 < 100.
                (4, 1, 3, 0.625, 4000),
                (5, 1, 1, 0.0, 0),
                (6, 1, 1, 0.0, 0),
            ]
        );
    }
}
