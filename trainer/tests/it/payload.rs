//! Payload features, the extra targets, spreads and cold starts (issue 10):
//! per-image widths, what the files carry, and that a feature which drives the
//! runtime is learnt.

use std::collections::BTreeMap;
use std::path::Path;

use hyperfake_model::ModelKind;
use hyperfake_model::{LinearModelFile, Spread, metadata_keys as extra_keys};
use prost::Message;
use trainer::onnx::proto::*;
use trainer::synth::{COLD_START_MEDIAN_NS, PAYLOAD_FEATURE, SyntheticRun};

use crate::common::{TestContext, all_kinds};

const BFS: &str = "hyperfaas-bfs:latest";
const ECHO: &str = "hyperfaas-echo:latest";

/// The ONNX file's input and output widths and its metadata.
fn onnx_shape(path: &Path) -> (i64, i64, BTreeMap<String, String>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let model = ModelProto::decode(bytes.as_slice()).unwrap();
    let graph = model.graph.unwrap();
    let width = |v: &ValueInfoProto| {
        let dims = &v.r#type.as_ref().unwrap().tensor_type.as_ref().unwrap().shape.as_ref().unwrap().dim;
        assert_eq!(dims[0].dim_param.as_deref(), Some("N"));
        dims[1].dim_value.unwrap()
    };
    let meta = model.metadata_props.into_iter().map(|p| (p.key.unwrap(), p.value.unwrap())).collect();
    (width(&graph.input[0]), width(&graph.output[0]), meta)
}

fn check_spread(what: &str, spread: &Spread) {
    let regions = spread.regions();
    assert!((1..=8).contains(&regions.len()), "{what}: {} regions", regions.len());
    assert!(regions.windows(2).all(|w| w[0].upto < w[1].upto), "{what}: upto not increasing");
    for r in regions {
        assert_eq!(r.quantiles.len(), 101, "{what}");
        assert!(r.quantiles.windows(2).all(|w| w[0] <= w[1]), "{what}: quantiles decrease");
        assert!(r.quantiles[0] < r.quantiles[100], "{what}: no spread in {r:?}");
    }
    let all = regions.iter().flat_map(|r| &r.quantiles);
    assert!(
        all.clone().any(|q| *q < 0.0) && all.clone().any(|q| *q > 0.0),
        "{what}: residuals on one side only"
    );
}

