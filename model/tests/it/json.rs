use hyperfake_core::ImageTag;
use hyperfake_core::payload::PayloadFeatures;
use hyperfake_model::{
    HostBaseline, HostLoad, LinearModelEntry, LinearModelFile, Model, ModelError, ModelKind, ModelSet,
    Prediction, QuantileMap, Range, RuntimeUnit, Spread, SpreadRegion,
};

fn entry(tag: &str, unit: Option<RuntimeUnit>) -> LinearModelEntry {
    LinearModelEntry {
        image_tag: tag.into(),
        runtime_coeffs: vec![1.0, 0.0, 2.0, 0.0, 0.0, 10.0],
        cpu_coeffs: vec![0.0, 0.0, 0.0, 0.5, 0.0, 0.1],
        ram_coeffs: vec![0.0; 6],
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
        input_ranges: Some(vec![Range { min: 0.0, max: 100.0 }; 5]),
        output_ranges: Some(vec![
            Range { min: 5.0, max: 50.0 },
            Range { min: 0.0, max: 1.0 },
            Range { min: 0.0, max: 0.0 },
        ]),
        runtime_residual_quantiles: Some(vec![-2.0, 0.0, 4.0]),
        ..Default::default()
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
    assert_eq!(model.predict(&[[3.0, 9.0, 4.0, 2.0, 0.0]]).unwrap(), vec![[21.0, 1.1, 0.0]]);
    let p = model.predict_one([3.0, 9.0, 4.0, 2.0, 0.0]).unwrap();
    assert_eq!((p.targets(), p.response_size_bytes, p.worker_overhead_ns), ([21.0, 1.1, 0.0], None, None));
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
    let [runtime_ns, cpu, ram] = model.predict_one([1000.0, 0.0, 2.0, 0.0, 0.0]).unwrap().targets();
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
    let mut row = [-5.0, 50.0, 500.0, 1.0, 2.0];
    a.clamp_input(&mut row);
    assert_eq!(row, [0.0, 50.0, 100.0, 1.0, 2.0]);
    assert_eq!(a.clamp_output(Prediction::from_outputs(&[1.0, 2.0, 3.0])).targets(), [5.0, 1.0, 0.0]);
    assert_eq!(a.runtime_residual(0.0), Some(-2.0));
    assert_eq!(a.runtime_residual(0.25), Some(-1.0));
    assert_eq!(a.runtime_residual(0.75), Some(2.0));
    assert_eq!(a.runtime_residual(1.0), Some(4.0));
    let b = set.get(&ImageTag::from("b:latest")).unwrap().info();
    let mut row = [-5.0; 5];
    b.clamp_input(&mut row);
    assert_eq!(row, [-5.0; 5]);
    assert_eq!(b.clamp_output(Prediction::from_outputs(&[-1.0, 0.5, -3.0])).targets(), [0.0, 0.5, 0.0]);
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

/// bfs-like: runtime = 1000 ns per graph node + 2 ns per request byte + 1e5;
/// response size = 8 bytes per node; overhead 50 µs + 1 ns per byte.
fn with_features() -> LinearModelEntry {
    let features: PayloadFeatures = serde_json::from_str(
        r#"[{"name":"graph_nodes","json":"/size"},{"name":"request_bytes","payload_bytes":true}]"#,
    )
    .unwrap();
    LinearModelEntry {
        image_tag: "hyperfaas-bfs:latest".into(),
        runtime_coeffs: vec![0.0, 0.0, 0.0, 0.0, 0.0, 1000.0, 2.0, 1e5],
        cpu_coeffs: vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.25],
        ram_coeffs: vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1e6],
        response_size_coeffs: Some(vec![0.0, 0.0, 0.0, 0.0, 0.0, 8.0, 0.0, 0.0]),
        overhead_coeffs: Some(vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 5e4]),
        runtime_unit: Some(RuntimeUnit::Nanoseconds),
        model_kind: Some(ModelKind::Ridge),
        features: Some(hyperfake_model::input_names(&features)),
        targets: Some(hyperfake_model::ALL_TARGETS.iter().map(|s| s.to_string()).collect()),
        payload_features: features,
        payload_feature_defaults: Some(vec![500.0, 64.0]),
        input_ranges: Some(vec![Range { min: 0.0, max: 1e12 }; 7]),
        output_ranges: Some(vec![Range { min: 0.0, max: 1e12 }; 5]),
        runtime_spread: Some(
            Spread::new(vec![
                SpreadRegion { upto: 1e6, quantiles: vec![-100.0, 0.0, 100.0] },
                SpreadRegion { upto: 1e8, quantiles: vec![-1e5, 0.0, 3e5] },
            ])
            .unwrap(),
        ),
        overhead_spread: Some(Spread::unconditional(vec![-1000.0, 0.0, 1000.0]).unwrap()),
        cold_start_ns_quantiles: Some(vec![3e8, 4e8, 6e8]),
        host_baseline: Some(HostBaseline {
            cpu_cores: vec![0.2, 0.4, 1.0],
            ram_bytes: vec![6e8, 6.5e8, 7e8],
        }),
        runtime_quantile_map: Some(QuantileMap {
            drawn_ns: vec![0.0, 1e6, 2e6],
            actual_ns: vec![0.0, 1.5e6, 4e6],
        }),
        ..Default::default()
    }
}

