//! ONNX files with payload features and extra outputs, written by a tiny
//! protobuf encoder (the model crate has no ONNX writer; the trainer's has its
//! own tests). A `Gemm` computes `y = x·W + b`.

use hyperfake_core::ImageTag;
use hyperfake_model::{Model, ModelError, ModelKind, metadata_keys as keys};

/// A protobuf message under construction (just the wire types ONNX needs).
#[derive(Default)]
struct Msg(Vec<u8>);

#[allow(clippy::cast_possible_truncation)]
fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

impl Msg {
    #[allow(clippy::cast_sign_loss)]
    fn int(mut self, field: u64, v: i64) -> Self {
        varint(&mut self.0, field << 3);
        varint(&mut self.0, v as u64);
        self
    }
    fn bytes(mut self, field: u64, b: &[u8]) -> Self {
        varint(&mut self.0, (field << 3) | 2);
        varint(&mut self.0, b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    fn str(self, field: u64, s: &str) -> Self {
        self.bytes(field, s.as_bytes())
    }
    fn msg(self, field: u64, m: Msg) -> Self {
        self.bytes(field, &m.0)
    }
    fn floats(self, field: u64, v: &[f32]) -> Self {
        let b: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
        self.bytes(field, &b)
    }
}

/// `ValueInfoProto` of an f32 `[batch, width]` tensor (`batch` None = dynamic "N").
fn value_info(name: &str, batch: Option<i64>, width: i64) -> Msg {
    let batch_dim = match batch {
        Some(b) => Msg::default().int(1, b),
        None => Msg::default().str(2, "N"),
    };
    let shape = Msg::default().msg(1, batch_dim).msg(1, Msg::default().int(1, width));
    let tensor = Msg::default().int(1, 1).msg(2, shape);
    Msg::default().str(1, name).msg(2, Msg::default().msg(1, tensor))
}

fn tensor(name: &str, dims: &[i64], data: &[f32]) -> Msg {
    let mut m = Msg::default();
    for d in dims {
        m = m.int(1, *d);
    }
    m.int(2, 1).floats(4, data).str(8, name)
}

/// A Gemm model: `coeffs[t]` = weights of every input, then the intercept.
fn gemm_onnx(coeffs: &[Vec<f32>], batch: Option<i64>, metadata: &[(&str, String)]) -> Vec<u8> {
    let outputs = coeffs.len();
    let width = coeffs[0].len() - 1;
    let mut w = Vec::with_capacity(width * outputs);
    for f in 0..width {
        for c in coeffs {
            w.push(c[f]);
        }
    }
    let b: Vec<f32> = coeffs.iter().map(|c| c[width]).collect();
    let node = Msg::default()
        .str(1, "input")
        .str(1, "W")
        .str(1, "b")
        .str(2, "output")
        .str(3, "gemm")
        .str(4, "Gemm")
        .str(7, "");
    let graph = Msg::default()
        .msg(1, node)
        .str(2, "test")
        .msg(5, tensor("W", &[width as i64, outputs as i64], &w))
        .msg(5, tensor("b", &[outputs as i64], &b))
        .msg(11, value_info("input", batch, width as i64))
        .msg(12, value_info("output", batch, outputs as i64));
    let mut model = Msg::default()
        .int(1, 8)
        .msg(8, Msg::default().str(1, "").int(2, 13))
        .str(2, "hyperfake-model-test")
        .msg(7, graph);
    for (k, v) in metadata {
        model = model.msg(14, Msg::default().str(1, k).str(2, v));
    }
    model.0
}

fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

const FEATURES_JSON: &str =
    r#"[{"name":"graph_nodes","json":"/size"},{"name":"request_bytes","payload_bytes":true}]"#;

fn meta_with_features() -> Vec<(&'static str, String)> {
    vec![
        (keys::IMAGE_TAG, "hyperfaas-bfs:latest".into()),
        (keys::MODEL_KIND, "linear".into()),
        (keys::RUNTIME_UNIT, "ns".into()),
        (keys::PAYLOAD_FEATURES, FEATURES_JSON.into()),
        (keys::PAYLOAD_FEATURE_DEFAULTS, "[100, 20]".into()),
        (
            keys::FEATURES,
            serde_json::to_string(&[
                "request_size_bytes",
                "function_instances_count",
                "active_function_calls_count",
                "worker_cpu_usage",
                "worker_ram_usage",
                "feature_graph_nodes",
                "feature_request_bytes",
            ])
            .unwrap(),
        ),
        (keys::INPUT_RANGES, r#"[{"min":0,"max":1e6},{"min":0,"max":10},{"min":0,"max":10},{"min":0,"max":4},{"min":0,"max":1e10},{"min":0,"max":5000},{"min":0,"max":1e6}]"#.into()),
        (keys::RUNTIME_SPREAD, r#"[{"upto":5e5,"quantiles":[-10,0,10]},{"upto":1e7,"quantiles":[-1000,0,3000]}]"#.into()),
        (keys::OVERHEAD_SPREAD, r#"[{"upto":1e9,"quantiles":[0,50,100]}]"#.into()),
        (keys::COLD_START_NS_QUANTILES, "[1e8, 2e8, 4e8]".into()),
        (keys::HOST_BASELINE, r#"{"cpu_cores":[0.1,0.3],"ram_bytes":[6e8,7e8]}"#.into()),
        (keys::RUNTIME_QUANTILE_MAP, r#"{"drawn_ns":[0,1e6],"actual_ns":[0,2e6]}"#.into()),
    ]
}

/// runtime = 1000·graph_nodes + 1e5; cpu 0.5; ram 1e6; size = 2·graph_nodes; overhead = request_bytes + 1000.
fn bfs_coeffs() -> Vec<Vec<f32>> {
    vec![
        vec![0.0, 0.0, 0.0, 0.0, 0.0, 1000.0, 0.0, 1e5],
        vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5],
        vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1e6],
        vec![0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0],
        vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1000.0],
    ]
}

#[test]
fn onnx_with_payload_features_and_five_outputs_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bfs.onnx", &gemm_onnx(&bfs_coeffs(), None, &meta_with_features()));
    let model = Model::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let info = model.info();
    assert_eq!(info.image_tag, ImageTag::from("hyperfaas-bfs:latest"));
    assert_eq!(info.kind, ModelKind::Linear);
    assert_eq!(info.input_count(), 7);
    assert_eq!(info.output_count, 5);
    assert_eq!(info.payload_features.to_json(), FEATURES_JSON);
    assert_eq!(info.payload_feature_defaults, vec![100.0, 20.0]);

    let payload = br#"{"size": 300}"#;
    let (row, defaults) = info.inputs_for([13.0, 1.0, 1.0, 0.5, 1e9], payload);
    assert_eq!(defaults, 0);
    assert_eq!(row, vec![13.0, 1.0, 1.0, 0.5, 1e9, 300.0, 13.0]);
    let p = model.predict_one(&row).unwrap();
    assert_eq!(p.runtime_ns, 400_000.0);
    assert_eq!((p.cpu_cores, p.ram_bytes), (0.5, 1e6));
    assert_eq!(p.response_size_bytes, Some(600.0));
    assert_eq!(p.worker_overhead_ns, Some(1013.0));

    // A payload without the field uses the default, and says so.
    let (row, defaults) = info.inputs_for([9.0, 1.0, 1.0, 0.5, 1e9], b"not json");
    assert_eq!(defaults, 1);
    assert_eq!(model.predict_one(&row).unwrap().runtime_ns, 200_000.0);

    // Rows of several sizes through the batch path.
    let rows: Vec<Vec<f32>> = (0..4).map(|i| vec![0.0, 1.0, 1.0, 0.5, 1e9, i as f32 * 1000.0, 0.0]).collect();
    let out = model.predict_rows(&rows).unwrap();
    assert_eq!(out.iter().map(|p| p.runtime_ns).collect::<Vec<_>>(), vec![1e5, 1.1e6, 2.1e6, 3.1e6]);

    // A row of the wrong width is an error naming the file, not a panic.
    let err = model.predict_one([1.0f32; 5]).unwrap_err();
    assert!(err.to_string().contains("bfs.onnx") && err.to_string().contains("7 inputs"), "{err}");
    let err = model.predict(&[[1.0; 5]]).unwrap_err();
    assert!(err.to_string().contains("graph_nodes"), "{err}");

    // Spreads: region by prediction, deterministic in u.
    assert_eq!(info.sample_runtime_residual(1e5, 1.0), Some(10.0));
    assert_eq!(info.sample_runtime_residual(1e6, 0.75), Some(1500.0));
    assert_eq!(info.sample_runtime_residual(1e6, 0.75), info.sample_runtime_residual(1e6, 0.75));
    assert_eq!(info.sample_overhead_residual(1013.0, 0.5), Some(50.0));
    assert_eq!(info.sample_cold_start(0.75).map(|n| n.0), Some(300_000_000));
    let base = info.host_baseline.as_ref().expect("the host baseline loads from the metadata");
    assert_eq!(base.median().ram_bytes, 6.5e8);
    let map = info.runtime_quantile_map.as_ref().expect("the runtime quantile map loads from the metadata");
    assert_eq!(map.apply(5e5), 1e6);
}

#[test]
fn hyperfake_five_input_onnx_still_loads_and_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let coeffs = vec![vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], vec![0.0, 0.0, 0.0, 0.5, 0.0, 0.1], vec![0.0; 6]];
    // HyperFake's PyTorch export: a fixed batch of 1 and no metadata.
    let fixed = write(dir.path(), "hyperfaas-echo.onnx", &gemm_onnx(&coeffs, Some(1), &[]));
    let model = Model::load(&fixed).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(model.info().image_tag, ImageTag::from("hyperfaas-echo:latest"));
    assert_eq!(model.info().kind, ModelKind::External);
    assert_eq!((model.info().input_count(), model.info().output_count), (5, 3));
    assert!(model.info().payload_features.is_empty());
    let rows = [[1.0, 1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0, 2.0], [1.0, 0.0, 0.0, 0.0, 0.0]];
    let out = model.predict(&rows).unwrap();
    assert_eq!(out, vec![[21.0, 0.6, 0.0], [16.0, 0.1, 0.0], [7.0, 0.1, 0.0]]);
    let (row, defaults) = model.info().inputs_for([1.0; 5], b"anything");
    assert_eq!((row.len(), defaults), (5, 0));
    let p = model.predict_one(&row).unwrap();
    assert_eq!((p.runtime_ns, p.response_size_bytes, p.worker_overhead_ns), (21.0, None, None));
    assert_eq!(model.info().sample_cold_start(0.5), None);
    assert_eq!(model.info().sample_runtime_residual(1.0, 0.5), None);
    // A dynamic batch works too.
    let dynamic = write(dir.path(), "dyn.onnx", &gemm_onnx(&coeffs, None, &[]));
    assert_eq!(Model::load(&dynamic).unwrap().predict(&rows).unwrap(), out);
}

#[test]
fn onnx_width_and_metadata_are_checked_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let load_err = |name: &str, coeffs: &[Vec<f32>], meta: &[(&str, String)]| -> ModelError {
        let path = write(dir.path(), name, &gemm_onnx(coeffs, None, meta));
        let err = Model::load(&path).unwrap_err();
        assert!(err.to_string().contains(name), "error does not name {name}: {err}");
        err
    };
    // Two payload features declared, but the graph takes 5 inputs.
    let five = vec![vec![0.0f32; 6]; 3];
    let err = load_err("narrow.onnx", &five, &meta_with_features()[..5]);
    assert!(err.to_string().contains("[N,7]"), "{err}");
    // Seven inputs without declarations.
    let err = load_err("wide.onnx", &bfs_coeffs(), &[]);
    assert!(err.to_string().contains("[N,5]"), "{err}");
    // Features without defaults.
    let mut meta = meta_with_features();
    meta.retain(|(k, _)| *k != keys::PAYLOAD_FEATURE_DEFAULTS);
    let err = load_err("nodefaults.onnx", &bfs_coeffs(), &meta);
    assert!(err.to_string().contains("payload_feature_defaults"), "{err}");
    // A range with min > max.
    let mut meta = meta_with_features();
    meta.retain(|(k, _)| *k != keys::INPUT_RANGES);
    meta.push((keys::INPUT_RANGES, r#"[{"min":0,"max":1},{"min":0,"max":1},{"min":0,"max":1},{"min":0,"max":1},{"min":0,"max":1},{"min":9,"max":1},{"min":0,"max":1}]"#.into()));
    let err = load_err("badrange.onnx", &bfs_coeffs(), &meta);
    assert!(
        err.to_string().contains("input_ranges of graph_nodes") && err.to_string().contains("min > max"),
        "{err}"
    );
    // A range count that does not match the inputs.
    let err = load_err("rangecount.onnx", &five, &[(keys::INPUT_RANGES, r#"[{"min":0,"max":1}]"#.into())]);
    assert!(err.to_string().contains("1 ranges for 5 inputs"), "{err}");
    // An unsorted spread.
    let err =
        load_err("spread.onnx", &five, &[(keys::RUNTIME_SPREAD, r#"[{"upto":5,"quantiles":[3,1]}]"#.into())]);
    assert!(
        err.to_string().contains("hyperfake.runtime_spread") && err.to_string().contains("decrease"),
        "{err}"
    );
    // Negative cold start.
    let err = load_err("cold.onnx", &five, &[(keys::COLD_START_NS_QUANTILES, "[-1, 2]".into())]);
    assert!(err.to_string().contains("negative"), "{err}");
    // A host baseline that decreases.
    let err = load_err(
        "base.onnx",
        &five,
        &[(keys::HOST_BASELINE, r#"{"cpu_cores":[2,1],"ram_bytes":[1]}"#.into())],
    );
    assert!(err.to_string().contains("host_baseline: cpu_cores"), "{err}");
    // A quantile map with a negative runtime.
    let err = load_err(
        "map.onnx",
        &five,
        &[(keys::RUNTIME_QUANTILE_MAP, r#"{"drawn_ns":[0,1],"actual_ns":[-1,2]}"#.into())],
    );
    assert!(err.to_string().contains("runtime_quantile_map: actual_ns: a runtime is negative"), "{err}");
    // Input names that disagree with the declarations.
    let mut meta = meta_with_features();
    meta.retain(|(k, _)| *k != keys::FEATURES);
    meta.push((keys::FEATURES, r#"["a","b","c","d","e","f","g"]"#.into()));
    let err = load_err("names.onnx", &bfs_coeffs(), &meta);
    assert!(err.to_string().contains("hyperfake.features"), "{err}");
    // Four outputs.
    let err = load_err("four.onnx", &vec![vec![0.0f32; 6]; 4], &[]);
    assert!(err.to_string().contains("[N,3] or [N,5]"), "{err}");
}

#[test]
fn committed_models_still_load_and_predict() {
    // Every model set committed under models/ (trained before payload features).
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let mut loaded = 0;
    for run in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for kind in std::fs::read_dir(run.path()).into_iter().flatten().flatten() {
            let path = kind.path();
            let is_model_dir = path.is_dir()
                && std::fs::read_dir(&path)
                    .unwrap()
                    .flatten()
                    .any(|f| f.path().extension().is_some_and(|e| e == "onnx"));
            let is_json_model = path.extension().is_some_and(|e| e == "json")
                && std::fs::read_to_string(&path).unwrap().contains("\"runtime_coeffs\"");
            let set = if is_model_dir {
                hyperfake_model::ModelSet::load_dir(&path)
            } else if is_json_model {
                hyperfake_model::ModelSet::load(&path)
            } else {
                continue;
            };
            let set = set.unwrap_or_else(|e| panic!("{e}"));
            for (_, m) in set.iter() {
                let (row, _) = m.info().inputs_for([64.0, 1.0, 1.0, 0.5, 1e9], b"{}");
                m.predict_one(&row).unwrap_or_else(|e| panic!("{e}"));
                loaded += 1;
            }
        }
    }
    assert!(loaded > 0 || !root.exists(), "no committed model found under {}", root.display());
}