#[test]
fn payload_features_and_extra_targets_reach_every_file() {
    let ctx = TestContext::new();
    let run = SyntheticRun::with_payload(21).with_rows_per_image(1200);
    let db = ctx.with_db("payload", &run);
    let out = ctx.train(&ctx.config(vec![db], all_kinds()));
    let bfs = out.report.images.iter().find(|i| i.image_tag == BFS).expect("bfs trained");
    let echo = out.report.images.iter().find(|i| i.image_tag == ECHO).expect("echo trained");
    let feature_col = format!("feature_{PAYLOAD_FEATURE}");
    assert_eq!(bfs.inputs.len(), 6);
    assert_eq!(bfs.inputs[5], feature_col);
    assert_eq!(echo.inputs.len(), 5, "echo declares no feature: {:?}", echo.inputs);
    for img in [bfs, echo] {
        assert_eq!(
            img.targets,
            [
                "function_processing_time_ns",
                "function_cpu_usage",
                "function_ram_usage",
                "response_size_bytes",
                "worker_overhead_ns"
            ]
        );
        assert_eq!(img.cold_starts, 500);
        for m in &img.models {
            for t in &img.targets {
                assert!(
                    m.test.get(t).and_then(|x| x.r2).is_some(),
                    "{} {}: no R² for {t}",
                    img.image_tag,
                    m.kind
                );
            }
            assert!(m.runtime_spread.as_ref().is_some_and(|s| s.regions >= 4 && s.rows >= 120), "{m:?}");
            assert!(m.overhead_spread.is_some());
        }
    }
    // The feature's default is the training median of graph sizes
    // (log-uniform over 10 … 100 000: median near 1 000).
    let default = bfs.payload_feature_defaults[PAYLOAD_FEATURE];
    assert!((500.0..2000.0).contains(&default), "default {default}");

    for kind in all_kinds() {
        for (img, k) in [(BFS, 1usize), (ECHO, 0)] {
            let name = hyperfake_core::ImageTag::from(img).name().to_string();
            let path = out.run_dir.join(kind.as_str()).join(format!("{name}.onnx"));
            let (inputs, outputs, meta) = onnx_shape(&path);
            assert_eq!((inputs, outputs), (5 + i64::from(k == 1), 5), "{}", path.display());
            let features: Vec<String> = serde_json::from_str(&meta["hyperfake.features"]).unwrap();
            assert_eq!(features.len(), 5 + k);
            if k == 1 {
                assert_eq!(features[5], PAYLOAD_FEATURE);
                let decl: hyperfake_core::payload::PayloadFeatures =
                    serde_json::from_str(&meta[extra_keys::PAYLOAD_FEATURES]).unwrap();
                assert_eq!(decl.iter().map(|f| f.name()).collect::<Vec<_>>(), [PAYLOAD_FEATURE]);
                let defaults: Vec<f64> =
                    serde_json::from_str(&meta[extra_keys::PAYLOAD_FEATURE_DEFAULTS]).unwrap();
                assert_eq!(defaults, vec![default]);
            } else {
                assert!(!meta.contains_key(extra_keys::PAYLOAD_FEATURES));
            }
            let ranges: Vec<hyperfake_model::Range> =
                serde_json::from_str(&meta["hyperfake.input_ranges"]).unwrap();
            assert_eq!(ranges.len(), 5 + k);
            let ranges: Vec<hyperfake_model::Range> =
                serde_json::from_str(&meta["hyperfake.output_ranges"]).unwrap();
            assert_eq!(ranges.len(), 5);
            for key in [extra_keys::RUNTIME_SPREAD, extra_keys::OVERHEAD_SPREAD] {
                let spread: Spread = serde_json::from_str(&meta[key]).unwrap();
                check_spread(&format!("{} {key}", path.display()), &spread);
            }
            let cold: Vec<f64> = serde_json::from_str(&meta[extra_keys::COLD_START_NS_QUANTILES]).unwrap();
            assert_eq!(cold.len(), 101);
            assert!(cold.windows(2).all(|w| w[0] <= w[1]));
            assert!((cold[50] / COLD_START_MEDIAN_NS - 1.0).abs() < 0.1, "cold-start median {}", cold[50]);
        }
    }
    for kind in [ModelKind::Linear, ModelKind::Ridge] {
        let path = out.run_dir.join(format!("{kind}.json"));
        let file: LinearModelFile = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let e = &file[BFS];
        for c in [&e.runtime_coeffs, &e.cpu_coeffs, &e.ram_coeffs] {
            assert_eq!(c.len(), 7);
        }
        assert_eq!(e.response_size_coeffs.as_ref().map(Vec::len), Some(7));
        assert_eq!(e.overhead_coeffs.as_ref().map(Vec::len), Some(7));
        // The true runtime is 1 ms + 2 µs per graph node.
        assert!((e.runtime_coeffs[5] / 2e3 - 1.0).abs() < 0.05, "{kind}: weight {}", e.runtime_coeffs[5]);
        assert_eq!(e.payload_features.len(), 1);
        assert_eq!(e.payload_feature_defaults, Some(vec![default]));
        check_spread("json runtime", e.runtime_spread.as_ref().unwrap());
        check_spread("json overhead", e.overhead_spread.as_ref().unwrap());
        assert_eq!(e.cold_start_ns_quantiles.as_ref().map(Vec::len), Some(101));
        assert_eq!(file[ECHO].runtime_coeffs.len(), 6);
        assert!(file[ECHO].payload_features.is_empty());
    }
}

#[test]
fn a_payload_feature_explains_the_runtime_the_five_inputs_cannot() {
    let ctx = TestContext::new();
    let db = ctx.with_db("drive", &SyntheticRun::with_payload(22).with_rows_per_image(1500));
    let kinds = vec![ModelKind::Linear, ModelKind::RandomForest];
    let r2 = |payload_features: bool| {
        let mut cfg = ctx.config(vec![db.clone()], kinds.clone());
        cfg.payload_features = payload_features;
        cfg.run = Some(format!("features-{payload_features}"));
        cfg.plots = false;
        let out = ctx.train(&cfg);
        let img = out.report.images.iter().find(|i| i.image_tag == BFS).unwrap();
        assert_eq!(img.inputs.len(), if payload_features { 6 } else { 5 });
        kinds
            .iter()
            .map(|k| {
                let m = img.models.iter().find(|m| m.kind == *k).unwrap();
                (*k, m.test["function_processing_time_ns"].r2.unwrap())
            })
            .collect::<Vec<_>>()
    };
    for ((kind, with), (_, without)) in r2(true).into_iter().zip(r2(false)) {
        assert!(with > 0.9, "{kind}: held-out runtime R² with the payload feature {with}");
        assert!(without < 0.3, "{kind}: held-out runtime R² without the payload feature {without}");
    }
}

