//! At the end of a run, loadgen deletes the functions it created from the
//! function store (a real database server over a SQLite file), unless told to
//! keep them; a cleanup that fails loses no row of the run.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use database::{DatabaseClient, Function, Store};
use hyperfake_core::{Bytes, FunctionConfig, ImageTag};
use loadgen::Stop;
use loadgen::run::{FunctionCleanup, RunOptions, RunReport, run, run_with_cleanup};
use rusqlite::Connection;
use tempfile::TempDir;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::common::{TestLeaf, serve, workload_yaml};

/// A function store on 127.0.0.1:0 over a SQLite file in its own TempDir.
struct TestStore {
    _dir: TempDir,
    address: SocketAddr,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl TestStore {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("functions.db")).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(database::serve(listener, store, std::future::pending()));
        TestStore { _dir: dir, address, task }
    }

    fn client(&self) -> DatabaseClient {
        DatabaseClient::connect(&self.address.to_string()).unwrap()
    }

    async fn functions(&self) -> Vec<Function> {
        self.client().list().await.unwrap()
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Two copies of echo, 5 calls each second for a second.
fn tiny_workload(leaf: SocketAddr) -> String {
    workload_yaml(
        leaf,
        "10s",
        "2s",
        "16",
        &["{name: e, type: constant, duration: 1s, start_rps: 5, image_tag: hyperfaas-echo:latest}"],
    )
    .replace("max_concurrency: 3}", "max_concurrency: 3, copies: 2}")
}

fn options(yaml: &str, db: &Path) -> RunOptions {
    crate::common::run_options(yaml, db, "test-run")
}

fn count(db: &Path, sql: &str) -> u64 {
    let n: i64 = Connection::open(db).unwrap().query_row(sql, [], |r| r.get(0)).unwrap();
    u64::try_from(n).unwrap()
}

/// Every call due has its row, all answered, and the run database still
/// lists the two functions the run created.
fn assert_rows_kept(db: &Path, report: &RunReport) {
    assert_eq!(report.recorded, report.due, "{report:?}");
    assert!(report.due >= 5, "{report:?}");
    assert_eq!(count(db, "SELECT COUNT(*) FROM calls WHERE status = 'OK'"), report.due);
    assert_eq!(count(db, "SELECT COUNT(*) FROM functions WHERE run_id = 'test-run'"), 2);
}

fn unrelated_config() -> FunctionConfig {
    FunctionConfig { memory: Bytes::mib(64), cpu: None, idle_timeout: None, max_concurrency: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_deletes_only_the_functions_it_created() {
    let store = TestStore::start().await;
    let unrelated =
        store.client().create(&ImageTag::from("hyperfaas-bfs:latest"), &unrelated_config()).await.unwrap();
    let served = serve(TestLeaf::new().with_database(store.client())).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("run.db");
    let yaml = tiny_workload(served.addr);

    let cleanup = FunctionCleanup::Delete { database: store.address.to_string() };
    let (_stop_tx, stop) = watch::channel(Stop::Running);
    let report = run_with_cleanup(options(&yaml, &db), cleanup, stop).await.unwrap();

    assert_rows_kept(&db, &report);
    assert_eq!(store.functions().await, vec![unrelated]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeping_the_functions_leaves_them_registered() {
    let store = TestStore::start().await;
    let served = serve(TestLeaf::new().with_database(store.client())).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("run.db");
    let yaml = tiny_workload(served.addr);

    let (_stop_tx, stop) = watch::channel(Stop::Running);
    // `run` keeps them, as `--keep-functions` does.
    let report = run(options(&yaml, &db), stop).await.unwrap();
    assert_rows_kept(&db, &report);
    assert_eq!(store.functions().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleanup_that_cannot_reach_the_store_loses_no_row() {
    let store = TestStore::start().await;
    let served = serve(TestLeaf::new().with_database(store.client())).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("run.db");
    let yaml = tiny_workload(served.addr);
    // Nothing listens there any more: connections are refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();

    let cleanup = FunctionCleanup::Delete { database: closed.to_string() };
    let (_stop_tx, stop) = watch::channel(Stop::Running);
    let report = run_with_cleanup(options(&yaml, &db), cleanup, stop).await.unwrap();
    assert_rows_kept(&db, &report);
    assert_eq!(report.status.as_str(), "completed");
    assert_eq!(store.functions().await.len(), 2);
}

/// The command line: deleted by default, kept with `--keep-functions`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_deletes_by_default_and_keeps_with_keep_functions() {
    let store = TestStore::start().await;
    let served = serve(TestLeaf::new().with_database(store.client())).await;
    let dir = tempfile::tempdir().unwrap();
    let workload = dir.path().join("tiny.yaml");
    std::fs::write(&workload, tiny_workload(served.addr)).unwrap();

    for (run_id, extra, left) in [("cli-default", None, 0), ("cli-keep", Some("--keep-functions"), 2)] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_loadgen"));
        command
            .env_clear()
            .arg("run")
            .arg(&workload)
            .arg("--out")
            .arg(dir.path().join("runs.db"))
            .args(["--run-id", run_id, "--no-progress", "--database", &store.address.to_string()])
            .args(extra);
        let output = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{run_id}: {:?}\n{stderr}", output.status);
        assert_eq!(store.functions().await.len(), left, "{run_id}\n{stderr}");
    }
    let runs = dir.path().join("runs.db");
    assert_eq!(count(&runs, "SELECT COUNT(*) FROM functions"), 4);
    assert_eq!(count(&runs, "SELECT COUNT(*) FROM runs WHERE status = 'completed'"), 2);
}
