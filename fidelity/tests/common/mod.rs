//! Run databases for the tests, written through the run database's own
//! tables and inserts (`rundb::fixtures::RawDb`): a `runs` row and `calls`
//! rows, with or without the leaf and worker timings.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rundb::calls::{CallRow, RunRow};
use rundb::fixtures::RawDb;

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
    raw: RawDb,
    index: i64,
}

impl RunDb {
    /// A database at `dir/name` with one completed run `run_id`, 10 s long.
    pub(crate) fn create(dir: &Path, name: &str, run_id: &str, seed: i64) -> RunDb {
        let path = dir.join(name);
        let run = RunRow {
            run_id: run_id.into(),
            started_at_ns: 0,
            seed: u64::try_from(seed).unwrap(),
            leaf_address: "x".into(),
            config_path: None,
            config_yaml: "cfg".into(),
            resolved_schedule_json: "{}".into(),
            calls_scheduled: 0,
            loadgen_version: "t".into(),
        };
        let raw = RawDb::create_run(&path, &run, 10_000_000_000).unwrap();
        RunDb { path, raw, index: 0 }
    }

    fn insert(&mut self, row: CallRow) {
        self.raw
            .calls(&[CallRow { call_index: self.index, request_id: format!("r{}", self.index), ..row }])
            .unwrap();
        self.index += 1;
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
        self.insert(CallRow {
            image_tag: image.into(),
            function_id: "f".into(),
            phase: "p".into(),
            sent_ns: Some(0),
            latency_ns,
            status: status.parse().unwrap(),
            request_bytes: 1,
            instance_id: Some(instance.into()),
            function_handler_time_ns: handler_ns,
            ..CallRow::default()
        });
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
        self.insert(CallRow {
            image_tag: image.into(),
            function_id: "f".into(),
            phase: "p".into(),
            scheduled_ns: sent,
            sent_ns: Some(sent),
            latency_ns: Some(parts.latency()),
            status: rundb::CallStatus::Ok,
            request_bytes: 1,
            instance_id: Some("i".into()),
            leaf_got_request_ns: Some(leaf_got),
            leaf_scheduled_call_ns: Some(leaf_scheduled),
            call_queued_ns: Some(queued),
            call_started_ns: Some(started),
            got_response_ns: Some(got_response),
            function_processing_time_ns: Some(processing),
            function_handler_time_ns: Some(handler),
            ..CallRow::default()
        });
    }
}

/// Milliseconds as ns.
#[allow(clippy::cast_possible_truncation)]
pub(crate) fn ms(v: f64) -> i64 {
    (v * 1e6).round() as i64
}
