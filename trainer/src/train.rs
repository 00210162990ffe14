//! A training run: read, split, fit each model kind per image, score on the
//! held-out test rows, export, report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use hyperfake_core::ImageTag;
use hyperfake_model::{HostBaseline, LinearModelFile, ModelKind, Range, Spread};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, ImageRows, LoadOptions, Schema, Table, WORKER_OVERHEAD};
use crate::export::{self, ExportMeta};
use crate::forest::{self, Forest, ForestConfig};
use crate::linear::{self, LinearFit, RidgeConfig};
use crate::metrics::{self, Metrics};
use crate::progress::Progress;
use crate::report::{ImageReport, ModelReport, REPORT_FORMAT, Report, SpreadReport};
use crate::split::{self, SplitConfig};
use crate::spread::{self, MIN_ROWS_PER_REGION};

/// Number of runtime residual quantiles stored in each model file (0 %, 1 %, … 100 %).
pub const RESIDUAL_QUANTILES: usize = 101;
/// Residual quantiles come from the validation rows (out-of-sample errors)
/// when there are at least this many, else from the training rows.
const MIN_VALIDATION_ROWS_FOR_RESIDUALS: usize = 30;

/// Everything a training run needs.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub dbs: Vec<PathBuf>,
    pub table: Table,
    pub kinds: Vec<ModelKind>,
    /// The models directory; the run goes to `<out>/<run>/`.
    pub out: PathBuf,
    /// Run name; by default the first database's file stem.
    pub run: Option<String>,
    pub split: SplitConfig,
    pub ridge: RidgeConfig,
    pub forest: ForestConfig,
    /// Images with fewer training rows are skipped (and reported).
    pub min_train_rows: usize,
    pub plots: bool,
    /// Use the payload features the databases declare as inputs (off: the
    /// five fixed inputs only, e.g. to measure what the features add).
    pub payload_features: bool,
}

/// A fitted model of any kind.
#[derive(Clone, Debug)]
pub enum Fitted {
    Linear(LinearFit),
    Forest(Forest),
}

impl Fitted {
    pub fn predict(&self, x: &[f64]) -> Vec<f64> {
        match self {
            Fitted::Linear(f) => f.predict(x),
            Fitted::Forest(f) => f.predict(x),
        }
    }
}

/// Result of [`train`].
#[derive(Debug)]
pub struct TrainOutcome {
    pub run_dir: PathBuf,
    pub report: Report,
    /// The fitted models, by image and kind (for tests and the benchmark).
    pub models: BTreeMap<(ImageTag, ModelKind), Fitted>,
}

/// Rows of one image split into sets.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Sets {
    pub train_x: Vec<Vec<f64>>,
    pub train_y: Vec<Vec<f64>>,
    pub val_x: Vec<Vec<f64>>,
    pub val_y: Vec<Vec<f64>>,
    pub test_x: Vec<Vec<f64>>,
    pub test_y: Vec<Vec<f64>>,
    pub test_keys: Vec<String>,
}

impl Sets {
    pub fn from_rows(rows: &ImageRows, cfg: &SplitConfig) -> Result<Sets> {
        let s = cfg.split(&rows.rows)?;
        let pick = |idx: &[usize]| -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
            idx.iter().map(|&i| (rows.rows[i].x.clone(), rows.rows[i].y.clone())).unzip()
        };
        let (train_x, train_y) = pick(&s.train);
        let (val_x, val_y) = pick(&s.val);
        let (test_x, test_y) = pick(&s.test);
        let test_keys = s.test.iter().map(|&i| rows.rows[i].key.clone()).collect();
        Ok(Sets { train_x, train_y, val_x, val_y, test_x, test_y, test_keys })
    }
}

/// Fits one kind on the training rows.
pub fn fit_kind(kind: ModelKind, sets: &Sets, cfg: &TrainConfig) -> Result<Fitted> {
    Ok(match kind {
        ModelKind::Linear => Fitted::Linear(linear::fit_ols(&sets.train_x, &sets.train_y)?),
        ModelKind::Ridge => Fitted::Linear(linear::fit_ridge(&sets.train_x, &sets.train_y, &cfg.ridge)?),
        ModelKind::RandomForest => Fitted::Forest(forest::fit(&sets.train_x, &sets.train_y, &cfg.forest)?),
        ModelKind::External => anyhow::bail!("the trainer cannot fit an external model"),
    })
}