#[test]
fn json_with_payload_features_and_five_outputs_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = LinearModelFile::new();
    file.insert("hyperfaas-bfs:latest".into(), with_features());
    let path = write(dir.path(), "ridge.json", &file);
    // The file's text is the documented format.
    let text = std::fs::read_to_string(&path).unwrap();
    for field in [
        r#""payload_features":[{"name":"graph_nodes","json":"/size"},{"name":"request_bytes","payload_bytes":true}]"#,
        r#""payload_feature_defaults":[500.0,64.0]"#,
        r#""runtime_spread":[{"upto":1000000.0,"quantiles":[-100.0,0.0,100.0]}"#,
        r#""overhead_coeffs":[0.0,0.0,0.0,0.0,0.0,0.0,1.0,50000.0]"#,
        r#""cold_start_ns_quantiles":[300000000.0,400000000.0,600000000.0]"#,
        r#""host_baseline":{"cpu_cores":[0.2,0.4,1.0],"ram_bytes":[600000000.0,650000000.0,700000000.0]}"#,
        r#""runtime_quantile_map":{"drawn_ns":[0.0,1000000.0,2000000.0],"actual_ns":[0.0,1500000.0,4000000.0]}"#,
    ] {
        assert!(text.contains(field), "{field} missing in {text}");
    }
    let back: LinearModelFile = serde_json::from_str(&text).unwrap();
    assert_eq!(back, file);

    let model = Model::load(&path).unwrap();
    let info = model.info();
    assert_eq!((info.input_count(), info.output_count), (7, 5));
    assert_eq!(info.input_names()[5..], ["graph_nodes", "request_bytes"]);
    let payload = br#"{"size": 2000, "pad": "xxxxxxxxxxxxxxxx"}"#;
    let (row, defaults) = info.inputs_for([42.0, 1.0, 1.0, 0.5, 1e9], payload);
    assert_eq!(defaults, 0);
    assert_eq!(row[5..], [2000.0, payload.len() as f32]);
    let p = model.predict_one(&row).unwrap();
    assert_eq!(p.runtime_ns, 2000.0 * 1000.0 + 2.0 * payload.len() as f32 + 1e5);
    assert_eq!(p.response_size_bytes, Some(16_000.0));
    assert_eq!(p.worker_overhead_ns, Some(5e4 + payload.len() as f32));
    assert_eq!(p.to_vec().len(), 5);
    // More graph nodes, more runtime.
    let (bigger, _) = info.inputs_for([42.0, 1.0, 1.0, 0.5, 1e9], br#"{"size": 4000}"#);
    assert!(model.predict_one(&bigger).unwrap().runtime_ns > p.runtime_ns);
    // Missing field and non-JSON payloads use the default and count it.
    let (row, defaults) = info.inputs_for([0.0; 5], br#"{"other": 1}"#);
    assert_eq!((defaults, row[5]), (1, 500.0));
    let (row, defaults) = info.inputs_for([0.0; 5], &[0xff, 0x00, 0x13]);
    assert_eq!((defaults, row[5], row[6]), (1, 500.0, 3.0));
    // Spread and cold start come through; sampling is a pure function of u.
    assert_eq!(info.sample_runtime_residual(5e5, 0.0), Some(-100.0));
    assert_eq!(info.sample_runtime_residual(5e6, 0.75), Some(1.5e5));
    assert_eq!(info.sample_overhead_residual(1.0, 0.25), Some(-500.0));
    assert_eq!(info.sample_cold_start(0.25).map(|n| n.0), Some(350_000_000));
    assert_eq!(info.sample_cold_start(1.0).map(|n| n.0), Some(600_000_000));
    let base = info.host_baseline.as_ref().unwrap();
    assert_eq!(base.median(), HostLoad { cpu_cores: 0.4, ram_bytes: 6.5e8 });
    // Mean of the piecewise-linear quantile function: (3.5e8 + 5e8) / 2.
    assert_eq!(info.mean_cold_start().map(|n| n.0), Some(425_000_000));
}

#[test]
fn old_runtime_residual_quantiles_serve_as_an_unconditional_spread() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = LinearModelFile::new();
    file.insert("a:latest".into(), entry("a:latest", Some(RuntimeUnit::Nanoseconds)));
    let model = Model::load(write(dir.path(), "a.json", &file)).unwrap();
    assert!(model.info().runtime_spread.is_none());
    assert_eq!(model.info().sample_runtime_residual(1e9, 0.75), Some(2.0));
    assert_eq!(model.info().sample_overhead_residual(1e9, 0.75), None);
    // An empty list is "not recorded", not an error.
    let mut empty = entry("b:latest", Some(RuntimeUnit::Nanoseconds));
    empty.runtime_residual_quantiles = Some(vec![]);
    empty.cold_start_ns_quantiles = Some(vec![]);
    let mut file = LinearModelFile::new();
    file.insert("b:latest".into(), empty);
    let model = Model::load(write(dir.path(), "b.json", &file)).unwrap();
    assert_eq!(model.info().sample_runtime_residual(1e9, 0.75), None);
    assert_eq!(model.info().sample_cold_start(0.5), None);
}

