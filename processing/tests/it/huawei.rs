use std::path::{Path, PathBuf};
use std::process::Command;

use processing::huawei::{ImportError, ImportOptions, ImportProgress, ImportSummary, SkipReason, import};
use rusqlite::Connection;

const IMAGE_A: &str = "huawei-296---224---pool22-300-128:latest";
const IMAGE_B: &str = "huawei-400---418---pool24-600-512:latest";
const MIB: i64 = 1024 * 1024;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/huawei").join(name)
}

fn import_fixture(dir: &Path) -> (PathBuf, ImportSummary) {
    let db = dir.join("training_data").join("huawei-fixture.db");
    let mut options = ImportOptions::new(&db, vec![fixture("requests.csv")]);
    options.cold_starts = vec![fixture("cold_starts.csv")];
    let summary = import(&options, &ImportProgress::default()).unwrap();
    (db, summary)
}

/// The imported columns of one request, by its id.
#[derive(Debug, PartialEq)]
struct Row {
    image_tag: String,
    call_started_ns: i64,
    request_size_bytes: Option<i64>,
    function_instances_count: i64,
    active_function_calls_count: i64,
    worker_cpu_usage: f64,
    worker_ram_usage: i64,
    function_processing_time_ns: i64,
    function_cpu_usage: f64,
    function_ram_usage: i64,
    worker_processing_time_ns: i64,
    got_response_ns: i64,
    latency_ns: Option<i64>,
    instance_id: String,
    worker: String,
    worker_overhead_ns: i64,
}

fn row(conn: &Connection, request_id: &str) -> Row {
    conn.query_row(
        "SELECT image_tag, call_started_ns, request_size_bytes, function_instances_count,
                active_function_calls_count, worker_cpu_usage, worker_ram_usage, function_processing_time_ns,
                function_cpu_usage, function_ram_usage, worker_processing_time_ns, got_response_ns, latency_ns,
                instance_id, worker, worker_overhead_ns
         FROM training_data WHERE request_id = ?1",
        [request_id],
        |r| {
            Ok(Row {
                image_tag: r.get(0)?,
                call_started_ns: r.get(1)?,
                request_size_bytes: r.get(2)?,
                function_instances_count: r.get(3)?,
                active_function_calls_count: r.get(4)?,
                worker_cpu_usage: r.get(5)?,
                worker_ram_usage: r.get(6)?,
                function_processing_time_ns: r.get(7)?,
                function_cpu_usage: r.get(8)?,
                function_ram_usage: r.get(9)?,
                worker_processing_time_ns: r.get(10)?,
                got_response_ns: r.get(11)?,
                latency_ns: r.get(12)?,
                instance_id: r.get(13)?,
                worker: r.get(14)?,
                worker_overhead_ns: r.get(15)?,
            })
        },
    )
    .unwrap_or_else(|e| panic!("request {request_id}: {e}"))
}

fn assert_close(got: f64, want: f64) {
    assert!((got - want).abs() < 1e-12, "{got} != {want}");
}

