//! Shared harness: a temporary directory with synthetic training databases,
//! and a training configuration small enough for tests.

use std::path::{Path, PathBuf};

use hyperfake_model::ModelKind;
use tempfile::TempDir;
use trainer::data::Table;
use trainer::forest::ForestConfig;
use trainer::linear::{RidgeConfig, default_penalties};
use trainer::split::{SplitConfig, SplitMode};
use trainer::synth::SyntheticRun;
use trainer::{Progress, TrainConfig, TrainOutcome};

/// A temporary directory holding databases and model runs; removed on drop.
pub(crate) struct TestContext {
    pub(crate) dir: TempDir,
}

impl TestContext {
    pub(crate) fn new() -> TestContext {
        TestContext { dir: tempfile::Builder::new().prefix("trainer-it-").tempdir().unwrap() }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `run` to `<dir>/training_data/<name>.db`.
    pub(crate) fn with_db(&self, name: &str, run: &SyntheticRun) -> PathBuf {
        let dir = self.path().join("training_data");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.db"));
        run.write(&path).unwrap();
        path
    }

    pub(crate) fn models_dir(&self) -> PathBuf {
        self.path().join("models")
    }

    /// A configuration with small forests so tests stay quick.
    pub(crate) fn config(&self, dbs: Vec<PathBuf>, kinds: Vec<ModelKind>) -> TrainConfig {
        TrainConfig {
            dbs,
            table: Table::TrainingData,
            kinds,
            out: self.models_dir(),
            run: None,
            split: SplitConfig { mode: SplitMode::Random, seed: 7, val_fraction: 0.15, test_fraction: 0.15 },
            ridge: RidgeConfig { penalties: default_penalties(), folds: 3, seed: 7 },
            forest: ForestConfig {
                n_trees: 20,
                max_depth: Some(10),
                min_samples_leaf: 2,
                min_samples_split: 2,
                max_features: 5,
                threads: 2,
                seed: 7,
            },
            min_train_rows: 20,
            plots: true,
            payload_features: true,
        }
    }

    pub(crate) fn train(&self, cfg: &TrainConfig) -> TrainOutcome {
        match trainer::train(cfg, &Progress::hidden()) {
            Ok(o) => o,
            Err(e) => panic!("training failed: {e:#}\nfiles: {:#?}", self.listing()),
        }
    }

    /// Every file under the directory, for failure messages.
    pub(crate) fn listing(&self) -> Vec<PathBuf> {
        fn walk(p: &Path, out: &mut Vec<PathBuf>) {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    let p = e.path();
                    if p.is_dir() { walk(&p, out) } else { out.push(p) }
                }
            }
        }
        let mut out = vec![];
        walk(self.path(), &mut out);
        out.sort();
        out
    }
}

/// All three kinds.
pub(crate) fn all_kinds() -> Vec<ModelKind> {
    vec![ModelKind::Linear, ModelKind::Ridge, ModelKind::RandomForest]
}

/// `a` and `b` agree to `rel` relative to the larger magnitude.
pub(crate) fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-12)
}
