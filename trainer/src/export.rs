//! Writing model files: JSON (linear, ridge) and ONNX (every kind), with the
//! training ranges, payload feature declarations and defaults, residual
//! spreads and cold-start quantiles a consumer needs to clamp, fill in and
//! sample. Formats: `docs/units.md`, "Model files".

use std::path::Path;

use anyhow::{Context, Result};
use hyperfake_model::{
    HostBaseline, LinearModelEntry, LinearModelFile, ModelKind, QuantileMap, Range, RuntimeUnit, Spread,
    metadata_keys as keys,
};
use serde::Serialize;

use crate::data::{RESPONSE_SIZE, Schema, WORKER_OVERHEAD, unit_of};
use crate::forest::Forest;
use crate::linear::LinearFit;

/// What every exported file records besides the model itself.
#[derive(Clone, Debug)]
pub struct ExportMeta {
    pub image_tag: String,
    pub kind: ModelKind,
    pub schema: Schema,
    pub training_run: String,
    pub training_sources: Vec<String>,
    pub trained_at: String,
    pub sample_count: u64,
    /// One per input.
    pub input_ranges: Vec<Range>,
    /// One per target.
    pub output_ranges: Vec<Range>,
    /// Runtime residual quantiles (ns), unconditional.
    pub runtime_residual_quantiles: Vec<f64>,
    /// Test-set R² per target.
    pub test_r2: Vec<Option<f64>>,
    /// Training median of each payload feature.
    pub payload_feature_defaults: Vec<f64>,
    pub runtime_spread: Option<Spread>,
    pub overhead_spread: Option<Spread>,
    pub cold_start_ns_quantiles: Option<Vec<f64>>,
    pub host_baseline: Option<HostBaseline>,
    pub runtime_quantile_map: Option<QuantileMap>,
}

fn json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

impl ExportMeta {
    /// `metadata_props` of the ONNX files.
    pub fn onnx_props(&self) -> Vec<(String, String)> {
        let inputs = self.schema.input_names();
        let units: serde_json::Map<String, serde_json::Value> = inputs
            .iter()
            .zip(&self.schema.inputs)
            .map(|(name, col)| (name.clone(), unit_of(col)))
            .chain(self.schema.targets.iter().map(|t| (t.clone(), unit_of(t))))
            .map(|(k, u)| (k, serde_json::Value::from(u)))
            .collect();
        let mut props = vec![
            (keys::IMAGE_TAG, self.image_tag.clone()),
            (keys::MODEL_KIND, self.kind.as_str().to_string()),
            (keys::FEATURES, json(&inputs)),
            (keys::TARGETS, json(&self.schema.targets)),
            (keys::UNITS, serde_json::Value::Object(units).to_string()),
            (keys::RUNTIME_UNIT, "ns".to_string()),
            (keys::TRAINING_RUN, self.training_run.clone()),
            (keys::TRAINING_SOURCES, json(&self.training_sources)),
            (keys::TRAINED_AT, self.trained_at.clone()),
            (keys::SAMPLE_COUNT, self.sample_count.to_string()),
            (keys::INPUT_RANGES, json(&self.input_ranges)),
            (keys::OUTPUT_RANGES, json(&self.output_ranges)),
            (keys::RUNTIME_RESIDUAL_QUANTILES, json(&self.runtime_residual_quantiles)),
        ];
        if !self.schema.payload_features.is_empty() {
            props.push((keys::PAYLOAD_FEATURES, self.schema.payload_features.to_json()));
            props.push((keys::PAYLOAD_FEATURE_DEFAULTS, json(&self.payload_feature_defaults)));
        }
        if let Some(s) = &self.runtime_spread {
            props.push((keys::RUNTIME_SPREAD, json(s)));
        }
        if let Some(s) = &self.overhead_spread {
            props.push((keys::OVERHEAD_SPREAD, json(s)));
        }
        if let Some(q) = &self.cold_start_ns_quantiles {
            props.push((keys::COLD_START_NS_QUANTILES, json(q)));
        }
        if let Some(b) = &self.host_baseline {
            props.push((keys::HOST_BASELINE, json(b)));
        }
        if let Some(m) = &self.runtime_quantile_map {
            props.push((keys::RUNTIME_QUANTILE_MAP, json(m)));
        }
        props.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// The JSON entry of a linear or ridge model.
    pub fn json_entry(&self, fit: &LinearFit) -> LinearModelEntry {
        let target = |name: &str| self.schema.target(name);
        let coeffs = |name: &str| target(name).map(|t| fit.coeffs[t].clone());
        let r2 = |t: usize| self.test_r2.get(t).copied().flatten();
        let pf = &self.schema.payload_features;
        LinearModelEntry {
            image_tag: self.image_tag.clone(),
            runtime_coeffs: fit.coeffs[0].clone(),
            cpu_coeffs: fit.coeffs[1].clone(),
            ram_coeffs: fit.coeffs[2].clone(),
            sample_count: Some(self.sample_count),
            runtime_r2: r2(0),
            cpu_r2: r2(1),
            ram_r2: r2(2),
            runtime_unit: Some(RuntimeUnit::Nanoseconds),
            model_kind: Some(self.kind),
            features: Some(self.schema.input_names()),
            targets: Some(self.schema.targets.clone()),
            training_run: Some(self.training_run.clone()),
            trained_at: Some(self.trained_at.clone()),
            input_ranges: Some(self.input_ranges.clone()),
            output_ranges: Some(self.output_ranges.clone()),
            runtime_residual_quantiles: Some(self.runtime_residual_quantiles.clone()),
            payload_features: pf.clone(),
            payload_feature_defaults: (!pf.is_empty()).then(|| self.payload_feature_defaults.clone()),
            response_size_coeffs: coeffs(RESPONSE_SIZE),
            overhead_coeffs: coeffs(WORKER_OVERHEAD),
            response_size_r2: target(RESPONSE_SIZE).and_then(r2),
            overhead_r2: target(WORKER_OVERHEAD).and_then(r2),
            runtime_spread: self.runtime_spread.clone(),
            overhead_spread: self.overhead_spread.clone(),
            cold_start_ns_quantiles: self.cold_start_ns_quantiles.clone(),
            host_baseline: self.host_baseline.clone(),
            runtime_quantile_map: self.runtime_quantile_map.clone(),
        }
    }
}

/// Writes a linear or ridge model as ONNX.
pub fn write_linear_onnx(path: &Path, fit: &LinearFit, meta: &ExportMeta) -> Result<()> {
    write_atomic(path, &crate::onnx::linear_model(&fit.coeffs, &meta.onnx_props()))
}

/// Writes a forest as ONNX.
pub fn write_forest_onnx(path: &Path, forest: &Forest, meta: &ExportMeta) -> Result<()> {
    write_atomic(path, &crate::onnx::forest_model(forest, &meta.onnx_props()))
}

/// Writes a JSON model file (all images of one kind).
pub fn write_json(path: &Path, file: &LinearModelFile) -> Result<()> {
    let mut text = serde_json::to_string_pretty(file)?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Writes through a temporary file in the same directory and renames it, so
/// a reader (a fake worker watching the directory) never sees half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".hyperfake-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, bytes).with_context(|| format!("writing {}", path.display()))?;
    // tempfile creates 0600; model files are meant to be read by other users.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(path).map_err(|e| e.error).with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}