fn scalar<T: rusqlite::types::FromSql>(conn: &Connection, sql: &str) -> T {
    conn.query_row(sql, [], |r| r.get(0)).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[test]
fn the_fixture_imports_with_units_converted_and_inputs_derived() {
    let dir = tempfile::tempdir().unwrap();
    let (db, summary) = import_fixture(dir.path());
    assert_eq!((summary.rows_imported(), summary.rows_skipped()), (80, 0));
    assert_eq!((summary.functions, summary.cold_starts_imported()), (2, 5));
    assert!(!PathBuf::from(format!("{}.partial", db.display())).exists());
    let conn = Connection::open(&db).unwrap();
    assert_eq!(
        scalar::<i64>(&conn, "SELECT COUNT(*) FROM training_data WHERE run_id = 'huawei-fixture'"),
        80
    );
    assert_eq!(
        scalar::<i64>(&conn, &format!("SELECT COUNT(*) FROM training_data WHERE image_tag = '{IMAGE_B}'")),
        40
    );

    // Seconds → ns, MB (MiB) → bytes, cores as they are; the first request
    // of its function runs alone on its pod.
    let p1 = "pool22-300-128-0000618412";
    let a1 = Row {
        image_tag: IMAGE_A.into(),
        call_started_ns: 2_592_000_000_000_000,
        request_size_bytes: Some(1018),
        function_instances_count: 1,
        active_function_calls_count: 1,
        worker_cpu_usage: 0.0,
        worker_ram_usage: 0,
        function_processing_time_ns: 499_888_000,
        function_cpu_usage: 0.291506,
        // 32.308594 MB × 1024².
        function_ram_usage: 33_878_016,
        worker_processing_time_ns: 500_000_000,
        got_response_ns: 2_592_000_500_000_000,
        latency_ns: Some(502_421_000),
        instance_id: p1.into(),
        worker: "cluster-1".into(),
        worker_overhead_ns: 112_000,
    };
    assert_eq!(row(&conn, "a0001"), a1);
    // a0002 (pod 13) and a0003 (pod 12) start together while a0001 runs:
    // three calls in flight, two pods; the others' CPU and RAM summed.
    let a2 = row(&conn, "a0002");
    assert_eq!((a2.active_function_calls_count, a2.function_instances_count), (3, 2));
    assert_close(a2.worker_cpu_usage, 0.541506);
    assert_eq!(a2.worker_ram_usage, 33_878_016 + 33 * MIB);
    let a3 = row(&conn, "a0003");
    assert_eq!((a3.active_function_calls_count, a3.function_instances_count), (3, 2));
    assert_close(a3.worker_cpu_usage, 0.491506);
    assert_eq!(a3.worker_ram_usage, 33_878_016 + 30 * MIB + MIB / 2);
    // workerCost written as 6e-06.
    assert_eq!(a3.worker_overhead_ns, 6_000);
    // a0004 starts at 0.600 s, when a0003 (0.1 + 0.5 s) ends: the closed
    // interval still holds it; a0001 and a0002 have ended. Pod 13 idles
    // within the keep-alive, so two pods are live.
    let a4 = row(&conn, "a0004");
    assert_eq!((a4.active_function_calls_count, a4.function_instances_count), (2, 2));
    assert_eq!((a4.worker_cpu_usage, a4.worker_ram_usage), (0.25, 33 * MIB));

    // Empty cells are NULL; no request id: <file>:<line>.
    assert_eq!(row(&conn, "a0012").request_size_bytes, None);
    assert_eq!(row(&conn, "a0013").latency_ns, None);
    assert_eq!(row(&conn, "requests.csv:50").instance_id, p1);
    // Columns with no counterpart are NULL everywhere.
    for column in ["queue_time_ns", "bfs_size", "thumb_width", "thumb_height"] {
        let sql = format!("SELECT COUNT(*) FROM training_data WHERE {column} IS NOT NULL");
        assert_eq!(scalar::<i64>(&conn, &sql), 0, "{column}");
    }
    let columns = rundb::columns(&conn, "training_data").unwrap();
    assert!(!columns.iter().any(|c| c == "response_size_bytes"), "{columns:?}");
    assert!(columns.iter().any(|c| c == "worker_overhead_ns"), "{columns:?}");

    // Cold starts: seconds → ns, per pod.
    let (tag, worker, ns): (String, String, i64) = conn
        .query_row(
            "SELECT image_tag, worker, duration_ns FROM cold_starts WHERE instance_id = ?1",
            [p1],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((tag.as_str(), worker.as_str(), ns), (IMAGE_A, "cluster-1", 911_090_000));

    // The runs row describes the import.
    let (status, due, recorded, json): (String, i64, i64, String) = conn
        .query_row("SELECT status, calls_due, calls_recorded, resolved_schedule_json FROM runs", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap();
    assert_eq!((status.as_str(), due, recorded), ("completed", 80, 80));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["requests"][0]["rows_imported"], 80);
    assert_eq!(json["cold_starts"][0]["rows_imported"], 5);
}

#[test]
fn the_trainer_trains_on_the_import() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = import_fixture(dir.path());
    let config = trainer::TrainConfig {
        dbs: vec![db],
        table: trainer::Table::TrainingData,
        // ModelKind is the model crate's; its serde names are the CLI's.
        kinds: serde_json::from_str(r#"["linear", "random-forest"]"#).unwrap(),
        out: dir.path().join("models"),
        run: None,
        split: trainer::split::SplitConfig {
            mode: trainer::split::SplitMode::Random,
            seed: 7,
            val_fraction: 0.15,
            test_fraction: 0.15,
        },
        ridge: trainer::linear::RidgeConfig {
            penalties: trainer::linear::default_penalties(),
            folds: 3,
            seed: 7,
        },
        forest: trainer::forest::ForestConfig {
            n_trees: 10,
            max_depth: Some(6),
            min_samples_leaf: 2,
            min_samples_split: 2,
            max_features: 5,
            threads: 2,
            seed: 7,
        },
        min_train_rows: 10,
        plots: false,
        payload_features: true,
    };
    let outcome = trainer::train(&config, &trainer::Progress::hidden()).unwrap();
    let images: Vec<&str> = outcome.report.images.iter().map(|i| i.image_tag.as_str()).collect();
    assert_eq!(images, [IMAGE_A, IMAGE_B]);
    for image in &outcome.report.images {
        assert_eq!(image.skipped, None, "{}", image.image_tag);
        assert_eq!(image.inputs.len(), 5, "{}", image.image_tag);
        // No response sizes in the trace: HyperFake's three targets.
        assert_eq!(image.targets.len(), 3, "{}", image.image_tag);
        assert_eq!(image.models.len(), 2, "{}", image.image_tag);
        assert_eq!(image.cold_starts, if image.image_tag == IMAGE_A { 3 } else { 2 });
    }
    // Only the request without a body size is dropped.
    assert_eq!(outcome.report.images[0].rows_dropped_null, 1);
    assert_eq!(outcome.report.images[1].rows_dropped_null, 0);
    assert_eq!(outcome.models.len(), 4);
    assert!(outcome.run_dir.join("linear.json").is_file());
    assert!(outcome.run_dir.join("random-forest").join("huawei-296---224---pool22-300-128.onnx").is_file());
}

/// The fixture's header and first `n` data lines, `edit` applied to line
/// `line` (1-based, the header is 1), written to `dir/name`.
fn edited(dir: &Path, name: &str, n: usize, line: usize, edit: impl Fn(&str) -> String) -> PathBuf {
    let text = std::fs::read_to_string(fixture("requests.csv")).unwrap();
    let out: Vec<String> = text
        .lines()
        .take(n + 1)
        .enumerate()
        .map(|(i, l)| if i + 1 == line { edit(l) } else { l.to_owned() })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, out.join("\n") + "\n").unwrap();
    path
}

/// Sets column `column` of a fixture line to `value`.
fn set(column: &str, value: &'static str) -> impl Fn(&str) -> String {
    let header = std::fs::read_to_string(fixture("requests.csv")).unwrap();
    let index = header.lines().next().unwrap().split(',').position(|c| c == column).unwrap();
    move |line: &str| {
        let mut fields: Vec<&str> = line.split(',').collect();
        fields[index] = value;
        fields.join(",")
    }
}

fn import_one(dir: &Path, csv: &Path, strict: bool) -> Result<ImportSummary, ImportError> {
    let mut options = ImportOptions::new(dir.join("out.db"), vec![csv.to_owned()]);
    options.strict = strict;
    import(&options, &ImportProgress::default())
}

#[test]
fn a_bad_row_is_skipped_and_counted_or_with_strict_named_by_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    type Edit = Box<dyn Fn(&str) -> String>;
    let cases: [(&str, Edit, SkipReason, &str); 5] = [
        (
            "negative.csv",
            Box::new(set("runtimeCost", "-0.1")),
            SkipReason::Negative,
            "column runtimeCost: -0.1 is negative",
        ),
        (
            "nan.csv",
            Box::new(set("cpu_usage", "abc")),
            SkipReason::BadNumber,
            "column cpu_usage: \"abc\" is not a number",
        ),
        (
            "empty.csv",
            Box::new(set("memory_usage", "")),
            SkipReason::MissingValue,
            "column memory_usage: empty",
        ),
        (
            "short.csv",
            Box::new(|l: &str| l.rsplit_once(',').unwrap().0.to_owned()),
            SkipReason::Malformed,
            "17 fields where the header has 18",
        ),
        (
            "function.csv",
            Box::new(set("funcName", "!!")),
            SkipReason::BadFunction,
            "column funcName: no valid image reference",
        ),
    ];
    for (name, edit, reason, message) in cases {
        let csv = edited(dir.path(), name, 4, 3, edit);
        let err = import_one(dir.path(), &csv, true).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with(&format!("{}:3: {message}", csv.display())), "{name}: {text}");
        assert!(
            matches!(&err, ImportError::BadRow(e) if e.reason == reason && e.line == 3),
            "{name}: {err:?}"
        );
        assert!(!dir.path().join("out.db").exists(), "{name}: a failed import left a database");
        assert!(!dir.path().join("out.db.partial").exists(), "{name}: a failed import left its partial file");

        let summary = import_one(dir.path(), &csv, false).unwrap();
        let counts = &summary.requests[0];
        assert_eq!((counts.rows_read, counts.rows_imported), (4, 3), "{name}");
        assert_eq!(counts.skipped.get(&reason), Some(&1), "{name}: {:?}", counts.skipped);
        let conn = Connection::open(dir.path().join("out.db")).unwrap();
        assert_eq!(scalar::<i64>(&conn, "SELECT COUNT(*) FROM training_data"), 3, "{name}");
        let json: String = scalar(&conn, "SELECT resolved_schedule_json FROM runs");
        assert!(json.contains(&format!("\"{}\":1", reason.as_str())), "{name}: {json}");
        drop(conn);
        std::fs::remove_file(dir.path().join("out.db")).unwrap();
    }
}

