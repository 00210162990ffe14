use std::process::Command;

use crate::common::{Fixture, W1, count, ms};

fn process() -> Command {
    Command::new(env!("CARGO_BIN_EXE_process"))
}

#[test]
fn process_writes_the_tables_and_prints_a_summary() {
    let mut f = Fixture::new();
    f.start(W1, "aaaaaaaaaaa1", ms(0)).steady(W1, "aaaaaaaaaaa1", 0, 500, 0.5, 1 << 20).worker_steady(
        W1,
        0,
        500,
        1.0,
        1 << 30,
    );
    f.call("aaaaaaaaaaa1", ms(100), ms(200));
    let db = f.write();
    let out = process().arg("--db").arg(&db).arg("-q").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("run r1: 1 calls, 1 training rows"), "{stdout}");
    assert_eq!(count(&db, "training_data", ""), 1);

    let out = process().arg("--db").arg(&db).args(["--run-id", "nope"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("has no run \"nope\" (runs in it: r1)"), "{stderr}");

    let plots = f.dir().join("plots");
    let out = process().args(["plots", "--db"]).arg(&db).arg("--out").arg(&plots).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(plots.join("index.html").is_file());
}

/// Logs written to a file are plain text: no ANSI colour codes.
#[test]
fn a_log_written_to_a_file_has_no_colour_codes() {
    let mut f = Fixture::new();
    f.start(W1, "aaaaaaaaaaa1", ms(0));
    f.call("aaaaaaaaaaa1", ms(100), ms(200));
    let db = f.write();
    let log = f.dir().join("process.log");
    let out = process()
        .arg("--db")
        .arg(&db)
        .env("RUST_LOG", "debug")
        .env_remove("NO_COLOR")
        .stderr(std::fs::File::create(&log).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("INFO") || text.contains("DEBUG"), "no log lines in the file:\n{text}");
    assert!(!text.contains('\u{1b}'), "colour codes in a log file:\n{text:?}");
}

#[test]
fn plots_default_to_a_directory_beside_the_database() {
    let mut f = Fixture::new();
    f.start(W1, "aaaaaaaaaaa1", ms(0));
    f.call("aaaaaaaaaaa1", ms(100), ms(200));
    let db = f.write();
    let out = process().args(["plots", "--db"]).arg(&db).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(db.parent().unwrap().join("r1").join("plots").join("throughput.png").is_file());
}

#[test]
fn bench_writes_json_and_markdown() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench").join("processing");
    let status = process().args(["bench", "-q", "--calls", "2000", "--out"]).arg(&out).output().unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.with_extension("json")).unwrap()).unwrap();
    assert_eq!(json["calls"], 2000);
    assert!(json["total_s"].as_f64().unwrap() > 0.0);
    assert!(std::fs::read_to_string(out.with_extension("md")).unwrap().contains("| **total** |"));
}
