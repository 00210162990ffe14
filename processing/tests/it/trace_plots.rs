use processing::trace_plots::{TRACE_PLOTS, draw, read};
use rundb::CallStatus;
use rundb::calls::{
    CallRow, INSERT_CALL, RunRow, ScheduleRow, create, insert_call, insert_run, insert_schedule,
};

const S: u64 = 1_000_000_000;
const T0: i64 = 1_700_000_000_000_000_000;

/// A run replaying one trace function (minute length 1 s, from trace minute
/// 11) beside a phase, with one call never sent and a warm-up call.
fn trace_run(dir: &std::path::Path) -> rusqlite::Connection {
    let mut conn = rundb::open(&dir.join("run.db")).unwrap();
    create(&conn).unwrap();
    let schedule = serde_json::json!({
        "trace": {"minute_length": "1s", "arrival": "exponential", "first_minute": 11, "name": "trace"},
        "phases": [{"name": "trace/a/f1", "kind": "trace"}, {"name": "p", "kind": "constant"}],
    });
    insert_run(
        &conn,
        &RunRow {
            run_id: "r".into(),
            started_at_ns: T0,
            seed: 1,
            leaf_address: "x".into(),
            config_path: None,
            config_yaml: String::new(),
            resolved_schedule_json: schedule.to_string(),
            calls_scheduled: 6,
            loadgen_version: "test".into(),
        },
    )
    .unwrap();
    // Trace minute 0: calls at 0, 0.25 s, 0.5 s (never sent); minute 1: 1.2 s, 1.6 s; the phase at 0.1 s.
    let offsets: [(u64, &str, Option<u64>); 6] = [
        (0, "trace/a/f1", Some(S / 100)),
        (S / 10, "p", Some(S / 10)),
        (S / 4, "trace/a/f1", Some(S / 4 + S / 100)),
        (S / 2, "trace/a/f1", None),
        (S + S / 5, "trace/a/f1", Some(S + S / 5)),
        (S + 3 * S / 5, "trace/a/f1", Some(S + 3 * S / 5)),
    ];
    let tx = conn.transaction().unwrap();
    let rows = offsets.iter().enumerate().map(|(i, &(offset_ns, phase, _))| ScheduleRow {
        call_index: i as u64,
        offset_ns,
        phase: phase.into(),
        image_tag: "hyperfaas-trace:latest".into(),
        ..ScheduleRow::default()
    });
    insert_schedule(&tx, "r", rows).unwrap();
    {
        let mut stmt = tx.prepare_cached(INSERT_CALL).unwrap();
        for (i, &(offset, phase, sent)) in offsets.iter().enumerate() {
            let row = CallRow {
                call_index: i as i64,
                request_id: format!("r-{i}"),
                phase: phase.into(),
                scheduled_ns: T0 + offset as i64,
                sent_ns: sent.map(|s| T0 + s as i64),
                status: if sent.is_some() { CallStatus::Ok } else { CallStatus::NotSent },
                ..CallRow::default()
            };
            insert_call(&mut stmt, "r", &row).unwrap();
        }
        // A warm-up call before time 0: not in `schedule`, not plotted.
        let warm = CallRow {
            call_index: 6,
            request_id: "r-6".into(),
            phase: "warmup".into(),
            scheduled_ns: T0 - 5 * S as i64,
            sent_ns: Some(T0 - 5 * S as i64),
            status: CallStatus::Ok,
            warmup: true,
            ..CallRow::default()
        };
        insert_call(&mut stmt, "r", &warm).unwrap();
    }
    tx.commit().unwrap();
    conn
}

#[test]
fn a_trace_run_gets_minutes_and_gaps_per_trace_function() {
    let dir = tempfile::tempdir().unwrap();
    let conn = trace_run(dir.path());
    let data = read(&conn, "r").unwrap().expect("the run replayed a trace");
    assert_eq!(data.arrival, "exponential");
    assert_eq!(data.first_minute, 11);
    assert_eq!(
        data.per_minute.keys().collect::<Vec<_>>(),
        ["trace/a/f1"],
        "the phase `p` is not a trace function"
    );
    let (scheduled, sent) = &data.per_minute["trace/a/f1"];
    assert_eq!(scheduled, &[3, 2]);
    assert_eq!(sent, &[2, 2]);
    // Minute 0: mean gap 1/3 s, gaps 0.25 and 0.25 s; minute 1: mean gap 0.5 s, gap 0.4 s (sorted).
    let expect = [0.25 * 3.0, 0.25 * 3.0, 0.4 / 0.5];
    assert_eq!(data.gaps_scheduled.len(), 3);
    for (got, want) in data.gaps_scheduled.iter().zip(expect) {
        assert!((got - want).abs() < 1e-9, "{:?}", data.gaps_scheduled);
    }
    // The gaps' minutes: two gaps in a minute of 3 calls, one in a minute of 2.
    assert_eq!(data.gap_minute_calls, std::collections::BTreeMap::from([(2, 1), (3, 2)]));
    // As sent: the pair with the unsent call has no gap.
    assert_eq!(data.gaps_sent.len(), 2, "{:?}", data.gaps_sent);

    let files = draw(&conn, "r", &dir.path().join("plots")).unwrap();
    assert_eq!(files.len(), 2 * TRACE_PLOTS.len());
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        assert!(bytes.len() > 1000, "{} is {} bytes", file.display(), bytes.len());
    }
}

#[test]
fn a_run_without_a_trace_draws_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let conn = trace_run(dir.path());
    conn.execute("UPDATE runs SET resolved_schedule_json = '{\"phases\": []}'", []).unwrap();
    assert_eq!(read(&conn, "r").unwrap(), None);
    assert!(draw(&conn, "r", &dir.path().join("plots")).unwrap().is_empty());
    assert_eq!(read(&conn, "no-such-run").unwrap(), None);
}
