//! The models a fake worker simulates with, swappable while calls run.
//!
//! Sources: every `.onnx`/`.json` file directly in a models directory, plus
//! models named explicitly (`-m <path> <image-tag>`), which win over the
//! directory. A directory file that fails to load is reported with its path
//! and **skipped** (the other images keep working, and a later reload retries
//! it); an explicit model that fails to load is **refused**: the fake worker
//! does not start, because the user asked for exactly that file.
//!
//! A reload builds a complete new set, then swaps it in one step. A call keeps
//! the model it started with, so no call is dropped or sees a half-loaded set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use hyperfake_core::ImageTag;
use hyperfake_model::{HostBaseline, HostLoad, Model, ModelError, ModelSet};

/// A model named on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExplicitModel {
    pub path: PathBuf,
    pub image: ImageTag,
}

/// A file that could not be loaded, and why.
#[derive(Debug)]
pub struct Skipped {
    pub path: PathBuf,
    pub error: ModelError,
}

/// Shared, atomically replaceable models keyed by image tag.
#[derive(Debug)]
pub struct ModelRegistry {
    dir: Option<PathBuf>,
    explicit: Vec<ExplicitModel>,
    current: RwLock<Arc<Models>>,
}

/// One loaded generation of models.
#[derive(Debug, Default)]
pub struct Models {
    by_image: BTreeMap<ImageTag, Arc<Model>>,
    /// Directory listing (name, modified, size) the set was built from; a
    /// change triggers a reload.
    fingerprint: Vec<(PathBuf, Option<SystemTime>, u64)>,
}

impl Models {
    pub fn get(&self, image: &ImageTag) -> Option<Arc<Model>> {
        self.by_image.get(&image.normalized()).cloned()
    }

    pub fn images(&self) -> Vec<ImageTag> {
        self.by_image.keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.by_image.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_image.is_empty()
    }

    /// The median host load besides the calls recorded by the models (the
    /// first, by image, that records one: models trained together record
    /// the same); zero when none does.
    pub fn host_base(&self) -> HostLoad {
        self.by_image
            .values()
            .find_map(|m| m.info().host_baseline.as_ref().map(HostBaseline::median))
            .unwrap_or_default()
    }
}

/// Why the registry could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("model {path} for {image}: {source}")]
    Explicit { path: PathBuf, image: ImageTag, source: ModelError },
    #[error("models directory {path}: {source}")]
    Directory { path: PathBuf, source: std::io::Error },
}

fn model_files(dir: &Path) -> Result<Vec<(PathBuf, Option<SystemTime>, u64)>, std::io::Error> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_model = path.extension().is_some_and(|e| e == "onnx" || e == "json");
        // Writers (trainer deploy) write a dot-file and rename it into place.
        let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if is_model && !hidden && path.is_file() {
            let meta = std::fs::metadata(&path)?;
            files.push((path, meta.modified().ok(), meta.len()));
        }
    }
    files.sort();
    Ok(files)
}

impl ModelRegistry {
    /// Loads the directory (skipping bad files, which are returned) and the
    /// explicit models (refusing any that fails).
    pub fn load(
        dir: Option<PathBuf>,
        explicit: Vec<ExplicitModel>,
    ) -> Result<(Self, Vec<Skipped>), RegistryError> {
        let registry = ModelRegistry { dir, explicit, current: RwLock::new(Arc::new(Models::default())) };
        let (models, skipped) = registry.build()?;
        *registry.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(models);
        Ok((registry, skipped))
    }

    /// The current generation. Hold on to it for the length of a call.
    pub fn current(&self) -> Arc<Models> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn build(&self) -> Result<(Models, Vec<Skipped>), RegistryError> {
        let mut models = Models::default();
        let mut skipped = Vec::new();
        if let Some(dir) = &self.dir {
            let files =
                model_files(dir).map_err(|source| RegistryError::Directory { path: dir.clone(), source })?;
            for (path, _, _) in &files {
                match ModelSet::load(path) {
                    Ok(set) => {
                        for m in set.into_models() {
                            models.by_image.insert(m.info().image_tag.normalized(), Arc::new(m));
                        }
                    }
                    Err(error) => skipped.push(Skipped { path: path.clone(), error }),
                }
            }
            models.fingerprint = files;
        }
        for e in &self.explicit {
            let m = Model::load_image(&e.path, &e.image).or_else(|err| match err {
                // An ONNX file from elsewhere may not name its image: take the user's word.
                ModelError::NoSuchImage { .. } => Model::load(&e.path),
                other => Err(other),
            });
            let m = m.map_err(|source| RegistryError::Explicit {
                path: e.path.clone(),
                image: e.image.clone(),
                source,
            })?;
            models.by_image.insert(e.image.normalized(), Arc::new(m));
        }
        Ok((models, skipped))
    }

    /// Rebuilds and swaps the set. On a directory error the old set stays.
    pub fn reload(&self) -> Result<Vec<Skipped>, RegistryError> {
        let (models, skipped) = self.build()?;
        let images = models.images();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(models);
        tracing::info!(?images, skipped = skipped.len(), "models reloaded");
        Ok(skipped)
    }

    /// True when the directory's model files changed since the current set was built.
    pub fn directory_changed(&self) -> bool {
        let Some(dir) = &self.dir else { return false };
        match model_files(dir) {
            Ok(files) => files != self.current().fingerprint,
            Err(_) => false,
        }
    }

    /// Polls the directory every `interval` and reloads on change; reloads on
    /// SIGHUP too. Runs until the registry is dropped.
    pub fn spawn_watcher(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            let mut tick = tokio::time::interval(interval);
            loop {
                let signalled = tokio::select! {
                    _ = tick.tick() => false,
                    Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => None } } => true,
                };
                let Some(registry) = weak.upgrade() else { return };
                if signalled || registry.directory_changed() {
                    match registry.reload() {
                        Ok(skipped) => report_skipped(&skipped),
                        Err(e) => tracing::warn!("model reload failed, keeping the current models: {e:#}"),
                    }
                }
            }
        })
    }
}

/// Logs each skipped file with its path and the reason.
pub fn report_skipped(skipped: &[Skipped]) {
    for s in skipped {
        tracing::warn!(path = %s.path.display(), "skipping model file: {:#}", s.error);
    }
}
