//! A run database built by hand in a `TempDir`: loadgen's `calls` (its own
//! DDL, through `rundb::fixtures::RawDb`) and the collector's tables.

use std::path::{Path, PathBuf};

use hyperfake_core::payload::PayloadFeatures;
use hyperfake_core::{Bytes, CpuQuota, FunctionConfig};
use processing::{ProcessOptions, Processed, Progress, RunSummary};
use rundb::CallStatus;
use rundb::calls::CallRow;
use rundb::fixtures::{ContainerSample, Event, RawDb, WorkerSample};
use rusqlite::Connection;
use tempfile::TempDir;

pub(crate) const IMAGE: &str = "hyperfaas-echo:latest";
pub(crate) const W1: &str = "10.0.0.1:50051";
pub(crate) const W2: &str = "10.0.0.2:50051";

/// Worker-clock time `ms` milliseconds after an arbitrary origin.
pub(crate) fn ms(ms: i64) -> i64 {
    1_700_000_000_000_000_000 + ms * 1_000_000
}

/// A run database under construction. Rows are written by [`Fixture::write`].
#[derive(Debug)]
pub(crate) struct Fixture {
    dir: TempDir,
    pub(crate) run_id: String,
    pub(crate) calls: Vec<CallRow>,
    pub(crate) events: Vec<Event>,
    pub(crate) container: Vec<ContainerSample>,
    pub(crate) workers: Vec<WorkerSample>,
    pub(crate) quota_cores: f64,
    pub(crate) interval_ms: Option<i64>,
    /// Payload features [`IMAGE`] declares (`functions.payload_features`).
    pub(crate) features: PayloadFeatures,
}

