use std::fmt;

use hyperfake_core::payload::PayloadFeatures;
use hyperfake_core::{ImageTag, Nanos};
use serde::{Deserialize, Serialize};

use crate::baseline::HostBaseline;
use crate::quantile_map::QuantileMap;
use crate::spread::{Spread, check_quantiles, quantile_at};
use crate::{BASE_INPUTS, Prediction};

/// What a model is, as recorded in its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Ordinary least squares.
    Linear,
    /// Ridge regression (L2 penalty chosen by cross-validation).
    Ridge,
    /// Random forest of regression trees.
    RandomForest,
    /// A model file hyperfake did not write (e.g. HyperFake's PyTorch ONNX
    /// export, or an old HyperFake JSON file).
    External,
}

impl ModelKind {
    /// The name used in files, flags and directory names.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Linear => "linear",
            ModelKind::Ridge => "ridge",
            ModelKind::RandomForest => "random-forest",
            ModelKind::External => "external",
        }
    }

    /// Parses [`ModelKind::as_str`]'s names.
    pub fn parse(s: &str) -> Option<ModelKind> {
        [ModelKind::Linear, ModelKind::Ridge, ModelKind::RandomForest, ModelKind::External]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The unit of the runtime target in a file. Predictions are always returned
/// in nanoseconds; this records what the file said.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuntimeUnit {
    /// Nanoseconds (everything hyperfake writes).
    #[default]
    #[serde(rename = "ns")]
    Nanoseconds,
    /// Milliseconds (HyperFake's JSON models, which have no unit field).
    #[serde(rename = "ms")]
    Milliseconds,
}

impl RuntimeUnit {
    /// Nanoseconds per unit.
    pub fn nanos_per_unit(self) -> f64 {
        match self {
            RuntimeUnit::Nanoseconds => 1.0,
            RuntimeUnit::Milliseconds => 1e6,
        }
    }
}

/// Closed interval of values seen in training.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Range {
    /// Smallest value seen.
    pub min: f64,
    /// Largest value seen.
    pub max: f64,
}

impl Range {
    /// The range of `values`; `None` when empty or when a value is not finite.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Range> {
        let mut r: Option<Range> = None;
        for v in values {
            if !v.is_finite() {
                return None;
            }
            r = Some(match r {
                None => Range { min: v, max: v },
                Some(r) => Range { min: r.min.min(v), max: r.max.max(v) },
            });
        }
        r
    }

    /// Why the range is unusable (a bound not finite, or `min > max`), if it is.
    pub fn check(&self) -> Result<(), String> {
        if !self.min.is_finite() || !self.max.is_finite() {
            return Err(format!("range [{}, {}] has a bound that is not finite", self.min, self.max));
        }
        if self.min > self.max {
            return Err(format!("range [{}, {}] has min > max", self.min, self.max));
        }
        Ok(())
    }

    /// `v` moved into the range. Never panics: a NaN `v` stays NaN, and an
    /// invalid range (rejected when a file loads) leaves `v` as it is.
    pub fn clamp(&self, v: f64) -> f64 {
        if self.check().is_err() {
            v
        } else if v < self.min {
            self.min
        } else if v > self.max {
            self.max
        } else {
            v
        }
    }
}

/// What a model file says about itself, in canonical units (runtime, overhead
/// and cold start in ns). Loaders check it with [`ModelInfo::check`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The function image the model describes, e.g. `hyperfaas-echo:latest`.
    pub image_tag: ImageTag,
    /// The model kind.
    pub kind: ModelKind,
    /// The runtime unit the file used (predictions are converted to ns).
    pub source_runtime_unit: RuntimeUnit,
    /// The training run (database name) it was trained from, if recorded.
    pub training_run: Option<String>,
    /// When it was trained (RFC 3339 UTC), if recorded.
    pub trained_at: Option<String>,
    /// Rows used for training, if recorded.
    pub sample_count: Option<u64>,
    /// The extra inputs after the five fixed ones, computed from the request
    /// payload (empty for HyperFake's models).
    pub payload_features: PayloadFeatures,
    /// One value per payload feature (training median): used when a call's
    /// payload does not yield the feature. Empty when there are no features.
    pub payload_feature_defaults: Vec<f64>,
    /// 3 (HyperFake: [`crate::TARGETS`]) or 5 ([`crate::ALL_TARGETS`]).
    pub output_count: usize,
    /// Range of each input (5 fixed, then the payload features) in the
    /// training rows, if recorded.
    pub input_ranges: Option<Vec<Range>>,
    /// Range of each output in the training rows (runtime in ns), if recorded.
    pub output_ranges: Option<Vec<Range>>,
    /// Evenly spaced quantiles (0 %, …, 100 %) of the runtime residual
    /// `actual - predicted` in ns on the training rows, if recorded (older
    /// files; [`ModelInfo::runtime_spread`] supersedes it).
    pub runtime_residual_quantiles: Option<Vec<f64>>,
    /// Runtime residual (ns) conditional on the predicted runtime.
    pub runtime_spread: Option<Spread>,
    /// Worker-overhead residual (ns) conditional on the predicted overhead.
    pub overhead_spread: Option<Spread>,
    /// Evenly spaced quantiles of the image's Start→ready durations (ns).
    pub cold_start_ns_quantiles: Option<Vec<f64>>,
    /// The worker host's load besides the calls in flight, measured on the
    /// training run ([`HostBaseline`]).
    pub host_baseline: Option<HostBaseline>,
    /// Maps a drawn runtime (prediction + residual, ns) onto the measured
    /// runtime distribution ([`QuantileMap`]).
    pub runtime_quantile_map: Option<QuantileMap>,
}

