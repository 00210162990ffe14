//! Shared harness: a run database in a TempDir, a database service, Docker or
//! fake workers on 127.0.0.1, and queries over what the collector wrote.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use collector::{Collector, CollectorSettings, LinkState};
use fakeworker::{ModelRegistry, SimRuntime, SimSettings};
use hyperfake_core::{FunctionConfig, FunctionId, ImageTag};
use hyperfake_testkit::TestDatabase;
use proto::controller::controller_client::ControllerClient;
use rusqlite::Connection;
use tokio::net::TcpListener;
use tonic::transport::Channel;
use worker::{FunctionCatalog, Worker, WorkerSettings};

pub use hyperfake_testkit::{ECHO, config, unique};

/// Generous: workers share two cores with other builds.
pub const WITHIN: Duration = Duration::from_secs(60);
/// A batch interval that never elapses during a test.
pub const NEVER: Duration = Duration::from_secs(3600);

/// A run database in its own directory, and a run id nobody else uses.
pub struct Run {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub run_id: String,
}

impl Run {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let run_id = unique("run");
        let db = dir.path().join("training_data").join(format!("{run_id}.db"));
        Run { dir, db, run_id }
    }

    pub fn settings(&self, workers: &[&str]) -> CollectorSettings {
        let mut s =
            CollectorSettings::new(workers.iter().map(|w| w.to_string()).collect(), &self.db, &self.run_id);
        s.interval = Duration::from_millis(50);
        s.batch.interval = Duration::from_millis(100);
        s
    }

    pub fn conn(&self) -> Connection {
        let conn = Connection::open(&self.db).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        conn
    }

    /// `(instance_id, function_id, event, status, timestamp_ns)` of this run, in insertion order.
    pub fn events(&self) -> Vec<EventRow> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT instance_id, function_id, event, status, timestamp_ns, worker, start_duration_ns
                 FROM instance_events WHERE run_id = ?1 ORDER BY rowid",
            )
            .unwrap();
        stmt.query_map([&self.run_id], |r| {
            Ok(EventRow {
                instance_id: r.get(0)?,
                function_id: r.get(1)?,
                event: r.get(2)?,
                status: r.get(3)?,
                timestamp_ns: r.get(4)?,
                worker: r.get(5)?,
                start_duration_ns: r.get(6)?,
            })
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    /// `(event, instance)` pairs of START/STOP events for `instances`, in insertion order.
    pub fn lifecycle_of(&self, instances: &[String]) -> Vec<(String, String)> {
        self.events()
            .into_iter()
            .filter(|e| e.event == "START" || e.event == "STOP")
            .filter_map(|e| {
                let i = e.instance_id?;
                instances.contains(&i).then_some((e.event, i))
            })
            .collect()
    }

    pub fn count(&self, table: &str) -> i64 {
        self.conn()
            .query_row(&format!("SELECT COUNT(*) FROM {table} WHERE run_id = ?1"), [&self.run_id], |r| {
                r.get(0)
            })
            .unwrap()
    }

    /// Rows of every collector table for this run (sessions excluded).
    pub fn rows(&self) -> i64 {
        self.count("instance_events") + self.count("container_samples") + self.count("worker_samples")
    }

    /// `(session, stopped_at_ns)` of every session of this run.
    pub fn sessions(&self) -> Vec<(i64, Option<i64>)> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT session, stopped_at_ns FROM collector_sessions WHERE run_id = ?1 ORDER BY session",
            )
            .unwrap();
        stmt.query_map([&self.run_id], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
    }

    /// What is in the database, for failure messages.
    pub fn dump(&self) -> String {
        format!(
            "sessions {:?}\nevents {:#?}\nrows: {} container, {} worker",
            self.sessions(),
            self.events(),
            self.count("container_samples"),
            self.count("worker_samples")
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct EventRow {
    pub instance_id: Option<String>,
    pub function_id: Option<String>,
    pub event: String,
    pub status: String,
    pub timestamp_ns: Option<i64>,
    pub worker: String,
    pub start_duration_ns: Option<i64>,
}

/// Waits until every worker's two streams are subscribed, so nothing the
/// test does afterwards happens before the collector listens.
pub async fn connected(collector: &Collector) {
    let describe = || {
        collector
            .workers()
            .iter()
            .map(|w| {
                format!(
                    "{}: status {:?} ({:?}), resources {:?} ({:?})",
                    w.address,
                    w.status.state(),
                    w.status.last_error(),
                    w.resources.state(),
                    w.resources.last_error()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let deadline = tokio::time::Instant::now() + WITHIN;
    while !collector
        .workers()
        .iter()
        .all(|w| w.status.state() == LinkState::Connected && w.resources.state() == LinkState::Connected)
    {
        assert!(tokio::time::Instant::now() < deadline, "collector not connected: {}", describe());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the collector has received at least `n` Status messages in all.
pub async fn events_received(collector: &Collector, n: u64) {
    let total = || collector.workers().iter().map(|w| w.status.messages()).sum::<u64>();
    let deadline = tokio::time::Instant::now() + WITHIN;
    while total() < n {
        assert!(tokio::time::Instant::now() < deadline, "collector received {} of {n} events", total());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `check` (which may query the database) until it holds.
pub async fn until(run: &Run, what: &str, mut check: impl FnMut(&Run) -> bool) {
    let deadline = tokio::time::Instant::now() + WITHIN;
    while !check(run) {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}\n{}", run.dump());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// === Fake workers ===

/// A fake worker (the real worker over the simulated runtime) that a test can
/// kill and serve again on the same address, with an optional token.
///
/// It is served on a runtime of its own: killing it shuts that runtime down,
/// which closes every connection like a dead process would. (Aborting a
/// tonic server task alone leaves open streams running.)
pub struct FakeWorker {
    pub worker: Arc<Worker>,
    pub address: String,
    runtime: Option<tokio::runtime::Runtime>,
    _models: tempfile::TempDir,
}

impl FakeWorker {
    /// A fake worker for `ECHO`, not serving yet.
    pub fn new(database: &TestDatabase) -> Self {
        let models = tempfile::tempdir().unwrap();
        write_echo_model(models.path());
        let (registry, skipped) = ModelRegistry::load(Some(models.path().to_path_buf()), vec![]).unwrap();
        assert!(skipped.is_empty(), "test model failed to load: {skipped:?}");
        let settings = SimSettings { cold_start: Duration::from_millis(5), ..Default::default() };
        let runtime = SimRuntime::new(Arc::new(registry), settings);
        let worker = Worker::new(
            WorkerSettings::new(unique("fake")),
            Arc::new(runtime),
            FunctionCatalog::new(database.client.clone()),
        );
        FakeWorker { worker, address: String::new(), runtime: None, _models: models }
    }

    /// Serves on a free port.
    pub async fn serve(database: &TestDatabase, token: Option<&str>) -> Self {
        let mut fake = Self::new(database);
        fake.serve_on("127.0.0.1:0", token).await;
        fake
    }

    /// Serves on `address`, waiting for it to be free (a killed worker's
    /// socket is closed asynchronously).
    pub async fn serve_on(&mut self, address: &str, token: Option<&str>) {
        assert!(self.runtime.is_none(), "already serving");
        let deadline = tokio::time::Instant::now() + WITHIN;
        let listener = loop {
            match std::net::TcpListener::bind(address) {
                Ok(l) => break l,
                Err(e) => {
                    assert!(tokio::time::Instant::now() < deadline, "cannot bind {address}: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        listener.set_nonblocking(true).unwrap();
        self.address = listener.local_addr().unwrap().to_string();
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let worker = Arc::clone(&self.worker);
        let options = worker::server::ServeOptions { token: token.map(str::to_string) };
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).unwrap();
            worker::server::serve_with(worker, listener, std::future::pending(), options).await.unwrap();
        });
        self.runtime = Some(runtime);
    }

    /// Stops serving abruptly, like a killed process: every connection closes.
    pub fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    pub async fn client(&self) -> ControllerClient<Channel> {
        hyperfake_testkit::connect_controller(&self.address).await
    }

    /// Starts then stops one instance; returns its id.
    pub async fn start_stop(&self, function: &FunctionId) -> String {
        let instance = self.worker.start(Some(function.clone())).await.unwrap();
        self.worker.stop(Some(instance.id.clone())).await.unwrap();
        instance.id.0.clone()
    }
}

impl Drop for FakeWorker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Registers `ECHO` in the database.
pub async fn echo_function(database: &TestDatabase, config: FunctionConfig) -> FunctionId {
    database.client.create(&ImageTag::from(ECHO), &config).await.expect("create function").id
}

/// A linear model predicting 1 ms, 0.1 cores and 8 MiB for every call.
fn write_echo_model(dir: &Path) {
    let constant = |v: f64| [0.0, 0.0, 0.0, 0.0, 0.0, v];
    let model = serde_json::json!({ ECHO: {
        "image_tag": ECHO, "runtime_coeffs": constant(1e6), "cpu_coeffs": constant(0.1),
        "ram_coeffs": constant(8.0 * 1024.0 * 1024.0), "sample_count": 100,
        "runtime_r2": 0.9, "cpu_r2": 0.9, "ram_r2": 0.9, "runtime_unit": "ns",
    }});
    std::fs::write(dir.join("echo.json"), model.to_string()).unwrap();
}

/// A port that nothing listens on (bound, then released).
pub async fn free_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().to_string()
}
