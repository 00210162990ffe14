//! The two-node swarm: `scripts/test-swarm.sh` starts two private Docker
//! engines on this machine, each in network namespaces of its own
//! (`scripts/lib/second-engine.sh`), forms a swarm of them, loads the platform
//! images into both without a registry, deploys `swarm-stack.yaml` (database
//! and leaf on the manager, two fake workers on each node, one overlay
//! network), runs `configs/swarm-smoke.yaml` through the leaf from this host
//! and removes everything. The script checks the run; this test checks its
//! summary again: every call sent succeeded, and both nodes served calls.
//! Needs root, dockerd and the platform images (`scripts/test.sh` builds
//! them first); fails, never skips, when something is missing.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

#[test]
fn a_workload_runs_through_a_two_node_swarm() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = tempfile::tempdir().unwrap();
    let run_id = hyperfake_testkit::unique("swarm");
    let started = Instant::now();
    let output = Command::new(repo.join("scripts/test-swarm.sh"))
        // Never a nested cargo inside `cargo test` (it would wait on this
        // build's lock): scripts/test.sh builds the binaries and images first.
        .env("SKIP_BUILD", "1")
        .env("OUT_DIR", out.path())
        .env("RUN_ID", &run_id)
        .current_dir(repo)
        .output()
        .expect("running scripts/test-swarm.sh");
    let log = format!(
        "scripts/test-swarm.sh ({:.0?}, {})\n--- stdout\n{}\n--- stderr\n{}",
        started.elapsed(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{log}");
    let path = out.path().join("swarm-summary.json");
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}\n{log}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}\n{log}", path.display()));
    assert_eq!(summary["run_id"], run_id.as_str(), "{log}");
    let calls = &summary["calls"];
    let sent = calls["sent"].as_u64().unwrap_or(0);
    assert!(sent > 0, "no call was sent\n{log}");
    assert_eq!(calls["ok"].as_u64(), Some(sent), "every call sent must succeed\n{log}");
    assert_eq!(calls["due"], calls["recorded"], "every call due must be recorded\n{log}");
    let nodes = summary["per_node"].as_array().cloned().unwrap_or_default();
    assert_eq!(nodes.len(), 2, "{log}");
    for node in &nodes {
        assert!(
            node["calls_ok"].as_u64().unwrap_or(0) > 0 && node["instances"].as_u64().unwrap_or(0) > 0,
            "node {} served no call: {node}\n{log}",
            node["node"]
        );
    }
    let served: u64 = nodes.iter().filter_map(|n| n["calls_ok"].as_u64()).sum();
    assert_eq!(served, sent, "the calls per node must add up to the calls sent\n{log}");

    // The run database itself, read here rather than trusting the script:
    // swarm-stack.yaml places fakeworker-a* on the manager, fakeworker-b* on
    // the other node, and the leaf names the worker of every call.
    let db = out.path().join(format!("{run_id}.db"));
    let conn = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("{}: {e}\n{log}", db.display()));
    let ok_on = |prefix: &str| -> u64 {
        conn.query_row(
            "SELECT COUNT(*) FROM calls WHERE run_id = ?1 AND status = 'OK' AND worker_address LIKE ?2",
            rusqlite::params![run_id, format!("{prefix}%")],
            |row| row.get::<_, i64>(0),
        )
        .map(|n| u64::try_from(n).unwrap_or(0))
        .unwrap()
    };
    let (manager, worker) = (ok_on("fakeworker-a"), ok_on("fakeworker-b"));
    assert!(
        manager > 0 && worker > 0,
        "OK calls per node in {}: {manager} and {worker}\n{log}",
        db.display()
    );
    assert_eq!(manager + worker, sent, "every OK call came from a fake worker of one of the nodes\n{log}");
    assert_eq!(nodes[0]["calls_ok"].as_u64(), Some(manager), "the summary's manager count\n{log}");
    assert_eq!(nodes[1]["calls_ok"].as_u64(), Some(worker), "the summary's worker count\n{log}");
    eprintln!("{log}");
}
