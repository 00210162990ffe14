//! Builds two small run databases with loadgen's own schema and checks the
//! comparison's numbers and files.

mod common;

use common::{ECHO, RunDb};
use fidelity::{Comparison, RunData};
use rusqlite::Connection;

fn run_db(
    dir: &std::path::Path,
    name: &str,
    seed: i64,
    latencies_ms: &[u64],
    failures: usize,
) -> std::path::PathBuf {
    let mut db = RunDb::create(dir, name, name, seed);
    for (i, l) in latencies_ms.iter().enumerate() {
        let l = *l as i64;
        db.call(ECHO, "OK", Some(l * 1_000_000), Some(l * 500_000), if i % 2 == 0 { "a" } else { "b" });
    }
    for _ in 0..failures {
        db.call(ECHO, "UNAVAILABLE", None, None, "a");
    }
    db.path
}

#[test]
fn identical_runs_are_perfectly_faithful() {
    let dir = tempfile::tempdir().unwrap();
    let latencies: Vec<u64> = (1..=100).collect();
    let real = RunData::load(&run_db(dir.path(), "real.db", 7, &latencies, 0), None).unwrap();
    let fake = RunData::load(&run_db(dir.path(), "fake.db", 7, &latencies, 0), None).unwrap();
    let c = Comparison::new(&real, &fake);
    assert!(c.same_workload);
    let echo = &c.images[0];
    assert_eq!(echo.ks_distance, Some(0.0));
    assert_eq!(echo.latency_ratio_p50, Some(1.0));
    assert_eq!(echo.real.latency_p90_ms, Some(90.0));
    assert_eq!(echo.real.instances_used, 2);
    assert!((echo.real.throughput_per_s - 10.0).abs() < 1e-9, "100 calls over 10 s");
}

#[test]
fn a_slower_fake_with_errors_shows_in_every_number_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let real: Vec<u64> = (1..=100).collect();
    let fake: Vec<u64> = (1..=100).map(|l| l * 2).collect();
    let real = RunData::load(&run_db(dir.path(), "real.db", 7, &real, 0), None).unwrap();
    let fake = RunData::load(&run_db(dir.path(), "fake.db", 8, &fake, 25), None).unwrap();
    let c = Comparison::new(&real, &fake);
    assert!(!c.same_workload, "different seeds");
    let echo = &c.images[0];
    assert_eq!(echo.latency_ratio_p50, Some(2.0));
    assert!((echo.ks_distance.unwrap() - 0.5).abs() < 1e-9);
    assert!((echo.fake.error_rate - 0.2).abs() < 1e-9);
    let out = dir.path().join("report");
    let files = c.write(&out, &real, &fake).unwrap();
    for name in ["fidelity.json", "fidelity.md", "fidelity.html", "latency-ecdf-hyperfaas-echo_latest.svg"] {
        assert!(files.iter().any(|f| f.ends_with(name)), "{name} missing from {files:?}");
    }
    let md = std::fs::read_to_string(out.join("fidelity.md")).unwrap();
    assert!(md.contains("Warning"), "different workloads must be called out");
    let html = std::fs::read_to_string(out.join("fidelity.html")).unwrap();
    assert!(html.contains("latency-ecdf-hyperfaas-echo_latest.svg"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("fidelity.json")).unwrap()).unwrap();
    assert_eq!(json["images"][0]["fake"]["calls"], 125);
}

#[test]
fn a_file_with_several_runs_needs_a_run_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = run_db(dir.path(), "a.db", 1, &[1, 2], 0);
    let conn = Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO runs (run_id, started_at_ns, status, seed, leaf_address, config_yaml, resolved_schedule_json, \
         calls_scheduled, loadgen_version) VALUES ('other', 1, 'completed', 1, 'x', 'cfg', '{}', 0, 't')",
        [],
    )
    .unwrap();
    let err = RunData::load(&path, None).unwrap_err().to_string();
    assert!(err.contains("2 runs") && err.contains("other"), "{err}");
    assert!(RunData::load(&path, Some("a.db")).is_ok());
    assert!(RunData::load(&path, Some("nope")).unwrap_err().to_string().contains("nope"));
}
