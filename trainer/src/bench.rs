//! `trainer bench`: the random forest against scikit-learn on the same rows
//! and hyper-parameters, linear/ridge fit time on many rows, and the
//! per-prediction latency of every exported model kind through
//! `hyperfake-model`. Speed is measured here, never asserted in tests.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use hyperfake_core::ImageTag;
use hyperfake_model::{Features, Model, ModelKind, Range, TARGETS};
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Sample, Schema, Table};
use crate::export::{self, ExportMeta};
use crate::forest::{self, ForestConfig};
use crate::linear::{self, RidgeConfig, default_penalties};
use crate::metrics::Metrics;
use crate::progress::Progress;
use crate::report::{num, opt};
use crate::split::unit_hash;
use crate::synth::{KNOWN_LINEAR, SyntheticRun, Truth};

#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub out: PathBuf,
    pub rows: usize,
    pub db: Option<PathBuf>,
    pub trees: usize,
    pub max_depth: u16,
    pub threads: usize,
    pub linear_rows: usize,
    pub python: String,
    pub seed: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchResult {
    pub created_at: String,
    pub cores: usize,
    /// The build profile (`hyperfake_core::build::profile`).
    #[serde(default)]
    pub profile: String,
    pub forest: ForestBench,
    pub linear: LinearBench,
    pub latency: Vec<LatencyBench>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ForestBench {
    pub source: String,
    pub rows_train: usize,
    pub rows_test: usize,
    pub n_estimators: usize,
    pub max_depth: u16,
    pub n_jobs: usize,
    /// hyperfake (smartcore): three single-target forests, fitted concurrently.
    pub hyperfake: FitResult,
    /// scikit-learn, one multi-output forest (how it is usually used).
    pub sklearn_multi_output: Option<FitResult>,
    /// scikit-learn, three single-target forests (the same work as ours).
    pub sklearn_per_target: Option<FitResult>,
    pub sklearn_version: Option<String>,
    /// Why scikit-learn did not run, if it did not.
    pub sklearn_error: Option<String>,
    pub verdict: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FitResult {
    pub fit_seconds: f64,
    /// Test R² per target.
    pub r2: [Option<f64>; 3],
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LinearBench {
    pub rows: usize,
    pub ols_fit_seconds: f64,
    /// Ridge including the cross-validation over the penalty grid.
    pub ridge_cv_fit_seconds: f64,
    pub ridge_folds: usize,
    pub ridge_penalties: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LatencyBench {
    pub kind: ModelKind,
    pub format: String,
    pub file_bytes: u64,
    /// Mean time of one `predict_one` call (one row), µs.
    pub single_row_us: f64,
    /// Mean time per row of a 1 000-row `predict`, µs.
    pub batch_per_row_us: f64,
}

pub fn run(cfg: &BenchConfig, progress: &Progress) -> Result<BenchResult> {
    let bar = progress.bar("bench");
    bar.set_length(4);
    let tmp = tempfile::tempdir()?;
    bar.set_message("forest vs scikit-learn");
    let (forest_bench, forest_model) = bench_forest(cfg, tmp.path())?;
    bar.inc(1);
    bar.set_message("linear and ridge fit time");
    let (linear_bench, lin, ridge) = bench_linear(cfg)?;
    bar.inc(1);
    bar.set_message("prediction latency");
    let latency = bench_latency(tmp.path(), &forest_model, &lin, &ridge)?;
    bar.inc(2);
    bar.finish();
    let result = BenchResult {
        created_at: hyperfake_core::time::UtcTime::now().rfc3339(),
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        profile: hyperfake_core::build::profile(cfg!(debug_assertions)),
        forest: forest_bench,
        linear: linear_bench,
        latency,
    };
    let mut json = serde_json::to_string_pretty(&result)?;
    json.push('\n');
    export::write_atomic(&cfg.out.join("bench.json"), json.as_bytes())?;
    export::write_atomic(&cfg.out.join("bench.md"), result.markdown().as_bytes())?;
    Ok(result)
}

fn forest_rows(cfg: &BenchConfig) -> Result<(String, Vec<Sample>)> {
    match &cfg.db {
        Some(db) => {
            let ds = Dataset::load(
                std::slice::from_ref(db),
                Table::TrainingData,
                &indicatif::ProgressBar::hidden(),
            )?;
            let (tag, rows) = ds
                .images
                .into_iter()
                .max_by_key(|(_, r)| r.rows.len())
                .context("the database has no complete rows")?;
            Ok((format!("{} ({tag}, {} rows)", db.display(), rows.rows.len()), rows.rows))
        }
        None => {
            let run = SyntheticRun::new(cfg.seed)
                .with_image("bench:latest", Truth::Nonlinear)
                .with_rows_per_image(cfg.rows);
            let mut rows = run.samples(0);
            for (i, r) in rows.iter_mut().enumerate() {
                r.key = i.to_string();
            }
            Ok((format!("synthetic nonlinear function, {} rows", rows.len()), rows))
        }
    }
}

fn bench_forest(cfg: &BenchConfig, tmp: &Path) -> Result<(ForestBench, forest::Forest)> {
    let (source, rows) = forest_rows(cfg)?;
    let (train, test): (Vec<&Sample>, Vec<&Sample>) =
        rows.iter().partition(|r| unit_hash(cfg.seed, &r.key) >= 0.2);
    // The benchmark compares like with like: the five fixed inputs and three targets.
    let tx: Vec<Vec<f64>> = train.iter().map(|r| r.x[..5].to_vec()).collect();
    let ty: Vec<Vec<f64>> = train.iter().map(|r| r.y[..3].to_vec()).collect();
    let sx: Vec<Vec<f64>> = test.iter().map(|r| r.x[..5].to_vec()).collect();
    let sy: Vec<Vec<f64>> = test.iter().map(|r| r.y[..3].to_vec()).collect();
    let fcfg = ForestConfig {
        n_trees: cfg.trees,
        max_depth: Some(cfg.max_depth),
        min_samples_leaf: 1,
        min_samples_split: 2,
        max_features: 5,
        threads: cfg.threads,
        seed: cfg.seed,
    };
    let started = Instant::now();
    let forest = forest::fit(&tx, &ty, &fcfg)?;
    let fit_seconds = started.elapsed().as_secs_f64();
    let pred: Vec<Vec<f64>> = sx.iter().map(|x| forest.predict(x)).collect();
    let hyperfake = FitResult { fit_seconds, r2: r2s(&sy, &pred) };

    write_csv(&tmp.join("train.csv"), &tx, &ty)?;
    write_csv(&tmp.join("test.csv"), &sx, &sy)?;
    let sk = run_sklearn(cfg, tmp);
    let (multi, per_target, version, error) = match sk {
        Ok(s) => (Some(s.multi), Some(s.per_target), Some(s.version), None),
        Err(e) => (None, None, None, Some(format!("{e:#}"))),
    };
    let verdict = match &per_target {
        None => "scikit-learn did not run; no comparison".to_string(),
        Some(sk) => {
            let dr2: Vec<f64> = (0..3).filter_map(|t| Some(hyperfake.r2[t]? - sk.r2[t]?)).collect();
            let equal_r2 = dr2.iter().all(|d| d.abs() <= 0.01);
            let faster = hyperfake.fit_seconds <= sk.fit_seconds;
            format!(
                "hyperfake fit {:.2} s vs scikit-learn {:.2} s on the same three single-target forests ({}); \
                 test R² differences {:?} ({}).",
                hyperfake.fit_seconds,
                sk.fit_seconds,
                if faster { "goal met: not slower" } else { "goal missed: slower" },
                dr2.iter().map(|d| (d * 1e4).round() / 1e4).collect::<Vec<_>>(),
                if equal_r2 { "equal within ±0.01" } else { "NOT within ±0.01" }
            )
        }
    };
    Ok((
        ForestBench {
            source,
            rows_train: tx.len(),
            rows_test: sx.len(),
            n_estimators: cfg.trees,
            max_depth: cfg.max_depth,
            n_jobs: cfg.threads,
            hyperfake,
            sklearn_multi_output: multi,
            sklearn_per_target: per_target,
            sklearn_version: version,
            sklearn_error: error,
            verdict,
        },
        forest,
    ))
}

fn r2s(actual: &[Vec<f64>], pred: &[Vec<f64>]) -> [Option<f64>; 3] {
    std::array::from_fn(|t| {
        let a: Vec<f64> = actual.iter().map(|r| r[t]).collect();
        let p: Vec<f64> = pred.iter().map(|r| r[t]).collect();
        Metrics::compute(&a, &p).and_then(|m| m.r2)
    })
}

fn write_csv(path: &Path, x: &[Vec<f64>], y: &[Vec<f64>]) -> Result<()> {
    let mut s = String::with_capacity(x.len() * 120);
    for (x, y) in x.iter().zip(y) {
        let _ = writeln!(s, "{},{},{},{},{},{},{},{}", x[0], x[1], x[2], x[3], x[4], y[0], y[1], y[2]);
    }
    std::fs::write(path, s)?;
    Ok(())
}

struct SklearnResult {
    multi: FitResult,
    per_target: FitResult,
    version: String,
}

const SKLEARN_SCRIPT: &str = r#"
import json, sys, time
import numpy as np
import sklearn
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import r2_score
d, n, depth, jobs, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
tr = np.loadtxt(d + "/train.csv", delimiter=",")
te = np.loadtxt(d + "/test.csv", delimiter=",")
X, Y, Xt, Yt = tr[:, :5], tr[:, 5:], te[:, :5], te[:, 5:]
def make():
    return RandomForestRegressor(n_estimators=n, max_depth=depth, n_jobs=jobs, max_features=1.0,
                                 min_samples_leaf=1, min_samples_split=2, bootstrap=True, random_state=seed)
t = time.perf_counter(); m = make().fit(X, Y); multi_s = time.perf_counter() - t
P = m.predict(Xt)
multi_r2 = [r2_score(Yt[:, i], P[:, i]) for i in range(3)]
per_s, per_r2 = 0.0, []
for i in range(3):
    t = time.perf_counter(); m = make().fit(X, Y[:, i]); per_s += time.perf_counter() - t
    per_r2.append(r2_score(Yt[:, i], m.predict(Xt)))
print(json.dumps({"version": sklearn.__version__, "multi": [multi_s, multi_r2], "per": [per_s, per_r2]}))
"#;

fn run_sklearn(cfg: &BenchConfig, dir: &Path) -> Result<SklearnResult> {
    let out = Command::new(&cfg.python)
        .arg("-c")
        .arg(SKLEARN_SCRIPT)
        .arg(dir)
        .arg(cfg.trees.to_string())
        .arg(cfg.max_depth.to_string())
        .arg(cfg.threads.to_string())
        .arg(cfg.seed.to_string())
        .output()
        .with_context(|| {
            format!(
                "cannot run {} (install Python 3 with scikit-learn: pip install scikit-learn)",
                cfg.python
            )
        })?;
    if !out.status.success() {
        bail!(
            "{} with scikit-learn failed ({}); is scikit-learn installed (pip install scikit-learn)? stderr: {}",
            cfg.python,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    #[derive(Deserialize)]
    struct Out {
        version: String,
        multi: (f64, [f64; 3]),
        per: (f64, [f64; 3]),
    }
    let o: Out =
        serde_json::from_slice(&out.stdout).context("unexpected output from the scikit-learn script")?;
    Ok(SklearnResult {
        multi: FitResult { fit_seconds: o.multi.0, r2: o.multi.1.map(Some) },
        per_target: FitResult { fit_seconds: o.per.0, r2: o.per.1.map(Some) },
        version: o.version,
    })
}

fn bench_linear(cfg: &BenchConfig) -> Result<(LinearBench, linear::LinearFit, linear::LinearFit)> {
    let run = SyntheticRun::new(cfg.seed)
        .with_image("bench-linear:latest", Truth::Linear { coeffs: KNOWN_LINEAR, noise_sd: [1e4, 1e-4, 1e3] })
        .with_rows_per_image(cfg.linear_rows);
    let rows = run.samples(0);
    let x: Vec<Vec<f64>> = rows.iter().map(|r| r.x.clone()).collect();
    let y: Vec<Vec<f64>> = rows.iter().map(|r| r.y.clone()).collect();
    drop(rows);
    let started = Instant::now();
    let ols = linear::fit_ols(&x, &y)?;
    let ols_s = started.elapsed().as_secs_f64();
    let rcfg = RidgeConfig { penalties: default_penalties(), folds: 5, seed: cfg.seed };
    let started = Instant::now();
    let ridge = linear::fit_ridge(&x, &y, &rcfg)?;
    let ridge_s = started.elapsed().as_secs_f64();
    Ok((
        LinearBench {
            rows: x.len(),
            ols_fit_seconds: ols_s,
            ridge_cv_fit_seconds: ridge_s,
            ridge_folds: rcfg.folds,
            ridge_penalties: rcfg.penalties.len(),
        },
        ols,
        ridge,
    ))
}

fn bench_latency(
    dir: &Path,
    forest: &forest::Forest,
    ols: &linear::LinearFit,
    ridge: &linear::LinearFit,
) -> Result<Vec<LatencyBench>> {
    let zero = Range { min: 0.0, max: 0.0 };
    let meta = |kind| ExportMeta {
        image_tag: "bench:latest".into(),
        kind,
        schema: Schema::base(),
        training_run: "bench".into(),
        training_sources: vec![],
        trained_at: hyperfake_core::time::UtcTime::now().rfc3339(),
        sample_count: 0,
        input_ranges: vec![zero; 5],
        output_ranges: vec![zero; 3],
        runtime_residual_quantiles: vec![],
        test_r2: vec![None; 3],
        payload_feature_defaults: vec![],
        runtime_spread: None,
        overhead_spread: None,
        cold_start_ns_quantiles: None,
        host_baseline: None,
        runtime_quantile_map: None,
    };
    let mut files: Vec<(ModelKind, &str, PathBuf)> = vec![];
    for (kind, fit) in [(ModelKind::Linear, ols), (ModelKind::Ridge, ridge)] {
        let p = dir.join(format!("{kind}.onnx"));
        export::write_linear_onnx(&p, fit, &meta(kind))?;
        files.push((kind, "onnx", p));
        let j = dir.join(format!("{kind}.json"));
        let mut file = hyperfake_model::LinearModelFile::new();
        file.insert("bench:latest".into(), meta(kind).json_entry(fit));
        export::write_json(&j, &file)?;
        files.push((kind, "json", j));
    }
    let p = dir.join("random-forest.onnx");
    export::write_forest_onnx(&p, forest, &meta(ModelKind::RandomForest))?;
    files.push((ModelKind::RandomForest, "onnx", p));

    let rows: Vec<Features> =
        (0..1000u16).map(|i| [f32::from(i) * 1000.0, 3.0, f32::from(i % 16 + 1), 0.5, 1.2e9]).collect();
    let mut out = vec![];
    for (kind, format, path) in files {
        let model = Model::load_image(&path, &ImageTag::from("bench:latest"))?;
        for r in rows.iter().take(50) {
            model.predict_one(*r)?;
        }
        let reps = 2000;
        let started = Instant::now();
        for i in 0..reps {
            std::hint::black_box(model.predict_one(rows[i % rows.len()])?);
        }
        let single = started.elapsed().as_secs_f64() / reps as f64 * 1e6;
        let started = Instant::now();
        for _ in 0..5 {
            std::hint::black_box(model.predict(&rows)?);
        }
        let batch = started.elapsed().as_secs_f64() / (5 * rows.len()) as f64 * 1e6;
        out.push(LatencyBench {
            kind,
            format: format.into(),
            file_bytes: std::fs::metadata(&path)?.len(),
            single_row_us: single,
            batch_per_row_us: batch,
        });
    }
    Ok(out)
}

/// Why the single-target forests are the like-for-like comparison.
const MULTI_OUTPUT_NOTE: &str = "scikit-learn's multi-output forest picks splits by the summed MSE of the \
unscaled targets, so the runtime (ns, values around 10⁶) decides every split and the CPU target \
(cores, around 1) is fitted poorly; hyperfake fits one forest per target, so scikit-learn's three \
single-target forests are the like-for-like comparison. Timings are wall-clock on a 2-core machine \
shared with other builds: compare within one run, not across runs.\n\n";

impl BenchResult {
    pub fn markdown(&self) -> String {
        let f = &self.forest;
        let mut s = format!(
            "# Trainer benchmark\n\n{} on {} cores; build profile: {}.\n\n## Random forest vs scikit-learn\n\n\
             Rows: {} ({} train, {} test). n_estimators={}, max_depth={}, n_jobs={}, max_features=all, \
             min_samples_leaf=1, bootstrap.\n\n\
             | implementation | fit s | R² {} | R² {} | R² {} |\n|---|---:|---:|---:|---:|\n",
            self.created_at,
            self.cores,
            self.profile,
            f.source,
            f.rows_train,
            f.rows_test,
            f.n_estimators,
            f.max_depth,
            f.n_jobs,
            TARGETS[0],
            TARGETS[1],
            TARGETS[2]
        );
        let mut row = |name: &str, r: &FitResult| {
            let _ = writeln!(
                s,
                "| {name} | {:.2} | {} | {} | {} |",
                r.fit_seconds,
                opt(r.r2[0], 4),
                opt(r.r2[1], 4),
                opt(r.r2[2], 4)
            );
        };
        row("hyperfake (smartcore, 3 single-target forests)", &f.hyperfake);
        if let Some(r) = &f.sklearn_per_target {
            row("scikit-learn, 3 single-target forests", r);
        }
        if let Some(r) = &f.sklearn_multi_output {
            row("scikit-learn, 1 multi-output forest", r);
        }
        if let Some(v) = &f.sklearn_version {
            let _ = writeln!(s, "\nscikit-learn {v}.");
        }
        if let Some(e) = &f.sklearn_error {
            let _ = writeln!(s, "\n**scikit-learn did not run:** {e}");
        }
        let _ = writeln!(s, "\n{}\n", f.verdict);
        s.push_str(MULTI_OUTPUT_NOTE);
        let l = &self.linear;
        let _ = writeln!(
            s,
            "## Linear and ridge fit time\n\n{} rows: OLS {:.2} s; ridge with {}-fold cross-validation over {} \
             penalties (then a refit per target) {:.2} s.\n",
            l.rows, l.ols_fit_seconds, l.ridge_folds, l.ridge_penalties, l.ridge_cv_fit_seconds
        );
        s.push_str(
            "## Prediction latency (hyperfake-model)\n\n| model | file | size | one row µs | per row in a batch of 1000 µs |\n\
             |---|---|---:|---:|---:|\n",
        );
        for x in &self.latency {
            let _ = writeln!(
                s,
                "| {} | {} | {} B | {} | {} |",
                x.kind,
                x.format,
                x.file_bytes,
                num(x.single_row_us),
                num(x.batch_per_row_us)
            );
        }
        s
    }
}
