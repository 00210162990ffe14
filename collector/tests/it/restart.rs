use std::time::Duration;

use collector::Collector;
use hyperfake_testkit::TestDatabase;

use crate::common::*;

/// Batches of this many rows; the first collector commits only when one fills.
const BATCH_ROWS: usize = 40;

/// A collector killed mid-run (no flush, session left open) and restarted
/// with the same run id and database. What the batching guarantees, checked
/// precisely:
/// - the file holds exactly the rows of the committed batches: the killed
///   collector lost only its open batch, fewer than `BATCH_ROWS` rows;
/// - what survived of the events just before the kill is a prefix of them
///   (batches commit in order, each whole): no gaps, no partial batch;
/// - events committed before the kill and events after the restart are all
///   there exactly once; the restart is a second session, the first stays open.
#[tokio::test]
async fn a_killed_collector_loses_at_most_its_open_batch_and_resumes_the_run() {
    let database = TestDatabase::start().await;
    let fake = FakeWorker::serve(&database, None).await;
    let function = echo_function(&database, config(64, None, 0, 0)).await;
    let run = Run::new();

    // Only the size trigger commits: resource samples (one worker row every
    // 20 ms, plus one per live instance) keep filling batches.
    let mut settings = run.settings(&[&fake.address]);
    settings.interval = Duration::from_millis(20);
    settings.batch.interval = NEVER;
    settings.batch.rows = BATCH_ROWS;
    let first = Collector::start(settings.clone()).await.unwrap();
    assert_eq!(first.session().number, 1);
    connected(&first).await;

    // Phase A: committed before the kill.
    let mut phase_a = Vec::new();
    for _ in 0..3 {
        phase_a.push(fake.start_stop(&function).await);
    }
    until(&run, "phase A committed by full batches", |run| run.lifecycle_of(&phase_a).len() == 6).await;

    // Phase B: received, then the collector dies with whatever is open.
    let mut phase_b = Vec::new();
    for _ in 0..3 {
        phase_b.push(fake.start_stop(&function).await);
    }
    events_received(&first, 12).await;
    let killed = first.kill().await;
    let rows_after_kill = run.rows();
    assert_eq!(
        rows_after_kill,
        i64::try_from(killed.committed_rows).unwrap(),
        "the file must hold exactly the committed batches"
    );
    let lost = killed.received_rows - killed.committed_rows;
    assert!(lost < BATCH_ROWS as u64, "lost {lost} rows: more than the open batch of < {BATCH_ROWS}");
    let mut expected_b = Vec::new();
    for i in &phase_b {
        expected_b.push(("START".to_string(), i.clone()));
        expected_b.push(("STOP".to_string(), i.clone()));
    }
    let survived_b = run.lifecycle_of(&phase_b);
    assert_eq!(survived_b[..], expected_b[..survived_b.len()], "survivors of the kill are not a prefix");
    assert_eq!(run.sessions(), vec![(1, None)], "a killed session stays open");

    // Events while no collector runs are not recorded (the worker keeps no history).
    let unseen = fake.start_stop(&function).await;

    // Restart into the same run.
    settings.batch.interval = Duration::from_millis(100);
    let second = Collector::start(settings).await.unwrap();
    assert_eq!(second.session().number, 2);
    connected(&second).await;
    let mut phase_c = Vec::new();
    for _ in 0..3 {
        phase_c.push(fake.start_stop(&function).await);
    }
    events_received(&second, 6).await;
    let summary = second.shutdown().await.unwrap();

    let sessions = run.sessions();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions[0], (1, None));
    assert!(sessions[1].1.is_some(), "the second session was not closed");
    let expect = |ids: &[String]| -> Vec<(String, String)> {
        ids.iter().flat_map(|i| [("START".to_string(), i.clone()), ("STOP".to_string(), i.clone())]).collect()
    };
    assert_eq!(run.lifecycle_of(&phase_a), expect(&phase_a), "{}", run.dump());
    assert_eq!(run.lifecycle_of(&phase_b), survived_b, "phase B rows changed after the restart");
    assert_eq!(run.lifecycle_of(&phase_c), expect(&phase_c), "{}", run.dump());
    assert!(run.lifecycle_of(&[unseen]).is_empty());
    assert_eq!(
        run.rows(),
        rows_after_kill + i64::try_from(summary.written.committed_rows).unwrap(),
        "the restart appends; nothing is rewritten or de-duplicated"
    );
}
