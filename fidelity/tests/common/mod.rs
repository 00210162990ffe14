//! Run databases for the tests, written with loadgen's own schema
//! (`loadgen::record::SCHEMA`): a `runs` row and `calls` rows, with or
//! without the leaf and worker timings.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};

pub(crate) const ECHO: &str = "hyperfaas-echo:latest";

/// One successful call built from its latency parts (ns), in the order of
/// `fidelity::Part::ALL`: leaf, leaf→worker, worker queue, worker overhead,
/// handler, rest (client→leaf plus the return path).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Parts(pub(crate) [i64; 6]);

impl Parts {
    pub(crate) fn latency(&self) -> i64 {
        self.0.iter().sum()
    }
}

pub(crate) struct RunDb {
    pub(crate) path: PathBuf,
    run_id: String,
    conn: Connection,
    index: i64,
}

impl RunDb {
    /// A database at `dir/name` with one completed run `run_id`, 10 s long.
    pub(crate) fn create(dir: &Path, name: &str, run_id: &str, seed: i64) -> RunDb {
        let path = dir.join(name);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(loadgen::record::SCHEMA).unwrap();
        conn.execute(
            "INSERT INTO runs (run_id, started_at_ns, finished_at_ns, status, seed, leaf_address, config_yaml, \
             resolved_schedule_json, calls_scheduled, loadgen_version) \
             VALUES (?1, 0, 10000000000, 'completed', ?2, 'x', 'cfg', '{}', 0, 't')",
            params![run_id, seed],
        )
        .unwrap();
        RunDb { path, run_id: run_id.into(), conn, index: 0 }
    }

    /// A call with only client-side numbers and the handler time (no leaf or worker timestamps).
    pub(crate) fn call(
        &mut self,
        image: &str,
        status: &str,
        latency_ns: Option<i64>,
        handler_ns: Option<i64>,
        instance: &str,
    ) {
        self.conn
            .execute(
                "INSERT INTO calls (run_id, call_index, request_id, image_tag, function_id, phase, scheduled_ns, \
                 sent_ns, latency_ns, status, request_bytes, instance_id, function_handler_time_ns, trailers_json) \
                 VALUES (?1, ?2, ?3, ?4, 'f', 'p', 0, 0, ?5, ?6, 1, ?7, ?8, '{}')",
                params![self.run_id, self.index, format!("r{}", self.index), image, latency_ns, status, instance, handler_ns],
            )
            .unwrap();
        self.index += 1;
    }

    /// A successful call with every timing, laid out so its parts are `parts`:
    /// the client→leaf hop takes half of the rest, the return path the other half.
    /// `worker_clock_offset_ns` is added to every worker timestamp (a worker on
    /// another host whose clock runs ahead).
    pub(crate) fn timed_call(&mut self, image: &str, parts: Parts, worker_clock_offset_ns: i64) {
        let [leaf, hop, queue, overhead, handler, rest] = parts.0;
        let sent = 1_000_000_000 + self.index * 10_000_000;
        let leaf_got = sent + rest / 2;
        let leaf_scheduled = leaf_got + leaf;
        let queued = leaf_scheduled + hop + worker_clock_offset_ns;
        let started = queued + queue;
        let processing = overhead + handler;
        let got_response = started + processing;
        self.conn
            .execute(
                "INSERT INTO calls (run_id, call_index, request_id, image_tag, function_id, phase, scheduled_ns, \
                 sent_ns, latency_ns, status, request_bytes, instance_id, leaf_got_request_ns, \
                 leaf_scheduled_call_ns, call_queued_ns, call_started_ns, got_response_ns, \
                 function_processing_time_ns, function_handler_time_ns, trailers_json) \
                 VALUES (?1, ?2, ?3, ?4, 'f', 'p', ?5, ?5, ?6, 'OK', 1, 'i', ?7, ?8, ?9, ?10, ?11, ?12, ?13, '{}')",
                params![
                    self.run_id,
                    self.index,
                    format!("r{}", self.index),
                    image,
                    sent,
                    parts.latency(),
                    leaf_got,
                    leaf_scheduled,
                    queued,
                    started,
                    got_response,
                    processing,
                    handler
                ],
            )
            .unwrap();
        self.index += 1;
    }
}

/// Milliseconds as ns.
#[allow(clippy::cast_possible_truncation)]
pub(crate) fn ms(v: f64) -> i64 {
    (v * 1e6).round() as i64
}
