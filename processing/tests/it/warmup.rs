use crate::common::{Fixture, W1, count, ms};

/// Warm-up calls (loadgen's `warmup:`, `calls.warmup = 1`) are recorded but
/// make no training rows and are not counted in the run's summary.
#[test]
fn warmup_calls_make_no_training_rows_and_stay_out_of_the_summary() {
    let mut f = Fixture::new();
    f.start(W1, "aaaaaaaaaaa1", ms(0)).steady(W1, "aaaaaaaaaaa1", 0, 1000, 0.5, 10 << 20).worker_steady(
        W1,
        0,
        1000,
        1.5,
        4 << 30,
    );
    let warm = f.call("aaaaaaaaaaa1", ms(50), ms(80));
    f.calls[warm].warmup = true;
    let measured = [f.call("aaaaaaaaaaa1", ms(200), ms(300)), f.call("aaaaaaaaaaa1", ms(400), ms(500))];

    let (db, summary) = f.process();
    assert_eq!(count(&db, "calls", ""), 3, "the warm-up call is recorded");
    assert_eq!(count(&db, "calls", "warmup = 1"), 1);
    assert_eq!(summary.calls(), 2, "{summary}");
    assert_eq!(summary.training_rows(), 2, "{summary}");
    // The fixture names request ids `<run>-<call_index>`.
    let id = |i: usize| format!("{}-{}", f.run_id, f.calls[i].call_index);
    let warm_id = id(warm);
    assert_eq!(count(&db, "training_data", &format!("request_id = '{warm_id}'")), 0);
    for i in measured {
        let id = id(i);
        assert_eq!(count(&db, "training_data", &format!("request_id = '{id}'")), 1, "{id}");
    }
}
