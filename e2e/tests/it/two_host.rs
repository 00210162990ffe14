//! The two-host pipeline: `scripts/test-two-host.sh` starts the containerized
//! platform on a private Docker network (the SUT host), runs
//! `scripts/run-full-pipeline.sh` from this host's network namespace against
//! the containers' addresses, checks the run database and tears it all down.
//! The same invariants as the local run are checked again here on its database.
//! It also runs the pipeline's out-of-sample step (`--fake-sut`): a validation
//! run with another seed against the SUT, the same workload on a local fake
//! platform over the trained forests, the models scored on the validation rows
//! and the fidelity report of the two, whose header must say so.
//! Needs the workspace binaries and the platform and function images, which
//! `scripts/test.sh` builds before running the tests.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use processing::check::{CheckOptions, Host, check_run};

#[test]
fn pipeline_against_a_platform_on_another_host() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = tempfile::tempdir().unwrap();
    let run_id = hyperfake_testkit::unique("twohost");
    let started = Instant::now();
    // The local fake platform (scripts/platform.sh) takes ports by number; the
    // workers need two consecutive ones.
    let [database_port, leaf_port, worker_port] = free_ports();
    let output = Command::new(repo.join("scripts/test-two-host.sh"))
        // Never a nested cargo inside `cargo test` (it would wait on this build's
        // lock): scripts/test.sh builds the binaries and images beforehand.
        .env("SKIP_BUILD", "1")
        .env("OUT_DIR", out.path())
        .env("RUN_ID", &run_id)
        .env("FAKE_SUT", "1")
        .env("DATABASE_PORT", database_port.to_string())
        .env("LEAF_PORT", leaf_port.to_string())
        .env("WORKER_PORT", worker_port.to_string())
        .current_dir(repo)
        .output()
        .expect("running scripts/test-two-host.sh");
    let log = format!(
        "scripts/test-two-host.sh ({:.0?}, {})\n--- stdout\n{}\n--- stderr\n{}",
        started.elapsed(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{log}");
    let data = out.path().join("training_data");
    let validation_id = format!("{run_id}-validation");
    let options = CheckOptions::new(Host::this_machine().expect("this machine's cores and memory"));
    for (db, id) in [
        (data.join(format!("{run_id}.db")), run_id.clone()),
        (data.join(format!("{validation_id}.db")), validation_id.clone()),
        // The fake run too: its simulated host reports the training run's
        // base load besides its calls, as a real host would.
        (data.join(format!("{validation_id}-fake.db")), format!("{validation_id}-fake")),
    ] {
        if let Err(problems) = check_run(&db, &id, &options) {
            let kept = out.keep();
            panic!("{}: {problems}\n(kept {})\n{log}", db.display(), kept.display());
        }
    }
    let report = out.path().join("reports").join(&run_id);
    let fidelity = std::fs::read_to_string(report.join("fidelity.json"))
        .unwrap_or_else(|e| panic!("{}/fidelity.json: {e}\n{log}", report.display()));
    assert!(
        fidelity.contains("out of sample") && fidelity.contains(&format!("{run_id}.db")),
        "the fidelity report must say it is out of sample and name the training data:\n{fidelity}"
    );
    // The training run is the reference: the real platform's own run-to-run variation.
    let json: serde_json::Value = serde_json::from_str(&fidelity).expect("fidelity.json is JSON");
    assert_eq!(json["reference"]["run"], run_id.as_str(), "no real-vs-real reference:\n{fidelity}");
    assert!(
        json["images"]
            .as_array()
            .is_some_and(|i| i.iter().any(|i| i["real_vs_real"]["ks_distance"].is_number())),
        "no real-vs-real statistics:\n{fidelity}"
    );
    let scored = std::fs::read_dir(report.join("out-of-sample"))
        .map(|d| {
            d.filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))).count()
        })
        .unwrap_or(0);
    assert!(scored >= 2, "expected the models of echo and hello scored out of sample, found {scored}\n{log}");
    eprintln!("{log}");
}

/// A free port for the database and the leaf, and the first of two consecutive
/// free ports for the workers (free when asked; nothing holds them after).
fn free_ports() -> [u16; 3] {
    let free = |port: u16| TcpListener::bind(("127.0.0.1", port)).is_ok();
    let any = || TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap();
    let (database, leaf) = (any(), any());
    let workers = (0..100)
        .map(|_| any())
        .find(|&p| {
            p < u16::MAX
                && ![database, leaf].contains(&p)
                && ![database, leaf].contains(&(p + 1))
                && free(p + 1)
        })
        .expect("two consecutive free ports");
    [database, leaf, workers]
}
