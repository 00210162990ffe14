use std::fmt;

use hyperfake_core::ImageTag;
use serde::{Deserialize, Serialize};

use crate::{Features, Targets};

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

    /// `v` moved into the range.
    pub fn clamp(&self, v: f64) -> f64 {
        v.clamp(self.min, self.max)
    }
}

/// What a model file says about itself, in canonical units (runtime in ns).
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
    /// Range of each input in the training rows, if recorded.
    pub input_ranges: Option<[Range; 5]>,
    /// Range of each target in the training rows (runtime in ns), if recorded.
    pub output_ranges: Option<[Range; 3]>,
    /// Evenly spaced quantiles (0 %, …, 100 %) of the runtime residual
    /// `actual - predicted` in ns on the training rows, if recorded.
    pub runtime_residual_quantiles: Option<Vec<f64>>,
}

impl ModelInfo {
    /// Info for a file that records nothing but its image.
    pub fn bare(image_tag: ImageTag, kind: ModelKind) -> ModelInfo {
        ModelInfo {
            image_tag,
            kind,
            source_runtime_unit: RuntimeUnit::Nanoseconds,
            training_run: None,
            trained_at: None,
            sample_count: None,
            input_ranges: None,
            output_ranges: None,
            runtime_residual_quantiles: None,
        }
    }

    /// Moves each input into the range seen in training, so a model is never
    /// asked to extrapolate. Unchanged when no ranges are recorded.
    #[allow(clippy::cast_possible_truncation)]
    pub fn clamp_input(&self, mut row: Features) -> Features {
        if let Some(ranges) = &self.input_ranges {
            for (v, r) in row.iter_mut().zip(ranges) {
                *v = r.clamp(f64::from(*v)) as f32;
            }
        }
        row
    }

    /// Moves each prediction into the range seen in training, or at least to
    /// ≥ 0 when no ranges are recorded (no target can be negative).
    #[allow(clippy::cast_possible_truncation)]
    pub fn clamp_output(&self, mut out: Targets) -> Targets {
        match &self.output_ranges {
            Some(ranges) => {
                for (v, r) in out.iter_mut().zip(ranges) {
                    *v = r.clamp(f64::from(*v)) as f32;
                }
            }
            None => {
                for v in &mut out {
                    *v = v.max(0.0);
                }
            }
        }
        out
    }

    /// The runtime residual (ns) at quantile `u` ∈ [0, 1], interpolated
    /// linearly between the recorded quantiles. Pass a uniform random `u` to
    /// sample noise with the training residuals' distribution. `None` when the
    /// file records no quantiles.
    pub fn runtime_residual(&self, u: f64) -> Option<f64> {
        let q = self.runtime_residual_quantiles.as_deref()?;
        match q.len() {
            0 => None,
            1 => Some(q[0]),
            n => {
                let pos = u.clamp(0.0, 1.0) * (n - 1) as f64;
                let lo = pos.floor();
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let i = (lo as usize).min(n - 2);
                let frac = pos - i as f64;
                Some(q[i] + (q[i + 1] - q[i]) * frac)
            }
        }
    }
}
