use std::time::Duration;

use collector::Collector;
use hyperfake_testkit::{ContainerSweeper, TestDatabase, TestWorker};
use proto::common::CallRequest;
use worker::WorkerSettings;

use crate::common::*;

/// A real Docker worker: START then STOP of the instance we drive, cgroup
/// samples of it with growing CPU time at about the asked interval, worker
/// totals, and rows committed while the collector runs (not only at stop).
#[tokio::test]
async fn records_events_and_samples_of_a_real_worker() {
    hyperfake_testkit::require_image(ECHO);
    let sweeper = ContainerSweeper::new();
    let database = TestDatabase::start().await;
    let worker = TestWorker::docker(
        &sweeper,
        WorkerSettings::new(format!("w-{}", sweeper.test_id)),
        database.client.clone(),
    )
    .await;
    let run = Run::new();
    let interval = Duration::from_millis(100);
    let mut settings = run.settings(&[&worker.address]);
    settings.interval = interval;
    settings.batch.interval = Duration::from_millis(200);
    let collector = Collector::start(settings).await.unwrap();
    connected(&collector).await;

    let function = echo_function(&database, config(64, None, 0, 0)).await;
    let mut client = worker.client().await;
    let instance = client
        .start(proto::common::FunctionId::from(&function))
        .await
        .unwrap_or_else(|s| panic!("start: {s:?}\n{}", hyperfake_testkit::container_logs(&sweeper.label())))
        .into_inner()
        .instance_id
        .unwrap()
        .id;
    // Committed by the batch interval while the collector runs.
    let samples_of = |run: &Run| -> i64 {
        run.conn()
            .query_row(
                "SELECT COUNT(*) FROM container_samples WHERE run_id = ?1 AND instance_id = ?2",
                [&run.run_id, &instance],
                |r| r.get(0),
            )
            .unwrap()
    };
    until(&run, "5 samples of the idle instance committed while running", |run| samples_of(run) >= 5).await;
    for _ in 0..5 {
        let call = CallRequest {
            request_id: unique("req"),
            instance_id: None,
            data: vec![7u8; 1 << 20],
            function_id: Some((&function).into()),
        };
        client.call(call).await.unwrap();
    }
    let before_calls = samples_of(&run);
    until(&run, "5 samples after the calls committed", |run| samples_of(run) >= before_calls + 5).await;
    client.stop(proto::common::InstanceId { id: instance.clone() }).await.unwrap();
    until(&run, "STOP committed while running", |run| {
        run.lifecycle_of(std::slice::from_ref(&instance)).len() == 2
    })
    .await;
    let skipped = collector.workers()[0].call_events_skipped.load(std::sync::atomic::Ordering::Relaxed);
    let summary = collector.shutdown().await.unwrap();

    // Lifecycle: START then STOP, with the ids and the worker as given.
    let events: Vec<EventRow> =
        run.events().into_iter().filter(|e| e.instance_id.as_deref() == Some(instance.as_str())).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds, ["START", "STOP"], "{}", run.dump());
    for e in &events {
        assert_eq!(e.function_id.as_deref(), Some(function.as_str()));
        assert_eq!(e.status, "SUCCESS");
        assert_eq!(e.worker, worker.address);
    }
    let (start, stop) = (events[0].timestamp_ns.unwrap(), events[1].timestamp_ns.unwrap());
    assert!(start < stop, "START at {start} after STOP at {stop}");
    // The cold start is stored with the START only: creating and starting a
    // container takes more than 1 ms.
    let took = events[0].start_duration_ns.expect("START carries start_duration_ns");
    assert!((1_000_000..60_000_000_000).contains(&took), "start took {took} ns");
    assert_eq!(events[1].start_duration_ns, None);
    // No CALL/RESPONSE without --record-call-events, though 5 calls were made.
    assert!(run.events().iter().all(|e| e.event != "CALL" && e.event != "RESPONSE"));
    assert_eq!(skipped, 10, "5 calls make 5 CALL and 5 RESPONSE events");

    // Container samples: every value read, cumulative CPU never falls and grows.
    let conn = run.conn();
    let mut stmt = conn
        .prepare(
            "SELECT timestamp_ns, cpu_usage_ns, memory_bytes, function_id FROM container_samples
             WHERE run_id = ?1 AND instance_id = ?2 ORDER BY timestamp_ns",
        )
        .unwrap();
    type Sample = (Option<i64>, Option<i64>, Option<i64>, Option<String>);
    let samples: Vec<Sample> = stmt
        .query_map([&run.run_id, &instance], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(samples.len() >= 10, "{} samples", samples.len());
    let mut times = Vec::new();
    let mut cpu = Vec::new();
    for (t, c, m, f) in &samples {
        let (t, c, m) = (t.expect("timestamp"), c.expect("cpu read"), m.expect("memory read"));
        assert!(c > 0 && m > 0, "a read value of 0: cpu {c} memory {m}");
        assert!(m <= 64 << 20, "memory {m} above the 64 MiB limit");
        assert_eq!(f.as_deref(), Some(function.as_str()));
        times.push(t);
        cpu.push(c);
    }
    assert!(cpu.windows(2).all(|w| w[0] <= w[1]), "cumulative CPU fell: {cpu:?}");
    assert!(cpu.last() > cpu.first(), "CPU did not grow over 5 calls of 1 MiB: {cpu:?}");
    assert!(
        times.first().unwrap() > &start && times.last().unwrap() < &stop,
        "samples outside the instance's life"
    );
    let mut gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.iter().all(|g| *g > 0), "two samples at one instant: {times:?}");
    gaps.sort_unstable();
    let median = Duration::from_nanos(u64::try_from(gaps[gaps.len() / 2]).unwrap());
    assert!(
        median >= interval / 2 && median <= interval * 5,
        "median gap {median:?} is not about the {interval:?} asked for"
    );

    // Worker totals: one row per sample, every value read.
    let (rows, missing, late_zero_ram): (i64, i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), SUM(timestamp_ns IS NULL OR ((cpu_cores IS NULL OR ram_bytes IS NULL)
                        AND timestamp_ns > (SELECT MIN(timestamp_ns) FROM worker_samples
                                            WHERE run_id = ?1 AND ram_bytes IS NOT NULL))),
                    SUM(ram_bytes = 0 AND timestamp_ns > (SELECT MIN(timestamp_ns) FROM worker_samples
                                                          WHERE run_id = ?1 AND ram_bytes > 0))
             FROM worker_samples WHERE run_id = ?1",
            [&run.run_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert!(rows >= samples.len() as i64, "{rows} worker samples");
    assert_eq!(missing, 0);
    // The worker's host monitor has no reading during its first 250 ms and
    // sends no totals then (stored as NULL); never NULL or 0 after a real reading.
    assert_eq!(late_zero_ram, 0, "0 bytes of RAM after the worker had a reading");

    // One closed session, and the summary counts what is in the file.
    assert_eq!(run.sessions().len(), 1);
    assert!(run.sessions()[0].1.is_some(), "session not closed");
    assert_eq!(summary.written.committed_rows, summary.written.received_rows);
    assert_eq!(run.rows(), i64::try_from(summary.written.committed_rows).unwrap());
    drop(worker);
}

