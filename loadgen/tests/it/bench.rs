//! `loadgen bench` end to end at a low rate: a no-op leaf process, its
//! ceiling, two rounds of one step through the real run path, both reports
//! written.
//! Nothing here depends on how fast the machine is.

use std::path::PathBuf;
use std::time::Duration;

use loadgen::bench::{BenchOptions, bench};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bench_step_records_every_call_and_measures_cpu_and_the_ceiling() {
    let dir = tempfile::tempdir().unwrap();
    let options = BenchOptions {
        rates: vec![200],
        rounds: 2,
        step: Duration::from_secs(1),
        ceiling: Duration::from_secs(1),
        body_bytes: 64,
        max_lag_p99: Duration::from_millis(2),
        out_dir: dir.path().to_path_buf(),
        loadgen_exe: PathBuf::from(env!("CARGO_BIN_EXE_loadgen")),
    };
    let report = tokio::time::timeout(Duration::from_secs(120), bench(options))
        .await
        .expect("the benchmark ended")
        .expect("the benchmark ran");

    let ceiling = report.ceiling.as_ref().expect("the ceiling was measured");
    assert!(ceiling.calls > 0 && ceiling.errors == 0, "{ceiling:?}");
    assert!(ceiling.leaf_cpu_cores > 0.0, "the leaf's CPU is read from its process: {ceiling:?}");
    let [step, again] = report.steps.as_slice() else {
        panic!("one step per rate and round: {:?}", report.steps)
    };
    assert_eq!((step.round, again.round), (1, 2));
    assert_eq!(again.rows, again.scheduled, "every call of the second round has its row too");
    assert_eq!(step.scheduled, 200);
    assert_eq!(step.rows, step.scheduled, "every call has its row");
    assert_eq!(step.lost_rows, 0);
    assert_eq!(step.errors, 0, "{:?}", step.errors_by_status);
    assert!(step.loadgen_cpu_cores > 0.0 && step.leaf_cpu_cores.is_finite(), "{step:?}");
    assert!(report.zero_lost_rows);
    assert!(report.idle_wakeup.samples > 0, "the machine's own wake-up lateness is the lag's baseline");
    assert!(step.wakeup.samples > 0 && again.wakeup.samples > 0, "the probe ran beside every step: {step:?}");

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("loadgen.json")).unwrap()).unwrap();
    assert_eq!(json["steps"][0]["rows"], 200);
    assert!(json["ceiling"]["rps"].as_f64().unwrap() > 0.0);
    let md = std::fs::read_to_string(dir.path().join("loadgen.md")).unwrap();
    assert!(md.contains("Build profile") && md.contains("ceiling") && md.contains("| 200 | 1 |"), "{md}");
    assert!(
        md.contains("200 calls/s") && md.contains(" of 2."),
        "a line counts the rounds that met the criteria: {md}"
    );
    assert!(md.contains("wake-up lateness") && md.contains("probe p99"), "{md}");
}
