//! ONNX models through ONNX Runtime: shape checks, metadata, batched runs.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hyperfake_core::ImageTag;
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

use hyperfake_core::payload::PayloadFeatures;
use serde::de::DeserializeOwned;

use crate::ModelError;
use crate::info::{ModelInfo, ModelKind, Range, RuntimeUnit};
use crate::spread::Spread;

/// Keys of the `metadata_props` hyperfake writes into ONNX files. Values are
/// strings; the ones marked JSON hold JSON text. Files from elsewhere may have
/// none of them: the image is then taken from the file name.
pub mod metadata_keys {
    /// Full image tag, e.g. `hyperfaas-echo:latest`.
    pub const IMAGE_TAG: &str = "hyperfake.image_tag";
    /// `linear`, `ridge` or `random-forest`.
    pub const MODEL_KIND: &str = "hyperfake.model_kind";
    /// JSON array of input names, in order ([`crate::input_names`]; a payload
    /// feature may be listed as `feature_<name>`); checked when present.
    pub const FEATURES: &str = "hyperfake.features";
    /// JSON array of target names, in order (3 or 5 of
    /// [`crate::ALL_TARGETS`]); checked against the output width when present.
    pub const TARGETS: &str = "hyperfake.targets";
    /// JSON object: column name → unit (`docs/units.md`).
    pub const UNITS: &str = "hyperfake.units";
    /// Unit of output 0: `ns` (`ms` is accepted and converted).
    pub const RUNTIME_UNIT: &str = "hyperfake.runtime_unit";
    /// Training run (database name).
    pub const TRAINING_RUN: &str = "hyperfake.training_run";
    /// JSON array of the training database paths.
    pub const TRAINING_SOURCES: &str = "hyperfake.training_sources";
    /// RFC 3339 UTC time of training.
    pub const TRAINED_AT: &str = "hyperfake.trained_at";
    /// Training row count.
    pub const SAMPLE_COUNT: &str = "hyperfake.sample_count";
    /// JSON array of `5 + k` `{"min":..,"max":..}` (one per input), each
    /// finite with `min ≤ max`.
    pub const INPUT_RANGES: &str = "hyperfake.input_ranges";
    /// JSON array of 3 or 5 `{"min":..,"max":..}`, one per output (runtime
    /// in `runtime_unit`).
    pub const OUTPUT_RANGES: &str = "hyperfake.output_ranges";
    /// JSON array of evenly spaced quantiles of the training runtime residual
    /// (in `runtime_unit`; superseded by [`RUNTIME_SPREAD`]).
    pub const RUNTIME_RESIDUAL_QUANTILES: &str = "hyperfake.runtime_residual_quantiles";
    /// JSON: the payload feature declarations (`PayloadFeatures` serde form,
    /// `[{"name":"graph_nodes","json":"/size"}, ..]`): inputs 5, 6, …
    pub const PAYLOAD_FEATURES: &str = "hyperfake.payload_features";
    /// JSON array: one finite default per payload feature (training median),
    /// used when a call's payload does not yield it. Required with
    /// [`PAYLOAD_FEATURES`] (unless that is `[]`).
    pub const PAYLOAD_FEATURE_DEFAULTS: &str = "hyperfake.payload_feature_defaults";
    /// JSON `Spread`: `[{"upto": <predicted runtime>, "quantiles": [101 values
    /// of actual − predicted]}, ..]`, `upto` strictly increasing, in
    /// `runtime_unit`.
    pub const RUNTIME_SPREAD: &str = "hyperfake.runtime_spread";
    /// JSON `Spread` of the worker overhead (ns), like [`RUNTIME_SPREAD`].
    pub const OVERHEAD_SPREAD: &str = "hyperfake.overhead_spread";
    /// JSON array of evenly spaced quantiles (101) of the image's Start→ready
    /// durations, ns, non-decreasing, ≥ 0.
    pub const COLD_START_NS_QUANTILES: &str = "hyperfake.cold_start_ns_quantiles";
    /// JSON `HostBaseline`: `{"cpu_cores": [101 quantiles], "ram_bytes": [101
    /// quantiles]}`, the worker host's load besides the calls in flight.
    pub const HOST_BASELINE: &str = "hyperfake.host_baseline";
    /// JSON `QuantileMap`: `{"drawn_ns": [101 quantiles], "actual_ns": [101
    /// quantiles]}`, ns whatever `runtime_unit` says.
    pub const RUNTIME_QUANTILE_MAP: &str = "hyperfake.runtime_quantile_map";
}

/// An ONNX Runtime session. ONNX Runtime's `Run` is thread-safe but `ort`
/// takes `&mut Session`, so calls are serialised through a mutex.
#[derive(Debug)]
pub(crate) struct OnnxPredictor {
    path: PathBuf,
    session: Mutex<Session>,
    input: String,
    output: String,
    /// Set when the input's batch dimension is fixed (HyperFake's exports use 1).
    fixed_batch: Option<usize>,
    /// Nanoseconds per unit of output 0.
    runtime_scale: f32,
}