/// Metrics per target, by target name (`targets` in the model's output order).
pub fn score(
    model: &dyn Fn(&[f64]) -> Vec<f64>,
    targets: &[String],
    x: &[Vec<f64>],
    y: &[Vec<f64>],
) -> BTreeMap<String, Metrics> {
    let pred: Vec<Vec<f64>> = x.iter().map(|x| model(x.as_slice())).collect();
    let mut out = BTreeMap::new();
    for (t, name) in targets.iter().enumerate() {
        let a: Vec<f64> = y.iter().map(|r| r[t]).collect();
        let p: Vec<f64> = pred.iter().map(|r| r[t]).collect();
        if let Some(m) = Metrics::compute(&a, &p) {
            out.insert(name.to_string(), m);
        }
    }
    out
}

/// Runs training end to end and writes `<out>/<run>/`.
pub fn train(cfg: &TrainConfig, progress: &Progress) -> Result<TrainOutcome> {
    cfg.split.validate()?;
    let load_bar = progress.bar("loading rows");
    let opts = LoadOptions { payload_features: cfg.payload_features };
    let ds = Dataset::load_with(&cfg.dbs, cfg.table, opts, &load_bar)?;
    for note in &ds.notes {
        tracing::warn!("{note}");
    }
    load_bar.finish();
    let run = cfg.run.clone().unwrap_or_else(|| ds.run_name());
    let run_dir = cfg.out.join(&run);
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let trained_at = hyperfake_core::time::UtcTime::now().rfc3339();
    let sources: Vec<String> = ds.sources.iter().map(|p| p.display().to_string()).collect();

    let fit_bar = progress.bar("fitting models");
    fit_bar.set_length((ds.images.len() * cfg.kinds.len()) as u64);
    let mut json_files: BTreeMap<ModelKind, LinearModelFile> = BTreeMap::new();
    let mut images = Vec::new();
    let mut models = BTreeMap::new();
    for (tag, rows) in &ds.images {
        let (report, fitted) = train_image(
            cfg,
            tag,
            rows,
            &ds.host_baseline,
            &run,
            &run_dir,
            &trained_at,
            &sources,
            &mut json_files,
            &fit_bar,
        )
        .with_context(|| format!("training image {tag}"))?;
        images.push(report);
        for (k, f) in fitted {
            models.insert((tag.clone(), k), f);
        }
    }
    fit_bar.finish();
    for (kind, file) in &json_files {
        export::write_json(&run_dir.join(format!("{kind}.json")), file)?;
    }
    let report = Report {
        format: REPORT_FORMAT,
        run,
        created_at: trained_at,
        sources,
        table: cfg.table,
        split: cfg.split,
        ridge: cfg.ridge.clone(),
        forest: cfg.forest.clone(),
        dropped_no_image: ds.dropped_no_image,
        payload_features_used: cfg.payload_features,
        notes: ds.notes.clone(),
        images,
    };
    report.write(&run_dir)?;
    Ok(TrainOutcome { run_dir, report, models })
}

