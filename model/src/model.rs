use std::path::{Path, PathBuf};

use hyperfake_core::ImageTag;

use crate::info::ModelInfo;
use crate::json::LinearPredictor;
use crate::onnx::OnnxPredictor;
use crate::{Features, ModelError, Targets};

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

    /// Predicts `[runtime_ns, cpu_cores, ram_bytes]` for each row of inputs
    /// (order of [`crate::FEATURES`]). Values are not clamped; see
    /// [`ModelInfo::clamp_output`].
    pub fn predict(&self, rows: &[Features]) -> Result<Vec<Targets>, ModelError> {
        match &self.predictor {
            Predictor::Linear(p) => Ok(rows.iter().map(|r| p.predict(r)).collect()),
            Predictor::Onnx(p) => p.predict(rows),
        }
    }

    /// [`Model::predict`] for one row.
    pub fn predict_one(&self, row: Features) -> Result<Targets, ModelError> {
        let out = self.predict(&[row])?;
        Ok(out[0])
    }
}

// A model is shared between concurrent calls (the fake worker keeps them in
// an `Arc`); keep it `Send + Sync`.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Model>();
};