pub(crate) fn load(path: &Path) -> Result<(ModelInfo, OnnxPredictor), ModelError> {
    let env = crate::runtime::environment()?;
    let bytes = std::fs::read(path).map_err(|source| ModelError::Read { path: path.into(), source })?;
    let onnx_err = |e: String| ModelError::Onnx { path: path.into(), message: e };
    let session = Session::builder(env)
        .map_err(|e| onnx_err(e.to_string()))?
        .with_intra_threads(1)
        .map_err(|e| onnx_err(e.to_string()))?
        .commit_from_memory(&bytes)
        .map_err(|e| onnx_err(e.to_string()))?;
    let invalid = |what: String| ModelError::Invalid { path: path.into(), what };

    let meta = session.metadata().map_err(|e| onnx_err(e.to_string()))?;
    let get = |key: &str| meta.custom(key);
    fn parse<T: DeserializeOwned>(
        get: &dyn Fn(&str) -> Option<String>,
        key: &str,
    ) -> Result<Option<T>, String> {
        get(key).map(|s| serde_json::from_str(&s).map_err(|e| format!("metadata {key}: {e}"))).transpose()
    }
    let meta_err = |e: String| invalid(e);
    let payload_features: PayloadFeatures =
        parse(&get, metadata_keys::PAYLOAD_FEATURES).map_err(meta_err)?.unwrap_or_default();
    let width = crate::BASE_INPUTS + payload_features.len();

    let [input] = session.inputs() else {
        return Err(invalid(format!("expected 1 input, found {}", session.inputs().len())));
    };
    let in_shape = float_shape(input.dtype()).ok_or_else(|| {
        invalid(format!("input {:?} must be a float32 tensor, found {:?}", input.name(), input.dtype()))
    })?;
    if in_shape.len() != 2 || usize::try_from(in_shape[1]).ok() != Some(width) {
        return Err(invalid(format!(
            "input {:?} must have shape [N,{width}] (5 fixed inputs + {} payload features), found {in_shape:?}",
            input.name(),
            payload_features.len()
        )));
    }
    let fixed_batch = usize::try_from(in_shape[0]).ok().filter(|n| *n > 0);
    let output = session
        .outputs()
        .iter()
        .find(|o| o.name() == "output")
        .or_else(|| session.outputs().first())
        .ok_or_else(|| invalid("the model has no output".into()))?;
    let out_shape = float_shape(output.dtype()).ok_or_else(|| {
        invalid(format!("output {:?} must be a float32 tensor, found {:?}", output.name(), output.dtype()))
    })?;
    let targets: Option<Vec<String>> = parse(&get, metadata_keys::TARGETS).map_err(meta_err)?;
    let output_count = match out_shape.as_slice() {
        [_, n] if *n == 3 || *n == 5 => usize::try_from(*n).unwrap_or(3),
        // A dynamic width: the targets metadata says, else HyperFake's 3.
        [_, n] if *n < 0 => targets.as_ref().map_or(crate::TARGETS.len(), Vec::len),
        _ => {
            return Err(invalid(format!(
                "output {:?} must have shape [N,3] or [N,5], found {out_shape:?}",
                output.name()
            )));
        }
    };

    let image_tag = match get(metadata_keys::IMAGE_TAG) {
        Some(tag) => ImageTag::from(tag),
        None => image_from_file_name(path),
    };
    let kind = match get(metadata_keys::MODEL_KIND) {
        Some(k) => ModelKind::parse(&k)
            .ok_or_else(|| invalid(format!("metadata {}: unknown kind {k:?}", metadata_keys::MODEL_KIND)))?,
        None => ModelKind::External,
    };
    let unit = match get(metadata_keys::RUNTIME_UNIT).as_deref() {
        None | Some("ns") => RuntimeUnit::Nanoseconds,
        Some("ms") => RuntimeUnit::Milliseconds,
        Some(other) => return Err(invalid(format!("metadata runtime_unit {other:?} is neither ns nor ms"))),
    };
    let scale = unit.nanos_per_unit();
    let mut output_ranges: Option<Vec<Range>> =
        parse(&get, metadata_keys::OUTPUT_RANGES).map_err(meta_err)?;
    if let Some(r) = output_ranges.as_mut().and_then(|r| r.first_mut()) {
        *r = Range { min: r.min * scale, max: r.max * scale };
    }
    let quantiles: Option<Vec<f64>> =
        parse(&get, metadata_keys::RUNTIME_RESIDUAL_QUANTILES).map_err(meta_err)?;
    let runtime_spread: Option<Spread> = parse(&get, metadata_keys::RUNTIME_SPREAD).map_err(meta_err)?;
    let sample_count = get(metadata_keys::SAMPLE_COUNT)
        .map(|s| s.parse::<u64>())
        .transpose()
        .map_err(|e| invalid(format!("metadata {}: {e}", metadata_keys::SAMPLE_COUNT)))?;
    let info = ModelInfo {
        image_tag,
        kind,
        source_runtime_unit: unit,
        training_run: get(metadata_keys::TRAINING_RUN),
        trained_at: get(metadata_keys::TRAINED_AT),
        sample_count,
        payload_feature_defaults: parse(&get, metadata_keys::PAYLOAD_FEATURE_DEFAULTS)
            .map_err(meta_err)?
            .unwrap_or_default(),
        payload_features,
        output_count,
        input_ranges: parse(&get, metadata_keys::INPUT_RANGES).map_err(meta_err)?,
        output_ranges,
        runtime_residual_quantiles: quantiles.map(|q| q.into_iter().map(|v| v * scale).collect()),
        runtime_spread: runtime_spread.map(|s| s.scaled(scale)),
        overhead_spread: parse(&get, metadata_keys::OVERHEAD_SPREAD).map_err(meta_err)?,
        cold_start_ns_quantiles: parse(&get, metadata_keys::COLD_START_NS_QUANTILES).map_err(meta_err)?,
        host_baseline: parse(&get, metadata_keys::HOST_BASELINE).map_err(meta_err)?,
        runtime_quantile_map: parse(&get, metadata_keys::RUNTIME_QUANTILE_MAP).map_err(meta_err)?,
    };
    info.check().map_err(invalid)?;
    let features: Option<Vec<String>> = parse(&get, metadata_keys::FEATURES).map_err(meta_err)?;
    crate::check_input_names(metadata_keys::FEATURES, features.as_deref(), &info.payload_features)
        .map_err(invalid)?;
    crate::check_target_names(metadata_keys::TARGETS, targets.as_deref(), info.output_names())
        .map_err(invalid)?;
    drop(meta);
    let predictor = OnnxPredictor {
        path: path.into(),
        input: input.name().to_string(),
        output: output.name().to_string(),
        fixed_batch,
        #[allow(clippy::cast_possible_truncation)]
        runtime_scale: scale as f32,
        session: Mutex::new(session),
    };
    Ok((info, predictor))
}

