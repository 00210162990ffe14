use processing::DropReason;

use crate::common::{Fixture, IMAGE, W1, W2, count, ms, training_column};

/// One instance on W1 with steady samples over [0, 1000] ms, worker samples too.
fn one_instance() -> Fixture {
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

#[test]
fn overlapping_calls_count_one_two_three_including_themselves() {
    let mut f = one_instance();
    f.start(W1, "aaaaaaaaaaa2", ms(0)).steady(W1, "aaaaaaaaaaa2", 0, 1000, 0.1, 1 << 20);
    f.start(W2, "bbbbbbbbbbb1", ms(0)).steady(W2, "bbbbbbbbbbb1", 0, 1000, 0.1, 1 << 20);
    let early = f.call("aaaaaaaaaaa1", ms(100), ms(150)); // over before the others start
    let a = f.call("aaaaaaaaaaa1", ms(200), ms(500));
    let b = f.call("aaaaaaaaaaa2", ms(210), ms(500));
    let c = f.call("aaaaaaaaaaa1", ms(220), ms(500));
    let other_worker = f.call("bbbbbbbbbbb1", ms(215), ms(400));
    // Intervals are closed: a call starting exactly when three end sees them.
    let at_end = f.call("aaaaaaaaaaa2", ms(500), ms(600));
    let p = f.processed();
    let active = &p.features.active_function_calls_count;
    assert_eq!(
        [early, a, b, c, other_worker, at_end].map(|i| active[i]),
        [Some(1), Some(1), Some(2), Some(3), Some(1), Some(4)]
    );
}

#[test]
fn instances_count_successful_starts_until_their_end() {
    let mut f = one_instance();
    f.start(W1, "aaaaaaaaaaa2", ms(300)); // live from 300 ms
    f.event(W1, "aaaaaaaaaaa3", "START", Some("FAILED"), ms(100)); // never live
    f.event(W1, "aaaaaaaaaaa2", "STOP", None, ms(600));
    f.event(W1, "aaaaaaaaaaa4", "START", None, ms(700)).event(W1, "aaaaaaaaaaa4", "DOWN", None, ms(800));
    f.start(W2, "bbbbbbbbbbb1", ms(0)); // another worker: never counted on W1
    let calls: Vec<usize> =
        [150, 300, 599, 600, 750, 800].iter().map(|&t| f.call("aaaaaaaaaaa1", ms(t), ms(t + 10))).collect();
    let p = f.processed();
    let n: Vec<Option<i64>> = calls.iter().map(|&i| p.features.function_instances_count[i]).collect();
    assert_eq!(n, [Some(1), Some(2), Some(2), Some(1), Some(2), Some(1)]);
}

#[test]
fn function_cpu_is_split_between_concurrent_calls_on_one_instance() {
    // The instance uses 0.5 cores throughout. A runs alone for 100 ms, then
    // with B for 100 ms: A's share is (100·1 + 100·½)/200 = ¾, B's is ½.
    let mut f = one_instance();
    let a = f.call("aaaaaaaaaaa1", ms(100), ms(300));
    let b = f.call("aaaaaaaaaaa1", ms(200), ms(300));
    let p = f.processed();
    let cpu = &p.features.function_cpu_usage;
    let (ca, cb) = (cpu[a].unwrap(), cpu[b].unwrap());
    assert!((ca - 0.375).abs() < 1e-9, "A: {ca}");
    assert!((cb - 0.25).abs() < 1e-9, "B: {cb}");
    // The shares add up to the instance's CPU time over the busy interval.
    let cpu_ms = ca * 200.0 + cb * 100.0;
    assert!((cpu_ms - 0.5 * 200.0).abs() < 1e-6, "{cpu_ms} ms of CPU");
}

#[test]
fn function_cpu_interpolates_between_samples() {
    // 0.25 cores from 0 to 100 ms, then 0.75 cores: a call over [50, 150]
    // used 12.5 + 37.5 ms of CPU in 100 ms.
    let mut f = Fixture::new();
    f.start(W1, "aaaaaaaaaaa1", ms(0))
        .sample(W1, "aaaaaaaaaaa1", ms(0), Some(0), Some(1))
        .sample(W1, "aaaaaaaaaaa1", ms(100), Some(25_000_000), Some(1))
        .sample(W1, "aaaaaaaaaaa1", ms(200), Some(100_000_000), Some(1));
    let c = f.call("aaaaaaaaaaa1", ms(50), ms(150));
    let cpu = f.processed().features.function_cpu_usage[c].unwrap();
    assert!((cpu - 0.5).abs() < 1e-9, "{cpu}");
}

#[test]
fn function_ram_is_the_peak_over_the_interval_and_its_bracketing_samples() {
    let mut f = Fixture::new();
    f.start(W1, "aaaaaaaaaaa1", ms(0));
    for (t, mb) in [(0, 10), (100, 30), (200, 20), (300, 15), (400, 12)] {
        f.sample(W1, "aaaaaaaaaaa1", ms(t), Some(t * 1_000_000), Some(mb << 20));
    }
    let wide = f.call("aaaaaaaaaaa1", ms(150), ms(250)); // 100 (30), 200 (20), 300 (15)
    let late = f.call("aaaaaaaaaaa1", ms(210), ms(290)); // 200 (20), 300 (15)
    let exact = f.call("aaaaaaaaaaa1", ms(300), ms(400)); // 300 (15), 400 (12)
    let p = f.processed();
    let ram = &p.features.function_ram_usage;
    assert_eq!([wide, late, exact].map(|i| ram[i]), [Some(30 << 20), Some(20 << 20), Some(15 << 20)]);
}

#[test]
fn worker_usage_comes_from_the_sample_whose_interval_contains_the_start() {
    let mut f = Fixture::new();
    f.start(W1, "aaaaaaaaaaa1", ms(0)).steady(W1, "aaaaaaaaaaa1", 0, 3000, 0.1, 1 << 20);
    f.worker_sample(W1, ms(100), Some(1.0), Some(100))
        .worker_sample(W1, ms(200), Some(2.0), Some(200))
        .worker_sample(W2, ms(150), Some(9.0), Some(900)) // another worker
        .worker_sample(W1, ms(2500), Some(3.0), Some(300)); // more than 1 s after 250 ms
    f.call("aaaaaaaaaaa1", ms(150), ms(160)); // → the 200 ms sample
    f.call("aaaaaaaaaaa1", ms(200), ms(210)); // exactly on a sample → that sample
    f.call("aaaaaaaaaaa1", ms(250), ms(260)); // next sample too far → NULL
    f.call("aaaaaaaaaaa1", ms(1600), ms(1610)); // 2500 is within 1 s → 3 cores
    let (db, _) = f.process();
    assert_eq!(training_column(&db, "worker_cpu_usage"), [Some(2.0), Some(2.0), None, Some(3.0)]);
    assert_eq!(training_column(&db, "worker_ram_usage"), [Some(200.0), Some(200.0), None, Some(300.0)]);
}

#[test]
fn missing_samples_are_null_never_zero() {
    let mut f = Fixture::new();
    f.start(W1, "aaaaaaaaaaa1", ms(0));
    // CPU missing at 100 ms (NULL), memory present; the worker's sample has NULLs.
    f.sample(W1, "aaaaaaaaaaa1", ms(0), Some(0), Some(5 << 20))
        .sample(W1, "aaaaaaaaaaa1", ms(100), None, Some(6 << 20))
        .sample(W1, "aaaaaaaaaaa1", ms(200), Some(50_000_000), Some(7 << 20))
        .sample(W1, "aaaaaaaaaaa1", ms(300), Some(60_000_000), None);
    // The first is explicitly NULL; the second is a worker's first interval,
    // sent as 0 cores and 0 bytes before it has a reading: also NULL.
    f.worker_sample(W1, ms(100), None, None).worker_sample(W1, ms(150), Some(0.0), Some(0));
    f.worker_sample(W1, ms(200), Some(1.0), None);
    let bracketed = f.call("aaaaaaaaaaa1", ms(50), ms(150)); // CPU 0 → 200 ms: still bracketed
    // On its own instance, so that it does not share the other call's CPU.
    f.start(W1, "aaaaaaaaaaa2", ms(0)).steady(W1, "aaaaaaaaaaa2", 0, 200, 0.1, 1 << 20);
    let unread = f.call("aaaaaaaaaaa2", ms(120), ms(140)); // → the 0/0 sample at 150 ms
    let after = f.call("aaaaaaaaaaa1", ms(310), ms(320)); // nothing after 300 ms
    let p = f.processed();
    let fe = &p.features;
    assert!(fe.function_cpu_usage[bracketed].is_some(), "NULL samples are skipped, not read as 0");
    assert!((fe.function_cpu_usage[bracketed].unwrap() - 0.25).abs() < 1e-9);
    assert_eq!(fe.function_cpu_usage[after], None);
    // The 300 ms sample has no memory: the 200 ms one brackets the call instead.
    assert_eq!(fe.function_ram_usage[after], Some(7 << 20));

    assert!(fe.function_cpu_usage[unread].is_some());

    let (db, summary) = f.process();
    // Both bracketed calls are training rows with NULL worker inputs (not 0).
    assert_eq!(count(&db, "training_data", "worker_cpu_usage IS NULL AND worker_ram_usage IS NULL"), 2);
    assert_eq!(count(&db, "training_data", "worker_cpu_usage = 0 OR worker_ram_usage = 0"), 0);
    let img = &summary.images[0];
    assert_eq!((img.training_rows, img.training_rows_null_inputs), (2, 2));
    assert_eq!(img.dropped[&DropReason::NoFunctionCpu], 1);
    assert_eq!(count(&db, "training_data_avg", ""), 0, "averages need every input");
}

#[test]
fn failed_calls_are_not_training_rows_but_are_counted() {
    let mut f = one_instance();
    f.call("aaaaaaaaaaa1", ms(100), ms(200));
    let errored = f.call("aaaaaaaaaaa1", ms(300), ms(400));
    f.calls[errored].function_error = Some("boom".into());
    let unavailable = f.call("aaaaaaaaaaa1", ms(500), ms(600));
    let c = &mut f.calls[unavailable];
    c.status = rundb::CallStatus::Unavailable;
    (c.instance_id, c.call_started_ns, c.got_response_ns, c.function_handler_time_ns) =
        (None, None, None, None);
    let slow = f.call("aaaaaaaaaaa1", ms(700), ms(800));
    f.calls[slow].latency_ns = Some(50_000_000); // shorter than its handler time
    let (db, summary) = f.process();

    assert_eq!(count(&db, "training_data", ""), 1);
    let img = &summary.images[0];
    assert_eq!(img.calls, 4);
    assert_eq!(img.calls_by_status.get("UNAVAILABLE"), Some(&1));
    assert_eq!(img.function_errors, 1);
    assert_eq!(img.dropped[&DropReason::Failed], 2);
    assert_eq!(img.dropped[&DropReason::RuntimeExceedsLatency], 1);
    assert_eq!(img.training_rows + img.dropped_total(), img.calls);
    let (failed, ok, json): (i64, i64, String) = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT calls_failed, calls_ok, calls_by_status_json FROM run_summary WHERE image_tag = ?1",
            [IMAGE],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((failed, ok), (1, 3));
    assert_eq!(json, r#"{"OK":3,"UNAVAILABLE":1}"#);
}

#[test]
fn a_call_on_an_unknown_instance_has_null_features() {
    let mut f = one_instance();
    f.sample(W1, "ffffffffffff", ms(100), Some(0), Some(1)).sample(
        W1,
        "ffffffffffff",
        ms(200),
        Some(1),
        Some(1),
    );
    let known = f.call("aaaaaaaaaaa1", ms(120), ms(180));
    let unknown = f.call("ffffffffffff", ms(120), ms(180)); // samples, but no START event
    let p = f.processed();
    let fe = &p.features;
    assert_eq!(
        (
            fe.worker[unknown],
            fe.function_instances_count[unknown],
            fe.active_function_calls_count[unknown],
            fe.function_cpu_usage[unknown],
            fe.function_ram_usage[unknown],
        ),
        (None, None, None, None, None)
    );
    assert_eq!(fe.active_function_calls_count[known], Some(1), "unknown calls are on no worker");
    assert_eq!(p.frames.summary.images[0].dropped[&DropReason::UnknownInstance], 1);
}

#[test]
fn reprocessing_replaces_the_run_and_leaves_other_runs_alone() {
    let mut f = one_instance();
    f.call("aaaaaaaaaaa1", ms(100), ms(200));
    f.call("aaaaaaaaaaa1", ms(300), ms(400));
    let (db, _) = f.process();
    // Another run in the same file, processed once.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("INSERT INTO training_data (run_id, request_id) VALUES ('other', 'x')")
        .unwrap();
    let opts = processing::ProcessOptions::default();
    let progress = processing::Progress::default();
    for _ in 0..2 {
        processing::process_db(&db, Some("r1"), &opts, &progress).unwrap();
    }
    assert_eq!(count(&db, "training_data", "run_id = 'r1'"), 2);
    assert_eq!(count(&db, "training_data", "run_id = 'other'"), 1);
    assert_eq!(count(&db, "run_summary", ""), 1);
    assert_eq!(count(&db, "training_data_avg", "run_id = 'r1'"), 2);
}

#[test]
fn training_rows_carry_the_documented_columns() {
    let mut f = one_instance();
    f.call("aaaaaaaaaaa1", ms(100), ms(200));
    let (db, _) = f.process();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let row: (String, String, i64, i64, i64, i64, f64, i64, i64, f64, i64, i64, i64, String, String) = conn
        .query_row(
            "SELECT request_id, image_tag, request_size_bytes, function_instances_count,
                    active_function_calls_count, worker_ram_usage, worker_cpu_usage, function_processing_time_ns,
                    worker_processing_time_ns, function_cpu_usage, function_ram_usage, queue_time_ns, latency_ns,
                    instance_id, worker
             FROM training_data",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                    r.get(11)?,
                    r.get(12)?,
                    r.get(13)?,
                    r.get(14)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(row.0, "r1-0");
    assert_eq!(row.1, IMAGE);
    assert_eq!((row.2, row.3, row.4, row.5), (100, 1, 1, 4 << 30));
    assert!((row.6 - 1.5).abs() < 1e-12);
    assert_eq!((row.7, row.8), (99_900_000, 100_000_000), "handler time, worker time");
    assert!((row.9 - 0.5).abs() < 1e-9);
    assert_eq!((row.10, row.11, row.12), (10 << 20, 100_000, 101_000_000));
    assert_eq!((row.13.as_str(), row.14.as_str()), ("aaaaaaaaaaa1", W1));
}
