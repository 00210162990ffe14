//! Writing model files: JSON (linear, ridge) and ONNX (every kind), with the
//! training ranges and residual quantiles a consumer needs to clamp and to
//! sample noise.

use std::path::Path;

use anyhow::{Context, Result};
use hyperfake_model::{
    FEATURE_UNITS, FEATURES, LinearModelEntry, LinearModelFile, ModelKind, Range, RuntimeUnit, TARGET_UNITS,
    TARGETS, metadata_keys as keys,
};

use crate::forest::Forest;
use crate::linear::LinearFit;

/// What every exported file records besides the model itself.
#[derive(Clone, Debug)]
pub struct ExportMeta {
    pub image_tag: String,
    pub kind: ModelKind,
    pub training_run: String,
    pub training_sources: Vec<String>,
    pub trained_at: String,
    pub sample_count: u64,
    pub input_ranges: [Range; 5],
    pub output_ranges: [Range; 3],
    /// Runtime residual quantiles (ns).
    pub runtime_residual_quantiles: Vec<f64>,
    /// Test-set R² per target.
    pub test_r2: [Option<f64>; 3],
}

impl ExportMeta {
    fn onnx_props(&self) -> Vec<(String, String)> {
        let json = |v: &dyn erased::Json| v.to_json();
        let units: serde_json::Map<String, serde_json::Value> = FEATURES
            .iter()
            .zip(FEATURE_UNITS)
            .chain(TARGETS.iter().zip(TARGET_UNITS))
            .map(|(k, u)| (k.to_string(), serde_json::Value::from(u)))
            .collect();
        vec![
            (keys::IMAGE_TAG, self.image_tag.clone()),
            (keys::MODEL_KIND, self.kind.as_str().to_string()),
            (keys::FEATURES, json(&FEATURES.to_vec())),
            (keys::TARGETS, json(&TARGETS.to_vec())),
            (keys::UNITS, serde_json::Value::Object(units).to_string()),
            (keys::RUNTIME_UNIT, "ns".to_string()),
            (keys::TRAINING_RUN, self.training_run.clone()),
            (keys::TRAINING_SOURCES, json(&self.training_sources)),
            (keys::TRAINED_AT, self.trained_at.clone()),
            (keys::SAMPLE_COUNT, self.sample_count.to_string()),
            (keys::INPUT_RANGES, json(&self.input_ranges.to_vec())),
            (keys::OUTPUT_RANGES, json(&self.output_ranges.to_vec())),
            (keys::RUNTIME_RESIDUAL_QUANTILES, json(&self.runtime_residual_quantiles)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The JSON entry of a linear or ridge model.
    pub fn json_entry(&self, fit: &LinearFit) -> LinearModelEntry {
        LinearModelEntry {
            image_tag: self.image_tag.clone(),
            runtime_coeffs: fit.coeffs[0],
            cpu_coeffs: fit.coeffs[1],
            ram_coeffs: fit.coeffs[2],
            sample_count: Some(self.sample_count),
            runtime_r2: self.test_r2[0],
            cpu_r2: self.test_r2[1],
            ram_r2: self.test_r2[2],
            runtime_unit: Some(RuntimeUnit::Nanoseconds),
            model_kind: Some(self.kind),
            features: Some(FEATURES.iter().map(|s| s.to_string()).collect()),
            targets: Some(TARGETS.iter().map(|s| s.to_string()).collect()),
            training_run: Some(self.training_run.clone()),
            trained_at: Some(self.trained_at.clone()),
            input_ranges: Some(self.input_ranges),
            output_ranges: Some(self.output_ranges),
            runtime_residual_quantiles: Some(self.runtime_residual_quantiles.clone()),
        }
    }
}

/// Tiny helper so `onnx_props` can serialise differently-typed values inline.
mod erased {
    pub(super) trait Json {
        fn to_json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> String {
            serde_json::to_string(self).unwrap_or_default()
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
