use hyperfake_core::payload::PayloadFeatures;
use rusqlite::Connection;

use crate::common::{Fixture, IMAGE, W1, count, ms, training_column};

/// One instance on W1 with every sample a call needs to be a training row.
fn fixture() -> Fixture {
    let mut f = Fixture::new();
    f.start(W1, "aaaaaaaaaaa1", ms(0)).steady(W1, "aaaaaaaaaaa1", 0, 1000, 0.5, 10 << 20).worker_steady(
        W1,
        0,
        1000,
        1.5,
        4 << 30,
    );
    f
}

fn features(json: &str) -> PayloadFeatures {
    serde_json::from_str(json).unwrap()
}

#[test]
fn payload_feature_values_become_columns_and_nulls_stay_null_and_are_counted() {
    let mut f = fixture();
    f.features = features(r#"[{"name":"graph_nodes","json":"/Size"},{"name":"px","product":["/w","/h"]}]"#);
    let both = f.call("aaaaaaaaaaa1", ms(100), ms(200));
    let one_null = f.call("aaaaaaaaaaa1", ms(300), ms(400));
    let none_recorded = f.call("aaaaaaaaaaa1", ms(500), ms(600));
    let failed = f.call("aaaaaaaaaaa1", ms(700), ms(800));
    f.calls[both].payload_features = Some(vec![Some(250.0), Some(12.0)]);
    f.calls[one_null].payload_features = Some(vec![None, Some(6.0)]);
    f.calls[failed].payload_features = Some(vec![None, None]);
    f.calls[failed].status = rundb::CallStatus::Unavailable;
    let _ = none_recorded; // payload_features NULL: every feature NULL
    let (db, summary) = f.process();

    // Not dropped for a NULL feature: three training rows.
    assert_eq!(count(&db, "training_data", ""), 3);
    assert_eq!(training_column(&db, "feature_graph_nodes"), [Some(250.0), None, None]);
    assert_eq!(training_column(&db, "feature_px"), [Some(12.0), Some(6.0), None]);
    // NULLs among training rows, per feature (the failed call is not a row).
    let img = &summary.images[0];
    assert_eq!(img.payload_feature_nulls.get("graph_nodes"), Some(&2));
    assert_eq!(img.payload_feature_nulls.get("px"), Some(&1));
    let conn = Connection::open(&db).unwrap();
    let nulls: String =
        conn.query_row("SELECT payload_feature_nulls FROM run_summary", [], |r| r.get(0)).unwrap();
    assert_eq!(nulls, r#"{"graph_nodes":2,"px":1}"#);
    // The columns are REAL.
    let kind: String = conn
        .query_row("SELECT type FROM pragma_table_info('training_data') WHERE name = 'feature_px'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(kind, "REAL");
    // The declarations, one row per feature, in order.
    let declared: Vec<(String, i64, String, String)> = conn
        .prepare("SELECT image_tag, position, name, declaration FROM payload_features ORDER BY position")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        declared,
        [
            (
                IMAGE.to_string(),
                0,
                "graph_nodes".to_string(),
                r#"{"name":"graph_nodes","json":"/Size"}"#.to_string()
            ),
            (IMAGE.to_string(), 1, "px".to_string(), r#"{"name":"px","product":["/w","/h"]}"#.to_string()),
        ]
    );
}

/// `training_data_avg` (HyperFake's averaged table) groups by the payload
/// features too and carries their columns: calls with the same five inputs
/// but different graph sizes are different groups.
#[test]
fn averaged_rows_are_grouped_by_payload_features_and_carry_them() {
    let mut f = fixture();
    f.features = features(r#"[{"name":"graph_nodes","json":"/Size"}]"#);
    let small = [f.call("aaaaaaaaaaa1", ms(100), ms(200)), f.call("aaaaaaaaaaa1", ms(300), ms(400))];
    let large = f.call("aaaaaaaaaaa1", ms(500), ms(600));
    let unknown = f.call("aaaaaaaaaaa1", ms(700), ms(800));
    for i in small {
        f.calls[i].payload_features = Some(vec![Some(100.0)]);
    }
    f.calls[large].payload_features = Some(vec![Some(100_000.0)]);
    f.calls[unknown].payload_features = Some(vec![None]);
    // The same five inputs (the fixture gives each call its own request size).
    for i in [small[0], small[1], large, unknown] {
        f.calls[i].request_bytes = 100;
    }
    let (db, _) = f.process();
    assert_eq!(count(&db, "training_data", ""), 4);
    let conn = Connection::open(&db).unwrap();
    let groups: Vec<(Option<f64>, i64)> = conn
        .prepare(
            "SELECT feature_graph_nodes, sample_count FROM training_data_avg ORDER BY feature_graph_nodes",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(groups, [(None, 1), (Some(100.0), 2), (Some(100_000.0), 1)]);
}

#[test]
fn response_size_and_worker_overhead_are_extra_targets_null_when_unknown() {
    let mut f = fixture();
    let known = f.call("aaaaaaaaaaa1", ms(100), ms(200));
    let unknown = f.call("aaaaaaaaaaa1", ms(300), ms(400));
    f.calls[known].response_bytes = Some(2_800);
    // Worker-measured time missing: no overhead, and no response recorded.
    f.calls[unknown].function_processing_time_ns = None;
    let (db, summary) = f.process();
    assert_eq!(summary.images[0].training_rows, 2, "a NULL extra target does not drop the row");
    assert!(summary.images[0].payload_feature_nulls.is_empty(), "no features declared");
    // Processing time 100 ms, handler time 100 ms − 0.1 ms (the fixture's).
    assert_eq!(training_column(&db, "worker_overhead_ns"), [Some(100_000.0), None]);
    assert_eq!(training_column(&db, "response_size_bytes"), [Some(2_800.0), None]);
    // No features declared: no feature columns.
    let conn = Connection::open(&db).unwrap();
    let features: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM pragma_table_info('training_data') WHERE name LIKE 'feature_%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(features, 0);
}

#[test]
fn cold_starts_come_from_successful_starts_that_carry_their_duration() {
    let mut f = fixture();
    f.start_took(W1, "aaaaaaaaaaa2", ms(50), 412_000_000);
    f.start(W1, "aaaaaaaaaaa3", ms(60)); // no duration: not a row
    f.event(W1, "aaaaaaaaaaa4", "START", Some("FAILED"), ms(70)); // failed: not a row
    f.events.last_mut().unwrap().start_duration_ns = Some(5);
    f.start_took(W1, "aaaaaaaaaaa5", ms(80), 7_000_000); // never served a call: image unknown
    f.steady(W1, "aaaaaaaaaaa2", 0, 1000, 0.1, 1 << 20);
    f.call("aaaaaaaaaaa2", ms(100), ms(200));
    let (db, _) = f.process();
    let conn = Connection::open(&db).unwrap();
    let rows: Vec<(String, Option<String>, String, String, i64)> = conn
        .prepare("SELECT run_id, image_tag, instance_id, worker, duration_ns FROM cold_starts ORDER BY instance_id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        [
            ("r1".into(), Some(IMAGE.into()), "aaaaaaaaaaa2".into(), W1.into(), 412_000_000),
            ("r1".into(), None, "aaaaaaaaaaa5".into(), W1.into(), 7_000_000),
        ]
    );
    // Re-processing replaces them.
    processing::process_db(&db, None, &Default::default(), &Default::default()).unwrap();
    assert_eq!(count(&db, "cold_starts", ""), 2);
}

#[test]
fn a_run_database_from_before_the_new_columns_still_processes() {
    let mut f = fixture();
    f.features = features(r#"[{"name":"n","payload_bytes":true}]"#);
    let c = f.call("aaaaaaaaaaa1", ms(100), ms(200));
    f.calls[c].payload_features = Some(vec![Some(100.0)]);
    f.start_took(W1, "aaaaaaaaaaa2", ms(10), 1);
    let db = f.write();
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "ALTER TABLE calls DROP COLUMN payload_features;
             ALTER TABLE functions DROP COLUMN payload_features;
             ALTER TABLE instance_events DROP COLUMN start_duration_ns;",
        )
        .unwrap();
    let summaries = processing::process_db(&db, None, &Default::default(), &Default::default()).unwrap();
    assert_eq!(summaries[0].training_rows(), 1);
    assert!(summaries[0].images[0].payload_feature_nulls.is_empty());
    assert_eq!(count(&db, "cold_starts", ""), 0);
    assert_eq!(count(&db, "payload_features", ""), 0);
}

#[test]
fn a_declaration_that_does_not_parse_is_an_error_naming_the_image() {
    let mut f = fixture();
    f.call("aaaaaaaaaaa1", ms(100), ms(200));
    let db = f.write();
    Connection::open(&db)
        .unwrap()
        .execute_batch(r#"UPDATE functions SET payload_features = '[{"name":"n"}]'"#)
        .unwrap();
    let err = processing::process_db(&db, None, &Default::default(), &Default::default()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(IMAGE) && text.contains("functions.payload_features"), "{text}");
}