#[test]
fn malformed_entries_are_rejected_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let reject = |name: &str, e: LinearModelEntry, expect: &str| {
        let mut file = LinearModelFile::new();
        file.insert(e.image_tag.clone(), e);
        let err = Model::load(write(dir.path(), name, &file)).unwrap_err();
        assert!(matches!(err, ModelError::Invalid { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(name) && msg.contains(expect), "{name}: expected {expect:?} in {msg}");
    };
    // Corrupt ranges: min > max (today's Range::clamp would panic on it).
    let mut e = entry("a:latest", Some(RuntimeUnit::Nanoseconds));
    e.input_ranges.as_mut().unwrap()[3] = Range { min: 5.0, max: 1.0 };
    reject("minmax.json", e, "input_ranges of worker_cpu_usage: range [5, 1] has min > max");
    let mut e = entry("a:latest", Some(RuntimeUnit::Nanoseconds));
    e.output_ranges.as_mut().unwrap()[1] = Range { min: 2.0, max: -2.0 };
    reject("outrange.json", e, "output_ranges of function_cpu_usage");
    let mut e = entry("a:latest", Some(RuntimeUnit::Nanoseconds));
    e.input_ranges = Some(vec![Range { min: 0.0, max: 1.0 }; 4]);
    reject("rangecount.json", e, "4 ranges for 5 inputs");
    // Coefficient arrays of the wrong length.
    let mut e = with_features();
    e.cpu_coeffs.pop();
    reject("short.json", e, "cpu_coeffs has 7 values; expected 8");
    let mut e = entry("a:latest", Some(RuntimeUnit::Nanoseconds));
    e.runtime_coeffs.push(1.0);
    reject("long.json", e, "runtime_coeffs has 7 values; expected 6");
    // Half of the extra targets.
    let mut e = with_features();
    e.overhead_coeffs = None;
    reject("half.json", e, "response_size_coeffs without overhead_coeffs");
    // Features without defaults, or defaults of the wrong count.
    let mut e = with_features();
    e.payload_feature_defaults = None;
    reject("nodefaults.json", e, "2 payload features but 0 payload_feature_defaults");
    let mut e = with_features();
    e.payload_feature_defaults = Some(vec![1.0]);
    reject("onedefault.json", e, "but 1 payload_feature_defaults");
    // Input names that contradict the declarations.
    let mut e = with_features();
    e.features.as_mut().unwrap()[6] = "something_else".into();
    reject("names.json", e, "features lists");
    // Unsorted cold-start quantiles.
    let mut e = with_features();
    e.cold_start_ns_quantiles = Some(vec![5.0, 1.0]);
    reject("cold.json", e, "cold_start_ns_quantiles: quantiles decrease");
    // A negative host baseline.
    let mut e = with_features();
    e.host_baseline = Some(HostBaseline { cpu_cores: vec![-1.0, 0.5], ram_bytes: vec![1.0] });
    reject("baseline.json", e, "host_baseline: cpu_cores: a usage is negative");
    // A quantile map whose lists differ in length.
    let mut e = with_features();
    e.runtime_quantile_map = Some(QuantileMap { drawn_ns: vec![0.0, 1.0], actual_ns: vec![0.0, 1.0, 2.0] });
    reject("map.json", e, "runtime_quantile_map: 2 drawn and 3 actual quantiles");
    // A spread that does not validate is a JSON error naming the file.
    let path = dir.path().join("spread.json");
    std::fs::write(
        &path,
        r#"{"a:latest": {"image_tag": "a:latest", "runtime_coeffs": [0,0,0,0,0,1],
            "cpu_coeffs": [0,0,0,0,0,0], "ram_coeffs": [0,0,0,0,0,0],
            "runtime_spread": [{"upto": 2, "quantiles": [0]}, {"upto": 1, "quantiles": [0]}]}}"#,
    )
    .unwrap();
    let err = Model::load(&path).unwrap_err();
    assert!(err.to_string().contains("spread.json"), "{err}");
    assert!(format!("{:?}", std::error::Error::source(&err)).contains("not above"), "{err:?}");
    // Payload features whose declaration is invalid.
    std::fs::write(
        &path,
        r#"{"a:latest": {"image_tag": "a:latest", "runtime_coeffs": [0,0,0,0,0,0,1],
            "cpu_coeffs": [0,0,0,0,0,0,0], "ram_coeffs": [0,0,0,0,0,0,0],
            "payload_features": [{"name": "Bad Name", "json": "/x"}], "payload_feature_defaults": [1]}}"#,
    )
    .unwrap();
    assert!(Model::load(&path).unwrap_err().to_string().contains("spread.json"));
}
