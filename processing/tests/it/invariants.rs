use std::collections::HashMap;

use processing::{ProcessOptions, Progress};
use rundb::fixtures::SynthRun;
use rusqlite::Connection;

/// Every training row of a synthetic run: (image, active, handler ns,
/// latency ns, function cores, targets non-NULL).
type Row = (String, Option<i64>, Option<i64>, Option<i64>, Option<f64>, bool);

#[test]
fn a_synthetic_runs_training_rows_satisfy_the_invariants() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("synth.db");
    let synth = SynthRun::new("synth", 20_000);
    let counts = synth.write(&db).unwrap();
    let summaries =
        processing::process_db(&db, None, &ProcessOptions::default(), &Progress::default()).unwrap();
    let summary = &summaries[0];

    let conn = Connection::open(&db).unwrap();
    let quota: HashMap<String, f64> =
        synth.images.iter().map(|i| (i.image_tag.clone(), i.quota.cores().0)).collect();
    let rows: Vec<Row> = conn
        .prepare(
            "SELECT image_tag, active_function_calls_count, function_processing_time_ns, latency_ns,
                    function_cpu_usage,
                    function_processing_time_ns IS NOT NULL AND function_cpu_usage IS NOT NULL
                        AND function_ram_usage IS NOT NULL
             FROM training_data",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();

    // Not vacuous: most OK calls become rows, on every image.
    let ok: u64 = summary.images.iter().map(|i| i.calls_ok()).sum();
    assert!(rows.len() as u64 > ok * 9 / 10, "{} rows of {ok} OK calls", rows.len());
    assert_eq!(summary.images.len(), synth.images.len());
    assert_eq!(summary.calls(), counts.calls as u64);

    let mut problems = Vec::new();
    for (image, active, runtime, latency, cores, targets) in &rows {
        if !targets {
            problems.push(format!("{image}: NULL target"));
        }
        if active.is_none_or(|a| a < 1) {
            problems.push(format!("{image}: active calls {active:?}"));
        }
        let q = quota[image];
        if cores.is_none_or(|c| c > q + 1e-6 || c < 0.0) {
            problems.push(format!("{image}: function CPU {cores:?} outside [0, quota {q}]"));
        }
        if let (Some(r), Some(l)) = (runtime, latency)
            && r > l
        {
            problems.push(format!("{image}: runtime {r} > latency {l}"));
        }
    }
    assert!(
        problems.is_empty(),
        "{} violations, first: {:?}",
        problems.len(),
        &problems[..problems.len().min(10)]
    );

    // Concurrency actually happened, so the share rule was exercised.
    assert!(rows.iter().any(|r| r.1 > Some(1)), "no concurrent calls in the synthetic run");

    for img in &summary.images {
        assert_eq!(
            img.training_rows + img.dropped_total(),
            img.calls,
            "{}: rows + dropped = calls",
            img.image_tag
        );
        assert!(!img.overloaded, "{}: synthetic queueing is tiny", img.image_tag);
    }
    // Averages cover exactly the complete rows.
    let (avg_samples, complete): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT SUM(sample_count) FROM training_data_avg),
                    (SELECT COUNT(*) FROM training_data WHERE worker_cpu_usage IS NOT NULL
                        AND worker_ram_usage IS NOT NULL AND function_instances_count IS NOT NULL)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(avg_samples, complete);

    // Payload features: each image's own value in its column, NULL for the others.
    let mismatched: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM training_data WHERE
                 (image_tag LIKE '%bfs%' AND (feature_graph_nodes IS NOT bfs_size OR feature_target_pixels IS NOT NULL))
              OR (image_tag LIKE '%thumb%' AND (feature_target_pixels IS NOT thumb_width * thumb_height
                                               OR feature_graph_nodes IS NOT NULL))
              OR (image_tag LIKE '%echo%' AND (feature_graph_nodes IS NOT NULL OR feature_target_pixels IS NOT NULL))",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(mismatched, 0);
    // Extra targets: the response size and the worker's own time on every row.
    let extra_nulls: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM training_data WHERE response_size_bytes IS NULL OR worker_overhead_ns IS NULL
                 OR worker_overhead_ns != worker_processing_time_ns - function_processing_time_ns",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(extra_nulls, 0);
    // One cold start per instance (each START carries its duration).
    let cold: i64 = conn
        .query_row("SELECT COUNT(*) FROM cold_starts WHERE image_tag IS NOT NULL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(usize::try_from(cold).unwrap(), counts.instances);
}
