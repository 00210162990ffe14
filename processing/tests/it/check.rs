use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use processing::ProcessError;
use processing::check::{Check, CheckOptions, Host, RunReport, check_run};
use processing::{ProcessOptions, Progress};
use rundb::calls::{CALLS_TABLE, RUNS_TABLE};
use rundb::fixtures::SynthRun;
use rundb::training::{INPUTS, RUN_SUMMARY_TABLE, TARGETS, TRAINING_DATA_TABLE};
use rundb::{CallStatus, RunStatus};
use rusqlite::{Connection, params};
use tempfile::TempDir;

const RUN: &str = "synth";
/// The workers and the leaf `SynthRun` and `RawDb` write.
const WORKERS: [&str; 2] = ["10.0.0.1:50051", "10.0.0.2:50051"];
const LEAF: &str = "synthetic";
/// A host large enough for the synthetic run's figures, whatever machine runs the test.
const HOST: Host = Host { cores: 64.0, memory_bytes: 1 << 40 };

/// A synthetic run as loadgen, the collector and processing would leave it:
/// written, its scheduled count set to the calls written, then processed.
/// `before_processing` may change the raw rows first.
struct Run {
    _dir: TempDir,
    db: PathBuf,
    calls: i64,
}

impl Run {
    fn new() -> Run {
        Run::with(|_| {})
    }

    fn with(before_processing: impl FnOnce(&Connection)) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("training_data").join(format!("{RUN}.db"));
        let counts = SynthRun::new(RUN, 3_000).write(&db).unwrap();
        let calls = i64::try_from(counts.calls).unwrap();
        let conn = Connection::open(&db).unwrap();
        conn.execute(
            &format!("UPDATE {RUNS_TABLE} SET calls_scheduled = ?1 WHERE run_id = ?2"),
            params![calls, RUN],
        )
        .unwrap();
        before_processing(&conn);
        drop(conn);
        processing::process_db(&db, Some(RUN), &ProcessOptions::default(), &Progress::default()).unwrap();
        Run { _dir: dir, db, calls }
    }

    fn sql(&self, sql: &str) -> usize {
        Connection::open(&self.db).unwrap().execute(sql, []).unwrap()
    }

    fn check(&self, options: &CheckOptions) -> Result<RunReport, ProcessError> {
        check_run(&self.db, RUN, options)
    }
}

/// Every expectation given: the synthetic run's workers and leaf.
fn options() -> CheckOptions {
    CheckOptions {
        workers: WORKERS.map(String::from).to_vec(),
        leaf_address: Some(LEAF.into()),
        ..CheckOptions::new(HOST)
    }
}

/// The checks a run failed; panics when it passed or failed otherwise.
fn failed(result: Result<RunReport, ProcessError>) -> Vec<Check> {
    match result {
        Ok(report) => panic!("the run passed:\n{report}"),
        Err(ProcessError::CheckFailed { failures, .. }) => failures.0.iter().map(|f| f.check).collect(),
        Err(e) => panic!("not a check failure: {e}"),
    }
}

fn process_check(db: &Path, run_id: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_process"));
    cmd.arg("check").arg("--db").arg(db).args(["--run-id", run_id, "--leaf", LEAF]);
    for w in WORKERS {
        cmd.args(["--worker", w]);
    }
    cmd.args(["--host-cores", "64", "--host-memory-bytes", &HOST.memory_bytes.to_string()]);
    cmd
}

#[test]
fn a_good_run_passes_every_check() {
    let run = Run::new();
    let report = run.check(&options()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.passed, Check::ALL, "{report}");
    assert!(report.skipped.is_empty());
    assert_eq!((report.calls, report.scheduled), (run.calls, Some(run.calls)));
    assert_eq!(report.images.len(), 3, "{report}");
    assert!(report.training_rows > run.calls / 2, "{report}");
    assert_eq!(report.workers, BTreeSet::from(WORKERS.map(String::from)));

    // Without expectations, the leaf and the workers are not checked, and say so.
    let report = run.check(&CheckOptions::new(HOST)).unwrap();
    assert_eq!(report.skipped, [Check::Leaf, Check::Workers]);
    assert_eq!(report.passed.len(), Check::ALL.len() - 2);
    assert!(report.to_string().contains("skipped (no expectation given): leaf workers"), "{report}");
}

