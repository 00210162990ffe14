use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::record::{ContainerRow, EventRow, SampleRows};

fn event(n: i64) -> Record {
    Record::Event(EventRow {
        worker: Arc::from("w:1"),
        instance_id: Some(format!("i{n}")),
        function_id: Some("f".into()),
        event: "START".into(),
        status: "SUCCESS".into(),
        timestamp_ns: Some(n),
        detail: String::new(),
        exit_code: None,
        oom_killed: false,
        start_duration_ns: Some(n * 1000),
    })
}

fn sample(containers: usize) -> Record {
    Record::Sample(SampleRows {
        worker: Arc::from("w:1"),
        timestamp_ns: Some(1),
        cpu_cores: None,
        ram_bytes: Some(10),
        containers: (0..containers)
            .map(|i| ContainerRow {
                instance_id: Some(format!("i{i}")),
                function_id: None,
                cpu_usage_ns: None,
                memory_bytes: Some(1),
            })
            .collect(),
    })
}

fn count(path: &Path, table: &str) -> i64 {
    let conn = Connection::open(path).unwrap();
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0)).unwrap()
}

fn start(path: &Path, run: &str, batch: BatchSettings) -> (Writer, mpsc::Sender<Record>, Session) {
    let mut conn = open(path).unwrap();
    let session = Session::begin(&mut conn, run, &["w:1".into()], 100).unwrap();
    let (writer, tx) = Writer::start(conn, session.clone(), batch);
    (writer, tx, session)
}

const NEVER: Duration = Duration::from_secs(3600);

#[test]
fn sessions_are_numbered_per_run_and_closed_on_finish() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/run.db");
    let (w, tx, s1) = start(&path, "r", BatchSettings::default());
    assert_eq!(s1.number, 1);
    drop(tx);
    w.finish().unwrap();
    let (w, tx, s2) = start(&path, "r", BatchSettings::default());
    let (w_other, tx_other, other) = start(&path, "other", BatchSettings::default());
    assert_eq!((s2.number, other.number), (2, 1));
    drop((tx, tx_other));
    w.finish().unwrap();
    w_other.finish().unwrap();
    let conn = Connection::open(&path).unwrap();
    let open_sessions: i64 = conn
        .query_row("SELECT COUNT(*) FROM collector_sessions WHERE stopped_at_ns IS NULL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(open_sessions, 0);
    let workers: String = conn
        .query_row(
            "SELECT workers_json FROM collector_sessions WHERE run_id = 'r' AND session = 2",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(workers, r#"["w:1"]"#);
}

#[test]
fn finish_commits_everything_and_nulls_stay_null() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.db");
    let (w, tx, _) = start(&path, "r", BatchSettings { interval: NEVER, rows: 1_000_000, queue: 16 });
    for n in 0..10 {
        tx.blocking_send(event(n)).unwrap();
    }
    tx.blocking_send(sample(3)).unwrap();
    drop(tx);
    let report = w.finish().unwrap();
    assert_eq!(report, WriterReport { received_rows: 14, committed_rows: 14 });
    assert_eq!(count(&path, "instance_events"), 10);
    assert_eq!(count(&path, "container_samples"), 3);
    assert_eq!(count(&path, "worker_samples"), 1);
    let conn = Connection::open(&path).unwrap();
    let (cpu, nulls): (Option<f64>, i64) = conn
        .query_row(
            "SELECT (SELECT cpu_cores FROM worker_samples),
                    (SELECT COUNT(*) FROM container_samples WHERE cpu_usage_ns IS NULL AND function_id IS NULL)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((cpu, nulls), (None, 3));
}

#[test]
fn a_full_batch_commits_without_waiting_for_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.db");
    let (w, tx, _) = start(&path, "r", BatchSettings { interval: NEVER, rows: 5, queue: 16 });
    for n in 0..12 {
        tx.blocking_send(event(n)).unwrap();
    }
    // Two full batches of 5 commit; the open batch of 2 waits for the interval.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while w.stats().committed() < 10 {
        assert!(std::time::Instant::now() < deadline, "two full batches were not committed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let report = w.kill();
    assert_eq!(report.committed_rows, 10);
    assert_eq!(count(&path, "instance_events"), 10, "a kill loses exactly the open batch");
    drop(tx);
}

#[test]
fn the_interval_commits_a_partial_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.db");
    let (w, tx, _) =
        start(&path, "r", BatchSettings { interval: Duration::from_millis(50), rows: 1_000_000, queue: 16 });
    tx.blocking_send(event(1)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count(&path, "instance_events") < 1 {
        assert!(std::time::Instant::now() < deadline, "the row was not committed by the interval");
        std::thread::sleep(Duration::from_millis(10));
    }
    let report = w.kill();
    assert_eq!(report, WriterReport { received_rows: 1, committed_rows: 1 });
    drop(tx);
    let conn = Connection::open(&path).unwrap();
    let stopped: Option<i64> =
        conn.query_row("SELECT stopped_at_ns FROM collector_sessions", [], |r| r.get(0)).unwrap();
    assert_eq!(stopped, None, "a killed session stays open");
}

#[test]
fn instance_events_from_before_start_durations_are_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE instance_events (run_id TEXT NOT NULL, worker TEXT NOT NULL, instance_id TEXT,
                 function_id TEXT, event TEXT NOT NULL, status TEXT NOT NULL, timestamp_ns INTEGER,
                 detail TEXT NOT NULL, exit_code INTEGER NULL, oom_killed INTEGER NOT NULL);
             INSERT INTO instance_events VALUES ('old', 'w:1', 'i0', 'f', 'START', 'SUCCESS', 1, '', NULL, 0);",
        )
        .unwrap();
    }
    let (w, tx, _) = start(&path, "r", BatchSettings::default());
    tx.blocking_send(event(3)).unwrap();
    drop(tx);
    w.finish().unwrap();
    let conn = Connection::open(&path).unwrap();
    let durations: Vec<(String, Option<i64>)> = conn
        .prepare("SELECT run_id, start_duration_ns FROM instance_events ORDER BY rowid")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(durations, [("old".to_string(), None), ("r".to_string(), Some(3000))]);
    drop(conn);
    // Opening again is a no-op.
    open(&path).unwrap();
}
