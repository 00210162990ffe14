//! `warmup:` on the real platform (function store, a Docker worker, a leaf):
//! the functions have their instances ready before time 0, the warm-up calls
//! are recorded and marked, and a warm-up that cannot finish fails the run
//! with a clear error, before any measured call.

use std::path::Path;

use hyperfake_testkit::{
    ContainerSweeper, ECHO, TestDatabase, TestLeaf, TestWorker, leaf_settings, require_image,
};
use loadgen::Stop;
use loadgen::run::{RunOptions, run};
use proto::leaf::LeafStateRequest;
use rusqlite::Connection;
use tokio::sync::watch;
use worker::WorkerSettings;

/// A store, one Docker worker and a leaf over them; removed on drop.
struct Platform {
    leaf: TestLeaf,
    _worker: TestWorker,
    _database: TestDatabase,
    // Last, so it runs after the worker stopped.
    _sweeper: ContainerSweeper,
}

impl Platform {
    async fn start(max_instances: u32) -> Platform {
        require_image(ECHO);
        let sweeper = ContainerSweeper::new();
        let database = TestDatabase::start().await;
        let settings = WorkerSettings::new(format!("w-{}", sweeper.test_id));
        let worker = TestWorker::docker(&sweeper, settings, database.client.clone()).await;
        let mut settings = leaf_settings(&database.address, vec![worker.address.clone()]);
        settings.scheduler.max_instances = max_instances;
        let leaf = TestLeaf::start(settings).await;
        Platform { leaf, _worker: worker, _database: database, _sweeper: sweeper }
    }

    fn workload(&self, warmup: &str) -> String {
        format!(
            "leaf_address: \"{}\"\nmax_duration: 3s\ntimeout: 30s\nseed: 3\n\
             workload:\n  phases:\n    - {{name: e, type: constant, start_time: 0s, duration: 2s, start_rps: 2, image_tag: {ECHO}}}\n\
             function_config:\n  {ECHO}: {{memory: 64MB, timeout: 60, max_concurrency: 1}}\n\
             data_providers:\n  {ECHO}: {{type: echo, min_body_size: 16, max_body_size: 16}}\n{warmup}",
            self.leaf.address
        )
    }
}

fn options(yaml: &str, db: &Path) -> RunOptions {
    crate::common::run_options(yaml, db, "warm-run")
}

fn query<T: rusqlite::types::FromSql>(db: &Path, sql: &str) -> T {
    Connection::open(db).unwrap().query_row(sql, [], |r| r.get(0)).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test]
async fn warm_up_brings_instances_up_before_the_clock_and_marks_its_calls() {
    let platform = Platform::start(4).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("warm.db");
    let yaml = platform.workload("warmup: {instances: 2, timeout: 60s}\n");
    let (_stop_tx, stop) = watch::channel(Stop::Running);
    let report = run(options(&yaml, &db), stop).await.unwrap();
    assert_eq!(report.scheduled, 4);
    assert_eq!(report.recorded, 4, "{report:?}");

    // The measured calls are exactly the schedule's, unmarked.
    let measured: i64 = query(&db, "SELECT COUNT(*) FROM calls WHERE warmup = 0");
    assert_eq!(measured, 4);
    let measured_indices: String = query(
        &db,
        "SELECT group_concat(call_index) FROM (SELECT call_index FROM calls WHERE warmup = 0 ORDER BY 1)",
    );
    assert_eq!(measured_indices, "0,1,2,3");
    // Warm-up calls: at least instances × max_concurrency, marked, after the
    // schedule's indices, named `warmup`, sent before time 0, all answered.
    let warm: i64 = query(&db, "SELECT COUNT(*) FROM calls WHERE warmup = 1");
    assert!(warm >= 2, "{warm} warm-up calls");
    let misfiled: i64 = query(
        &db,
        "SELECT COUNT(*) FROM calls c JOIN runs r USING (run_id)
         WHERE c.warmup = 1 AND (c.call_index < 4 OR c.phase != 'warmup' OR c.sent_ns >= r.started_at_ns
                                 OR c.status != 'OK' OR c.request_id != c.run_id || '-' || c.call_index)",
    );
    assert_eq!(misfiled, 0, "warm-up rows must be marked, indexed after the schedule and before time 0");
    let not_in_schedule: i64 = query(
        &db,
        "SELECT COUNT(*) FROM calls c JOIN schedule s USING (run_id, call_index) WHERE c.warmup = 1",
    );
    assert_eq!(not_in_schedule, 0);
    let status: String = query(&db, "SELECT status FROM runs");
    assert_eq!(status, "completed");

    // The leaf still has both instances ready (idle timeout 60 s).
    let function: String = query(&db, "SELECT function_id FROM functions");
    let state = platform.leaf.client().await.state(LeafStateRequest::default()).await.unwrap().into_inner();
    let load = state.functions.iter().find(|f| f.function_id.as_ref().is_some_and(|id| id.id == function));
    assert!(load.is_some_and(|l| l.ready_instances >= 2), "leaf state: {state:?}");
}

#[tokio::test]
async fn a_warm_up_that_cannot_finish_fails_the_run_naming_the_function() {
    // The leaf starts at most one instance of a function: two never get ready.
    let platform = Platform::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cold.db");
    let yaml = platform.workload("warmup: {instances: 2, timeout: 5s}\n");
    let (_stop_tx, stop) = watch::channel(Stop::Running);
    let error = run(options(&yaml, &db), stop).await.unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("within 5s (warmup.timeout)")
            && message.contains(&format!("{ECHO} (copy 0, function ")),
        "{message}"
    );
    assert!(message.contains("1 of 2 ready"), "{message}");
    let (status, error): (String, String) = Connection::open(&db)
        .unwrap()
        .query_row("SELECT status, error FROM runs", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!(status, "failed");
    assert!(error.contains("warmup.timeout"), "{error}");
    let measured: i64 = query(&db, "SELECT COUNT(*) FROM calls WHERE warmup = 0");
    assert_eq!(measured, 0, "no measured call is sent after a failed warm-up");
}
