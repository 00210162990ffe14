//! Loads model files of function behaviour and predicts with them. The trainer
//! writes them; the fake worker reads them. Nothing here trains.
//!
//! # Inputs and outputs
//!
//! A model maps `5 + k` inputs to 3 or 5 outputs (units: `docs/units.md`).
//!
//! - Inputs, in this order ([`input_names`]): the five fixed inputs
//!   [`FEATURES`] (request size in bytes, live function instances, calls in
//!   flight, worker CPU in cores, worker RAM in bytes), then the model's `k`
//!   payload features ([`ModelInfo::payload_features`], a
//!   [`hyperfake_core::payload::PayloadFeatures`] declared by the function in
//!   the workload) in declaration order, named by their names (their
//!   `training_data` columns are `feature_<name>`). HyperFake's models have
//!   `k = 0`.
//!   [`ModelInfo::inputs_for`] builds a row from the five fixed inputs and a
//!   request payload, using [`ModelInfo::payload_feature_defaults`] for a
//!   feature the payload does not yield (and saying how many it used).
//! - Outputs ([`ALL_TARGETS`]): handler time in **ns**, function CPU in cores,
//!   function RAM in bytes (HyperFake's three, [`TARGETS`]), and optionally
//!   response size in bytes and worker overhead (worker processing time −
//!   handler time) in ns. [`Model::predict_one`] / [`Model::predict_rows`]
//!   return a [`Prediction`]; [`Model::predict`] is HyperFake's 5-in/3-out
//!   interface and refuses models with payload features.
//!
//! # Files
//!
//! - JSON linear models (HyperFake's fake-worker format, one object keyed by
//!   image tag, [`LinearModelFile`] / [`LinearModelEntry`]). Coefficient arrays
//!   hold `5 + k` weights then the intercept; `response_size_coeffs` and
//!   `overhead_coeffs` are optional (both or neither). Files without a
//!   `runtime_unit` field are HyperFake's own, whose runtime meant
//!   milliseconds; they are converted to nanoseconds when read.
//! - ONNX models with input `input` f32 `[N, 5+k]` (or `[1, 5+k]`; HyperFake's
//!   `[1,5]`/`[N,5]` are `k = 0`) and output `output` f32 `[N,3]` or `[N,5]`,
//!   run through ONNX Runtime (`ort`), loaded at run time from
//!   `ORT_DYLIB_PATH` or the cache directory that
//!   `scripts/install-onnxruntime.sh` fills. What the file says about itself
//!   is in `metadata_props` under the keys of [`metadata_keys`].
//!
//! Both formats carry the same optional metadata (JSON field ↔ ONNX key):
//!
//! | JSON field | ONNX key | value |
//! |---|---|---|
//! | `payload_features` | `hyperfake.payload_features` | `PayloadFeatures` JSON: `[{"name":"graph_nodes","json":"/size"}, ..]` |
//! | `payload_feature_defaults` | `hyperfake.payload_feature_defaults` | `[f64; k]`, finite; required when `k > 0` |
//! | `input_ranges` | `hyperfake.input_ranges` | `5 + k` × `{"min","max"}` |
//! | `output_ranges` | `hyperfake.output_ranges` | 3 or 5 × `{"min","max"}` (one per output) |
//! | `runtime_spread` | `hyperfake.runtime_spread` | [`Spread`]: `[{"upto": predicted, "quantiles": [101 × actual − predicted]}, ..]` |
//! | `overhead_spread` | `hyperfake.overhead_spread` | [`Spread`] of the worker overhead, ns |
//! | `cold_start_ns_quantiles` | `hyperfake.cold_start_ns_quantiles` | 101 quantiles of Start→ready, ns |
//! | `runtime_quantile_map` | `hyperfake.runtime_quantile_map` | [`QuantileMap`]: `{"drawn_ns": [101 quantiles], "actual_ns": [101 quantiles]}`, ns in every runtime unit: maps a drawn runtime onto the measured distribution |
//! | `host_baseline` | `hyperfake.host_baseline` | [`HostBaseline`]: `{"cpu_cores": [101 quantiles], "ram_bytes": [101 quantiles]}`, the worker host's load besides the calls |
//! | `runtime_residual_quantiles` | `hyperfake.runtime_residual_quantiles` | older unconditional residual quantiles |
//! | `features` / `targets` | `hyperfake.features` / `hyperfake.targets` | names; checked against [`input_names`] (a payload feature may be named `feature_<name>`) / [`ALL_TARGETS`] when present |
//!
//! Runtime values (output 0, its range, `runtime_spread`,
//! `runtime_residual_quantiles`) are in the file's runtime unit and read as
//! ns; everything else is in its own unit. All of these are optional: a file
//! without them loads (5 inputs, no spread, fixed cold start).
//!
//! Every file is checked when it loads ([`ModelInfo::check`]): coefficient and
//! range counts match the inputs and outputs, ranges are finite with
//! `min ≤ max`, the ONNX input width is `5 + k`, spreads and quantiles are
//! finite and sorted. A bad file is a [`ModelError`] naming its path.
//!
//! # Spread and cold starts
//!
//! A model predicts means. [`ModelInfo::sample_runtime_residual`]`(predicted,
//! u)` and [`ModelInfo::sample_overhead_residual`] give the residual to add
//! at quantile `u` of the prediction's region of the [`Spread`] (pass a
//! uniform random `u`); [`ModelInfo::sample_cold_start`]`(u)` a Start→ready
//! duration. The trainer can build a spread with [`Spread::from_residuals`].
//!
//! ```no_run
//! use hyperfake_model::{Model, ModelSet};
//! # fn main() -> Result<(), hyperfake_model::ModelError> {
//! let model = Model::load("models/run1/random-forest/hyperfaas-bfs.onnx")?;
//! let info = model.info();
//! // The five fixed inputs, then the payload features computed from the payload.
//! let (mut row, defaults_used) = info.inputs_for([512.0, 1.0, 1.0, 0.3, 2.0e9], br#"{"size": 1000}"#);
//! info.clamp_input(&mut row);
//! let p = info.clamp_output(model.predict_one(&row)?);
//! let runtime_ns = f64::from(p.runtime_ns) + info.sample_runtime_residual(f64::from(p.runtime_ns), 0.9).unwrap_or(0.0);
//! # let _ = (runtime_ns, defaults_used);
//! // Every model of a directory, keyed by image tag:
//! let set = ModelSet::load_dir("models/run1/random-forest")?;
//! # let _ = set;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod baseline;
mod error;
mod info;
mod json;
mod model;
mod onnx;
mod quantile_map;
mod runtime;
mod set;
mod spread;

