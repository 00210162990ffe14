//! The tables processing writes and the trainer reads: `training_data`,
//! `training_data_avg`, `run_summary`, `payload_features` and `cold_starts`,
//! and the column order every model follows. The model crate takes its
//! input and output names from here, so model files and tables cannot
//! drift apart. Units: `docs/units.md`, "Training database schema".

use rusqlite::Connection;

/// The five fixed model inputs, in model order (HyperFake's).
pub const INPUTS: [&str; 5] = [
    "request_size_bytes",
    "function_instances_count",
    "active_function_calls_count",
    "worker_cpu_usage",
    "worker_ram_usage",
];
/// Units of [`INPUTS`], as named in `docs/units.md`.
pub const INPUT_UNITS: [&str; 5] = ["bytes", "count", "count", "cores", "bytes"];

/// HyperFake's three model outputs, in model order.
pub const TARGETS: [&str; 3] = ["function_processing_time_ns", "function_cpu_usage", "function_ram_usage"];
/// Units of [`TARGETS`].
pub const TARGET_UNITS: [&str; 3] = ["ns", "cores", "bytes"];

/// The response size target column (bytes).
pub const RESPONSE_SIZE: &str = "response_size_bytes";
/// The worker overhead target column (ns): worker processing − handler time.
pub const WORKER_OVERHEAD: &str = "worker_overhead_ns";
/// The targets a model has after [`TARGETS`] when its table has both columns.
pub const EXTRA_TARGETS: [&str; 2] = [RESPONSE_SIZE, WORKER_OVERHEAD];
/// Every output of a 5-output model, in order: [`TARGETS`], then [`EXTRA_TARGETS`].
pub const ALL_TARGETS: [&str; 5] = [TARGETS[0], TARGETS[1], TARGETS[2], EXTRA_TARGETS[0], EXTRA_TARGETS[1]];
/// Units of [`ALL_TARGETS`].
pub const ALL_TARGET_UNITS: [&str; 5] = [TARGET_UNITS[0], TARGET_UNITS[1], TARGET_UNITS[2], "bytes", "ns"];

/// `training_data` columns, in table order: HyperFake's schema first (ids,
/// [`INPUTS`], [`TARGETS`], worker time), then the extras processing adds,
/// then [`EXTRA_TARGETS`]. One `feature_<name>` REAL column per declared
/// payload feature follows ([`add_missing_columns`]).
pub const TRAINING_COLUMNS: [&str; 23] = [
    "run_id",
    "request_id",
    "image_tag",
    "call_started_ns",
    INPUTS[0],
    INPUTS[1],
    INPUTS[2],
    INPUTS[3],
    INPUTS[4],
    TARGETS[0],
    TARGETS[1],
    TARGETS[2],
    "worker_processing_time_ns",
    // Extras.
    "got_response_ns",
    "queue_time_ns",
    "latency_ns",
    "bfs_size",
    "thumb_width",
    "thumb_height",
    "instance_id",
    "worker",
    EXTRA_TARGETS[0],
    EXTRA_TARGETS[1],
];

/// `training_data_avg` columns, in table order (`run_id` is an extra: each
/// run's groups are its own, so re-processing one run replaces only its rows).
pub const AVG_COLUMNS: [&str; 11] = [
    "image_tag",
    INPUTS[0],
    INPUTS[1],
    INPUTS[2],
    INPUTS[3],
    INPUTS[4],
    TARGETS[0],
    TARGETS[1],
    TARGETS[2],
    "sample_count",
    "run_id",
];

/// The table of training rows, one per call that has every input and target.
pub const TRAINING_DATA_TABLE: &str = "training_data";
/// The table of per-image run summaries.
pub const RUN_SUMMARY_TABLE: &str = "run_summary";
/// The table of declared payload features (one row per feature and image).
pub const PAYLOAD_FEATURES_TABLE: &str = "payload_features";
/// The table of measured instance start durations.
pub const COLD_STARTS_TABLE: &str = "cold_starts";
/// The tables processing replaces a run's rows of.
pub const RUN_TABLES: [&str; 5] =
    ["training_data", "training_data_avg", "run_summary", PAYLOAD_FEATURES_TABLE, COLD_STARTS_TABLE];