#[allow(clippy::too_many_arguments)]
fn train_image(
    cfg: &TrainConfig,
    tag: &ImageTag,
    rows: &ImageRows,
    host_baseline: &Option<HostBaseline>,
    run: &str,
    run_dir: &Path,
    trained_at: &str,
    sources: &[String],
    json_files: &mut BTreeMap<ModelKind, LinearModelFile>,
    bar: &ProgressBar,
) -> Result<(ImageReport, Vec<(ModelKind, Fitted)>)> {
    let sets = Sets::from_rows(rows, &cfg.split)?;
    let schema = &rows.schema;
    let mut report = ImageReport {
        image_tag: tag.to_string(),
        rows_read: rows.rows.len() as u64 + rows.dropped_null,
        rows_dropped_null: rows.dropped_null,
        rows_train: sets.train_x.len(),
        rows_val: sets.val_x.len(),
        rows_test: sets.test_x.len(),
        test_fingerprint: split::fingerprint(sets.test_keys.iter().map(String::as_str)),
        skipped: None,
        models: vec![],
        inputs: schema.inputs.clone(),
        targets: schema.targets.clone(),
        nulls_by_column: rows.nulls_by_column.clone(),
        payload_feature_defaults: BTreeMap::new(),
        cold_starts: rows.cold_start_ns.len(),
    };
    if sets.train_x.len() < cfg.min_train_rows || sets.test_x.is_empty() {
        let why = format!(
            "{} training and {} test rows (need at least {} training rows and 1 test row)",
            sets.train_x.len(),
            sets.test_x.len(),
            cfg.min_train_rows
        );
        tracing::warn!(image = %tag, "skipped: {why}");
        report.skipped = Some(why);
        bar.inc(cfg.kinds.len() as u64);
        return Ok((report, vec![]));
    }
    let range = |vals: Vec<f64>| Range::of(vals).unwrap_or(Range { min: 0.0, max: 0.0 });
    let input_ranges: Vec<Range> =
        (0..schema.n_inputs()).map(|j| range(sets.train_x.iter().map(|r| r[j]).collect())).collect();
    let output_ranges: Vec<Range> =
        (0..schema.n_targets()).map(|t| range(sets.train_y.iter().map(|r| r[t]).collect())).collect();
    let defaults = payload_feature_defaults(schema, &sets.train_x);
    report.payload_feature_defaults =
        schema.payload_features.iter().map(|f| f.name().to_string()).zip(defaults.iter().copied()).collect();
    let cold_start_ns_quantiles = spread::cold_start_quantiles(&rows.cold_start_ns);
    // Spreads come from held-out rows (validation and test); with too few of
    // them, from the training rows (and the report says so).
    let held_x: Vec<&Vec<f64>> = sets.val_x.iter().chain(&sets.test_x).collect();
    let held_y: Vec<&Vec<f64>> = sets.val_y.iter().chain(&sets.test_y).collect();
    let held_out = held_x.len() >= MIN_ROWS_PER_REGION;
    let (spread_x, spread_y, spread_rows_from) = if held_out {
        (held_x, held_y, "held-out (validation + test)")
    } else {
        (sets.train_x.iter().collect(), sets.train_y.iter().collect(), "training (too few held-out rows)")
    };
    let overhead = schema.target(WORKER_OVERHEAD);
    let file_stem = tag.name().replace('/', "_");
    let mut fitted_all = vec![];
    for &kind in &cfg.kinds {
        bar.set_message(format!("{tag} {kind}"));
        let started = Instant::now();
        let fitted = fit_kind(kind, &sets, cfg).with_context(|| format!("fitting {kind}"))?;
        let fit_seconds = started.elapsed().as_secs_f64();
        let predict = |x: &[f64]| fitted.predict(x);
        let test = score(&predict, &schema.targets, &sets.test_x, &sets.test_y);
        let validation = score(&predict, &schema.targets, &sets.val_x, &sets.val_y);
        let (rx, ry) = if sets.val_x.len() >= MIN_VALIDATION_ROWS_FOR_RESIDUALS {
            (&sets.val_x, &sets.val_y)
        } else {
            (&sets.train_x, &sets.train_y)
        };
        let residuals: Vec<f64> = rx.iter().zip(ry).map(|(x, y)| y[0] - predict(x.as_slice())[0]).collect();
        let spread_preds: Vec<Vec<f64>> = spread_x.iter().map(|x| predict(x.as_slice())).collect();
        let spread_of = |t: usize| -> Option<Spread> {
            let pairs: Vec<(f64, f64)> =
                spread_preds.iter().zip(&spread_y).map(|(p, y)| (p[t], y[t] - p[t])).collect();
            spread::spread_of(&pairs)
        };
        let runtime_spread = spread_of(0);
        // Held-out predictions against every row's runtime, only where the
        // prediction has no skill: see `spread::runtime_quantile_map`.
        let predicted: Vec<f64> = spread_preds.iter().map(|p| p[0]).collect();
        let held_actual: Vec<f64> = spread_y.iter().map(|y| y[0]).collect();
        let skill = metrics::Metrics::compute(&held_actual, &predicted).and_then(|m| m.r2);
        let runtime_quantile_map = runtime_spread
            .as_ref()
            .filter(|_| held_out && skill.is_some_and(|r2| r2 <= spread::MAP_MAX_R2))
            .and_then(|s| {
                let actual: Vec<f64> =
                    sets.train_y.iter().chain(&sets.val_y).chain(&sets.test_y).map(|y| y[0]).collect();
                spread::runtime_quantile_map(&predicted, &actual, s, output_ranges[0])
            });
        let overhead_spread = overhead.and_then(spread_of);
        let meta = ExportMeta {
            image_tag: tag.to_string(),
            kind,
            schema: schema.clone(),
            training_run: run.to_string(),
            training_sources: sources.to_vec(),
            trained_at: trained_at.to_string(),
            sample_count: sets.train_x.len() as u64,
            input_ranges: input_ranges.clone(),
            output_ranges: output_ranges.clone(),
            runtime_residual_quantiles: metrics::quantiles(&residuals, RESIDUAL_QUANTILES),
            test_r2: schema.targets.iter().map(|t| test.get(t).and_then(|m| m.r2)).collect(),
            payload_feature_defaults: defaults.clone(),
            runtime_spread: runtime_spread.clone(),
            overhead_spread: overhead_spread.clone(),
            cold_start_ns_quantiles: cold_start_ns_quantiles.clone(),
            host_baseline: host_baseline.clone(),
            runtime_quantile_map,
        };
        let onnx_rel = format!("{kind}/{file_stem}.onnx");
        let mut files = vec![onnx_rel.clone()];
        let (mut ridge_penalties, mut forest_nodes) = (None, None);
        match &fitted {
            Fitted::Linear(fit) => {
                export::write_linear_onnx(&run_dir.join(&onnx_rel), fit, &meta)?;
                json_files.entry(kind).or_default().insert(tag.to_string(), meta.json_entry(fit));
                files.push(format!("{kind}.json"));
                ridge_penalties = fit.penalties.clone();
            }
            Fitted::Forest(forest) => {
                export::write_forest_onnx(&run_dir.join(&onnx_rel), forest, &meta)?;
                forest_nodes = Some(forest.node_count());
            }
        }
        let plot = if cfg.plots {
            let rel = format!("plots/{file_stem}.{kind}.svg");
            let pred: Vec<Vec<f64>> = sets.test_x.iter().map(|x| predict(x.as_slice())).collect();
            crate::plots::write(
                &run_dir.join(&rel),
                &format!("{tag} — {kind} (test rows)"),
                &schema.targets,
                &sets.test_y,
                &pred,
            )?;
            Some(rel)
        } else {
            None
        };
        tracing::info!(
            image = %tag,
            %kind,
            fit_seconds,
            runtime_r2 = ?test.get(&schema.targets[0]).and_then(|m| m.r2),
            "fitted"
        );
        let spread_report = |s: &Option<Spread>| {
            s.as_ref().map(|s| SpreadReport {
                regions: s.regions().len(),
                rows: spread_x.len(),
                rows_from: spread_rows_from.to_string(),
            })
        };
        report.models.push(ModelReport {
            kind,
            fit_seconds,
            files,
            ridge_penalties,
            forest_nodes,
            test,
            validation,
            plot,
            runtime_spread: spread_report(&runtime_spread),
            overhead_spread: spread_report(&overhead_spread),
        });
        fitted_all.push((kind, fitted));
        bar.inc(1);
    }
    Ok((report, fitted_all))
}

/// The training median of each payload feature (inputs 5, 6, …): what a
/// consumer uses when a call's value cannot be computed.
pub fn payload_feature_defaults(schema: &Schema, train_x: &[Vec<f64>]) -> Vec<f64> {
    let base = schema.n_inputs() - schema.payload_features.len();
    (base..schema.n_inputs())
        .map(|j| {
            let v: Vec<f64> = train_x.iter().map(|r| r[j]).collect();
            let mut sorted = v;
            sorted.sort_by(f64::total_cmp);
            let m = metrics::quantile_sorted(&sorted, 0.5);
            if m.is_finite() { m } else { 0.0 }
        })
        .collect()
}
