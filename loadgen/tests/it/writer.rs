use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyperfake_core::{FunctionId, ImageTag};
use loadgen::record::{self, CallRecord, Recorder, RunStatus, WriterError, WriterSettings};
use loadgen::run::RunOptions;
use loadgen::sender::{Clock, Counters, Dispatcher, SendOptions, Stop, Target};
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
    let settings =
        WriterSettings { retry_interval: Duration::from_millis(20), give_up_after, busy_timeout: busy };
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
    let target = Target::new(vec![client], HashMap::from([(image, vec![FunctionId::from("fn-echo")])]));

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
    let sent = Dispatcher {
        schedule: Arc::clone(&schedule),
        payloads,
        target,
        options,
        clock: Clock::starting_in(Duration::from_millis(100)),
        records,
        stop,
        counters: Arc::new(Counters::default()),
    }
    .send_all();
    let report =
        tokio::time::timeout(HANG_GUARD, sent).await.expect("sending stopped when the writer gave up");
    assert!(report.due < schedule.calls.len() as u64, "{report:?}");
    assert!(!report.interrupted, "stopped by the writer, not by a signal");
    let error = finish(recorder).await.unwrap_err();
    assert!(format!("{:#}", anyhow::Error::new(error)).contains("database is locked"));
}

// === through `loadgen::run` ===

/// `loadgen::run` options writing to `db` with a writer that waits `busy`
/// for a lock, retries every 20 ms and gives up after `give_up_after`.
fn run_options(yaml: &str, db: &Path, busy: Duration, give_up_after: Duration) -> RunOptions {
    RunOptions {
        writer: WriterSettings {
            retry_interval: Duration::from_millis(20),
            give_up_after,
            busy_timeout: busy,
        },
        ..crate::common::run_options(yaml, db, RUN)
    }
}

/// Rows in `calls` now; 0 before the run has created the file and its tables.
fn rows_so_far(path: &Path) -> i64 {
    let Ok(conn) = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return 0;
    };
    conn.query_row("SELECT COUNT(*) FROM calls", [], |r| r.get(0)).unwrap_or(0)
}

/// Takes the lock from a blocking thread (it may wait for a commit in progress).
async fn lock_now(path: &Path) -> Connection {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || hold_lock(&path)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_database_is_locked_for_a_while_loses_no_row() {
    let served = serve(TestLeaf::new()).await;
    // 150 calls over 3 s.
    let yaml = workload_yaml(
        served.addr,
        "10s",
        "5s",
        "32",
        &["{name: p, type: constant, duration: 3s, start_rps: 50, image_tag: hyperfaas-echo:latest}"],
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.db");
    let (_stop_tx, stop) = watch::channel(Stop::Running);
    let options = run_options(&yaml, &path, Duration::from_millis(50), HANG_GUARD);
    // `run` holds a SQLite connection across awaits (not Send): it runs
    // beside the lock's choreography in this task, not in a spawned one.
    let seen = Arc::clone(&served.seen);
    let choreography = async {
        until("30 calls sent", || seen.calls.load(Ordering::SeqCst) >= 30).await;
        let lock = lock_now(&path).await;
        // The run goes on sending while no row can be written: 40 more calls.
        let locked_at = seen.calls.load(Ordering::SeqCst);
        until("40 calls sent under the lock", || seen.calls.load(Ordering::SeqCst) >= locked_at + 40).await;
        let rows_under_lock = count(&path, "SELECT COUNT(*) FROM calls");
        drop(lock);
        (locked_at, rows_under_lock)
    };
    let both = async { tokio::join!(loadgen::run::run(options, stop), choreography) };
    let (report, (locked_at, rows_under_lock)) =
        tokio::time::timeout(HANG_GUARD, both).await.expect("the run ended");
    let report = report.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(report.status, RunStatus::Completed, "{report:?}");
    assert_eq!(report.due, report.scheduled, "nothing stopped the run early: {report:?}");
    assert_eq!(report.recorded, report.due, "{report:?}");
    let rows = count(&path, "SELECT COUNT(*) FROM calls WHERE run_id = 'writer-test'");
    assert_eq!(u64::try_from(rows).unwrap(), report.due);
    assert_eq!(count(&path, "SELECT COUNT(DISTINCT call_index) FROM calls"), rows);
    assert!(
        rows_under_lock < i64::try_from(locked_at).unwrap() + 40,
        "the calls sent under the lock were written after it: {rows_under_lock} rows while locked"
    );
    let (status, due, recorded): (String, i64, i64) = Connection::open(&path)
        .unwrap()
        .query_row("SELECT status, calls_due, calls_recorded FROM runs", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((status.as_str(), due, recorded), ("completed", rows, rows));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_database_stays_locked_stops_early_naming_the_database() {
    let served = serve(TestLeaf::new()).await;
    // 2 000 calls over 100 s: only the writer giving up ends this early.
    let yaml = workload_yaml(
        served.addr,
        "10s",
        "2m",
        "32",
        &["{name: long, type: constant, duration: 100s, start_rps: 20, image_tag: hyperfaas-echo:latest}"],
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.db");
    let (_stop_tx, stop) = watch::channel(Stop::Running);
    let options = run_options(&yaml, &path, Duration::from_millis(50), Duration::from_millis(500));
    let seen = Arc::clone(&served.seen);
    // Locks once rows are being written and keeps the lock until the run has
    // ended (`run` is not Send: it runs in this task, beside this).
    let (lock_tx, lock_rx) = tokio::sync::oneshot::channel();
    let choreography = async {
        until("10 rows written", || rows_so_far(&path) >= 10).await;
        lock_tx.send(lock_now(&path).await).unwrap();
    };
    let run = async {
        let result = loadgen::run::run(options, stop).await;
        (result, seen.calls.load(Ordering::SeqCst))
    };
    let both = async { tokio::join!(run, choreography) };
    let ((result, sent), ()) = tokio::time::timeout(HANG_GUARD, both).await.expect("the run stopped early");
    drop(lock_rx.await.unwrap());

    let error = result.expect_err("a run that cannot keep its rows fails");
    let text = format!("{error:#}");
    assert!(text.contains(&path.display().to_string()), "names the database: {text}");
    assert!(text.contains("database is locked") && text.contains("the run stopped"), "{text}");
    assert!(sent < 2_000, "sending stopped: {sent} calls");
    // Rows committed before the lock are kept, and no call was sent after
    // the writer gave up beyond those it was told about.
    let rows = count(&path, "SELECT COUNT(*) FROM calls");
    assert!(rows > 0 && u64::try_from(rows).unwrap() <= sent, "{rows} rows, {sent} sent");
    let status: String =
        Connection::open(&path).unwrap().query_row("SELECT status FROM runs", [], |r| r.get(0)).unwrap();
    assert_ne!(status, "completed");
}
