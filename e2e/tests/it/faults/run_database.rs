//! f. The run database under storage faults while loadgen and the collector
//! write to it: its write lock held by another process for 15 s, and its
//! file system (a small tmpfs) full for 15 s. Both writers keep their rows and
//! retry (README, "Reliability: what is promised"), so no row is lost. A disk
//! that stays full past their 60 s retry ends the run with an error naming the
//! database (opt-in: `--include-ignored`, about 80 s). Needs root (mount).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use collector::{Collector, CollectorSettings};
use hyperfake_testkit::{ECHO, unique};
use loadgen::Workload;
use loadgen::run::{RunOptions, RunReport};
use rusqlite::Connection;

use super::report::Report;
use super::support::*;

/// 10 calls/s of echo for `duration`.
fn workload(duration: &str) -> String {
    format!(
        r#"
max_duration: {duration}
timeout: 10s
seed: 14
arrival: poisson
max_in_flight: 100
workload:
  phases:
    - {{name: echo, type: constant, start_time: 0s, duration: {duration}, start_rps: 10, image_tag: {ECHO}}}
function_config:
  {ECHO}: {{memory: 64MB}}
data_providers:
  {ECHO}: {{type: echo, min_body_size: 16, max_body_size: 1KB}}
"#
    )
}

/// A tmpfs of `size` mounted at `dir`, unmounted on drop.
fn tmpfs(dir: &Path, size: &str) -> Undo {
    std::fs::create_dir_all(dir).unwrap();
    let dir = dir.display();
    Undo::apply(&format!("mount -t tmpfs -o size={size} hyperfake-faults {dir}"), &format!("umount -l {dir}"))
}

/// Fills the file system of `dir` with one file; returns its size.
fn fill(dir: &Path) -> u64 {
    let filler = dir.join("filler");
    // dd stops at ENOSPC (and says so); what it wrote is what counts.
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", &format!("of={}", filler.display()), "bs=4k"])
        .output()
        .unwrap();
    std::fs::metadata(&filler).map_or(0, |m| m.len())
}

fn count(db: &Path, sql: &str) -> i64 {
    let conn = Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The platform, the collector and a loadgen run writing into `db`; `fault`
/// runs 5 s into the run (on a blocking thread) while calls go on.
struct Run {
    report: Result<RunReport, String>,
    collector_received: u64,
    collector_committed: u64,
    collector_failed_commits: u64,
    collector_error: Option<String>,
    took: Duration,
}

async fn run_with_fault(
    p: &Platform,
    db: PathBuf,
    duration: &str,
    fault: impl FnOnce() + Send + 'static,
) -> Run {
    let run_id = unique("faults");
    let collector =
        Collector::start(CollectorSettings::new(vec![p.workers[0].address.clone()], &db, &run_id))
            .await
            .unwrap_or_else(|e| panic!("starting the collector: {}", collector::error_chain(&e)));
    let yaml = workload(duration);
    let options = RunOptions {
        workload: Workload::from_yaml(&yaml).expect("the test's workload parses"),
        config_yaml: yaml.clone(),
        config_path: None,
        out: Some(db.clone()),
        leaf_address: Some(p.leaf.address.clone()),
        run_id: Some(run_id),
        max_in_flight: None,
        token: Default::default(),
        progress: false,
        // The defaults: the 60 s retry and 10 s lock wait the README promises.
        writer: Default::default(),
    };
    let started = Instant::now();
    let (_stop_tx, stop) = tokio::sync::watch::channel(loadgen::Stop::Running);
    // The run's future is not Send: it runs on this task, beside the fault.
    let inject = async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        tokio::task::spawn_blocking(fault).await.unwrap();
    };
    let (report, ()) = tokio::join!(loadgen::run::run(options, stop), inject);
    let report = report.map_err(|e| format!("{e:#}"));
    let took = started.elapsed();
    let failed = collector.writer().failed_commits.load(Ordering::Acquire);
    let (received, committed, error) = match collector.shutdown().await {
        Ok(summary) => (summary.written.received_rows, summary.written.committed_rows, None),
        Err(e) => (0, 0, Some(collector::error_chain(&e))),
    };
    Run {
        report,
        collector_received: received,
        collector_committed: committed,
        collector_failed_commits: failed,
        collector_error: error,
        took,
    }
}

