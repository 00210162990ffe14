use std::process::{Command, Stdio};
use std::time::Duration;

use hyperfake_testkit::TestDatabase;

use crate::common::*;

fn collector() -> Command {
    Command::new(env!("CARGO_BIN_EXE_collector"))
}

#[test]
fn help_lists_every_option() {
    let out = collector().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--worker",
        "--run-id",
        "--db",
        "--interval",
        "--record-call-events",
        "--token",
        "HYPERFAKE_TOKEN",
        "--batch-interval",
        "--batch-rows",
        "--no-progress",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}:\n{help}");
    }
}

#[test]
fn bad_arguments_are_refused_with_the_reason() {
    let out = collector().args(["--worker", "127.0.0.1:1", "--run-id", "a b"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("run id \"a b\""), "{stderr}");
}

/// SIGTERM: the binary flushes, closes its session and exits 0.
#[tokio::test]
async fn sigterm_closes_the_session_and_exits_zero() {
    let database = TestDatabase::start().await;
    let fake = FakeWorker::serve(&database, None).await;
    let function = echo_function(&database, config(64, None, 0, 0)).await;
    let run = Run::new();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_collector"))
        .args([
            "--worker",
            &fake.address,
            "--run-id",
            &run.run_id,
            "--no-progress",
            "--batch-interval",
            "100ms",
        ])
        .arg("--db")
        .arg(&run.db)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Connected once the worker has two Status-or-Resources subscribers; the
    // Status subscriber is the one the hub counts.
    let deadline = tokio::time::Instant::now() + WITHIN;
    while fake.worker.events.subscriber_count() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the collector never subscribed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let instance = fake.start_stop(&function).await;
    until(&run, "events committed by the running binary", |run| {
        run.lifecycle_of(std::slice::from_ref(&instance)).len() == 2
    })
    .await;
    let pid = child.id().unwrap();
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let out = tokio::time::timeout(WITHIN, child.wait_with_output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains(&format!("following {}", fake.address)), "{stdout}");
    assert!(stdout.contains("session 1 closed"), "{stdout}");
    let sessions = run.sessions();
    assert_eq!(sessions.len(), 1);
    assert!(sessions[0].1.is_some(), "session not closed");
}
