use hyperfake_core::ImageTag;
use hyperfake_model::{Features, Model, ModelKind, ModelSet};
use prost::Message;
use trainer::onnx::proto::*;
use trainer::synth::SyntheticRun;

use crate::common::{TestContext, all_kinds, close};

/// Relative agreement required between ONNX Runtime (f32) and the in-process
/// model (f64 on the same f32 inputs).
const TOLERANCE: f64 = 1e-4;

#[test]
fn every_export_predicts_like_the_in_process_model() {
    let ctx = TestContext::new();
    let run = SyntheticRun::standard(5).with_rows_per_image(1200);
    let db = ctx.with_db("roundtrip", &run);
    let out = ctx.train(&ctx.config(vec![db], all_kinds()));
    let mut checked = 0;
    for img in &out.report.images {
        let tag = ImageTag::from(img.image_tag.as_str());
        let rows: Vec<Features> = run
            .samples(run.images.iter().position(|i| i.image_tag == img.image_tag).unwrap())
            .iter()
            .step_by(7)
            .map(|s| {
                #[allow(clippy::cast_possible_truncation)]
                std::array::from_fn(|j| s.x[j] as f32)
            })
            .collect();
        for kind in all_kinds() {
            let fitted = &out.models[&(tag.clone(), kind)];
            let mut files = vec![out.run_dir.join(kind.as_str()).join(format!("{}.onnx", tag.name()))];
            if kind != ModelKind::RandomForest {
                files.push(out.run_dir.join(format!("{kind}.json")));
            }
            for file in files {
                let model = Model::load_image(&file, &tag).unwrap_or_else(|e| panic!("{e:#}"));
                let info = model.info();
                assert_eq!(info.image_tag, tag);
                assert_eq!(info.kind, kind, "{}", file.display());
                assert_eq!(info.training_run.as_deref(), Some("roundtrip"));
                assert_eq!(info.runtime_residual_quantiles.as_ref().map(Vec::len), Some(101));
                let ranges = info.input_ranges.clone().expect("input ranges");
                assert!(ranges[2].min >= 1.0 && ranges[2].max <= 16.0, "{ranges:?}");
                assert!(info.output_ranges.is_some());
                let predicted = model.predict(&rows).unwrap();
                assert_eq!(predicted.len(), rows.len());
                for (x, p) in rows.iter().zip(&predicted) {
                    let expected = fitted.predict(&x.map(f64::from));
                    for t in 0..3 {
                        assert!(
                            close(f64::from(p[t]), expected[t], TOLERANCE),
                            "{} target {t}: file {} vs in-process {} for {x:?}",
                            file.display(),
                            p[t],
                            expected[t]
                        );
                    }
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 2 * 5, "two images × (3 ONNX + 2 JSON)");
}

#[test]
fn a_model_directory_loads_as_a_set() {
    let ctx = TestContext::new();
    let db = ctx.with_db("set", &SyntheticRun::standard(6).with_rows_per_image(400));
    let out = ctx.train(&ctx.config(vec![db], vec![ModelKind::Ridge]));
    let set = ModelSet::load_dir(out.run_dir.join("ridge")).unwrap();
    assert_eq!(set.len(), 2);
    assert!(set.get(&ImageTag::from("hyperfaas-echo")).is_some());
    let json = ModelSet::load(out.run_dir.join("ridge.json")).unwrap();
    assert_eq!(json.len(), 2);
    // One JSON file with two images is ambiguous for Model::load.
    let err = Model::load(out.run_dir.join("ridge.json")).unwrap_err();
    assert!(matches!(err, hyperfake_model::ModelError::Ambiguous { count: 2, .. }), "{err}");
}

/// An ONNX file shaped like HyperFake's PyTorch exports: input `input`
/// f32 [1,5], output `output` [1,3], no metadata, runtime in ns.
pub(crate) fn external_model(coeffs: &[[f32; 6]; 3]) -> Vec<u8> {
    let info = |name: &str, width| ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: Some(data_type::FLOAT),
                shape: Some(TensorShapeProto {
                    dim: vec![
                        Dimension { dim_value: Some(1), dim_param: None },
                        Dimension { dim_value: Some(width), dim_param: None },
                    ],
                }),
            }),
        }),
    };
    let mut w = vec![];
    for f in 0..5 {
        for c in coeffs {
            w.push(c[f]);
        }
    }
    let tensor = |name: &str, dims: Vec<i64>, data: Vec<f32>| TensorProto {
        dims,
        data_type: Some(data_type::FLOAT),
        float_data: data,
        name: Some(name.into()),
    };
    ModelProto {
        ir_version: Some(7),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(11) }],
        producer_name: Some("pytorch".into()),
        graph: Some(GraphProto {
            name: Some("main_graph".into()),
            node: vec![
                NodeProto {
                    input: vec!["input".into(), "W".into()],
                    output: vec!["mm".into()],
                    op_type: Some("MatMul".into()),
                    ..Default::default()
                },
                NodeProto {
                    input: vec!["mm".into(), "b".into()],
                    output: vec!["output".into()],
                    op_type: Some("Add".into()),
                    ..Default::default()
                },
            ],
            initializer: vec![
                tensor("W", vec![5, 3], w),
                tensor("b", vec![3], coeffs.iter().map(|c| c[5]).collect()),
            ],
            input: vec![info("input", 5)],
            output: vec![info("output", 3)],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

#[test]
fn external_fixed_batch_onnx_loads_and_predicts_row_by_row() {
    let ctx = TestContext::new();
    let coeffs =
        [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [0.0, 0.0, 0.0, 0.5, 0.0, 0.1], [1.0, 0.0, 0.0, 0.0, 0.0, 100.0]];
    let path = ctx.path().join("hyperfaas-echo.onnx");
    std::fs::write(&path, external_model(&coeffs)).unwrap();
    let model = Model::load(&path).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(model.info().image_tag, ImageTag::from("hyperfaas-echo:latest"));
    assert_eq!(model.info().kind, ModelKind::External);
    assert!(model.info().input_ranges.is_none());
    let rows: Vec<Features> = (0..5).map(|i| [i as f32, 1.0, 2.0, 0.5, 10.0]).collect();
    let out = model.predict(&rows).unwrap();
    assert_eq!(out.len(), 5);
    for (x, y) in rows.iter().zip(&out) {
        for t in 0..3 {
            let expected: f32 = coeffs[t][5] + x.iter().zip(&coeffs[t]).map(|(a, b)| a * b).sum::<f32>();
            assert!((y[t] - expected).abs() <= 1e-4 * expected.abs().max(1.0), "{y:?}");
        }
    }
}