fn figures(report: &mut Report, run: &Run, db: &Path) -> (u64, u64, i64) {
    let (due, recorded) = run.report.as_ref().map_or((0, 0), |r| (r.due, r.recorded));
    let rows = if run.report.is_ok() { count(db, "SELECT count(*) FROM calls") } else { -1 };
    report.figure("calls due", due, "");
    report.figure("call rows recorded (loadgen's count)", recorded, "");
    report.figure("call rows in the database", rows, "");
    report.figure("loadgen rows lost", due.saturating_sub(recorded), "");
    report.figure(
        "collector rows received / committed",
        format!("{} / {}", run.collector_received, run.collector_committed),
        "",
    );
    report.figure("collector commits that failed and were retried", run.collector_failed_commits, "");
    report.figure("run took", secs(run.took), "s");
    (due, recorded, rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_database_locked_for_15_s_loses_no_row() {
    let p = Platform::start(1).await;
    let mut report =
        Report::new("f1-run-database-locked", "the run database's write lock held 15 s by another process");
    let db = p.dir.path().join("run.db");
    let holder = db.clone();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Duration::ZERO));
    let held_for = std::sync::Arc::clone(&held);
    let run = run_with_fault(&p, db.clone(), "30s", move || {
        let conn = Connection::open(&holder).unwrap();
        conn.busy_timeout(Duration::from_secs(30)).unwrap();
        conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let locked = Instant::now();
        std::thread::sleep(Duration::from_secs(15));
        conn.execute_batch("COMMIT").unwrap();
        *held_for.lock().unwrap() = locked.elapsed();
    })
    .await;
    report.figure("lock held", secs(*held.lock().unwrap()), "s");
    let (due, recorded, rows) = figures(&mut report, &run, &db);
    report.check("the run ends without error", run.report.is_ok());
    report.check(
        "loadgen loses no row (recorded = due = rows in calls)",
        due > 0 && recorded == due && rows == i64::try_from(due).unwrap_or(-1),
    );
    report.check("the collector ends without error", run.collector_error.is_none());
    report.check(
        "the collector loses no row (committed = received)",
        run.collector_received > 0 && run.collector_received == run.collector_committed,
    );
    report.finish(|| format!("{:?}\n{:?}\n{}", run.report, run.collector_error, p.debug()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_database_on_a_full_disk_for_15_s_loses_no_row() {
    let p = Platform::start(1).await;
    let mut report =
        Report::new("f2-run-database-disk-full", "the run database's file system (tmpfs) full for 15 s");
    let mount = p.dir.path().join("small");
    let _mounted = tmpfs(&mount, "16m");
    let db = mount.join("run.db");
    let dir = mount.clone();
    let filled = std::sync::Arc::new(std::sync::Mutex::new(0u64));
    let filled_by = std::sync::Arc::clone(&filled);
    let run = run_with_fault(&p, db.clone(), "30s", move || {
        *filled_by.lock().unwrap() = fill(&dir);
        std::thread::sleep(Duration::from_secs(15));
        std::fs::remove_file(dir.join("filler")).unwrap();
    })
    .await;
    report.figure("file system", "tmpfs, 16 MiB", "");
    report.figure("filler written until ENOSPC", *filled.lock().unwrap(), "bytes");
    report.figure("disk full for", 15, "s");
    let (due, recorded, rows) = figures(&mut report, &run, &db);
    report.check("the disk really filled (filler > 0)", *filled.lock().unwrap() > 0);
    report.check("the run ends without error", run.report.is_ok());
    report.check(
        "loadgen loses no row (recorded = due = rows in calls)",
        due > 0 && recorded == due && rows == i64::try_from(due).unwrap_or(-1),
    );
    report.check("the collector ends without error", run.collector_error.is_none());
    report.check(
        "the collector loses no row (committed = received)",
        run.collector_received > 0 && run.collector_received == run.collector_committed,
    );
    report.finish(|| format!("{:?}\n{:?}\n{}", run.report, run.collector_error, p.debug()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "long (about 80 s): run with --include-ignored"]
async fn a_disk_that_stays_full_ends_the_run_naming_the_database() {
    let p = Platform::start(1).await;
    let mut report =
        Report::new("f3-run-database-disk-stays-full", "the run database's file system full for good");
    let mount = p.dir.path().join("small");
    let _mounted = tmpfs(&mount, "16m");
    let db = mount.join("run.db");
    let dir = mount.clone();
    let run = run_with_fault(&p, db.clone(), "120s", move || {
        fill(&dir);
    })
    .await;
    let error = run.report.as_ref().err().cloned().unwrap_or_default();
    report.figure("run ended after (fault at 5 s)", secs(run.took), "s");
    report.figure("loadgen's error", error.clone(), "");
    report.figure("collector's error", run.collector_error.clone().unwrap_or_default(), "");
    report.check("the run ends with an error", run.report.is_err());
    report.check("before its 120 s schedule is over", run.took < Duration::from_secs(115));
    report.check("naming the database", error.contains(&db.display().to_string()));
    report.check("and the cause (full disk)", error.to_lowercase().contains("full"));
    report.finish(|| format!("{:?}\n{:?}\n{}", run.report, run.collector_error, p.debug()));
}
