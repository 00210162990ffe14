//! i. A leaf (the `leaf` binary) starting against the real `database` binary
//! holding 200 000 functions and one stored row that no longer validates: it
//! starts, loads every valid function (the paged `List`), skips and logs the
//! bad row, and calls one of the stored functions.

use std::time::{Duration, Instant};

use hyperfake_core::FunctionId;
use hyperfake_testkit::{ContainerSweeper, ECHO};
use rusqlite::{Connection, params};

use super::report::Report;
use super::support::*;

const FUNCTIONS: usize = 200_000;

/// UUID-shaped ids, as the database generates them.
fn id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

/// Writes `n` valid echo functions and one invalid row (a negative memory
/// size) straight into the SQLite file, in one transaction.
fn fill(path: &std::path::Path, n: usize) {
    let mut conn = Connection::open(path).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO functions (id, image_tag, memory_bytes, cpu_period_us, cpu_quota_us, \
                 idle_timeout_s, max_concurrency, created_at_ns) \
                 VALUES (?1, ?2, ?3, NULL, NULL, 0, 0, ?4)",
            )
            .unwrap();
        for i in 0..n {
            insert.execute(params![id(i), ECHO, 64i64 << 20, i64::try_from(i).unwrap()]).unwrap();
        }
        insert.execute(params!["corrupt-row", ECHO, -1i64, i64::try_from(n).unwrap()]).unwrap();
    }
    tx.commit().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leaf_starts_over_200k_functions_and_a_corrupt_row() {
    hyperfake_testkit::require_image(ECHO);
    let mut report = Report::new("i-list-at-scale", "List: 200 000 functions and one corrupt row, real leaf");
    let sweeper = ContainerSweeper::new();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("functions.db");
    // The database creates its schema, then the rows go in while it is down.
    let mut first = database(&db, "127.0.0.1:0", dir.path());
    first.kill();
    let filled = Instant::now();
    fill(&db, FUNCTIONS);
    report.figure("rows written", FUNCTIONS + 1, "");
    report.figure("writing them", secs(filled.elapsed()), "s");

    let database = database(&db, "127.0.0.1:0", dir.path());
    let worker = worker(&sweeper, &database.address, None, dir.path());
    let started = Instant::now();
    let leaf = leaf(&database.address, &[&worker], dir.path());
    let start_time = started.elapsed();
    let log = leaf.log();
    let client = leaf_client(&leaf.address);
    let last =
        call(&client, &FunctionId::new(id(FUNCTIONS - 1)), b"found".to_vec(), Duration::from_secs(60)).await;
    let corrupt =
        call(&client, &FunctionId::new("corrupt-row"), b"x".to_vec(), Duration::from_secs(10)).await;

    report.figure("leaf start → listening (loads every page)", secs(start_time), "s");
    report.figure("call to the last stored function", format!("{:?}", last.code()), "");
    report.figure(
        "call to the corrupt row's id",
        format!("{:?}: {}", corrupt.code(), corrupt.result.as_ref().err().map_or("", |s| s.message())),
        "",
    );
    report.check("the leaf starts", !leaf.address.is_empty());
    report.check(
        "it logs loading all 200 000 valid functions",
        log.contains(&format!("functions={FUNCTIONS}")),
    );
    report.check("it logs skipping the one invalid row", log.contains("skipped=1"));
    report
        .check("a stored function answers", last.ok() && last.result.as_ref().is_ok_and(|r| r.0 == b"found"));
    report.check(
        "the corrupt row's id is refused as FAILED_PRECONDITION (not retryable), not served",
        corrupt.code() == tonic::Code::FailedPrecondition,
    );
    let debug = || format!("{}{}{}", leaf.log_tail(30), worker.log_tail(30), database.log_tail(30));
    report.finish(debug);
    drop((client, leaf, worker, database, sweeper));
}
