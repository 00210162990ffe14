use rusqlite::Connection;

use super::*;

fn open(path: &std::path::Path) -> Connection {
    let conn = crate::open(path).unwrap();
    create(&conn).unwrap();
    conn
}

#[test]
fn a_database_from_before_copies_is_upgraded_without_losing_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE functions (run_id TEXT NOT NULL, image_tag TEXT NOT NULL, function_id TEXT NOT NULL,
                                     config_json TEXT NOT NULL, PRIMARY KEY (run_id, image_tag));
             INSERT INTO functions VALUES ('old-run', 'hyperfaas-echo:latest', 'f-1', '{}');
             CREATE TABLE schedule (run_id TEXT NOT NULL, call_index INTEGER NOT NULL, offset_ns INTEGER NOT NULL,
                                    phase TEXT NOT NULL, image_tag TEXT NOT NULL, body_size INTEGER,
                                    bfs_size INTEGER, bfs_seed INTEGER, thumb_source TEXT, thumb_width INTEGER,
                                    thumb_height INTEGER, PRIMARY KEY (run_id, call_index));
             INSERT INTO schedule (run_id, call_index, offset_ns, phase, image_tag)
                 VALUES ('old-run', 0, 5, 'p', 'hyperfaas-echo:latest');",
        )
        .unwrap();
    }
    let conn = open(&path);
    let old: (String, i64) = conn
        .query_row("SELECT function_id, copy FROM functions WHERE run_id = 'old-run'", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(old, ("f-1".to_string(), 0));
    let copy: i64 = conn.query_row("SELECT copy FROM schedule", [], |r| r.get(0)).unwrap();
    assert_eq!(copy, 0);
    // The new key takes several copies of one image; a repeat is refused, not replaced.
    insert_function(&conn, "new-run", "hyperfaas-echo:latest", 0, "f-2", "{}", "[]").unwrap();
    insert_function(&conn, "new-run", "hyperfaas-echo:latest", 1, "f-3", "{}", "[]").unwrap();
    assert!(insert_function(&conn, "new-run", "hyperfaas-echo:latest", 1, "f-4", "{}", "[]").is_err());
    drop(conn);
    // Opening again is a no-op.
    let conn = open(&path);
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM functions", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 3);
}

#[test]
fn a_database_from_before_payload_features_gains_the_columns_with_null_in_old_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        // The schema as it was: every table, without `payload_features`.
        let old: String = SCHEMA
            .lines()
            .filter(|l| !l.contains("payload_features") && !l.trim_start().starts_with("-- "))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(!old.contains("payload_features"));
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&old).unwrap();
        conn.execute_batch(
            "INSERT INTO functions (run_id, image_tag, copy, function_id, config_json)
                 VALUES ('old-run', 'bfs:latest', 0, 'f-1', '{}');
             INSERT INTO calls (run_id, call_index, request_id, image_tag, function_id, phase, scheduled_ns,
                                status, request_bytes, trailers_json)
                 VALUES ('old-run', 0, 'old-run-0', 'bfs:latest', 'f-1', 'p', 1, 'OK', 10, '{}');",
        )
        .unwrap();
    }
    let mut conn = open(&path);
    let old: (Option<String>, Option<String>) = conn
        .query_row(
            "SELECT f.payload_features, c.payload_features FROM functions f JOIN calls c USING (run_id)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(old, (None, None));
    // New rows carry values; a value that cannot be computed is null, never 0.
    insert_function(&conn, "new-run", "bfs:latest", 0, "f-2", "{}", r#"[{"name":"n","json":"/Size"}]"#)
        .unwrap();
    let row = CallRow {
        request_id: "new-run-0".into(),
        image_tag: "bfs:latest".into(),
        status: CallStatus::Ok,
        sent_ns: Some(15),
        scheduled_ns: 10,
        payload_features: Some(vec![Some(250.0), None]),
        ..CallRow::default()
    };
    let tx = conn.transaction().unwrap();
    insert_call(&mut tx.prepare_cached(INSERT_CALL).unwrap(), "new-run", &row).unwrap();
    tx.commit().unwrap();
    let (values, status, lag): (String, CallStatus, i64) = conn
        .query_row(
            "SELECT payload_features, status, send_lag_ns FROM calls WHERE run_id = 'new-run'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((values.as_str(), status, lag), ("[250.0,null]", CallStatus::Ok, 5));
    drop(conn);
    // Opening again is a no-op.
    open(&path);
}

#[test]
fn a_database_from_before_warmups_gains_the_column_with_0_in_old_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        // The schema as it was: `calls` without `warmup` (and its comment lines).
        let old: String = SCHEMA
            .lines()
            .filter(|l| !l.contains("warmup") && !l.trim_start().starts_with("-- "))
            .collect::<Vec<_>>()
            .join("\n");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&old).unwrap();
        assert!(!crate::has_column(&conn, CALLS_TABLE, "warmup").unwrap());
        assert_eq!(measured_only(&conn).unwrap(), "", "an old database has only measured calls");
        conn.execute(
            "INSERT INTO calls (run_id, call_index, request_id, image_tag, function_id, phase, scheduled_ns,
                                status, request_bytes, trailers_json)
             VALUES ('old-run', 0, 'r0', 'e:latest', 'f', 'p', 1, 'OK', 0, '{}')",
            [],
        )
        .unwrap();
    }
    let mut conn = open(&path);
    assert_eq!(measured_only(&conn).unwrap(), "AND warmup = 0");
    let old: i64 =
        conn.query_row("SELECT warmup FROM calls WHERE run_id = 'old-run'", [], |r| r.get(0)).unwrap();
    assert_eq!(old, 0);

    // A warm-up row is marked; the filter keeps it out, and only it.
    let tx = conn.transaction().unwrap();
    for (index, warmup) in [(0, false), (1, false), (2, true)] {
        let row =
            CallRow { call_index: index, request_id: format!("r{index}"), warmup, ..CallRow::default() };
        insert_call(&mut tx.prepare_cached(INSERT_CALL).unwrap(), "new-run", &row).unwrap();
    }
    tx.commit().unwrap();
    let sql = format!(
        "SELECT group_concat(call_index) FROM calls WHERE run_id = 'new-run' {}",
        measured_only(&conn).unwrap()
    );
    let measured: String = conn.query_row(&sql, [], |r| r.get(0)).unwrap();
    assert_eq!(measured, "0,1");
    let marked: i64 = conn
        .query_row("SELECT call_index FROM calls WHERE run_id = 'new-run' AND warmup = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(marked, 2);
}