#[test]
fn process_check_prints_what_it_found_and_fails_naming_the_file_the_run_and_the_check() {
    let run = Run::new();
    let out = process_check(&run.db, RUN).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("{} calls of {} scheduled", run.calls, run.calls)), "{stdout}");
    assert!(stdout.contains("hyperfaas-echo:latest: "), "{stdout}");
    assert!(stdout.contains(&format!("passed {} checks", Check::ALL.len())), "{stdout}");
    assert!(stdout.contains(&format!("run {RUN} in {}: ok", run.db.display())), "{stdout}");

    run.sql(&format!("DELETE FROM {TRAINING_DATA_TABLE}"));
    let out = process_check(&run.db, RUN).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.contains(&run.db.display().to_string()) && first.contains(RUN), "{stderr}");
    assert!(stderr.contains(&format!("- measured: no {TRAINING_DATA_TABLE} rows")), "{stderr}");
    assert!(stderr.contains("- image-rows: hyperfaas-echo:latest: no training rows"), "{stderr}");
    // What was found comes with it.
    assert!(stderr.contains(&format!("{} calls of {} scheduled", run.calls, run.calls)), "{stderr}");
}

#[test]
fn a_run_without_training_rows_fails() {
    let run = Run::new();
    run.sql(&format!("DELETE FROM {TRAINING_DATA_TABLE}"));
    let failed = failed(run.check(&options()));
    assert!(failed.contains(&Check::Measured), "{failed:?}");
    assert!(failed.contains(&Check::ImageRows), "{failed:?}");
    // run_summary still counts the rows that are gone.
    assert!(failed.contains(&Check::Summary), "{failed:?}");
}

#[test]
fn a_run_id_the_file_does_not_have_is_an_error() {
    let run = Run::new();
    match check_run(&run.db, "nope", &options()) {
        Err(ProcessError::UnknownRun { run_id, known, .. }) => {
            assert_eq!((run_id.as_str(), known.as_str()), ("nope", RUN))
        }
        other => panic!("expected UnknownRun, got {other:?}"),
    }
    let out = process_check(&run.db, "nope").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("has no run \"nope\" (runs in it: {RUN})")), "{stderr}");
    assert!(stderr.contains(&run.db.display().to_string()), "{stderr}");
}

#[test]
fn failed_calls_above_the_threshold_fail() {
    // Six in ten calls answered UNAVAILABLE: processing drops them as failed.
    let run = Run::with(|conn| {
        let n = conn
            .execute(
                &format!("UPDATE {CALLS_TABLE} SET status = ?1 WHERE call_index % 10 < 6"),
                [CallStatus::Unavailable],
            )
            .unwrap();
        assert!(n > 1_000);
    });
    assert_eq!(failed(run.check(&options())), [Check::FailedCalls]);
    // The threshold is the option's.
    let lenient = CheckOptions { max_failed_fraction: 0.7, ..options() };
    run.check(&lenient).unwrap_or_else(|e| panic!("{e}"));
    let strict = CheckOptions { max_failed_fraction: 0.0, ..options() };
    assert_eq!(failed(Run::new().check(&strict)), [Check::FailedCalls]);
}

#[test]
fn an_unfinished_run_or_missing_calls_fail() {
    let run = Run::new();
    Connection::open(&run.db)
        .unwrap()
        .execute(
            &format!("UPDATE {RUNS_TABLE} SET status = ?1, calls_scheduled = calls_scheduled + 5"),
            [RunStatus::Interrupted],
        )
        .unwrap();
    assert_eq!(failed(run.check(&options())), [Check::Completed, Check::CallsRecorded]);
}

