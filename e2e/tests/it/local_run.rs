//! A short local run on the real platform, in process: database, two Docker
//! workers and a leaf (testkit), the collector following both workers and the
//! load generator sending a seeded workload, then processing. The training
//! rows must satisfy the invariants of docs/units.md (`processing::check`).

use std::time::{Duration, Instant};

use collector::{Collector, CollectorSettings};
use hyperfake_testkit::{
    BFS, ContainerSweeper, ECHO, HELLO, SIMUL, TestDatabase, TestLeaf, TestWorker, container_logs,
    leaf_settings, require_image, unique,
};
use loadgen::Workload;
use loadgen::run::RunOptions;
use processing::check::{CheckOptions, Host, check_run};
use processing::{ProcessOptions, Progress};
use worker::WorkerSettings;

/// About 15 s at 8 calls/s over four functions, each with a CPU quota.
const WORKLOAD: &str = r#"
max_duration: 15s
timeout: 20s
seed: 7
arrival: poisson
max_in_flight: 100
workload:
  phases:
    - {name: echo, type: constant, start_time: 0s, duration: 15s, start_rps: 3, image_tag: hyperfaas-echo:latest}
    - {name: hello, type: constant, start_time: 0s, duration: 15s, start_rps: 2, image_tag: hyperfaas-hello:latest}
    - {name: simul, type: constant, start_time: 1s, duration: 14s, start_rps: 2, image_tag: hyperfaas-simul:latest}
    - {name: bfs, type: constant, start_time: 2s, duration: 13s, start_rps: 1, image_tag: hyperfaas-bfs:latest}
function_config:
  hyperfaas-echo:latest: {memory: 128MB, cpu: {period: 100000, quota: 25000}}
  hyperfaas-hello:latest: {memory: 64MB, cpu: {period: 100000, quota: 25000}}
  hyperfaas-simul:latest: {memory: 64MB, cpu: {period: 100000, quota: 25000}, max_concurrency: 8}
  hyperfaas-bfs:latest: {memory: 256MB, cpu: {period: 100000, quota: 50000}, timeout: 30}
data_providers:
  hyperfaas-echo:latest: {type: echo, min_body_size: 16, max_body_size: 16KB}
  hyperfaas-hello:latest: {type: generic, min_body_size: 0, max_body_size: 64}
  hyperfaas-simul:latest: {type: generic, min_body_size: 0, max_body_size: 64}
  hyperfaas-bfs:latest: {type: bfs_json, min_nodes: 100, max_nodes: 1000}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn training_rows_of_a_real_run_satisfy_the_invariants() {
    for image in [ECHO, HELLO, SIMUL, BFS] {
        require_image(image);
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("run.db");
    let run_id = unique("e2e");

    // Dropped in reverse: leaf, workers (they remove their containers), database, sweeper.
    let sweeper = ContainerSweeper::new();
    let database = TestDatabase::start().await;
    let mut workers = Vec::new();
    for i in 0..2 {
        let settings = WorkerSettings::new(format!("e2e{i}-{}", sweeper.test_id));
        workers.push(TestWorker::docker(&sweeper, settings, database.client.clone()).await);
    }
    let addresses: Vec<String> = workers.iter().map(|w| w.address.clone()).collect();
    let leaf = TestLeaf::start(leaf_settings(&database.address, addresses.clone())).await;

    let collector = Collector::start(CollectorSettings::new(addresses.clone(), &db, &run_id))
        .await
        .unwrap_or_else(|e| panic!("starting the collector: {}", collector::error_chain(&e)));

    let options = RunOptions {
        workload: Workload::from_yaml(WORKLOAD).expect("the test's workload parses"),
        config_yaml: WORKLOAD.to_string(),
        config_path: None,
        out: Some(db.clone()),
        leaf_address: Some(leaf.address.clone()),
        run_id: Some(run_id.clone()),
        max_in_flight: None,
        token: Default::default(),
        progress: false,
        writer: Default::default(),
    };
    let (_stop_tx, stop) = tokio::sync::watch::channel(loadgen::Stop::Running);
    let report = tokio::time::timeout(Duration::from_secs(60), loadgen::run::run(options, stop))
        .await
        .unwrap_or_else(|_| {
            panic!("the workload did not finish within 60 s\n{}", container_logs(&sweeper.label()))
        })
        .unwrap_or_else(|e| panic!("loadgen run: {e:#}\n{}", container_logs(&sweeper.label())));
    let collected = collector.shutdown().await.expect("stopping the collector");
    assert_eq!(report.recorded, report.scheduled, "rows recorded vs calls scheduled: {report:?}");
    assert!(report.scheduled > 50, "the workload scheduled only {} calls", report.scheduled);
    assert!(collected.written.committed_rows > 0, "the collector wrote nothing: {collected:?}");

    let summaries = {
        let (path, run) = (db.clone(), run_id.clone());
        tokio::task::spawn_blocking(move || {
            processing::process_db(&path, Some(&run), &ProcessOptions::default(), &Progress::default())
        })
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("processing {}: {e}", db.display()))
    };
    assert_eq!(summaries.len(), 1);

    let options = CheckOptions::new(Host::this_machine().expect("this machine's cores and memory"));
    match check_run(&db, &run_id, &options) {
        Ok(report) => eprintln!("local run ok in {:.1?}:\n{report}", started.elapsed()),
        Err(problems) => {
            // Keep the database for a look after the test.
            let kept = dir.keep();
            panic!("{problems}\n(database kept in {})\n{}", kept.display(), container_logs(&sweeper.label()));
        }
    }
    drop(leaf);
    drop(workers);
    drop(database);
    drop(sweeper);
}