impl ModelInfo {
    /// Info for a file that records nothing but its image: 5 inputs, 3 outputs.
    pub fn bare(image_tag: ImageTag, kind: ModelKind) -> ModelInfo {
        ModelInfo {
            image_tag,
            kind,
            source_runtime_unit: RuntimeUnit::Nanoseconds,
            training_run: None,
            trained_at: None,
            sample_count: None,
            payload_features: PayloadFeatures::none(),
            payload_feature_defaults: Vec::new(),
            output_count: crate::TARGETS.len(),
            input_ranges: None,
            output_ranges: None,
            runtime_residual_quantiles: None,
            runtime_spread: None,
            overhead_spread: None,
            cold_start_ns_quantiles: None,
            host_baseline: None,
            runtime_quantile_map: None,
        }
    }

    /// Number of model inputs: 5 + the payload features.
    pub fn input_count(&self) -> usize {
        BASE_INPUTS + self.payload_features.len()
    }

    /// Input names in order: [`crate::FEATURES`], then each payload feature's
    /// name. See [`crate::input_names`].
    pub fn input_names(&self) -> Vec<String> {
        crate::input_names(&self.payload_features)
    }

    /// Output names in order (the first [`ModelInfo::output_count`] of
    /// [`crate::ALL_TARGETS`]).
    pub fn output_names(&self) -> &'static [&'static str] {
        &crate::ALL_TARGETS[..self.output_count.min(crate::ALL_TARGETS.len())]
    }

    /// Checks everything a loader cannot take on trust: 3 or 5 outputs, one
    /// finite default per payload feature, ranges of the right count with
    /// finite bounds and `min ≤ max`, sorted finite quantiles. The message
    /// says what is wrong; loaders prefix the file's path.
    pub fn check(&self) -> Result<(), String> {
        if self.output_count != crate::TARGETS.len() && self.output_count != crate::ALL_TARGETS.len() {
            return Err(format!("{} outputs; a model has 3 or 5", self.output_count));
        }
        let k = self.payload_features.len();
        if self.payload_feature_defaults.len() != k {
            return Err(format!(
                "{k} payload features but {} payload_feature_defaults",
                self.payload_feature_defaults.len()
            ));
        }
        if let Some((f, v)) =
            self.payload_features.iter().zip(&self.payload_feature_defaults).find(|(_, v)| !v.is_finite())
        {
            return Err(format!("payload_feature_defaults: the default of {} is {v} (not finite)", f.name()));
        }
        let names = self.input_names();
        if let Some(r) = &self.input_ranges {
            if r.len() != names.len() {
                return Err(format!("input_ranges has {} ranges for {} inputs", r.len(), names.len()));
            }
            for (name, range) in names.iter().zip(r) {
                range.check().map_err(|e| format!("input_ranges of {name}: {e}"))?;
            }
        }
        if let Some(r) = &self.output_ranges {
            if r.len() != self.output_count {
                return Err(format!(
                    "output_ranges has {} ranges for {} outputs",
                    r.len(),
                    self.output_count
                ));
            }
            for (name, range) in self.output_names().iter().zip(r) {
                range.check().map_err(|e| format!("output_ranges of {name}: {e}"))?;
            }
        }
        // An empty list means "not recorded" (older trainer benchmarks wrote `[]`).
        if let Some(q) = self.runtime_residual_quantiles.as_deref().filter(|q| !q.is_empty()) {
            check_quantiles(q).map_err(|e| format!("runtime_residual_quantiles: {e}"))?;
        }
        if let Some(q) = self.cold_start_ns_quantiles.as_deref().filter(|q| !q.is_empty()) {
            check_quantiles(q).map_err(|e| format!("cold_start_ns_quantiles: {e}"))?;
            if q[0] < 0.0 {
                return Err(format!("cold_start_ns_quantiles: a duration is negative ({})", q[0]));
            }
        }
        if let Some(b) = &self.host_baseline {
            b.check().map_err(|e| format!("host_baseline: {e}"))?;
        }
        if let Some(m) = &self.runtime_quantile_map {
            m.check().map_err(|e| format!("runtime_quantile_map: {e}"))?;
        }
        Ok(())
    }

    /// The model's inputs for one call: the five fixed inputs `base`, then
    /// each payload feature evaluated on `payload` with
    /// [`PayloadFeatures::eval`]; a feature the payload does not yield (None)
    /// takes its [`ModelInfo::payload_feature_defaults`] value. Returns the
    /// row and how many defaults were used.
    #[allow(clippy::cast_possible_truncation)]
    pub fn inputs_for(&self, base: [f32; BASE_INPUTS], payload: &[u8]) -> (Vec<f32>, usize) {
        let mut row = Vec::with_capacity(self.input_count());
        row.extend_from_slice(&base);
        let mut defaults_used = 0;
        if !self.payload_features.is_empty() {
            for (i, v) in self.payload_features.eval(payload).into_iter().enumerate() {
                let v = v.unwrap_or_else(|| {
                    defaults_used += 1;
                    self.payload_feature_defaults.get(i).copied().unwrap_or(0.0)
                });
                row.push(v as f32);
            }
        }
        (row, defaults_used)
    }

    /// Moves each input into the range seen in training, so a model is never
    /// asked to extrapolate. Unchanged when no ranges are recorded.
    #[allow(clippy::cast_possible_truncation)]
    pub fn clamp_input(&self, row: &mut [f32]) {
        if let Some(ranges) = &self.input_ranges {
            for (v, r) in row.iter_mut().zip(ranges) {
                *v = r.clamp(f64::from(*v)) as f32;
            }
        }
    }

    /// Moves each prediction into the range seen in training, or at least to
    /// ≥ 0 when no ranges are recorded (no target can be negative).
    #[allow(clippy::cast_possible_truncation)]
    pub fn clamp_output(&self, p: Prediction) -> Prediction {
        let mut values = p.to_vec();
        match &self.output_ranges {
            Some(ranges) => {
                for (v, r) in values.iter_mut().zip(ranges) {
                    *v = r.clamp(f64::from(*v)) as f32;
                }
            }
            None => {
                for v in &mut values {
                    *v = v.max(0.0);
                }
            }
        }
        Prediction::from_outputs(&values)
    }

    /// The runtime residual (ns) at quantile `u` ∈ [0, 1] of the old
    /// unconditional `runtime_residual_quantiles`, interpolated linearly.
    /// `None` when the file records none.
    pub fn runtime_residual(&self, u: f64) -> Option<f64> {
        let q = self.runtime_residual_quantiles.as_deref().filter(|q| !q.is_empty())?;
        Some(quantile_at(q, u))
    }

    /// The runtime residual (ns) to add to `predicted_ns` at quantile `u`:
    /// from [`ModelInfo::runtime_spread`], else from the unconditional
    /// `runtime_residual_quantiles`, else `None`.
    pub fn sample_runtime_residual(&self, predicted_ns: f64, u: f64) -> Option<f64> {
        match &self.runtime_spread {
            Some(s) => Some(s.sample(predicted_ns, u)),
            None => self.runtime_residual(u),
        }
    }

    /// The worker-overhead residual (ns) to add to `predicted_ns` at quantile
    /// `u`, from [`ModelInfo::overhead_spread`]; `None` without one.
    pub fn sample_overhead_residual(&self, predicted_ns: f64, u: f64) -> Option<f64> {
        self.overhead_spread.as_ref().map(|s| s.sample(predicted_ns, u))
    }

    /// A cold-start duration at quantile `u` ∈ [0, 1] of
    /// [`ModelInfo::cold_start_ns_quantiles`]; `None` when not recorded.
    pub fn sample_cold_start(&self, u: f64) -> Option<Nanos> {
        let q = self.cold_start_ns_quantiles.as_deref().filter(|q| !q.is_empty())?;
        Some(Nanos::from_f64_saturating(quantile_at(q, u)))
    }

    /// The mean of [`ModelInfo::cold_start_ns_quantiles`] (the integral of
    /// the piecewise-linear quantile function); `None` when not recorded.
    pub fn mean_cold_start(&self) -> Option<Nanos> {
        let q = self.cold_start_ns_quantiles.as_deref().filter(|q| !q.is_empty())?;
        let mean = if q.len() == 1 {
            q[0]
        } else {
            q.windows(2).map(|w| (w[0] + w[1]) / 2.0).sum::<f64>() / (q.len() - 1) as f64
        };
        Some(Nanos::from_f64_saturating(mean))
    }
}