#[test]
fn another_leaf_or_worker_fails() {
    let run = Run::new();
    let other_leaf = CheckOptions { leaf_address: Some("10.9.9.9:50050".into()), ..options() };
    assert_eq!(failed(run.check(&other_leaf)), [Check::Leaf]);
    // Rows from a worker the collector did not follow, and a followed worker without samples.
    let one_worker = CheckOptions { workers: vec![WORKERS[0].into(), "10.0.0.3:50051".into()], ..options() };
    assert_eq!(failed(run.check(&one_worker)), [Check::Workers; 4]);
}

#[test]
fn rows_out_of_range_fail() {
    let run = Run::new();
    let [_, instances, active, ..] = INPUTS;
    let [runtime, function_cpu, function_ram] = TARGETS;
    let t = TRAINING_DATA_TABLE;
    let first = format!("WHERE rowid = (SELECT MIN(rowid) FROM {t})");
    let last = format!("WHERE rowid = (SELECT MAX(rowid) FROM {t})");
    run.sql(&format!(
        "UPDATE {t} SET {runtime} = NULL, {active} = 0, {instances} = NULL, {function_cpu} = 100.0,
             {function_ram} = 0 {first}"
    ));
    run.sql(&format!("UPDATE {t} SET request_id = 'not-a-call', latency_ns = 1 {last}"));
    assert_eq!(
        failed(run.check(&options())),
        [
            Check::RowIsOkCall,
            Check::Targets,
            Check::ActiveCalls,
            Check::Instances,
            Check::RuntimeWithinLatency,
            Check::FunctionCpu,
            Check::FunctionRam
        ]
    );

    // A good run on a smaller host than it ran on: its figures exceed that host.
    let run = Run::new();
    let tiny = CheckOptions { host: Host { cores: 0.01, memory_bytes: 1 << 20 }, ..options() };
    assert_eq!(
        failed(run.check(&tiny)),
        [Check::FunctionRam, Check::WorkerCpu, Check::WorkerRam, Check::WorkerSamples]
    );
}

#[test]
fn an_unprocessed_run_fails_naming_the_missing_tables() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("raw.db");
    SynthRun::new(RUN, 100).write(&db).unwrap();
    let Err(ProcessError::CheckFailed { failures, .. }) = check_run(&db, RUN, &options()) else {
        panic!("an unprocessed run passed");
    };
    let tables = &failures.0[0];
    assert_eq!(tables.check, Check::Tables);
    assert!(
        tables.detail.contains(&format!("no table {TRAINING_DATA_TABLE}, {RUN_SUMMARY_TABLE}")),
        "{failures}"
    );
    assert!(tables.detail.contains("process --db"), "{failures}");
}

/// Run databases come from other hosts: every reader opens them read-only and
/// without trusting their schema, so a `runs` view over a virtual table that
/// is not innocuous (here one that would leak the reader's file paths) fails,
/// and the reader cannot write.
#[test]
fn readers_do_not_trust_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crafted.db");
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE calls(run_id TEXT); INSERT INTO calls VALUES ('r');
             CREATE VIEW runs AS SELECT file AS run_id FROM pragma_database_list;",
        )
        .unwrap();
    let conn = processing::raw::open_read(&db).unwrap();
    let trusted: i64 = conn.query_row("PRAGMA trusted_schema", [], |r| r.get(0)).unwrap();
    assert_eq!(trusted, 0);
    let err = conn.query_row("SELECT run_id FROM runs", [], |r| r.get::<_, String>(0)).unwrap_err();
    assert!(err.to_string().contains("unsafe use of virtual table"), "{err}");
    assert!(conn.execute("INSERT INTO calls VALUES ('x')", []).is_err(), "a reader wrote");
}
