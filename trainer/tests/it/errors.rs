use hyperfake_model::{Model, ModelError};
use prost::Message;
use trainer::onnx::proto::*;

use crate::common::TestContext;

/// A Gemm model whose input has 4 columns instead of 5.
fn four_input_model() -> Vec<u8> {
    let mut bytes = trainer::onnx::linear_model(&[[0.0; 6]; 3], &[]);
    let mut model = ModelProto::decode(bytes.as_slice()).unwrap();
    let graph = model.graph.as_mut().unwrap();
    graph.input[0].r#type.as_mut().unwrap().tensor_type.as_mut().unwrap().shape.as_mut().unwrap().dim[1]
        .dim_value = Some(4);
    graph.initializer[0].dims = vec![4, 3];
    graph.initializer[0].float_data.truncate(12);
    bytes.clear();
    model.encode(&mut bytes).unwrap();
    bytes
}

#[test]
fn wrong_shape_onnx_is_refused_with_the_shape() {
    let ctx = TestContext::new();
    let path = ctx.path().join("four.onnx");
    std::fs::write(&path, four_input_model()).unwrap();
    let err = Model::load(&path).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ModelError::Invalid { .. }), "{msg}");
    assert!(msg.contains("four.onnx") && msg.contains("[N,5]") && msg.contains("4"), "{msg}");
}

#[test]
fn corrupt_onnx_names_the_file() {
    let ctx = TestContext::new();
    let path = ctx.path().join("broken.onnx");
    let mut bytes = trainer::onnx::linear_model(&[[1.0; 6]; 3], &[]);
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&path, &bytes).unwrap();
    let err = Model::load(&path).unwrap_err();
    assert!(matches!(err, ModelError::Onnx { .. }), "{err}");
    assert!(err.to_string().contains("broken.onnx"), "{err}");
    assert!(!err.is_runtime_missing());
}

#[test]
fn bad_json_files_give_clear_errors() {
    let ctx = TestContext::new();
    let cases = [
        ("garbage.json", "not json at all", "not a linear-model JSON file"),
        (
            "short.json",
            r#"{"a:latest": {"image_tag": "a:latest", "runtime_coeffs": [1,2,3,4,5], "cpu_coeffs": [1,2,3,4,5,6], "ram_coeffs": [1,2,3,4,5,6]}}"#,
            "runtime_coeffs has 5 values; expected 6",
        ),
        (
            "mismatch.json",
            r#"{"a:latest": {"image_tag": "b:latest", "runtime_coeffs": [1,2,3,4,5,6], "cpu_coeffs": [1,2,3,4,5,6], "ram_coeffs": [1,2,3,4,5,6]}}"#,
            "image_tag is \"b:latest\"",
        ),
    ];
    for (name, text, expected) in cases {
        let path = ctx.path().join(name);
        std::fs::write(&path, text).unwrap();
        let err = Model::load(&path).unwrap_err();
        let msg = format!("{err}");
        assert!(msg.contains(name) && msg.contains(expected), "{name}: {msg}");
    }
    let err = Model::load(ctx.path().join("model.txt")).unwrap_err();
    assert!(matches!(err, ModelError::UnknownFormat { .. }), "{err}");
    let err = Model::load(ctx.path().join("missing.json")).unwrap_err();
    assert!(matches!(err, ModelError::Read { .. }), "{err}");
}