/// `training_data`: one row per call that has every input and target; HyperFake's
/// columns first, in [`TRAINING_COLUMNS`] order.
pub const TRAINING_DATA_DDL: &str = "
CREATE TABLE IF NOT EXISTS training_data (
    run_id TEXT,
    request_id TEXT,
    image_tag TEXT,
    call_started_ns INTEGER,            -- worker clock
    request_size_bytes INTEGER,
    function_instances_count INTEGER,
    active_function_calls_count INTEGER,
    worker_cpu_usage REAL,              -- cores
    worker_ram_usage INTEGER,           -- bytes
    function_processing_time_ns INTEGER, -- handler time
    function_cpu_usage REAL,            -- cores
    function_ram_usage INTEGER,         -- bytes
    worker_processing_time_ns INTEGER,  -- worker-measured
    got_response_ns INTEGER,            -- worker clock
    queue_time_ns INTEGER,              -- call_started - call_queued
    latency_ns INTEGER,                 -- client-measured
    bfs_size INTEGER,
    thumb_width INTEGER,
    thumb_height INTEGER,
    instance_id TEXT,
    worker TEXT,
    response_size_bytes INTEGER,        -- calls.response_bytes
    worker_overhead_ns INTEGER          -- worker_processing_time_ns - function_processing_time_ns
    -- then one feature_<name> REAL per payload feature (added as runs declare them)
);
CREATE INDEX IF NOT EXISTS training_data_run ON training_data (run_id);
";
/// `training_data_avg`: means per group of calls, in [`AVG_COLUMNS`] order.
pub const TRAINING_DATA_AVG_DDL: &str = "
CREATE TABLE IF NOT EXISTS training_data_avg (
    image_tag TEXT,
    request_size_bytes REAL,
    function_instances_count REAL,
    active_function_calls_count REAL,
    worker_cpu_usage REAL,
    worker_ram_usage REAL,
    function_processing_time_ns REAL,
    function_cpu_usage REAL,
    function_ram_usage REAL,
    sample_count INTEGER,
    run_id TEXT
);
";
/// `run_summary`: per run and image, what became of the calls.
pub const RUN_SUMMARY_DDL: &str = "
CREATE TABLE IF NOT EXISTS run_summary (
    run_id TEXT NOT NULL,
    image_tag TEXT NOT NULL,
    calls INTEGER NOT NULL,
    calls_ok INTEGER NOT NULL,
    calls_failed INTEGER NOT NULL,       -- status other than OK (NOT_SENT included)
    calls_by_status_json TEXT NOT NULL,  -- {\"OK\": n, \"UNAVAILABLE\": n, ...}
    function_errors INTEGER NOT NULL,    -- OK calls whose handler returned an error
    training_rows INTEGER NOT NULL,
    training_rows_null_inputs INTEGER NOT NULL,
    dropped_failed INTEGER NOT NULL,
    dropped_unknown_instance INTEGER NOT NULL,
    dropped_no_runtime INTEGER NOT NULL,
    dropped_no_function_cpu INTEGER NOT NULL,
    dropped_no_function_ram INTEGER NOT NULL,
    dropped_runtime_exceeds_latency INTEGER NOT NULL,
    median_queue_time_ns INTEGER,
    median_runtime_ns INTEGER,
    overloaded INTEGER NOT NULL,         -- 1: median queueing > 10% of median runtime
    cpu_quota_cores REAL,
    payload_feature_nulls TEXT,          -- {\"<feature name>\": training rows with it NULL}; {} if none declared
    PRIMARY KEY (run_id, image_tag)
);
";
/// `payload_features`: the payload features each image declared, in model order.
pub const PAYLOAD_FEATURES_DDL: &str = "
CREATE TABLE IF NOT EXISTS payload_features (
    run_id TEXT NOT NULL,
    image_tag TEXT NOT NULL,
    position INTEGER NOT NULL,           -- 0-based, declaration order (the model's input 5 + position)
    name TEXT NOT NULL,                  -- its training_data column is feature_<name>
    declaration TEXT NOT NULL,           -- this feature's JSON, e.g. {\"name\":\"n\",\"json\":\"/Size\"}
    PRIMARY KEY (run_id, image_tag, position)
);
";
/// `cold_starts`: measured Start→ready durations.
pub const COLD_STARTS_DDL: &str = "
CREATE TABLE IF NOT EXISTS cold_starts (
    run_id TEXT NOT NULL,
    image_tag TEXT,                      -- NULL when no function or call names the instance's image
    instance_id TEXT NOT NULL,
    worker TEXT NOT NULL,
    duration_ns INTEGER NOT NULL         -- worker accepted Start -> instance ready
);
CREATE INDEX IF NOT EXISTS cold_starts_run_image ON cold_starts (run_id, image_tag);
";

/// The processed tables, in creation order.
pub const SCHEMA: [&str; 5] =
    [TRAINING_DATA_DDL, TRAINING_DATA_AVG_DDL, RUN_SUMMARY_DDL, PAYLOAD_FEATURES_DDL, COLD_STARTS_DDL];

/// The two tables with only the base columns (`docs/units.md`, "Training
/// database schema"): ids, the 5 inputs, the 3 targets and the worker's
/// time; no extras, no extra targets, no `run_id` in the averages. Models
/// trained on it have HyperFake's 5 inputs and 3 outputs; fixtures write it
/// to show that readers accept it.
pub const BASE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS training_data (
    run_id TEXT,
    request_id TEXT,
    image_tag TEXT,
    call_started_ns INTEGER,
    request_size_bytes INTEGER,
    function_instances_count INTEGER,
    active_function_calls_count INTEGER,
    worker_cpu_usage REAL,
    worker_ram_usage INTEGER,
    function_processing_time_ns INTEGER,
    function_cpu_usage REAL,
    function_ram_usage INTEGER,
    worker_processing_time_ns INTEGER
);
CREATE TABLE IF NOT EXISTS training_data_avg (
    image_tag TEXT,
    request_size_bytes REAL,
    function_instances_count REAL,
    active_function_calls_count REAL,
    worker_cpu_usage REAL,
    worker_ram_usage REAL,
    function_processing_time_ns REAL,
    function_cpu_usage REAL,
    function_ram_usage REAL,
    sample_count INTEGER
);
";

/// The training tables exactly as HyperFake's own pipeline writes them: a
/// row id, `request_id`, `image_tag`, a `timestamp` (RFC 3339 text), the
/// call's `status`, the 5 inputs and the 3 targets; no run id, no worker
/// clock. The trainer reads databases of this shape as they are (a by-time
/// split sorts on `timestamp`); fixtures write it to show that it does.
pub const HYPERFAKE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS training_data (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT,
    image_tag TEXT,
    timestamp TEXT,
    status TEXT,
    request_size_bytes INTEGER,
    function_instances_count INTEGER,
    active_function_calls_count INTEGER,
    worker_cpu_usage REAL,
    worker_ram_usage INTEGER,
    function_processing_time_ns INTEGER,
    function_cpu_usage REAL,
    function_ram_usage INTEGER
);
CREATE TABLE IF NOT EXISTS training_data_avg (
    image_tag TEXT,
    request_size_bytes REAL,
    function_instances_count REAL,
    active_function_calls_count REAL,
    worker_cpu_usage REAL,
    worker_ram_usage REAL,
    function_processing_time_ns REAL,
    function_cpu_usage REAL,
    function_ram_usage REAL
);
";

/// Creates the processed tables if needed, and adds to tables made by an
/// older writer (or by HyperFake) the columns they lack.
pub fn create(conn: &Connection) -> rusqlite::Result<()> {
    for ddl in SCHEMA {
        conn.execute_batch(ddl)?;
    }
    add_missing_columns(conn, "training_data", &TRAINING_COLUMNS)?;
    add_missing_columns(conn, "training_data_avg", &AVG_COLUMNS)?;
    add_missing_columns(conn, "run_summary", &["payload_feature_nulls"])
}

/// The declared type of a column added to an existing table: the new ones
/// have theirs, the older extras keep none (as before).
fn column_type(column: &str) -> &'static str {
    match column {
        RESPONSE_SIZE | WORKER_OVERHEAD => " INTEGER",
        "payload_feature_nulls" => " TEXT",
        c if c.starts_with(hyperfake_core::payload::COLUMN_PREFIX) => " REAL",
        _ => "",
    }
}

/// Adds to `table` those of `columns` it lacks: a table made by an older
/// writer may lack the extras, and a run may declare payload features
/// (`feature_<name>`) no earlier run did.
pub fn add_missing_columns<S: AsRef<str>>(
    conn: &Connection,
    table: &str,
    columns: &[S],
) -> rusqlite::Result<()> {
    let existing = crate::columns(conn, table)?;
    for c in columns.iter().map(AsRef::as_ref).filter(|c| !existing.iter().any(|e| e == c)) {
        conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN \"{c}\"{}", column_type(c)))?;
    }
    Ok(())
}

