use std::time::{Duration, Instant};

use fakeworker::{ResponseMode, Sampling, SimSettings};
use hyperfake_core::trailers;
use serde_json::json;

use crate::common::*;

const BFS: &str = "hyperfaas-bfs:latest";

/// Coefficients over 5 fixed inputs and `extra` payload features.
fn coeffs(weights: &[(usize, f64)], intercept: f64, inputs: usize) -> Vec<f64> {
    let mut c = vec![0.0; inputs + 1];
    for (i, w) in weights {
        c[*i] = *w;
    }
    c[inputs] = intercept;
    c
}

/// A bfs-like JSON model: runtime = 1 µs per graph node + 1 ms; 0.25 cores;
/// 8 MB; response = 8 bytes per node; overhead 5 ms. The graph size comes
/// from `/size`, default 500.
fn bfs_entry() -> serde_json::Value {
    json!({
        "image_tag": BFS,
        "runtime_unit": "ns",
        "model_kind": "ridge",
        "payload_features": [{"name": "graph_nodes", "json": "/size"}],
        "payload_feature_defaults": [500.0],
        "runtime_coeffs": coeffs(&[(5, 1000.0)], 1e6, 6),
        "cpu_coeffs": coeffs(&[], 0.25, 6),
        "ram_coeffs": coeffs(&[], 8e6, 6),
        "response_size_coeffs": coeffs(&[(5, 8.0)], 0.0, 6),
        "overhead_coeffs": coeffs(&[], 5e6, 6),
    })
}

fn handler(r: &tonic::Response<proto::common::CallResponse>) -> u64 {
    metadata_u64(r, trailers::FUNCTION_HANDLER_TIME)
}

