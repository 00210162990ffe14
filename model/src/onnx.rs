//! ONNX models through ONNX Runtime: shape checks, metadata, batched runs.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hyperfake_core::ImageTag;
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

use crate::info::{ModelInfo, ModelKind, Range, RuntimeUnit};
use crate::{Features, ModelError, Targets};

/// Keys of the `metadata_props` hyperfake writes into ONNX files. Values are
/// strings; the ones marked JSON hold JSON text. Files from elsewhere may have
/// none of them: the image is then taken from the file name.
pub mod metadata_keys {
    /// Full image tag, e.g. `hyperfaas-echo:latest`.
    pub const IMAGE_TAG: &str = "hyperfake.image_tag";
    /// `linear`, `ridge` or `random-forest`.
    pub const MODEL_KIND: &str = "hyperfake.model_kind";
    /// JSON array of input names, in order.
    pub const FEATURES: &str = "hyperfake.features";
    /// JSON array of target names, in order.
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
    /// JSON array of 5 `{"min":..,"max":..}`.
    pub const INPUT_RANGES: &str = "hyperfake.input_ranges";
    /// JSON array of 3 `{"min":..,"max":..}` (runtime in `runtime_unit`).
    pub const OUTPUT_RANGES: &str = "hyperfake.output_ranges";
    /// JSON array of evenly spaced quantiles of the training runtime residual.
    pub const RUNTIME_RESIDUAL_QUANTILES: &str = "hyperfake.runtime_residual_quantiles";
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

    let [input] = session.inputs() else {
        return Err(invalid(format!("expected 1 input, found {}", session.inputs().len())));
    };
    let in_shape = float_shape(input.dtype()).ok_or_else(|| {
        invalid(format!("input {:?} must be a float32 tensor, found {:?}", input.name(), input.dtype()))
    })?;
    if in_shape.len() != 2 || in_shape[1] != 5 {
        return Err(invalid(format!("input {:?} must have shape [N,5], found {in_shape:?}", input.name())));
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
    if out_shape.len() != 2 || !(out_shape[1] == 3 || out_shape[1] < 0) {
        return Err(invalid(format!(
            "output {:?} must have shape [N,3], found {out_shape:?}",
            output.name()
        )));
    }

    let meta = session.metadata().map_err(|e| onnx_err(e.to_string()))?;
    let get = |key: &str| meta.custom(key);
    let parse_json = |key: &str| -> Result<Option<serde_json::Value>, ModelError> {
        get(key)
            .map(|s| {
                serde_json::from_str(&s)
                    .map_err(|e| invalid(format!("metadata {key} is not valid JSON: {e}")))
            })
            .transpose()
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
    let input_ranges: Option<[Range; 5]> = parse_json(metadata_keys::INPUT_RANGES)?
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| invalid(format!("metadata {}: {e}", metadata_keys::INPUT_RANGES)))?;
    let mut output_ranges: Option<[Range; 3]> = parse_json(metadata_keys::OUTPUT_RANGES)?
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| invalid(format!("metadata {}: {e}", metadata_keys::OUTPUT_RANGES)))?;
    if let Some(r) = &mut output_ranges {
        r[0] = Range { min: r[0].min * scale, max: r[0].max * scale };
    }
    let quantiles: Option<Vec<f64>> = parse_json(metadata_keys::RUNTIME_RESIDUAL_QUANTILES)?
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| invalid(format!("metadata {}: {e}", metadata_keys::RUNTIME_RESIDUAL_QUANTILES)))?;
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
        input_ranges,
        output_ranges,
        runtime_residual_quantiles: quantiles.map(|q| q.into_iter().map(|v| v * scale).collect()),
    };
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
    pub(crate) fn predict(&self, rows: &[Features]) -> Result<Vec<Targets>, ModelError> {
        let mut out = Vec::with_capacity(rows.len());
        let batch = self.fixed_batch.unwrap_or(rows.len().max(1));
        for chunk in rows.chunks(batch) {
            if chunk.len() != batch {
                // A fixed-batch model gets the last rows padded with copies.
                let mut padded = chunk.to_vec();
                padded.resize(batch, chunk[chunk.len() - 1]);
                out.extend(self.run(&padded)?.into_iter().take(chunk.len()));
            } else {
                out.extend(self.run(chunk)?);
            }
        }
        Ok(out)
    }

    fn run(&self, rows: &[Features]) -> Result<Vec<Targets>, ModelError> {
        let run_err = |message: String| ModelError::Run { path: self.path.clone(), message };
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let tensor =
            TensorRef::from_array_view(([rows.len(), 5], &flat[..])).map_err(|e| run_err(e.to_string()))?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs =
            session.run(ort::inputs![self.input.as_str() => tensor]).map_err(|e| run_err(e.to_string()))?;
        let (shape, data) =
            outputs[self.output.as_str()].try_extract_tensor::<f32>().map_err(|e| run_err(e.to_string()))?;
        if data.len() != rows.len() * 3 {
            return Err(run_err(format!(
                "output has shape {:?} for {} rows; expected [{}, 3]",
                &shape[..],
                rows.len(),
                rows.len()
            )));
        }
        Ok(data.chunks_exact(3).map(|c| [c[0] * self.runtime_scale, c[1], c[2]]).collect())
    }
}
