use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use loadgen::record::RunStatus;
use loadgen::run::{RunOptions, RunReport, run};
use loadgen::{Stop, Workload};
use rusqlite::Connection;
use tokio::sync::watch;

use crate::common::{
    FUNCTION_HANDLER_TIME_NS, FUNCTION_PROCESSING_TIME_NS, INSTANCE, Seen, TestLeaf, serve, serve_with_token,
    workload_yaml,
};

async fn run_yaml(yaml: &str, db: &Path, stop: watch::Receiver<Stop>) -> RunReport {
    run_with_token(yaml, db, stop, None).await.unwrap_or_else(|e| panic!("{e:#}"))
}

async fn run_with_token(
    yaml: &str,
    db: &Path,
    stop: watch::Receiver<Stop>,
    token: Option<&str>,
) -> anyhow::Result<RunReport> {
    let workload = Workload::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    run(
        RunOptions {
            workload,
            config_yaml: yaml.to_string(),
            config_path: None,
            out: Some(db.to_path_buf()),
            leaf_address: None,
            run_id: Some("test-run".into()),
            max_in_flight: None,
            token: proto::auth::BearerToken::new(token).unwrap(),
            progress: false,
            writer: Default::default(),
        },
        stop,
    )
    .await
}

/// Runs `yaml` to its end (no stop) and checks that no row was lost.
async fn run_to_end(yaml: &str, db: &Path) -> (RunReport, Connection) {
    let (_stop_tx, stop) = watch::channel(Stop::Running);
    let report = run_yaml(yaml, db, stop).await;
    let conn = Connection::open(db).unwrap();
    assert_no_row_lost(&conn, &report);
    (report, conn)
}

