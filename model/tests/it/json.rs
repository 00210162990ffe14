use hyperfake_core::ImageTag;
use hyperfake_model::{
    LinearModelEntry, LinearModelFile, Model, ModelError, ModelKind, ModelSet, Range, RuntimeUnit,
};

fn entry(tag: &str, unit: Option<RuntimeUnit>) -> LinearModelEntry {
    LinearModelEntry {
        image_tag: tag.into(),
        runtime_coeffs: [1.0, 0.0, 2.0, 0.0, 0.0, 10.0],
        cpu_coeffs: [0.0, 0.0, 0.0, 0.5, 0.0, 0.1],
        ram_coeffs: [0.0; 6],
        sample_count: Some(100),
        runtime_r2: Some(0.5),
        cpu_r2: None,
        ram_r2: Some(0.9),
        runtime_unit: unit,
        model_kind: unit.map(|_| ModelKind::Ridge),
        features: None,
        targets: None,
        training_run: Some("run1".into()),
        trained_at: None,
        input_ranges: Some([Range { min: 0.0, max: 100.0 }; 5]),
        output_ranges: Some([
            Range { min: 5.0, max: 50.0 },
            Range { min: 0.0, max: 1.0 },
            Range { min: 0.0, max: 0.0 },
        ]),
        runtime_residual_quantiles: Some(vec![-2.0, 0.0, 4.0]),
    }
}

fn write(dir: &std::path::Path, name: &str, file: &LinearModelFile) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string(file).unwrap()).unwrap();
    path
}

#[test]
fn hyperfake_json_round_trips_in_nanoseconds() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = LinearModelFile::new();
    file.insert(
        "hyperfaas-echo:latest".into(),
        entry("hyperfaas-echo:latest", Some(RuntimeUnit::Nanoseconds)),
    );
    let path = write(dir.path(), "ridge.json", &file);
    let model = Model::load(&path).unwrap();
    let info = model.info();
    assert_eq!(info.kind, ModelKind::Ridge);
    assert_eq!(info.image_tag, ImageTag::from("hyperfaas-echo:latest"));
    assert_eq!(info.source_runtime_unit, RuntimeUnit::Nanoseconds);
    assert_eq!(info.training_run.as_deref(), Some("run1"));
    assert_eq!(model.predict_one([3.0, 9.0, 4.0, 2.0, 0.0]).unwrap(), [21.0, 1.1, 0.0]);
    // The serialised form has the unit field and the HyperFake field names.
    let text = std::fs::read_to_string(&path).unwrap();
    for field in ["\"runtime_unit\":\"ns\"", "\"runtime_coeffs\"", "\"cpu_r2\":null", "\"sample_count\":100"]
    {
        assert!(text.contains(field), "{field} missing in {text}");
    }
}

#[test]
fn old_hyperfake_json_is_read_as_milliseconds() {
    let dir = tempfile::tempdir().unwrap();
    // Exactly HyperFake's fields: no runtime_unit, no hyperfake metadata.
    let text = r#"{"hyperfaas-echo:latest": {"image_tag": "hyperfaas-echo:latest",
        "runtime_coeffs": [0.001, 0, 0.5, 0, 0, 2.0], "cpu_coeffs": [0, 0, 0, 0, 0, 0.2],
        "ram_coeffs": [0, 0, 0, 0, 0, 1000000], "sample_count": 42,
        "runtime_r2": 0.31, "cpu_r2": 0.2, "ram_r2": 0.16}}"#;
    let path = dir.path().join("old.json");
    std::fs::write(&path, text).unwrap();
    let model = Model::load(&path).unwrap();
    assert_eq!(model.info().source_runtime_unit, RuntimeUnit::Milliseconds);
    assert_eq!(model.info().kind, ModelKind::External);
    assert_eq!(model.info().sample_count, Some(42));
    let [runtime_ns, cpu, ram] = model.predict_one([1000.0, 0.0, 2.0, 0.0, 0.0]).unwrap();
    // (0.001·1000 + 0.5·2 + 2.0) ms = 4 ms.
    assert_eq!(runtime_ns, 4.0e6);
    assert_eq!((cpu, ram), (0.2, 1.0e6));
}

#[test]
fn clamping_and_residual_sampling_use_the_training_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = LinearModelFile::new();
    file.insert("a:latest".into(), entry("a:latest", Some(RuntimeUnit::Nanoseconds)));
    let mut bare = entry("b:latest", Some(RuntimeUnit::Nanoseconds));
    bare.input_ranges = None;
    bare.output_ranges = None;
    bare.runtime_residual_quantiles = None;
    file.insert("b:latest".into(), bare);
    let set = ModelSet::load(write(dir.path(), "m.json", &file)).unwrap();
    assert_eq!(set.len(), 2);
    let a = set.get(&ImageTag::from("a")).unwrap().info();
    assert_eq!(a.clamp_input([-5.0, 50.0, 500.0, 1.0, 2.0]), [0.0, 50.0, 100.0, 1.0, 2.0]);
    assert_eq!(a.clamp_output([1.0, 2.0, 3.0]), [5.0, 1.0, 0.0]);
    assert_eq!(a.runtime_residual(0.0), Some(-2.0));
    assert_eq!(a.runtime_residual(0.25), Some(-1.0));
    assert_eq!(a.runtime_residual(0.75), Some(2.0));
    assert_eq!(a.runtime_residual(1.0), Some(4.0));
    let b = set.get(&ImageTag::from("b:latest")).unwrap().info();
    assert_eq!(b.clamp_input([-5.0; 5]), [-5.0; 5]);
    assert_eq!(b.clamp_output([-1.0, 0.5, -3.0]), [0.0, 0.5, 0.0]);
    assert_eq!(b.runtime_residual(0.5), None);
}

#[test]
fn json_errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = LinearModelFile::new();
    let mut bad = entry("a:latest", Some(RuntimeUnit::Nanoseconds));
    bad.image_tag = "b:latest".into();
    file.insert("a:latest".into(), bad);
    let err = Model::load(write(dir.path(), "mismatch.json", &file)).unwrap_err();
    assert!(matches!(err, ModelError::Invalid { .. }) && err.to_string().contains("mismatch.json"), "{err}");

    let err =
        Model::load_image(write(dir.path(), "empty.json", &LinearModelFile::new()), &ImageTag::from("a"))
            .unwrap_err();
    assert!(matches!(err, ModelError::NoSuchImage { .. }), "{err}");
    let err = ModelSet::load_dir(dir.path().join("nope")).unwrap_err();
    assert!(matches!(err, ModelError::Read { .. }), "{err}");
}