/// `hyperfaas-echo.onnx` → `hyperfaas-echo:latest`.
fn image_from_file_name(path: &Path) -> ImageTag {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    ImageTag::from(stem).normalized()
}

fn float_shape(t: &ValueType) -> Option<Vec<i64>> {
    match t {
        ValueType::Tensor { ty: TensorElementType::Float32, shape, .. } => Some(shape.to_vec()),
        _ => None,
    }
}

impl OnnxPredictor {
    /// Outputs (`outputs` per row, flat) of flat rows of `width` inputs.
    pub(crate) fn predict(&self, flat: &[f32], width: usize, outputs: usize) -> Result<Vec<f32>, ModelError> {
        let rows = flat.len() / width.max(1);
        let mut out = Vec::with_capacity(rows * outputs);
        let batch = self.fixed_batch.unwrap_or(rows.max(1));
        for chunk in flat.chunks(batch * width) {
            let n = chunk.len() / width;
            if n != batch {
                // A fixed-batch model gets the last rows padded with copies.
                let mut padded = chunk.to_vec();
                let last = chunk[chunk.len() - width..].to_vec();
                for _ in n..batch {
                    padded.extend_from_slice(&last);
                }
                let mut y = self.run(&padded, width, outputs)?;
                y.truncate(n * outputs);
                out.extend(y);
            } else {
                out.extend(self.run(chunk, width, outputs)?);
            }
        }
        Ok(out)
    }

    fn run(&self, flat: &[f32], width: usize, outputs: usize) -> Result<Vec<f32>, ModelError> {
        let run_err = |message: String| ModelError::Run { path: self.path.clone(), message };
        let rows = flat.len() / width;
        let tensor = TensorRef::from_array_view(([rows, width], flat)).map_err(|e| run_err(e.to_string()))?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let result =
            session.run(ort::inputs![self.input.as_str() => tensor]).map_err(|e| run_err(e.to_string()))?;
        let (shape, data) =
            result[self.output.as_str()].try_extract_tensor::<f32>().map_err(|e| run_err(e.to_string()))?;
        if data.len() != rows * outputs {
            return Err(run_err(format!(
                "output has shape {:?} for {rows} rows; expected [{rows}, {outputs}]",
                &shape[..],
            )));
        }
        let mut data = data.to_vec();
        for row in data.chunks_exact_mut(outputs) {
            row[0] *= self.runtime_scale;
        }
        Ok(data)
    }
}