/// Nothing is committed before the stop (batch interval and size never
/// reached), and after a graceful stop every event received is in the file.
#[tokio::test]
async fn graceful_shutdown_flushes_everything() {
    let database = TestDatabase::start().await;
    let fake = FakeWorker::serve(&database, None).await;
    let function = echo_function(&database, config(64, None, 0, 0)).await;
    let run = Run::new();
    let mut settings = run.settings(&[&fake.address]);
    settings.batch.interval = NEVER;
    settings.batch.rows = usize::MAX;
    settings.record_call_events = true;
    let collector = Collector::start(settings).await.unwrap();
    connected(&collector).await;

    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(fake.start_stop(&function).await);
    }
    let mut client = fake.client().await;
    let instance = fake.worker.start(Some(function.clone())).await.unwrap().id.0.clone();
    let call = CallRequest {
        request_id: unique("req"),
        instance_id: None,
        data: b"hi".to_vec(),
        function_id: Some((&function).into()),
    };
    client.call(call).await.unwrap();
    // 3 × (START, STOP) + START + CALL + RESPONSE.
    events_received(&collector, 9).await;
    assert_eq!(run.rows(), 0, "rows committed before the stop: the test would prove nothing");

    let summary = collector.shutdown().await.unwrap();
    assert_eq!(summary.written.committed_rows, summary.written.received_rows);
    assert_eq!(run.rows(), i64::try_from(summary.written.committed_rows).unwrap());
    let mut expected = Vec::new();
    for i in &instances {
        expected.push(("START".to_string(), i.clone()));
        expected.push(("STOP".to_string(), i.clone()));
    }
    assert_eq!(run.lifecycle_of(&instances), expected, "{}", run.dump());
    let last: Vec<String> = run
        .events()
        .into_iter()
        .filter(|e| e.instance_id.as_deref() == Some(instance.as_str()))
        .map(|e| e.event)
        .collect();
    assert_eq!(last, ["START", "CALL", "RESPONSE"]);
    assert!(run.count("worker_samples") > 0);
    assert_eq!(run.sessions().len(), 1);
    assert!(run.sessions()[0].1.is_some(), "session not closed");
}
