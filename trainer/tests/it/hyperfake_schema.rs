//! HyperFake's own training database (`rundb::training::HYPERFAKE_SCHEMA`:
//! `id`, `request_id`, `image_tag`, an RFC 3339 `timestamp`, `status`, the 5
//! inputs, the 3 targets) is read as it is by `train` and `evaluate`.

use std::path::Path;
use std::process::Command;

use rusqlite::{Connection, params};

const IMAGE: &str = "hyperfaas-echo:latest";

/// `n` calls whose runtime, CPU and RAM are linear in the request size and
/// the active calls, one second apart, written in HyperFake's schema.
fn hyperfake_db(path: &Path, n: i64) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(rundb::training::HYPERFAKE_SCHEMA).unwrap();
    let mut insert = conn
        .prepare(
            "INSERT INTO training_data (request_id, image_tag, timestamp, status, request_size_bytes,
                 function_instances_count, active_function_calls_count, worker_cpu_usage, worker_ram_usage,
                 function_processing_time_ns, function_cpu_usage, function_ram_usage)
             VALUES (?1, ?2, ?3, 'success', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .unwrap();
    for i in 0..n {
        let size = 100 + (i * 7919) % 5000;
        let active = 1 + i % 5;
        let at =
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_750_000_000 + u64::try_from(i).unwrap());
        insert
            .execute(params![
                format!("req-{i}"),
                IMAGE,
                humantime::format_rfc3339_millis(at).to_string(),
                size,
                3,
                active,
                0.2 + 0.1 * active as f64,
                500_000_000 + 1_000 * size,
                1_000_000 + 400 * size + 50_000 * active,
                0.05 + 0.02 * active as f64,
                20_000_000 + 300 * size,
            ])
            .unwrap();
    }
}

fn trainer(args: &[&str], cwd: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_trainer")).args(args).current_dir(cwd).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "trainer {args:?} failed:\n{text}");
    text
}

#[test]
fn a_database_in_hyperfakes_own_schema_trains_by_time_and_evaluates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("training_data")).unwrap();
    hyperfake_db(&dir.path().join("training_data/hf.db"), 600);
    hyperfake_db(&dir.path().join("training_data/hf-other.db"), 300);
    trainer(
        &["train", "-q", "--db", "training_data/hf.db", "--model", "linear", "--split", "time", "--no-plots"],
        dir.path(),
    );
    let model = dir.path().join("models/hf/linear.json");
    assert!(model.is_file(), "no {}", model.display());
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&model).unwrap()).unwrap();
    let text = json.to_string();
    assert!(text.contains("request_size_bytes") && text.contains(IMAGE), "{text}");

    evaluate_fits(dir.path(), &[]);
}

/// `trainer evaluate` of `models/hf/linear.json` on `training_data/hf-other.db`
/// (with `extra` arguments): the targets are exact linear functions of the
/// inputs, so every R² is above 0.99.
fn evaluate_fits(dir: &Path, extra: &[&str]) {
    let mut args =
        vec!["evaluate", "-q", "--model", "models/hf/linear.json", "--db", "training_data/hf-other.db"];
    args.extend(extra);
    args.extend(["--out", "eval.json"]);
    trainer(&args, dir);
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("eval.json")).unwrap()).unwrap();
    let r2: Vec<f64> = find_all(&eval, "r2");
    assert!(!r2.is_empty(), "no r2 in {eval}");
    assert!(r2.iter().all(|r| *r > 0.99), "R² {r2:?} in {eval}");
}

/// HyperFake's `training_data_avg` as HyperFake fills it: the mean targets
/// per image and inputs, REAL columns, no run id and no time column.
fn fill_hyperfake_avg(path: &Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "INSERT INTO training_data_avg
         SELECT image_tag, request_size_bytes, function_instances_count, active_function_calls_count,
                worker_cpu_usage, worker_ram_usage, AVG(function_processing_time_ns), AVG(function_cpu_usage),
                AVG(function_ram_usage)
         FROM training_data
         GROUP BY image_tag, request_size_bytes, function_instances_count, active_function_calls_count,
                  worker_cpu_usage, worker_ram_usage",
    )
    .unwrap();
}

#[test]
fn hyperfakes_average_table_trains_with_a_random_split_and_evaluates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("training_data")).unwrap();
    for (name, n) in [("hf.db", 600), ("hf-other.db", 300)] {
        let db = dir.path().join("training_data").join(name);
        hyperfake_db(&db, n);
        fill_hyperfake_avg(&db);
    }
    let common = ["--db", "training_data/hf.db", "--table", "training_data_avg"];
    let mut args = vec!["train", "-q", "--model", "linear", "--split", "random", "--no-plots"];
    args.extend(common);
    trainer(&args, dir.path());
    let model = dir.path().join("models/hf/linear.json");
    assert!(model.is_file(), "no {}", model.display());

    evaluate_fits(dir.path(), &["--table", "training_data_avg"]);

    // A by-time split needs a time column, which this table does not have: refused, naming it.
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["train", "-q", "--model", "linear", "--split", "time", "--no-plots"])
        .args(common)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && text.contains("training_data_avg"), "{text}");
}

#[test]
fn a_timestamp_that_is_not_a_time_is_an_error_naming_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bad.db");
    hyperfake_db(&db, 50);
    Connection::open(&db)
        .unwrap()
        .execute("UPDATE training_data SET timestamp = 'yesterday' WHERE id = 7", [])
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["train", "-q", "--db", "bad.db", "--model", "linear", "--no-plots"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("row 7") && stderr.contains("timestamp") && stderr.contains("yesterday"),
        "{stderr}"
    );
}

/// Every number under a key named `key`, anywhere in `v`.
fn find_all(v: &serde_json::Value, key: &str) -> Vec<f64> {
    match v {
        serde_json::Value::Object(m) => m
            .iter()
            .flat_map(|(k, v)| if k == key { v.as_f64().into_iter().collect() } else { find_all(v, key) })
            .collect(),
        serde_json::Value::Array(a) => a.iter().flat_map(|v| find_all(v, key)).collect(),
        _ => vec![],
    }
}
