use std::path::{Path, PathBuf};

use hyperfake_core::ImageTag;

use crate::info::ModelInfo;
use crate::json::LinearPredictor;
use crate::onnx::OnnxPredictor;
use crate::{Features, ModelError, Targets};

/// One prediction in canonical units. `response_size_bytes` and
/// `worker_overhead_ns` are `Some` for 5-output models only.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prediction {
    /// Handler time (`function_processing_time_ns`), ns.
    pub runtime_ns: f32,
    /// Function CPU (`function_cpu_usage`), cores.
    pub cpu_cores: f32,
    /// Function RAM (`function_ram_usage`), bytes.
    pub ram_bytes: f32,
    /// Response payload size, bytes.
    pub response_size_bytes: Option<f32>,
    /// Worker processing time minus handler time, ns.
    pub worker_overhead_ns: Option<f32>,
}

impl Prediction {
    /// From a model's output row (3 or 5 values, order of
    /// [`crate::ALL_TARGETS`]). Missing values are 0 for the first three
    /// and `None` for the other two; extra values are ignored.
    pub fn from_outputs(v: &[f32]) -> Prediction {
        let at = |i: usize| v.get(i).copied();
        Prediction {
            runtime_ns: at(0).unwrap_or(0.0),
            cpu_cores: at(1).unwrap_or(0.0),
            ram_bytes: at(2).unwrap_or(0.0),
            response_size_bytes: at(3),
            worker_overhead_ns: at(4).filter(|_| v.len() >= 5),
        }
    }

    /// The three HyperFake targets.
    pub fn targets(&self) -> Targets {
        [self.runtime_ns, self.cpu_cores, self.ram_bytes]
    }

    /// The outputs as a row (3 or 5 values, order of [`crate::ALL_TARGETS`]).
    pub fn to_vec(&self) -> Vec<f32> {
        let mut v = self.targets().to_vec();
        if let (Some(size), Some(overhead)) = (self.response_size_bytes, self.worker_overhead_ns) {
            v.extend([size, overhead]);
        }
        v
    }
}

/// One image's model, loaded from a file, ready to predict. Predictions are in
/// canonical units: runtime in ns, CPU in cores, RAM in bytes.
#[derive(Debug)]
pub struct Model {
    info: ModelInfo,
    path: PathBuf,
    predictor: Predictor,
}

#[derive(Debug)]
enum Predictor {
    Linear(LinearPredictor),
    Onnx(OnnxPredictor),
}

/// The kind of file, from its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileKind {
    Json,
    Onnx,
}

impl FileKind {
    pub(crate) fn of(path: &Path) -> Option<FileKind> {
        match path.extension()?.to_str()? {
            "json" => Some(FileKind::Json),
            "onnx" => Some(FileKind::Onnx),
            _ => None,
        }
    }
}

impl Model {
    /// Loads a `.onnx` file, or a `.json` file holding exactly one image.
    pub fn load(path: impl AsRef<Path>) -> Result<Model, ModelError> {
        let path = path.as_ref();
        let mut all = Model::load_all(path)?;
        match all.len() {
            1 => Ok(all.remove(0)),
            count => Err(ModelError::Ambiguous { path: path.into(), count }),
        }
    }

    /// Loads the model of `image` from a file (for an ONNX file, the file's
    /// image must be `image`).
    pub fn load_image(path: impl AsRef<Path>, image: &ImageTag) -> Result<Model, ModelError> {
        let path = path.as_ref();
        let wanted = image.normalized();
        Model::load_all(path)?
            .into_iter()
            .find(|m| m.info.image_tag.normalized() == wanted)
            .ok_or_else(|| ModelError::NoSuchImage { path: path.into(), image: image.to_string() })
    }

    /// Every model in a file: one for ONNX, one per image for JSON.
    pub(crate) fn load_all(path: &Path) -> Result<Vec<Model>, ModelError> {
        match FileKind::of(path) {
            Some(FileKind::Json) => Ok(crate::json::load(path)?
                .into_iter()
                .map(|(info, p)| Model { info, path: path.into(), predictor: Predictor::Linear(p) })
                .collect()),
            Some(FileKind::Onnx) => {
                let (info, p) = crate::onnx::load(path)?;
                Ok(vec![Model { info, path: path.into(), predictor: Predictor::Onnx(p) }])
            }
            None => Err(ModelError::UnknownFormat { path: path.into() }),
        }
    }

    /// What the file says about the model.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Predicts one row of inputs ([`ModelInfo::input_count`] values: the five
    /// fixed inputs, then the payload features; see [`ModelInfo::inputs_for`]).
    /// Values are not clamped; see [`ModelInfo::clamp_output`].
    pub fn predict_one(&self, row: impl AsRef<[f32]>) -> Result<Prediction, ModelError> {
        let mut out = self.predict_rows(&[row.as_ref()])?;
        Ok(out.remove(0))
    }

    /// Predicts each row (each of [`ModelInfo::input_count`] values). A row of
    /// another width is an error naming the file.
    pub fn predict_rows<R: AsRef<[f32]>>(&self, rows: &[R]) -> Result<Vec<Prediction>, ModelError> {
        let width = self.info.input_count();
        let mut flat = Vec::with_capacity(rows.len() * width);
        for (i, r) in rows.iter().enumerate() {
            let r = r.as_ref();
            if r.len() != width {
                return Err(ModelError::Run {
                    path: self.path.clone(),
                    message: format!(
                        "row {i} has {} values; the model takes {width} inputs ({})",
                        r.len(),
                        self.info.input_names().join(", ")
                    ),
                });
            }
            flat.extend_from_slice(r);
        }
        let outputs = self.info.output_count;
        let values = match &self.predictor {
            Predictor::Linear(p) => p.predict(&flat, width),
            Predictor::Onnx(p) => p.predict(&flat, width, outputs)?,
        };
        Ok(values.chunks_exact(outputs).map(Prediction::from_outputs).collect())
    }

    /// HyperFake's interface: `[runtime_ns, cpu_cores, ram_bytes]` for rows of
    /// the five fixed inputs. Only for models without payload features (an
    /// error otherwise: use [`Model::predict_rows`]); extra outputs are dropped.
    pub fn predict(&self, rows: &[Features]) -> Result<Vec<Targets>, ModelError> {
        Ok(self.predict_rows(rows)?.iter().map(Prediction::targets).collect())
    }
}

// A model is shared between concurrent calls (the fake worker keeps them in
// an `Arc`); keep it `Send + Sync`.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Model>();
};