pub use baseline::{HostBaseline, HostLoad};
pub use error::ModelError;
use hyperfake_core::payload::PayloadFeatures;
pub use info::{ModelInfo, ModelKind, Range, RuntimeUnit};
pub use json::{LinearModelEntry, LinearModelFile};
pub use model::{Model, Prediction};
pub use onnx::metadata_keys;
pub use quantile_map::QuantileMap;
pub use runtime::{ONNXRUNTIME_VERSION, onnxruntime_library, onnxruntime_search_paths};
pub use set::ModelSet;
pub use spread::{
    SPREAD_QUANTILES, Spread, SpreadError, SpreadRegion, check_quantiles, evenly_spaced_quantiles,
    quantile_at,
};

/// Number of fixed inputs, before the payload features.
pub const BASE_INPUTS: usize = 5;

/// One row of the five fixed inputs, in the order of [`FEATURES`].
pub type Features = [f32; BASE_INPUTS];
/// One row of HyperFake's three outputs, in the order of [`TARGETS`].
pub type Targets = [f32; 3];

/// The fixed input columns, in order: the training database's
/// (`rundb::training::INPUTS`), so model files and tables cannot drift.
pub const FEATURES: [&str; BASE_INPUTS] = rundb::training::INPUTS;
/// Units of [`FEATURES`], as named in `docs/units.md`.
pub const FEATURE_UNITS: [&str; BASE_INPUTS] = rundb::training::INPUT_UNITS;
/// HyperFake's three output columns, in order (`rundb::training::TARGETS`).
pub const TARGETS: [&str; 3] = rundb::training::TARGETS;
/// Units of [`TARGETS`], as named in `docs/units.md`.
pub const TARGET_UNITS: [&str; 3] = rundb::training::TARGET_UNITS;
/// All five output columns of a 5-output model, in order: [`TARGETS`], then
/// the response size and the worker overhead (`rundb::training::ALL_TARGETS`).
pub const ALL_TARGETS: [&str; 5] = rundb::training::ALL_TARGETS;
/// Units of [`ALL_TARGETS`].
pub const ALL_TARGET_UNITS: [&str; 5] = rundb::training::ALL_TARGET_UNITS;

/// The input names of a model with these payload features, in order: the
/// five [`FEATURES`], then each payload feature's name. Writers store this as
/// `hyperfake.features` / `features`; when reading, a payload feature may also
/// be listed by its `training_data` column (`feature_<name>`).
pub fn input_names(payload_features: &PayloadFeatures) -> Vec<String> {
    FEATURES
        .iter()
        .map(|s| s.to_string())
        .chain(payload_features.iter().map(|f| f.name().to_string()))
        .collect()
}

/// Checks a file's recorded input names (if any) against its payload features.
pub(crate) fn check_input_names(
    what: &str,
    found: Option<&[String]>,
    payload_features: &PayloadFeatures,
) -> Result<(), String> {
    let Some(found) = found else { return Ok(()) };
    let expected = input_names(payload_features);
    let same = found.len() == expected.len()
        && found.iter().zip(&expected).enumerate().all(|(i, (f, e))| {
            f == e
                || (i >= BASE_INPUTS
                    && payload_features.iter().nth(i - BASE_INPUTS).is_some_and(|p| *f == p.column()))
        });
    if same {
        Ok(())
    } else {
        Err(format!("{what} lists {found:?}, but the model's inputs are {expected:?}"))
    }
}

/// Checks a file's recorded target names (if any) against its output count.
pub(crate) fn check_target_names(
    what: &str,
    found: Option<&[String]>,
    expected: &[&str],
) -> Result<(), String> {
    match found {
        Some(found) if found.iter().map(String::as_str).ne(expected.iter().copied()) => {
            Err(format!("{what} lists {found:?}, but the model's outputs are {expected:?}"))
        }
        _ => Ok(()),
    }
}
