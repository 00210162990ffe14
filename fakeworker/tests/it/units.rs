use std::time::Duration;

use hyperfake_core::trailers;

use crate::common::*;

const FIFTY_MS: u64 = 50_000_000;

/// The call's handler time is the prediction; the worker-measured processing
/// time shows the call really slept that long: 50 ms, not 50 s or 50 µs.
async fn assert_sleeps_fifty_ms(ctx: &FakeContext) {
    let f = ctx.function(IMAGE, config(64, None, 0, 0)).await;
    ctx.start(&f).await;
    let response = tokio::time::timeout(Duration::from_secs(10), ctx.call(&f, b"payload"))
        .await
        .expect("a 50 ms model must not sleep 50 s")
        .unwrap();
    assert_eq!(response.get_ref().data, b"payload");
    let handler = metadata_u64(&response, trailers::FUNCTION_HANDLER_TIME);
    assert_eq!(handler, FIFTY_MS, "predicted runtime");
    let processing = metadata_u64(&response, trailers::FUNCTION_PROCESSING_TIME);
    assert!(processing >= FIFTY_MS, "slept only {processing} ns");
    assert!(processing < 10 * FIFTY_MS, "slept {processing} ns for a 50 ms prediction");
}

#[tokio::test]
async fn json_model_in_nanoseconds() {
    let ctx = FakeContext::new(|dir| {
        write_json(
            dir,
            "linear.json",
            IMAGE,
            constant(FIFTY_MS as f64),
            constant(0.1),
            constant(1e6),
            Some("ns"),
        );
    })
    .await;
    assert_sleeps_fifty_ms(&ctx).await;
}

#[tokio::test]
async fn hyperfake_json_model_in_milliseconds() {
    let ctx = FakeContext::new(|dir| {
        write_json(dir, "old.json", IMAGE, constant(50.0), constant(0.1), constant(1e6), None);
    })
    .await;
    assert_sleeps_fifty_ms(&ctx).await;
}

#[tokio::test]
async fn onnx_model() {
    let ctx = FakeContext::new(|dir| {
        write_onnx(dir, IMAGE, constant(FIFTY_MS as f64), constant(0.1), constant(1e6));
    })
    .await;
    assert_sleeps_fifty_ms(&ctx).await;
}

#[tokio::test]
async fn negative_and_nan_predictions_never_become_sleeps() {
    let ctx = FakeContext::new(|dir| {
        write_json(dir, "neg.json", IMAGE, constant(-5e9), constant(-1.0), constant(-1.0), Some("ns"));
    })
    .await;
    let f = ctx.function(IMAGE, config(64, None, 0, 0)).await;
    ctx.start(&f).await;
    let r = tokio::time::timeout(Duration::from_secs(5), ctx.call(&f, b"")).await.unwrap().unwrap();
    assert_eq!(metadata_u64(&r, trailers::FUNCTION_HANDLER_TIME), 0);
}
