//! Copies a run's model files into a directory a fake worker watches. Each
//! file is checked to load first, then written to a temporary name and
//! renamed, so a watcher never sees a partial or broken model.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use hyperfake_model::{Model, ModelKind, ModelSet};

use crate::export::write_atomic;

/// What to deploy from a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DeployFormat {
    /// `<kind>/<image>.onnx` files.
    Onnx,
    /// `<kind>.json` (linear and ridge only).
    Json,
}

/// Deploys `kind`'s files of `run_dir` into `to`; returns the files written.
pub fn deploy(run_dir: &Path, to: &Path, kind: ModelKind, format: DeployFormat) -> Result<Vec<PathBuf>> {
    let sources: Vec<PathBuf> = match format {
        DeployFormat::Json => {
            if kind == ModelKind::RandomForest {
                bail!("random-forest models exist only as ONNX; deploy them with --format onnx");
            }
            vec![run_dir.join(format!("{kind}.json"))]
        }
        DeployFormat::Onnx => {
            let dir = run_dir.join(kind.as_str());
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .with_context(|| format!("{} has no {kind} models ({})", run_dir.display(), dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
                .collect();
            files.sort();
            files
        }
    };
    if sources.is_empty() {
        bail!("{} has no {kind} model files to deploy", run_dir.display());
    }
    // Check everything before writing anything.
    for f in &sources {
        match format {
            DeployFormat::Onnx => Model::load(f).map(|_| ())?,
            DeployFormat::Json => ModelSet::load(f).map(|_| ())?,
        }
    }
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let mut written = Vec::new();
    for f in &sources {
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let name = f.file_name().context("model file without a name")?;
        let dest = to.join(name);
        write_atomic(&dest, &bytes)?;
        written.push(dest);
    }
    Ok(written)
}
