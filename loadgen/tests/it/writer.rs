use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyperfake_core::{FunctionId, ImageTag};
use loadgen::record::{self, CallRecord, Recorder, WriterError, WriterSettings};
use loadgen::sender::{self, Clock, Counters, SendOptions, Stop, Target};
use loadgen::{Payloads, Schedule, Workload};
use rusqlite::Connection;
use tokio::sync::{mpsc, watch};

use crate::common::{TestLeaf, serve, workload_yaml};

const RUN: &str = "writer-test";
/// Longest a test waits for something that must happen; only a writer that
/// neither recovers nor gives up (or a run that does not stop) gets there.
const HANG_GUARD: Duration = Duration::from_secs(60);

fn call(i: u64) -> CallRecord {
    CallRecord {
        call_index: i,
        request_id: format!("{RUN}-{i}"),
        image_tag: "hyperfaas-echo:latest".into(),
        phase: "p".into(),
        ..CallRecord::default()
    }
}

/// A writer whose connection waits `busy` for a lock, retrying every 20 ms
/// and giving up after `give_up_after`.
fn writer(path: &Path, busy: Duration, give_up_after: Duration) -> (Recorder, mpsc::Sender<CallRecord>) {
    let conn = record::open(path).unwrap();
    conn.busy_timeout(busy).unwrap();
    let settings = WriterSettings { retry_interval: Duration::from_millis(20), give_up_after };
    Recorder::start_with(conn, RUN.into(), 64, settings)
}

/// Another connection holding the database's write lock, as a long
/// transaction of another process would; released when dropped.
fn hold_lock(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    conn
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + HANG_GUARD;
    while !check() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn finish(recorder: Recorder) -> Result<u64, WriterError> {
    tokio::task::spawn_blocking(move || recorder.finish()).await.unwrap()
}

fn count(path: &Path, sql: &str) -> i64 {
    Connection::open(path).unwrap().query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn a_lock_held_past_the_busy_timeout_loses_no_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.db");
    let (recorder, tx) = writer(&path, Duration::from_millis(100), HANG_GUARD);
    let stats = Arc::clone(recorder.stats());
    for i in 0..10 {
        tx.send(call(i)).await.unwrap();
    }
    until("the first rows are written", || stats.committed_rows.load(Ordering::Acquire) == 10).await;

    let lock = hold_lock(&path);
    for i in 10..20 {
        tx.send(call(i)).await.unwrap();
    }
    // Each failed commit waited the 100 ms busy timeout first.
    until("commits failed on the lock", || stats.failed_commits.load(Ordering::Acquire) >= 3).await;
    assert_eq!(stats.committed_rows.load(Ordering::Acquire), 10);
    drop(lock);

    for i in 20..30 {
        tx.send(call(i)).await.unwrap();
    }
    drop(tx);
    assert_eq!(finish(recorder).await.unwrap(), 30);
    assert_eq!(count(&path, "SELECT COUNT(*) FROM calls WHERE run_id = 'writer-test'"), 30);
    assert_eq!(count(&path, "SELECT COUNT(DISTINCT call_index) FROM calls"), 30);
}

#[tokio::test]
async fn a_writer_that_cannot_recover_gives_up_naming_the_database_and_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.db");
    let (recorder, tx) = writer(&path, Duration::from_millis(50), Duration::from_millis(500));
    let _lock = hold_lock(&path);
    for i in 0..5 {
        tx.send(call(i)).await.unwrap();
    }
    // The writer closes its channel when it gives up: this is what stops the run.
    until("the writer closed its channel", || tx.is_closed()).await;
    let error = finish(recorder).await.unwrap_err();
    let WriterError::GaveUp { path: ref named, rows, ref source, .. } = error;
    assert_eq!(named.file_name(), path.file_name(), "{named:?}");
    assert_eq!(rows, 5, "the batch it kept and the rows queued behind it");
    assert!(source.to_string().contains("database is locked"), "{source}");
    let named = named.display().to_string();
    // What `loadgen run` prints: the chain, path and SQLite error included.
    let text = format!("{:#}", anyhow::Error::new(error));
    assert!(text.contains(&named) && text.contains("database is locked"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_stops_when_the_writer_gives_up() {
    let served = serve(TestLeaf::new()).await;
    // 2 000 calls over 100 s: only a stop ends this early.
    let yaml = workload_yaml(
        served.addr,
        "10s",
        "2m",
        "32",
        &["{name: long, type: constant, duration: 100s, start_rps: 20, image_tag: hyperfaas-echo:latest}"],
    );
    let workload = Workload::from_yaml(&yaml).unwrap();
    let schedule = Arc::new(Schedule::resolve(&workload));
    let payloads = Arc::new(Payloads::for_schedule(&schedule).unwrap());
    let client =
        loadgen::run::connect(&served.addr.to_string(), proto::auth::BearerToken::default()).await.unwrap();
    let image = ImageTag::from("hyperfaas-echo:latest");
    let target = Target { client, functions: HashMap::from([(image, vec![FunctionId::from("fn-echo")])]) };

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.db");
    let (recorder, records) = writer(&path, Duration::from_millis(50), Duration::from_millis(500));
    let _lock = hold_lock(&path);
    let (_stop_tx, stop) = watch::channel(Stop::Running);
    let options = SendOptions {
        run_id: RUN.into(),
        call_timeout: Duration::from_secs(10),
        max_in_flight: None,
        lookahead: 16,
    };
    let sent = sender::send_all(
        Arc::clone(&schedule),
        payloads,
        target,
        options,
        Clock::starting_in(Duration::from_millis(100)),
        records,
        stop,
        Arc::new(Counters::default()),
    );
    let report =
        tokio::time::timeout(HANG_GUARD, sent).await.expect("sending stopped when the writer gave up");
    assert!(report.due < schedule.calls.len() as u64, "{report:?}");
    assert!(!report.interrupted, "stopped by the writer, not by a signal");
    let error = finish(recorder).await.unwrap_err();
    assert!(format!("{:#}", anyhow::Error::new(error)).contains("database is locked"));
}
