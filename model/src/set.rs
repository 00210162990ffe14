use std::collections::BTreeMap;
use std::path::Path;

use hyperfake_core::ImageTag;

use crate::model::FileKind;
use crate::{Model, ModelError};

/// Models keyed by (normalised) image tag: what a fake worker serves from.
#[derive(Debug, Default)]
pub struct ModelSet {
    models: BTreeMap<ImageTag, Model>,
}

impl ModelSet {
    /// Every model in one file (a JSON file may hold several images).
    pub fn load(path: impl AsRef<Path>) -> Result<ModelSet, ModelError> {
        let mut set = ModelSet::default();
        for m in Model::load_all(path.as_ref())? {
            set.insert(m);
        }
        Ok(set)
    }

    /// Every `.onnx` and `.json` file directly in `dir`, in file-name order.
    /// When two files describe the same image, the later file wins. Fails on
    /// the first file that does not load: a half-loaded set would silently
    /// serve some functions with defaults.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<ModelSet, ModelError> {
        let dir = dir.as_ref();
        let read_err = |source| ModelError::Read { path: dir.into(), source };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_err)? {
            let path = entry.map_err(read_err)?.path();
            if path.is_file() && FileKind::of(&path).is_some() {
                files.push(path);
            }
        }
        files.sort();
        let mut set = ModelSet::default();
        for f in files {
            for m in Model::load_all(&f)? {
                set.insert(m);
            }
        }
        Ok(set)
    }

    /// Adds a model, replacing any for the same image.
    pub fn insert(&mut self, model: Model) {
        self.models.insert(model.info().image_tag.normalized(), model);
    }

    /// The model of `image` (`hyperfaas-echo` and `hyperfaas-echo:latest` are the same).
    pub fn get(&self, image: &ImageTag) -> Option<&Model> {
        self.models.get(&image.normalized())
    }

    /// All models, by image tag.
    pub fn iter(&self) -> impl Iterator<Item = (&ImageTag, &Model)> {
        self.models.iter()
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// The models, consuming the set (a consumer can then share each one).
    pub fn into_models(self) -> impl Iterator<Item = Model> {
        self.models.into_values()
    }

    /// True when there are no models.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}
