//! The two-host pipeline: `scripts/test-two-host.sh` starts the containerized
//! platform on a private Docker network (the SUT host), runs
//! `scripts/run-full-pipeline.sh` from this host's network namespace against
//! the containers' addresses, checks the run database and tears it all down.
//! The same invariants as the local run are checked again here on its database.
//! Needs the workspace binaries and the platform and function images, which
//! `scripts/test.sh` builds before running the tests.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::common::check_run;

#[test]
fn pipeline_against_a_platform_on_another_host() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = tempfile::tempdir().unwrap();
    let run_id = hyperfake_testkit::unique("twohost");
    let started = Instant::now();
    let output = Command::new(repo.join("scripts/test-two-host.sh"))
        // Never a nested cargo inside `cargo test` (it would wait on this build's
        // lock): scripts/test.sh builds the binaries and images beforehand.
        .env("SKIP_BUILD", "1")
        .env("OUT_DIR", out.path())
        .env("RUN_ID", &run_id)
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
    let db = out.path().join("training_data").join(format!("{run_id}.db"));
    if let Err(problems) = check_run(&db, &run_id) {
        let kept = out.keep();
        panic!("{problems}\n(kept {})\n{log}", kept.display());
    }
    eprintln!("{log}");
}
