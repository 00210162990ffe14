//! Loads model files of function behaviour and predicts with them. The trainer
//! writes them; the fake worker reads them. Nothing here trains.
//!
//! A model maps the five inputs of `docs/units.md` (in this order: request size
//! in bytes, live function instances, calls in flight, worker CPU in cores,
//! worker RAM in bytes) to three targets (handler time in **nanoseconds**,
//! function CPU in cores, function RAM in bytes). Two file kinds exist:
//!
//! - JSON linear models (HyperFake's fake-worker format, one object keyed by
//!   image tag). Files without a `runtime_unit` field are HyperFake's own, whose
//!   runtime meant milliseconds; they are converted to nanoseconds when read.
//! - ONNX models with input `input` f32 `[N,5]` (or `[1,5]`) and output
//!   `output` f32 `[N,3]`, run through ONNX Runtime (`ort`). ONNX Runtime is
//!   loaded at run time from `ORT_DYLIB_PATH` or the cache directory that
//!   `scripts/install-onnxruntime.sh` fills.
//!
//! ```no_run
//! use hyperfake_model::{Model, ModelSet};
//! # fn main() -> Result<(), hyperfake_model::ModelError> {
//! let model = Model::load("models/run1/random-forest/hyperfaas-echo.onnx")?;
//! let [runtime_ns, cpu_cores, ram_bytes] = model.predict_one([512.0, 1.0, 1.0, 0.3, 2.0e9])?;
//! let clamped = model.info().clamp_output([runtime_ns, cpu_cores, ram_bytes]);
//! # let _ = clamped;
//! // Every model of a directory, keyed by image tag:
//! let set = ModelSet::load_dir("models/run1/random-forest")?;
//! # let _ = set;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod error;
mod info;
mod json;
mod model;
mod onnx;
mod runtime;
mod set;

pub use error::ModelError;
pub use info::{ModelInfo, ModelKind, Range, RuntimeUnit};
pub use json::{LinearModelEntry, LinearModelFile};
pub use model::Model;
pub use onnx::metadata_keys;
pub use runtime::{ONNXRUNTIME_VERSION, onnxruntime_library, onnxruntime_search_paths};
pub use set::ModelSet;

/// One row of model inputs, in the order of [`FEATURES`].
pub type Features = [f32; 5];
/// One row of model outputs, in the order of [`TARGETS`].
pub type Targets = [f32; 3];

/// Input columns, in order (names as in the training database).
pub const FEATURES: [&str; 5] = [
    "request_size_bytes",
    "function_instances_count",
    "active_function_calls_count",
    "worker_cpu_usage",
    "worker_ram_usage",
];
/// Units of [`FEATURES`], as named in `docs/units.md`.
pub const FEATURE_UNITS: [&str; 5] = ["bytes", "count", "count", "cores", "bytes"];
/// Output columns, in order (names as in the training database).
pub const TARGETS: [&str; 3] = ["function_processing_time_ns", "function_cpu_usage", "function_ram_usage"];
/// Units of [`TARGETS`], as named in `docs/units.md`.
pub const TARGET_UNITS: [&str; 3] = ["ns", "cores", "bytes"];