impl Fixture {
    pub(crate) fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().expect("a temp dir"),
            run_id: "r1".into(),
            calls: Vec::new(),
            events: Vec::new(),
            container: Vec::new(),
            workers: Vec::new(),
            quota_cores: 1.0,
            interval_ms: Some(100),
            features: PayloadFeatures::none(),
        }
    }

    pub(crate) fn db(&self) -> PathBuf {
        self.dir.path().join("training_data").join(format!("{}.db", self.run_id))
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn event(
        &mut self,
        worker: &str,
        instance: &str,
        event: &str,
        status: Option<&str>,
        t: i64,
    ) -> &mut Self {
        self.events.push(Event {
            worker: worker.into(),
            instance_id: instance.into(),
            event: event.into(),
            status: status.map(Into::into),
            timestamp_ns: t,
            start_duration_ns: None,
        });
        self
    }

    /// A successful START that reports its Start→ready duration.
    pub(crate) fn start_took(&mut self, worker: &str, instance: &str, t: i64, took_ns: i64) -> &mut Self {
        self.start(worker, instance, t);
        self.events.last_mut().expect("just pushed").start_duration_ns = Some(took_ns);
        self
    }

    pub(crate) fn start(&mut self, worker: &str, instance: &str, t: i64) -> &mut Self {
        self.event(worker, instance, "START", Some("OK"), t)
    }

    /// An OK call on `instance` over `[started, responded]`: handler time is
    /// the interval less 0.1 ms, the client latency the interval plus 1 ms.
    /// Returns its index in [`Fixture::calls`] to adjust it.
    pub(crate) fn call(&mut self, instance: &str, started: i64, responded: i64) -> usize {
        let k = self.calls.len();
        self.calls.push(CallRow {
            call_index: k as i64,
            image_tag: IMAGE.into(),
            status: CallStatus::Ok,
            request_bytes: 100 + k as i64,
            scheduled_ns: started - 500_000,
            sent_ns: Some(started - 500_000),
            latency_ns: Some(responded - started + 1_000_000),
            instance_id: Some(instance.into()),
            leaf_got_request_ns: Some(started - 400_000),
            leaf_scheduled_call_ns: Some(started - 300_000),
            call_queued_ns: Some(started - 100_000),
            call_started_ns: Some(started),
            got_response_ns: Some(responded),
            function_processing_time_ns: Some(responded - started),
            function_handler_time_ns: Some(responded - started - 100_000),
            ..CallRow::default()
        });
        k
    }

    /// A container sample: cumulative CPU ns and memory bytes (`None` = NULL).
    pub(crate) fn sample(
        &mut self,
        worker: &str,
        instance: &str,
        t: i64,
        cpu: Option<i64>,
        mem: Option<i64>,
    ) -> &mut Self {
        self.container.push(ContainerSample {
            worker: worker.into(),
            instance_id: instance.into(),
            timestamp_ns: t,
            cpu_usage_ns: cpu,
            memory_bytes: mem,
        });
        self
    }

    /// Container samples every 100 ms over `[from, to]` ms at a constant
    /// `cores` and `mem` bytes.
    pub(crate) fn steady(
        &mut self,
        worker: &str,
        instance: &str,
        from: i64,
        to: i64,
        cores: f64,
        mem: i64,
    ) -> &mut Self {
        let mut t = from;
        while t <= to {
            let cpu = ((t - from) as f64 * 1e6 * cores) as i64;
            self.sample(worker, instance, ms(t), Some(cpu), Some(mem));
            t += 100;
        }
        self
    }

    pub(crate) fn worker_sample(
        &mut self,
        worker: &str,
        t: i64,
        cores: Option<f64>,
        ram: Option<i64>,
    ) -> &mut Self {
        self.workers.push(WorkerSample {
            worker: worker.into(),
            timestamp_ns: t,
            cpu_cores: cores,
            ram_bytes: ram,
        });
        self
    }

    /// Worker samples every 100 ms over `[from, to]` ms.
    pub(crate) fn worker_steady(
        &mut self,
        worker: &str,
        from: i64,
        to: i64,
        cores: f64,
        ram: i64,
    ) -> &mut Self {
        let mut t = from;
        while t <= to {
            self.worker_sample(worker, ms(t), Some(cores), Some(ram));
            t += 100;
        }
        self
    }

    /// Writes every row into a new database file.
    pub(crate) fn write(&self) -> PathBuf {
        let db = self.db();
        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
        // A fresh file each time: a test may write, change rows and write again.
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
        }
        let mut raw = RawDb::create(&db, &self.run_id).expect("create the run database");
        let quota_us = (self.quota_cores * 100_000.0) as u64;
        let config = FunctionConfig {
            memory: Bytes::mib(256),
            cpu: Some(CpuQuota { period_us: 100_000, quota_us }),
            idle_timeout: None,
            max_concurrency: None,
        };
        raw.function_with_features(IMAGE, &config, &self.features).unwrap();
        if let Some(ms) = self.interval_ms {
            raw.session(ms).unwrap();
        }
        raw.calls(&self.calls).unwrap();
        raw.events(&self.events).unwrap();
        raw.container_samples(&self.container).unwrap();
        raw.worker_samples(&self.workers).unwrap();
        db
    }

    /// Writes the database and processes it in memory (nothing written back).
    pub(crate) fn processed(&self) -> Processed {
        let db = self.write();
        let conn = Connection::open(&db).unwrap();
        let raw = processing::raw::read_run(&conn, &self.run_id, &indicatif::ProgressBar::hidden()).unwrap();
        processing::process_run(raw, &ProcessOptions::default()).unwrap()
    }

    /// Writes the database and runs `process_db` on it.
    pub(crate) fn process(&self) -> (PathBuf, RunSummary) {
        let db = self.write();
        let mut summaries =
            processing::process_db(&db, None, &ProcessOptions::default(), &Progress::default()).unwrap();
        assert_eq!(summaries.len(), 1, "one run in the fixture");
        (db, summaries.remove(0))
    }
}

/// `SELECT <column> FROM training_data ORDER BY request_id` as optional f64s.
pub(crate) fn training_column(db: &Path, column: &str) -> Vec<Option<f64>> {
    let conn = Connection::open(db).unwrap();
    let mut stmt =
        conn.prepare(&format!("SELECT {column} FROM training_data ORDER BY call_started_ns")).unwrap();
    stmt.query_map([], |r| r.get::<_, Option<f64>>(0)).unwrap().map(Result::unwrap).collect()
}

/// Row count of `table` (optionally `WHERE <cond>`).
pub(crate) fn count(db: &Path, table: &str, cond: &str) -> i64 {
    let conn = Connection::open(db).unwrap();
    let cond = if cond.is_empty() { String::new() } else { format!(" WHERE {cond}") };
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}{cond}"), [], |r| r.get(0)).unwrap()
}