#[test]
fn missing_files_columns_and_rows_stop_the_import_naming_what_and_where() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.csv");
    let err = import_one(dir.path(), &missing, false).unwrap_err();
    assert!(matches!(&err, ImportError::Read { path, .. } if path == &missing), "{err:?}");
    assert_eq!(err.to_string(), format!("cannot read {}", missing.display()));

    let no_memory = edited(dir.path(), "no-memory.csv", 2, 1, |h| h.replace("memory_usage", "mem"));
    let err = import_one(dir.path(), &no_memory, false).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "{}:1: the header has no column memory_usage (it has: ",
            no_memory.display()
        )),
        "{text}"
    );

    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    assert!(matches!(import_one(dir.path(), &empty, false), Err(ImportError::Empty { .. })));

    // Every row bad: nothing to train on is an error, and no file is left.
    let all_bad = edited(dir.path(), "all-bad.csv", 1, 2, set("runtimeCost", "-1"));
    let err = import_one(dir.path(), &all_bad, false).unwrap_err();
    assert!(matches!(err, ImportError::NothingImported { skipped: 1, .. }), "{err:?}");
    assert!(!dir.path().join("out.db").exists());

    // An existing database is not overwritten.
    let (db, _) = import_fixture(dir.path());
    let options = ImportOptions::new(&db, vec![fixture("requests.csv")]);
    let err = import(&options, &ImportProgress::default()).unwrap_err();
    assert!(matches!(&err, ImportError::Exists { path } if path == &db), "{err:?}");
}

#[test]
fn process_import_huawei_prints_the_counts_and_fails_naming_the_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let out = Command::new(env!("CARGO_BIN_EXE_process"))
        .args(["import-huawei", "-q", "--requests"])
        .arg(fixture("requests.csv"))
        .arg("--cold-starts")
        .arg(fixture("cold_starts.csv"))
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("run cli: 80 training rows of 2 functions, 5 cold starts"), "{stdout}");

    let bad = edited(dir.path(), "bad.csv", 3, 4, set("requestBodySize", "-5"));
    let out = Command::new(env!("CARGO_BIN_EXE_process"))
        .args(["import-huawei", "-q", "--strict", "--requests"])
        .arg(&bad)
        .arg("--db")
        .arg(dir.path().join("bad.db"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:4: column requestBodySize: -5 is negative", bad.display())),
        "{stderr}"
    );
}