#[test]
fn rows_with_a_null_feature_or_extra_target_are_dropped_and_counted_by_column() {
    let ctx = TestContext::new();
    let db = ctx
        .with_db("nulls", &SyntheticRun::with_payload(23).with_rows_per_image(800).with_null_fraction(0.2));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let out = ctx.train(&ctx.config(vec![db.clone()], vec![ModelKind::Linear]));
    let count = |img: &str, col: &str| -> u64 {
        conn.query_row(
            &format!("SELECT COUNT(*) FROM training_data WHERE image_tag = ?1 AND {col} IS NULL"),
            [img],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| u64::try_from(n).unwrap())
        .unwrap()
    };
    let bfs = out.report.images.iter().find(|i| i.image_tag == BFS).unwrap();
    let feature_col = format!("feature_{PAYLOAD_FEATURE}");
    for col in [feature_col.as_str(), "response_size_bytes", "worker_overhead_ns", "request_size_bytes"] {
        let n = count(BFS, col);
        assert!(n > 0, "fixture should have NULLs in {col}");
        assert_eq!(bfs.nulls_by_column.get(col).copied().unwrap_or(0), n, "{col}: {:?}", bfs.nulls_by_column);
    }
    assert_eq!(bfs.rows_dropped_null, bfs.nulls_by_column.values().sum::<u64>(), "one NULL per fixture row");
    assert_eq!(
        bfs.rows_train + bfs.rows_val + bfs.rows_test + usize::try_from(bfs.rows_dropped_null).unwrap(),
        800
    );
    // Echo declares no feature: its (NULL) feature column is not used, not counted.
    let echo = out.report.images.iter().find(|i| i.image_tag == ECHO).unwrap();
    assert!(!echo.nulls_by_column.contains_key(&feature_col));
    assert_eq!(count(ECHO, &feature_col), 800);
    // The reports say which column.
    let md = std::fs::read_to_string(out.run_dir.join("report.md")).unwrap();
    assert!(md.contains(&format!("{feature_col} {}", count(BFS, &feature_col))), "{md}");
    assert!(md.contains(&format!("Inputs (6): request_size_bytes, function_instances_count, active_function_calls_count, worker_cpu_usage, worker_ram_usage, {feature_col}")), "{md}");
    // One metric table per target, its errors in the unit its headers name.
    assert!(md.contains("**worker_overhead_ns**") && md.contains("**response_size_bytes**"), "{md}");
    assert!(md.contains("| MAE (ms) |") || md.contains("| MAE (µs) |"), "{md}");
    let html = std::fs::read_to_string(out.run_dir.join("report.html")).unwrap();
    assert!(html.contains(&feature_col) && html.contains("<caption>worker_overhead_ns</caption>"));
}

#[test]
fn a_hyperfake_database_still_gives_five_inputs_and_three_outputs() {
    let ctx = TestContext::new();
    let db = ctx.with_db("plain", &SyntheticRun::standard(24).with_rows_per_image(500));
    let out = ctx.train(&ctx.config(vec![db], all_kinds()));
    for img in &out.report.images {
        assert_eq!(img.inputs.len(), 5);
        assert_eq!(img.targets.len(), 3);
        assert_eq!(img.cold_starts, 0);
        for m in &img.models {
            assert!(m.runtime_spread.is_some() && m.overhead_spread.is_none());
        }
        for kind in all_kinds() {
            let name = hyperfake_core::ImageTag::from(img.image_tag.as_str()).name().to_string();
            let (inputs, outputs, meta) =
                onnx_shape(&out.run_dir.join(kind.as_str()).join(format!("{name}.onnx")));
            assert_eq!((inputs, outputs), (5, 3));
            assert!(!meta.contains_key(extra_keys::PAYLOAD_FEATURES));
            assert!(!meta.contains_key(extra_keys::OVERHEAD_SPREAD));
            assert!(!meta.contains_key(extra_keys::COLD_START_NS_QUANTILES));
            check_spread("runtime", &serde_json::from_str(&meta[extra_keys::RUNTIME_SPREAD]).unwrap());
        }
    }
    let text = std::fs::read_to_string(out.run_dir.join("linear.json")).unwrap();
    for absent in ["payload_features", "response_size_coeffs", "overhead_coeffs", "cold_start_ns_quantiles"] {
        assert!(!text.contains(absent), "{absent} in a HyperFake-shaped file");
    }
}
