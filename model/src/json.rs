//! The JSON linear-model format, shared with HyperFake's fake worker: one object
//! keyed by full image tag. hyperfake adds `runtime_unit` (always `"ns"`), the
//! training metadata, payload features (longer coefficient arrays), two more
//! targets and the spreads; HyperFake's files lack them and meant milliseconds.

use std::collections::BTreeMap;
use std::path::Path;

use hyperfake_core::ImageTag;
use hyperfake_core::payload::PayloadFeatures;
use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::baseline::HostBaseline;
use crate::info::{ModelInfo, ModelKind, Range, RuntimeUnit};
use crate::quantile_map::QuantileMap;
use crate::spread::Spread;

/// A whole JSON model file: image tag → model.
pub type LinearModelFile = BTreeMap<String, LinearModelEntry>;

/// One image's linear model. Each `*_coeffs` holds one weight per input in
/// the order of [`crate::input_names`] (the five [`crate::FEATURES`], then the
/// payload features), then the intercept, in raw (unscaled) input units:
/// `y = Σ wᵢ·xᵢ + b`, so `5 + k + 1` values for `k` payload features.
/// `response_size_coeffs` and `overhead_coeffs` come together (a 5-output
/// model) or not at all (HyperFake's 3 outputs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LinearModelEntry {
    /// Full image tag, e.g. `hyperfaas-echo:latest`.
    pub image_tag: String,
    /// Runtime in `runtime_unit`.
    pub runtime_coeffs: Vec<f64>,
    /// Function CPU in cores.
    pub cpu_coeffs: Vec<f64>,
    /// Function RAM in bytes.
    pub ram_coeffs: Vec<f64>,
    /// Response size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_size_coeffs: Option<Vec<f64>>,
    /// Worker overhead (processing − handler time) in ns (whatever `runtime_unit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead_coeffs: Option<Vec<f64>>,
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
    /// Test-set R² of the response size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_size_r2: Option<f64>,
    /// Test-set R² of the worker overhead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead_r2: Option<f64>,
    /// Unit of `runtime_coeffs`' output. Absent in HyperFake's files, which
    /// meant milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_unit: Option<RuntimeUnit>,
    /// `linear` or `ridge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_kind: Option<ModelKind>,
    /// Input names, in order ([`crate::input_names`]); checked when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    /// Target names, in order; checked when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<String>>,
    /// The payload feature declarations (inputs 5, 6, …).
    #[serde(default, skip_serializing_if = "PayloadFeatures::is_empty")]
    pub payload_features: PayloadFeatures,
    /// One default per payload feature (training median), used when a call's
    /// payload does not yield it. Required when there are payload features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_feature_defaults: Option<Vec<f64>>,
    /// Training run the model came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_run: Option<String>,
    /// When it was trained (RFC 3339 UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trained_at: Option<String>,
    /// Range of each input in the training rows (5 + k).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_ranges: Option<Vec<Range>>,
    /// Range of each target in the training rows (3 or 5; runtime in `runtime_unit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_ranges: Option<Vec<Range>>,
    /// Quantiles of the runtime residual on the training rows (in `runtime_unit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_residual_quantiles: Option<Vec<f64>>,
    /// Runtime residual by predicted runtime (both in `runtime_unit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_spread: Option<Spread>,
    /// Worker-overhead residual by predicted overhead (ns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead_spread: Option<Spread>,
    /// Quantiles of the image's Start→ready durations (ns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_start_ns_quantiles: Option<Vec<f64>>,
    /// The worker host's load besides the calls ([`HostBaseline`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_baseline: Option<HostBaseline>,
    /// Maps a drawn runtime onto the measured ones ([`QuantileMap`], ns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_quantile_map: Option<QuantileMap>,
}

/// A linear model in canonical units (runtime in ns).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LinearPredictor {
    /// One row per output: a weight per input, then the intercept.
    coeffs: Vec<Vec<f64>>,
}

