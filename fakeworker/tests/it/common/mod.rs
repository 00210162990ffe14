#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fakeworker::{ModelRegistry, SimRuntime, SimSettings};
use hyperfake_core::{FunctionConfig, FunctionId, ImageTag};
use hyperfake_testkit::{TestDatabase, TestWorker, unique};
use proto::common::{CallRequest, CallResponse};
use proto::controller::controller_client::ControllerClient;
use tonic::transport::Channel;
use worker::WorkerSettings;

pub use hyperfake_testkit::{config, metadata_u64, next_event};

pub const IMAGE: &str = "hyperfaas-echo:latest";

/// Coefficients `[w0..w4, intercept]` that predict a constant.
pub fn constant(value: f64) -> [f64; 6] {
    [0.0, 0.0, 0.0, 0.0, 0.0, value]
}

/// Writes a JSON linear model for `image`. `unit` None writes HyperFake's old
/// format (no unit field: runtime in ms).
pub fn write_json(
    dir: &Path,
    file: &str,
    image: &str,
    runtime: [f64; 6],
    cpu: [f64; 6],
    ram: [f64; 6],
    unit: Option<&str>,
) -> PathBuf {
    let mut entry = serde_json::json!({
        "image_tag": image, "runtime_coeffs": runtime, "cpu_coeffs": cpu, "ram_coeffs": ram,
        "sample_count": 100, "runtime_r2": 0.9, "cpu_r2": 0.9, "ram_r2": 0.9,
    });
    if let Some(u) = unit {
        entry["runtime_unit"] = serde_json::json!(u);
    }
    let path = dir.join(file);
    write_atomic(&path, serde_json::json!({ image: entry }).to_string().as_bytes());
    path
}

/// Writes a JSON model file of full entries (each a `LinearModelEntry` as JSON).
pub fn write_entries(dir: &Path, file: &str, entries: &[serde_json::Value]) {
    let mut map = serde_json::Map::new();
    for e in entries {
        map.insert(e["image_tag"].as_str().unwrap().to_string(), e.clone());
    }
    write_atomic(&dir.join(file), serde_json::Value::Object(map).to_string().as_bytes());
}

/// The settings of [`FakeContext::new`]: a 20 ms fixed cold start, seed 0.
pub fn test_settings() -> SimSettings {
    SimSettings { cold_start: Duration::from_millis(20), ..Default::default() }
}

/// Writes an ONNX linear model (runtime in ns) for `image` via the trainer's exporter.
pub fn write_onnx(dir: &Path, image: &str, runtime: [f64; 6], cpu: [f64; 6], ram: [f64; 6]) -> PathBuf {
    let metadata = vec![
        (hyperfake_model::metadata_keys::IMAGE_TAG.to_string(), image.to_string()),
        (hyperfake_model::metadata_keys::RUNTIME_UNIT.to_string(), "ns".to_string()),
    ];
    let bytes = trainer::onnx::linear_model(&[runtime, cpu, ram], &metadata);
    let name = ImageTag::from(image).name().to_string();
    let path = dir.join(format!("{name}.onnx"));
    write_atomic(&path, &bytes);
    path
}

/// Write then rename, as `trainer deploy` does, so a watcher never sees half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) {
    let tmp = path.with_file_name(format!(".{}.tmp", path.file_name().unwrap().to_string_lossy()));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

pub struct FakeContext {
    pub models_dir: tempfile::TempDir,
    pub registry: Arc<ModelRegistry>,
    pub runtime: SimRuntime,
    pub database: TestDatabase,
    pub worker: TestWorker,
    pub client: ControllerClient<Channel>,
}

impl FakeContext {
    /// A fake worker over the models `setup` writes into a fresh directory.
    pub async fn new(setup: impl FnOnce(&Path)) -> Self {
        Self::with_settings(test_settings(), setup).await
    }

    /// [`FakeContext::new`] with other simulation settings.
    pub async fn with_settings(settings: SimSettings, setup: impl FnOnce(&Path)) -> Self {
        let models_dir = tempfile::tempdir().unwrap();
        setup(models_dir.path());
        let (registry, skipped) = ModelRegistry::load(Some(models_dir.path().to_path_buf()), vec![]).unwrap();
        assert!(skipped.is_empty(), "test models failed to load: {skipped:?}");
        let registry = Arc::new(registry);
        let runtime = SimRuntime::new(Arc::clone(&registry), settings);
        let database = TestDatabase::start().await;
        let worker = TestWorker::with_runtime(
            WorkerSettings::new(unique("fake")),
            Arc::new(runtime.clone()),
            database.client.clone(),
        )
        .await;
        let client = worker.client().await;
        FakeContext { models_dir, registry, runtime, database, worker, client }
    }

    pub async fn function(&self, image: &str, config: FunctionConfig) -> FunctionId {
        self.database.client.create(&ImageTag::from(image), &config).await.unwrap().id
    }

    pub async fn start(&self, function: &FunctionId) -> String {
        let r = self.client.clone().start(proto::common::FunctionId::from(function)).await.unwrap();
        r.into_inner().instance_id.unwrap().id
    }

    pub async fn call(
        &self,
        function: &FunctionId,
        data: &[u8],
    ) -> Result<tonic::Response<CallResponse>, tonic::Status> {
        let request = CallRequest {
            request_id: unique("req"),
            instance_id: None,
            data: data.to_vec(),
            function_id: Some(function.into()),
        };
        self.client.clone().call(request).await
    }
}
