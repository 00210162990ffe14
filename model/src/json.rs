//! The JSON linear-model format, shared with HyperFake's fake worker: one object
//! keyed by full image tag. hyperfake adds `runtime_unit` (always `"ns"`) and
//! the training metadata; HyperFake's files lack them and meant milliseconds.

use std::collections::BTreeMap;
use std::path::Path;

use hyperfake_core::ImageTag;
use serde::{Deserialize, Serialize};

use crate::info::{ModelInfo, ModelKind, Range, RuntimeUnit};
use crate::{Features, ModelError, Targets};

/// A whole JSON model file: image tag → model.
pub type LinearModelFile = BTreeMap<String, LinearModelEntry>;

/// One image's linear model. Each `*_coeffs` holds the five input weights in
/// the order of [`crate::FEATURES`], then the intercept, in raw (unscaled)
/// input units: `y = Σ wᵢ·xᵢ + b`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearModelEntry {
    /// Full image tag, e.g. `hyperfaas-echo:latest`.
    pub image_tag: String,
    /// Runtime in `runtime_unit`.
    pub runtime_coeffs: [f64; 6],
    /// Function CPU in cores.
    pub cpu_coeffs: [f64; 6],
    /// Function RAM in bytes.
    pub ram_coeffs: [f64; 6],
    /// Training rows.
    #[serde(default)]
    pub sample_count: Option<u64>,
    /// Test-set R² of the runtime (null when undefined).
    #[serde(default)]
    pub runtime_r2: Option<f64>,
    /// Test-set R² of the CPU.
    #[serde(default)]
    pub cpu_r2: Option<f64>,
    /// Test-set R² of the RAM.
    #[serde(default)]
    pub ram_r2: Option<f64>,
    /// Unit of `runtime_coeffs`' output. Absent in HyperFake's files, which
    /// meant milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_unit: Option<RuntimeUnit>,
    /// `linear` or `ridge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_kind: Option<ModelKind>,
    /// Input names, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    /// Target names, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<String>>,
    /// Training run the model came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_run: Option<String>,
    /// When it was trained (RFC 3339 UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trained_at: Option<String>,
    /// Range of each input in the training rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_ranges: Option<[Range; 5]>,
    /// Range of each target in the training rows (runtime in `runtime_unit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_ranges: Option<[Range; 3]>,
    /// Quantiles of the runtime residual on the training rows (in `runtime_unit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_residual_quantiles: Option<Vec<f64>>,
}

/// A linear model in canonical units (runtime in ns).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LinearPredictor {
    /// Rows: runtime, cpu, ram.
    coeffs: [[f64; 6]; 3],
}

impl LinearPredictor {
    pub(crate) fn predict(&self, row: &Features) -> Targets {
        let mut out = [0f32; 3];
        for (o, c) in out.iter_mut().zip(&self.coeffs) {
            let y = c[5] + row.iter().zip(c).map(|(x, w)| f64::from(*x) * w).sum::<f64>();
            #[allow(clippy::cast_possible_truncation)]
            {
                *o = y as f32;
            }
        }
        out
    }
}

/// Reads every entry of a JSON model file, converted to ns.
pub(crate) fn load(path: &Path) -> Result<Vec<(ModelInfo, LinearPredictor)>, ModelError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ModelError::Read { path: path.into(), source })?;
    let file: LinearModelFile =
        serde_json::from_str(&text).map_err(|source| ModelError::Json { path: path.into(), source })?;
    let mut out = Vec::with_capacity(file.len());
    for (key, entry) in file {
        let invalid = |what: String| ModelError::Invalid { path: path.into(), what };
        if entry.image_tag != key {
            return Err(invalid(format!("entry {key:?} has image_tag {:?}", entry.image_tag)));
        }
        let all = entry.runtime_coeffs.iter().chain(&entry.cpu_coeffs).chain(&entry.ram_coeffs);
        if all.clone().any(|c| !c.is_finite()) {
            return Err(invalid(format!("entry {key:?} has a non-finite coefficient")));
        }
        let unit = entry.runtime_unit.unwrap_or(RuntimeUnit::Milliseconds);
        let scale = unit.nanos_per_unit();
        let mut runtime = entry.runtime_coeffs;
        runtime.iter_mut().for_each(|c| *c *= scale);
        let mut output_ranges = entry.output_ranges;
        if let Some(r) = &mut output_ranges {
            r[0] = Range { min: r[0].min * scale, max: r[0].max * scale };
        }
        let info = ModelInfo {
            image_tag: ImageTag::from(key.as_str()),
            kind: match (entry.runtime_unit, entry.model_kind) {
                (None, _) | (_, None) => ModelKind::External,
                (Some(_), Some(kind)) => kind,
            },
            source_runtime_unit: unit,
            training_run: entry.training_run,
            trained_at: entry.trained_at,
            sample_count: entry.sample_count,
            input_ranges: entry.input_ranges,
            output_ranges,
            runtime_residual_quantiles: entry
                .runtime_residual_quantiles
                .map(|q| q.into_iter().map(|v| v * scale).collect()),
        };
        out.push((info, LinearPredictor { coeffs: [runtime, entry.cpu_coeffs, entry.ram_coeffs] }));
    }
    Ok(out)
}