/// Steps through `levels` once the leaf has seen `calls` calls (polling, not
/// guessing a sleep). The task returns the sender, to keep it alive until the
/// run has ended.
fn stop_after(
    seen: &Arc<Seen>,
    calls: u64,
    levels: &'static [Stop],
) -> (tokio::task::JoinHandle<watch::Sender<Stop>>, watch::Receiver<Stop>) {
    let (stop_tx, stop) = watch::channel(Stop::Running);
    let seen = Arc::clone(seen);
    let trigger = tokio::spawn(async move {
        while seen.calls.load(Ordering::SeqCst) < calls {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for level in levels {
            stop_tx.send(*level).unwrap();
        }
        stop_tx
    });
    (trigger, stop)
}

fn count(conn: &Connection, sql: &str) -> u64 {
    let n: i64 = conn.query_row(sql, [], |r| r.get(0)).unwrap_or_else(|e| panic!("{sql}: {e}"));
    u64::try_from(n).unwrap()
}

/// Every call that came due has exactly one row, and the run row agrees.
fn assert_no_row_lost(conn: &Connection, report: &RunReport) {
    let rows = count(conn, "SELECT COUNT(*) FROM calls WHERE run_id = 'test-run'");
    assert_eq!(rows, report.due, "rows vs calls due: {report:?}");
    assert_eq!(report.recorded, report.due);
    let (due, recorded): (i64, i64) = conn
        .query_row("SELECT calls_due, calls_recorded FROM runs WHERE run_id = 'test-run'", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((u64::try_from(due).unwrap(), u64::try_from(recorded).unwrap()), (report.due, report.due));
    // Each row is a distinct scheduled call.
    let distinct = count(conn, "SELECT COUNT(DISTINCT call_index) FROM calls");
    assert_eq!(distinct, rows);
    let orphans = count(
        conn,
        "SELECT COUNT(*) FROM calls c LEFT JOIN schedule s USING (run_id, call_index) WHERE s.call_index IS NULL",
    );
    assert_eq!(orphans, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_every_call_with_trailers_errors_and_calls_in_flight_at_the_end() {
    let served = serve(TestLeaf::new().with_slow_delay(Duration::from_millis(1500))).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("run.db");
    // The slow phase's last call is sent about 0.9 s in and returns 1.5 s later,
    // after the schedule has ended: the run must wait for it.
    let yaml = workload_yaml(
        served.addr,
        "10s",
        "5s",
        "64",
        &[
            "{name: e, type: constant, duration: 2s, start_rps: 10, image_tag: hyperfaas-echo:latest}",
            "{name: s, type: constant, start_time: 1s, duration: 1s, start_rps: 3, image_tag: hyperfaas-slow:latest}",
            "{name: f, type: constant, duration: 1s, start_rps: 4, image_tag: hyperfaas-fail:latest}",
        ],
    );
    let (_stop_tx, stop) = watch::channel(Stop::Running);
    let report = run_yaml(&yaml, &db, stop).await;
    assert_eq!(report.status, RunStatus::Completed);
    assert_eq!((report.scheduled, report.due), (27, 27));
    let conn = Connection::open(&db).unwrap();
    assert_no_row_lost(&conn, &report);
    assert_eq!(served.seen.calls.load(Ordering::SeqCst), 27);

    // Outcomes.
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM calls WHERE status = 'OK' AND grpc_code = 0"), 23);
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM calls WHERE image_tag = 'hyperfaas-slow:latest' AND status = 'OK'"
        ),
        3
    );
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM calls WHERE status = 'UNAVAILABLE' AND grpc_code = 14
             AND error = 'no worker has capacity' AND image_tag = 'hyperfaas-fail:latest'"
        ),
        4
    );
    // Times and sizes.
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM calls WHERE sent_ns IS NULL OR latency_ns IS NULL OR send_lag_ns != sent_ns - scheduled_ns
             OR send_lag_ns < 0 OR request_bytes != 64"
        ),
        0
    );
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM calls WHERE image_tag LIKE '%echo%' AND response_bytes = 64"),
        20
    );
    // Every trailer in its column, for OK and error outcomes alike.
    let typed = format!(
        "SELECT COUNT(*) FROM calls WHERE function_processing_time_ns = {FUNCTION_PROCESSING_TIME_NS}
         AND function_handler_time_ns = {FUNCTION_HANDLER_TIME_NS} AND instance_id = '{INSTANCE}'
         AND call_started_ns = leaf_got_request_ns + 30 AND call_queued_ns = leaf_got_request_ns + 20
         AND leaf_scheduled_call_ns = leaf_got_request_ns + 10 AND got_response_ns >= leaf_got_request_ns
         AND worker_address = '127.0.0.1:50051'
         AND json_extract(trailers_json, '$.\"x-extra-key\"') = 'kept-in-json'
         AND json_extract(trailers_json, '$.functionprocessingtime') = '{FUNCTION_PROCESSING_TIME_NS}'"
    );
    assert_eq!(count(&conn, &typed), 27);
    // The request id went out as metadata and names the call.
    let mut ids = served.seen.request_ids.lock().unwrap().clone();
    ids.sort();
    let mut stmt = conn.prepare("SELECT request_id FROM calls ORDER BY request_id").unwrap();
    let recorded: Vec<String> = stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    assert_eq!(ids, recorded);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM calls WHERE request_id = 'test-run-' || call_index"), 27);
    // The run row stores the config and the resolved schedule; functions were created with their config.
    let (status, config, resolved): (String, String, String) = conn
        .query_row("SELECT status, config_yaml, resolved_schedule_json FROM runs", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(status, "completed");
    assert_eq!(config, yaml);
    assert!(resolved.contains("\"phases\""));
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM schedule"), 27);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM functions WHERE function_id = 'fn-' || image_tag"), 3);
    let created = served.seen.created.lock().unwrap();
    let echo = &created["hyperfaas-echo:latest"];
    assert_eq!(echo.memory, 128 * 1024 * 1024);
    assert_eq!((echo.timeout, echo.max_concurrency), (45, 3));
    assert_eq!(echo.cpu.as_ref().map(|c| (c.period, c.quota)), Some((100_000, 50_000)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_their_deadline_are_recorded_as_deadline_exceeded() {
    let served = serve(TestLeaf::new().with_slow_delay(Duration::from_secs(30))).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("run.db");
    let yaml = workload_yaml(
        served.addr,
        "300ms",
        "2s",
        "8",
        &["{name: s, type: constant, duration: 1s, start_rps: 3, image_tag: hyperfaas-slow:latest}"],
    );
    let (_, conn) = run_to_end(&yaml, &db).await;
    let statuses: Vec<(String, Option<String>)> = conn
        .prepare("SELECT status, error FROM calls")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM calls WHERE status = 'DEADLINE_EXCEEDED' AND grpc_code = 4"),
        3,
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_mib_body_goes_through() {
    let served = serve(TestLeaf::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("run.db");
    let yaml = workload_yaml(
        served.addr,
        "20s",
        "3s",
        "1MiB",
        &["{name: big, type: constant, duration: 1s, start_rps: 3, image_tag: hyperfaas-echo:latest}"],
    );
    let (_, conn) = run_to_end(&yaml, &db).await;
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM calls WHERE status = 'OK' AND request_bytes = 1048576 AND response_bytes = 1048576"
        ),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_loses_no_row() {
    // Each echo takes 400 ms, so calls are in flight when the stop comes.
    let served = serve(TestLeaf::new().with_echo_delay(Duration::from_millis(400))).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("run.db");
    let yaml = workload_yaml(
        served.addr,
        "10s",
        "2m",
        "32",
        &["{name: long, type: constant, duration: 100s, start_rps: 20, image_tag: hyperfaas-echo:latest}"],
    );
    let (trigger, stop) = stop_after(&served.seen, 30, &[Stop::Drain]);
    let report = run_yaml(&yaml, &db, stop).await;
    drop(trigger.await.unwrap());
    assert_eq!(report.status, RunStatus::Interrupted);
    assert!(report.due >= 30 && report.due < report.scheduled, "{report:?}");
    let conn = Connection::open(&db).unwrap();
    assert_no_row_lost(&conn, &report);
    // Calls in flight at the stop were waited for: all OK, none cut off.
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM calls WHERE status = 'OK'"), report.due);
    assert_eq!(served.seen.calls.load(Ordering::SeqCst), report.due);
    let status: String = conn.query_row("SELECT status FROM runs", [], |r| r.get(0)).unwrap();
    assert_eq!(status, "interrupted");
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM schedule"), report.scheduled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_in_flight_cap_records_not_sent_instead_of_queueing() {
    let served = serve(TestLeaf::new().with_slow_delay(Duration::from_millis(1500))).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("run.db");
    let yaml = workload_yaml(
        served.addr,
        "10s",
        "3s",
        "8",
        &["{name: s, type: constant, duration: 1s, start_rps: 10, image_tag: hyperfaas-slow:latest}"],
    )
    .replace("seed: 5\n", "seed: 5\nmax_in_flight: 4\n");
    let (_, conn) = run_to_end(&yaml, &db).await;
    // All 10 are due within 1 s and each takes 1.5 s: the first 4 go out.
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM calls WHERE status = 'OK'"), 4);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM calls WHERE status = 'NOT_SENT' AND sent_ns IS NULL"), 6);
    assert_eq!(served.seen.calls.load(Ordering::SeqCst), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_stop_abandons_calls_in_flight_and_records_each() {
    // The slow calls take 30 s against a 60 s deadline: only abandoning ends
    // the run before they answer.
    let served = serve(TestLeaf::new().with_slow_delay(Duration::from_secs(30))).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("run.db");
    let yaml = workload_yaml(
        served.addr,
        "60s",
        "2m",
        "8",
        &["{name: s, type: constant, duration: 100s, start_rps: 5, image_tag: hyperfaas-slow:latest}"],
    );
    let (trigger, stop) = stop_after(&served.seen, 5, &[Stop::Drain, Stop::Abandon]);
    let report = run_yaml(&yaml, &db, stop).await;
    drop(trigger.await.unwrap());
    assert_eq!(report.status, RunStatus::Interrupted);
    let conn = Connection::open(&db).unwrap();
    assert_no_row_lost(&conn, &report);
    assert!(report.due >= 5, "{report:?}");
    let sent = count(&conn, "SELECT COUNT(*) FROM calls WHERE sent_ns IS NOT NULL");
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM calls WHERE status = 'ABANDONED' AND grpc_code IS NULL
               AND latency_ns IS NULL AND sent_ns IS NOT NULL AND error LIKE 'abandoned%outcome unknown%'"
        ),
        sent,
        "every call sent was in flight and is recorded as abandoned"
    );
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM calls WHERE status = 'OK'"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_create_distinct_functions_and_calls_go_to_the_scheduled_one() {
    let served = serve(TestLeaf::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("run.db");
    let yaml = workload_yaml(
        served.addr,
        "10s",
        "3s",
        "16",
        &["{name: e, type: constant, duration: 2s, start_rps: 15, image_tag: hyperfaas-echo:latest}"],
    )
    .replace("max_concurrency: 3}", "max_concurrency: 3, copies: 3}");
    let (report, conn) = run_to_end(&yaml, &db).await;
    assert_eq!(
        count(&conn, "SELECT COUNT(DISTINCT function_id) FROM functions WHERE copy BETWEEN 0 AND 2"),
        3
    );
    assert_eq!(served.seen.function_ids.lock().unwrap().len(), 3);
    // Each call went to the function of the copy its schedule row names.
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM calls c JOIN schedule s USING (run_id, call_index)
               JOIN functions f ON f.run_id = c.run_id AND f.image_tag = c.image_tag AND f.copy = s.copy
              WHERE f.function_id = c.function_id AND c.status = 'OK'"
        ),
        report.due
    );
    let by_function = served.seen.calls_by_function.lock().unwrap().clone();
    assert_eq!(by_function.len(), 3, "every copy got calls: {by_function:?}");
    assert_eq!(by_function.values().sum::<u64>(), report.due);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_with_a_token_refuses_a_run_without_it() {
    let served = serve_with_token(TestLeaf::new(), Some("s3cret")).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = workload_yaml(
        served.addr,
        "10s",
        "2s",
        "8",
        &["{name: e, type: constant, duration: 1s, start_rps: 5, image_tag: hyperfaas-echo:latest}"],
    );
    let (_stop_tx, stop) = watch::channel(Stop::Running);
    let refused = run_with_token(&yaml, &dir.path().join("none.db"), stop.clone(), None).await.unwrap_err();
    let text = format!("{refused:#}");
    assert!(text.contains("CreateFunction") && text.contains("missing token"), "{text}");
    let conn = Connection::open(dir.path().join("none.db")).unwrap();
    let status: String = conn.query_row("SELECT status FROM runs", [], |r| r.get(0)).unwrap();
    assert_eq!(status, "failed");
    assert_eq!(served.seen.calls.load(Ordering::SeqCst), 0, "no call is sent without the token");

    let wrong = run_with_token(&yaml, &dir.path().join("wrong.db"), stop.clone(), Some("guess")).await;
    assert!(format!("{:#}", wrong.unwrap_err()).contains("wrong token"));

    let db = dir.path().join("ok.db");
    let report = run_with_token(&yaml, &db, stop, Some("s3cret")).await.unwrap();
    let conn = Connection::open(&db).unwrap();
    assert_no_row_lost(&conn, &report);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM calls WHERE status = 'OK'"), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_features_are_recorded_per_call_from_the_bytes_sent() {
    let served = serve(TestLeaf::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("run.db");
    // The test leaf echoes functions whose id contains "echo": one image per
    // data provider type that features read.
    let yaml = format!(
        "leaf_address: \"{}\"
max_duration: 3s
timeout: 10s
seed: 11
workload:
  phases:
    - {{name: b, type: constant, duration: 1s, start_rps: 8, image_tag: bfs-echo:latest}}
    - {{name: t, type: constant, duration: 1s, start_rps: 5, image_tag: thumb-echo:latest}}
    - {{name: p, type: constant, duration: 1s, start_rps: 4, image_tag: plain-echo:latest}}
function_config:
  bfs-echo:latest:
    memory: 64MB
    features:
      - {{name: graph_nodes, json: /Size}}
      - {{name: missing, json: /nope}}
  thumb-echo:latest:
    memory: 64MB
    features:
      - {{name: image_bytes, base64_len: /image}}
      - {{name: target_pixels, product: [/width, /height]}}
      - {{name: request_bytes, payload_bytes: true}}
  plain-echo:latest:
    memory: 64MB
data_providers:
  bfs-echo:latest: {{type: bfs_json, min_nodes: 10, max_nodes: 500}}
  thumb-echo:latest: {{type: thumbnailer_json, source_sizes: [64x48], min_width: 1, max_width: 40, min_height: 1, max_height: 30, jpeg_quality: 80}}
  plain-echo:latest: {{type: echo, min_body_size: 32, max_body_size: 32}}
",
        served.addr
    );
    let (report, conn) = run_to_end(&yaml, &db).await;
    assert_eq!(report.due, 17);

    // Declarations, per function row, in the PayloadFeatures form.
    let declared = |tag: &str| -> Option<String> {
        conn.query_row("SELECT payload_features FROM functions WHERE image_tag = ?1", [tag], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(
        declared("bfs-echo:latest").as_deref(),
        Some(r#"[{"name":"graph_nodes","json":"/Size"},{"name":"missing","json":"/nope"}]"#)
    );
    assert_eq!(declared("plain-echo:latest").as_deref(), Some("[]"));

    // bfs: the graph size sent, and null (never 0) for a field the payload lacks.
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM calls WHERE image_tag = 'bfs-echo:latest'
               AND json_array_length(payload_features) = 2
               AND json_extract(payload_features, '$[0]') = bfs_size
               AND json_type(payload_features, '$[1]') = 'null'"
        ),
        8
    );
    // thumbnailer: the decoded JPEG length, width × height, and the bytes sent.
    let jpeg = loadgen::payload::source_jpeg(11, 64, 48, 80).unwrap().len();
    let thumbs = count(
        &conn,
        &format!(
            "SELECT COUNT(*) FROM calls WHERE image_tag = 'thumb-echo:latest'
               AND json_extract(payload_features, '$[0]') = {jpeg}
               AND json_extract(payload_features, '$[1]') = thumb_width * thumb_height
               AND json_extract(payload_features, '$[2]') = request_bytes
               AND request_bytes = response_bytes"
        ),
    );
    assert_eq!(thumbs, 5);
    // An image without features has none recorded.
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM calls WHERE image_tag = 'plain-echo:latest' AND payload_features IS NULL"
        ),
        4
    );
}