/// The unit of a known input or output column ("" when unknown, e.g. a
/// payload feature).
pub fn unit_of(column: &str) -> &'static str {
    INPUTS
        .iter()
        .zip(INPUT_UNITS)
        .chain(ALL_TARGETS.iter().zip(ALL_TARGET_UNITS))
        .find(|(c, _)| **c == column)
        .map_or("", |(_, u)| u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_have_exactly_the_declared_columns_in_order() {
        let conn = Connection::open_in_memory().unwrap();
        create(&conn).unwrap();
        assert_eq!(crate::columns(&conn, "training_data").unwrap(), TRAINING_COLUMNS);
        assert_eq!(crate::columns(&conn, "training_data_avg").unwrap(), AVG_COLUMNS);
        // HyperFake's order: the inputs, then the targets, right after the ids.
        assert_eq!(&TRAINING_COLUMNS[4..9], &INPUTS);
        assert_eq!(&TRAINING_COLUMNS[9..12], &TARGETS);
        assert_eq!(&TRAINING_COLUMNS[21..], &EXTRA_TARGETS);
        assert_eq!(unit_of("worker_cpu_usage"), "cores");
        assert_eq!(unit_of(WORKER_OVERHEAD), "ns");
        assert_eq!(unit_of("feature_graph_nodes"), "");
    }

    #[test]
    fn the_table_name_constants_name_the_tables_the_schemas_create() {
        let conn = Connection::open_in_memory().unwrap();
        crate::calls::create(&conn).unwrap();
        crate::collector::create(&conn).unwrap();
        create(&conn).unwrap();
        for table in [
            crate::calls::RUNS_TABLE,
            crate::calls::CALLS_TABLE,
            crate::collector::INSTANCE_EVENTS_TABLE,
            crate::collector::CONTAINER_SAMPLES_TABLE,
            crate::collector::WORKER_SAMPLES_TABLE,
            TRAINING_DATA_TABLE,
            RUN_SUMMARY_TABLE,
            PAYLOAD_FEATURES_TABLE,
            COLD_STARTS_TABLE,
        ] {
            assert!(crate::has_table(&conn, table).unwrap(), "no table {table}");
        }
    }

    #[test]
    fn an_older_table_gains_the_missing_columns_and_keeps_its_rows() {
        let conn = Connection::open_in_memory().unwrap();
        // The base schema: 13 columns, no extras, no run_id in the averages.
        conn.execute_batch(BASE_SCHEMA).unwrap();
        assert_eq!(crate::columns(&conn, "training_data").unwrap(), TRAINING_COLUMNS[..13]);
        assert_eq!(crate::columns(&conn, "training_data_avg").unwrap(), AVG_COLUMNS[..10]);
        conn.execute("INSERT INTO training_data (run_id, request_size_bytes) VALUES ('old', 10)", [])
            .unwrap();
        create(&conn).unwrap();
        add_missing_columns(&conn, "training_data", &["feature_graph_nodes"]).unwrap();
        let columns = crate::columns(&conn, "training_data").unwrap();
        assert_eq!(&columns[..23], &TRAINING_COLUMNS);
        assert_eq!(columns[23], "feature_graph_nodes");
        let (size, overhead): (i64, Option<i64>) = conn
            .query_row("SELECT request_size_bytes, worker_overhead_ns FROM training_data", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((size, overhead), (10, None));
        // Again: nothing to add.
        create(&conn).unwrap();
    }
}
