//! Model files with payload features and five outputs load in
//! `hyperfake-model` (ONNX through ONNX Runtime, and JSON) with the right
//! widths, metadata and predictions.

use hyperfake_core::ImageTag;
use hyperfake_model::{Model, ModelKind};
use trainer::synth::{PAYLOAD_FEATURE, SyntheticRun};

use crate::common::{TestContext, all_kinds, close};

/// Relative agreement between ONNX Runtime (f32) and the in-process model (f64).
const TOLERANCE: f64 = 1e-4;

#[test]
fn payload_models_load_and_predict_like_the_in_process_model() {
    let ctx = TestContext::new();
    let run = SyntheticRun::with_payload(31).with_rows_per_image(900);
    let db = ctx.with_db("load", &run);
    let out = ctx.train(&ctx.config(vec![db], all_kinds()));
    let mut checked = 0;
    for (image, k) in [("hyperfaas-bfs:latest", 1usize), ("hyperfaas-echo:latest", 0)] {
        let tag = ImageTag::from(image);
        let index = run.images.iter().position(|i| i.image_tag == image).unwrap();
        #[allow(clippy::cast_possible_truncation)]
        let rows: Vec<Vec<f32>> =
            run.samples(index).iter().step_by(11).map(|s| s.x.iter().map(|v| *v as f32).collect()).collect();
        assert_eq!(rows[0].len(), 5 + k);
        for kind in all_kinds() {
            let fitted = &out.models[&(tag.clone(), kind)];
            let mut files = vec![out.run_dir.join(kind.as_str()).join(format!("{}.onnx", tag.name()))];
            if kind != ModelKind::RandomForest {
                files.push(out.run_dir.join(format!("{kind}.json")));
            }
            for file in files {
                let model = Model::load_image(&file, &tag).unwrap_or_else(|e| panic!("{e:#}"));
                let info = model.info();
                assert_eq!(info.input_count(), 5 + k, "{}", file.display());
                assert_eq!(info.output_count, 5, "{}", file.display());
                assert_eq!(info.payload_features.len(), k);
                if k == 1 {
                    assert_eq!(info.input_names()[5], PAYLOAD_FEATURE);
                    assert_eq!(info.payload_feature_defaults.len(), 1);
                    // A payload without the field takes the default; with it, its value.
                    let (row, defaults) = info.inputs_for([1.0; 5], b"{}");
                    assert_eq!((row.len(), defaults), (6, 1));
                    let (row, defaults) = info.inputs_for([1.0; 5], br#"{"size": 1234}"#);
                    assert_eq!((row[5], defaults), (1234.0, 0));
                }
                assert_eq!(info.input_ranges.as_ref().map(Vec::len), Some(5 + k));
                assert_eq!(info.output_ranges.as_ref().map(Vec::len), Some(5));
                assert!(info.runtime_spread.is_some() && info.overhead_spread.is_some());
                assert_eq!(info.cold_start_ns_quantiles.as_ref().map(Vec::len), Some(101));
                assert!(info.sample_cold_start(0.5).is_some());
                // The host's load besides the calls, measured on the run, in every file.
                let base = info.host_baseline.as_ref().expect("host baseline").median();
                assert!(base.cpu_cores >= 0.0 && base.ram_bytes > 0.0, "{base:?}");
                // No runtime quantile map: these runtimes follow the inputs, so a
                // correction of their marginal distribution would bend that
                // (`trainer::spread::MAP_MAX_R2`).
                assert!(info.runtime_quantile_map.is_none(), "{}", file.display());
                let predicted =
                    model.predict_rows(&rows).unwrap_or_else(|e| panic!("{}: {e:#}", file.display()));
                for (x, p) in rows.iter().zip(&predicted) {
                    let x64: Vec<f64> = x.iter().map(|v| f64::from(*v)).collect();
                    let expected = fitted.predict(&x64);
                    let got = [
                        Some(p.runtime_ns),
                        Some(p.cpu_cores),
                        Some(p.ram_bytes),
                        p.response_size_bytes,
                        p.worker_overhead_ns,
                    ];
                    for (t, (g, e)) in got.iter().zip(&expected).enumerate() {
                        let g =
                            f64::from(g.unwrap_or_else(|| panic!("{}: output {t} missing", file.display())));
                        assert!(
                            close(g, *e, TOLERANCE),
                            "{} output {t}: file {g} vs in-process {e}",
                            file.display()
                        );
                    }
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 2 * 5, "two images × (3 ONNX + 2 JSON)");
}