#[tokio::test]
async fn a_payload_feature_drives_the_runtime_and_a_missing_one_takes_the_default() {
    let ctx = FakeContext::new(|dir| write_entries(dir, "bfs.json", &[bfs_entry()])).await;
    let f = ctx.function(BFS, config(64, None, 0, 0)).await;
    ctx.start(&f).await;
    let small = ctx.call(&f, br#"{"size": 1000}"#).await.unwrap();
    let large = ctx.call(&f, br#"{"size": 9000}"#).await.unwrap();
    assert_eq!(handler(&small), 2_000_000);
    assert_eq!(handler(&large), 10_000_000);
    assert_eq!(ctx.runtime.payload_defaults_used(), 0);
    // No field, and not JSON at all: the default (500 nodes), counted, no error.
    let missing = ctx.call(&f, br#"{"nodes": 1000}"#).await.unwrap();
    let garbage = ctx.call(&f, &[0xff, 0xfe, 0x00]).await.unwrap();
    let empty = ctx.call(&f, b"").await.unwrap();
    for r in [&missing, &garbage, &empty] {
        assert_eq!(handler(r), 1_500_000);
    }
    assert_eq!(ctx.runtime.payload_defaults_used(), 3);
}

#[tokio::test]
async fn the_answer_has_the_predicted_size_and_the_worker_time_includes_the_overhead() {
    let ctx = FakeContext::new(|dir| write_entries(dir, "bfs.json", &[bfs_entry()])).await;
    let f = ctx.function(BFS, config(64, None, 0, 0)).await;
    ctx.start(&f).await;
    let r = ctx.call(&f, br#"{"size": 1000}"#).await.unwrap();
    assert_eq!(r.get_ref().data.len(), 8000, "8 bytes per node");
    let handler = handler(&r);
    let processing = metadata_u64(&r, trailers::FUNCTION_PROCESSING_TIME);
    assert_eq!(handler, 2_000_000);
    assert!(processing >= handler + 5_000_000, "processing {processing} ns lacks the 5 ms overhead");
    assert!(processing < handler + 200_000_000, "processing {processing} ns");

    for (mode, expect) in [(ResponseMode::Echo, 14usize), (ResponseMode::Empty, 0)] {
        let settings = SimSettings { response: mode, ..test_settings() };
        let ctx =
            FakeContext::with_settings(settings, |dir| write_entries(dir, "bfs.json", &[bfs_entry()])).await;
        let f = ctx.function(BFS, config(64, None, 0, 0)).await;
        ctx.start(&f).await;
        let r = ctx.call(&f, br#"{"size": 1000}"#).await.unwrap();
        assert_eq!(r.get_ref().data.len(), expect, "{mode:?}");
    }
}

#[tokio::test]
async fn an_onnx_model_with_payload_features_and_five_outputs_serves_calls() {
    // The trainer's ONNX writer, as `trainer deploy` would write it.
    let ctx = FakeContext::new(|dir| {
        let entry = bfs_entry();
        let rows: Vec<Vec<f64>> =
            ["runtime_coeffs", "cpu_coeffs", "ram_coeffs", "response_size_coeffs", "overhead_coeffs"]
                .iter()
                .map(|k| serde_json::from_value(entry[k].clone()).unwrap())
                .collect();
        let keys = hyperfake_model::metadata_keys::PAYLOAD_FEATURES;
        let metadata = vec![
            (hyperfake_model::metadata_keys::IMAGE_TAG.to_string(), BFS.to_string()),
            (hyperfake_model::metadata_keys::RUNTIME_UNIT.to_string(), "ns".to_string()),
            (keys.to_string(), entry["payload_features"].to_string()),
            (
                hyperfake_model::metadata_keys::PAYLOAD_FEATURE_DEFAULTS.to_string(),
                entry["payload_feature_defaults"].to_string(),
            ),
        ];
        write_atomic(&dir.join("hyperfaas-bfs.onnx"), &trainer::onnx::linear_model(&rows, &metadata));
    })
    .await;
    let info = ctx.registry.current().get(&BFS.into()).unwrap().info().clone();
    assert_eq!((info.input_count(), info.output_count), (6, 5));
    let f = ctx.function(BFS, config(64, None, 0, 0)).await;
    ctx.start(&f).await;
    let r = ctx.call(&f, br#"{"size": 3000}"#).await.unwrap();
    assert_eq!(handler(&r), 4_000_000);
    assert_eq!(r.get_ref().data.len(), 24_000);
    ctx.call(&f, b"no json").await.unwrap();
    assert_eq!(ctx.runtime.payload_defaults_used(), 1);
}

/// Runtime 10 ms ± a wide spread; overhead 2 ms ± its own.
fn spread_entry() -> serde_json::Value {
    let quantiles: Vec<f64> = (0..=100).map(|i| f64::from(i - 50) * 100_000.0).collect();
    json!({
        "image_tag": IMAGE,
        "runtime_unit": "ns",
        "model_kind": "linear",
        "runtime_coeffs": constant(10e6),
        "cpu_coeffs": constant(0.1),
        "ram_coeffs": constant(1e6),
        "response_size_coeffs": constant(10.0),
        "overhead_coeffs": constant(2e6),
        "runtime_spread": [{"upto": 1e6, "quantiles": [0.0, 0.0]}, {"upto": 1e9, "quantiles": quantiles}],
        "overhead_spread": [{"upto": 1e9, "quantiles": [-1e6, 0.0, 1e6]}],
    })
}

async fn handler_times(settings: SimSettings, calls: usize) -> Vec<u64> {
    handler_times_of(spread_entry(), settings, calls).await
}

async fn handler_times_of(entry: serde_json::Value, settings: SimSettings, calls: usize) -> Vec<u64> {
    let ctx = FakeContext::with_settings(settings, move |dir| write_entries(dir, "m.json", &[entry])).await;
    let f = ctx.function(IMAGE, config(64, None, 0, 0)).await;
    ctx.start(&f).await;
    let mut out = Vec::new();
    for _ in 0..calls {
        let r = ctx.call(&f, b"x").await.unwrap();
        let h = handler(&r);
        let processing = metadata_u64(&r, trailers::FUNCTION_PROCESSING_TIME);
        // The overhead draw (2 ms ± 1 ms) is slept after the handler.
        assert!(processing >= h + 1_000_000, "processing {processing} < handler {h} + 1 ms");
        out.push(h);
    }
    out
}

#[tokio::test]
async fn seeded_sampling_is_reproducible_and_mean_gives_the_mean() {
    let seeded = |seed| SimSettings { seed, ..test_settings() };
    let a = handler_times(seeded(7), 12).await;
    let b = handler_times(seeded(7), 12).await;
    let c = handler_times(seeded(8), 12).await;
    assert_eq!(a, b, "same seed, same calls, same draws");
    assert_ne!(a, c, "another seed draws differently");
    // Draws come from the spread's region of the 10 ms prediction: 10 ms ± 5 ms.
    assert!(a.iter().all(|h| (5_000_000..=15_000_000).contains(h)), "{a:?}");
    let distinct: std::collections::BTreeSet<_> = a.iter().collect();
    assert!(distinct.len() > 6, "a spread, not a constant: {a:?}");

    let mean = handler_times(SimSettings { sampling: Sampling::Mean, ..test_settings() }, 4).await;
    assert_eq!(mean, vec![10_000_000; 4]);
}

/// A runtime quantile map moves every drawn runtime (5–15 ms here) onto the
/// measured distribution it records (20–40 ms), keeping their order; the
/// means (`--mean`) are not mapped.
#[tokio::test]
async fn drawn_runtimes_go_through_the_models_quantile_map() {
    let mut entry = spread_entry();
    entry["runtime_quantile_map"] = json!({"drawn_ns": [5e6, 15e6], "actual_ns": [20e6, 40e6]});
    let settings = SimSettings { seed: 7, ..test_settings() };
    let mapped = handler_times_of(entry.clone(), settings.clone(), 12).await;
    let drawn = handler_times(settings, 12).await;
    for (m, d) in mapped.iter().zip(&drawn) {
        // The same draws (same seed), each mapped: 20 ms + 2 × (drawn − 5 ms).
        let want = 20_000_000 + 2 * (d - 5_000_000);
        assert!(m.abs_diff(want) <= 2, "drawn {d} mapped to {m}, expected {want}");
    }
    let mean = handler_times_of(entry, SimSettings { sampling: Sampling::Mean, ..test_settings() }, 2).await;
    assert_eq!(mean, vec![10_000_000; 2]);
}

/// Wall time of `Start` for a model whose cold starts are `quantiles` (ns).
async fn start_time(settings: SimSettings, quantiles: Option<[f64; 3]>) -> Duration {
    let mut entry = spread_entry();
    if let Some(q) = quantiles {
        entry["cold_start_ns_quantiles"] = json!(q);
    }
    let ctx = FakeContext::with_settings(settings, |dir| write_entries(dir, "m.json", &[entry])).await;
    let f = ctx.function(IMAGE, config(64, None, 0, 0)).await;
    let started = Instant::now();
    ctx.start(&f).await;
    started.elapsed()
}

#[tokio::test]
async fn cold_starts_are_drawn_from_the_model_or_fall_back_to_the_setting() {
    // Between 300 and 500 ms: far from the 20 ms fallback of the test settings.
    let q = Some([300e6, 400e6, 500e6]);
    for seed in [1, 2] {
        let t = start_time(SimSettings { seed, ..test_settings() }, q).await;
        assert!(t >= Duration::from_millis(300) && t < Duration::from_millis(900), "{t:?}");
    }
    let mean = start_time(SimSettings { sampling: Sampling::Mean, ..test_settings() }, q).await;
    assert!(mean >= Duration::from_millis(400) && mean < Duration::from_millis(800), "{mean:?}");
    let fallback = start_time(test_settings(), None).await;
    assert!(fallback >= Duration::from_millis(20) && fallback < Duration::from_millis(250), "{fallback:?}");
}