impl LinearPredictor {
    /// Outputs of flat rows of `width` inputs, flat (`coeffs.len()` per row).
    pub(crate) fn predict(&self, flat: &[f32], width: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(flat.len() / width.max(1) * self.coeffs.len());
        for row in flat.chunks_exact(width.max(1)) {
            for c in &self.coeffs {
                let y = c[width] + row.iter().zip(c).map(|(x, w)| f64::from(*x) * w).sum::<f64>();
                #[allow(clippy::cast_possible_truncation)]
                out.push(y as f32);
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
        let invalid =
            |what: String| ModelError::Invalid { path: path.into(), what: format!("entry {key:?}: {what}") };
        out.push(entry_model(&key, entry).map_err(invalid)?);
    }
    Ok(out)
}

fn entry_model(key: &str, entry: LinearModelEntry) -> Result<(ModelInfo, LinearPredictor), String> {
    if entry.image_tag != key {
        return Err(format!("image_tag is {:?}", entry.image_tag));
    }
    let width = crate::BASE_INPUTS + entry.payload_features.len();
    let mut rows = vec![
        ("runtime_coeffs", entry.runtime_coeffs),
        ("cpu_coeffs", entry.cpu_coeffs),
        ("ram_coeffs", entry.ram_coeffs),
    ];
    match (entry.response_size_coeffs, entry.overhead_coeffs) {
        (Some(size), Some(overhead)) => {
            rows.push(("response_size_coeffs", size));
            rows.push(("overhead_coeffs", overhead));
        }
        (None, None) => {}
        (Some(_), None) => return Err("response_size_coeffs without overhead_coeffs".into()),
        (None, Some(_)) => return Err("overhead_coeffs without response_size_coeffs".into()),
    }
    for (name, c) in &rows {
        if c.len() != width + 1 {
            return Err(format!(
                "{name} has {} values; expected {} ({} input weights and the intercept)",
                c.len(),
                width + 1,
                width
            ));
        }
        if let Some(i) = c.iter().position(|v| !v.is_finite()) {
            return Err(format!("{name}[{i}] is {} (not finite)", c[i]));
        }
    }
    let unit = entry.runtime_unit.unwrap_or(RuntimeUnit::Milliseconds);
    let scale = unit.nanos_per_unit();
    rows[0].1.iter_mut().for_each(|c| *c *= scale);
    let mut output_ranges = entry.output_ranges;
    if let Some(r) = output_ranges.as_mut().and_then(|r| r.first_mut()) {
        *r = Range { min: r.min * scale, max: r.max * scale };
    }
    let info = ModelInfo {
        image_tag: ImageTag::from(key),
        kind: match (entry.runtime_unit, entry.model_kind) {
            (None, _) | (_, None) => ModelKind::External,
            (Some(_), Some(kind)) => kind,
        },
        source_runtime_unit: unit,
        training_run: entry.training_run,
        trained_at: entry.trained_at,
        sample_count: entry.sample_count,
        payload_feature_defaults: entry.payload_feature_defaults.unwrap_or_default(),
        payload_features: entry.payload_features,
        output_count: rows.len(),
        input_ranges: entry.input_ranges,
        output_ranges,
        runtime_residual_quantiles: entry
            .runtime_residual_quantiles
            .map(|q| q.into_iter().map(|v| v * scale).collect()),
        runtime_spread: entry.runtime_spread.map(|s| s.scaled(scale)),
        overhead_spread: entry.overhead_spread,
        cold_start_ns_quantiles: entry.cold_start_ns_quantiles,
        host_baseline: entry.host_baseline,
        runtime_quantile_map: entry.runtime_quantile_map,
    };
    info.check()?;
    crate::check_input_names("features", entry.features.as_deref(), &info.payload_features)?;
    crate::check_target_names("targets", entry.targets.as_deref(), info.output_names())?;
    Ok((info, LinearPredictor { coeffs: rows.into_iter().map(|(_, c)| c).collect() }))
}
