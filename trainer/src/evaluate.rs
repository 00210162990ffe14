//! Scores an existing model file (ours or one produced elsewhere, such as
//! HyperFake's PyTorch ONNX export) on a training database.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use hyperfake_core::ImageTag;
use hyperfake_core::format::{self, Unit};
use hyperfake_model::{ALL_TARGETS, ModelSet};
use serde::{Deserialize, Serialize};

use crate::ceiling::{self, NoiseCeiling};
use crate::data::{Dataset, LoadOptions, Table, unit_of};
use crate::metrics::Metrics;
use crate::progress::Progress;
use crate::report::{MetricColumns, ReportTable, split_name};
use crate::split::SplitConfig;
use crate::train::Sets;

#[derive(Clone, Debug)]
pub struct EvalConfig {
    /// A `.onnx` file or a `.json` linear-model file.
    pub model: PathBuf,
    pub dbs: Vec<PathBuf>,
    pub table: Table,
    /// Only this image (default: every image the file has a model for).
    pub image: Option<ImageTag>,
    /// Score only the test rows of this split (to compare with a training
    /// report); by default every row.
    pub split: Option<SplitConfig>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub model: String,
    pub sources: Vec<String>,
    pub table: Table,
    /// "all rows" or "test rows of split …".
    pub rows_used: String,
    pub images: Vec<ImageEvaluation>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageEvaluation {
    pub image_tag: String,
    pub kind: String,
    pub rows: usize,
    pub rows_dropped_null: u64,
    pub metrics: BTreeMap<String, Metrics>,
    /// Per target, the R² a perfect function of the payload features could
    /// reach on these rows ([`crate::ceiling`]); empty without payload features.
    #[serde(default)]
    pub noise_ceiling: BTreeMap<String, NoiseCeiling>,
}

pub fn evaluate(cfg: &EvalConfig, progress: &Progress) -> Result<Evaluation> {
    let set = ModelSet::load(&cfg.model)?;
    let bar = progress.bar("loading rows");
    let ds = Dataset::load_with(&cfg.dbs, cfg.table, LoadOptions::default(), &bar)?;
    bar.finish();
    let mut images = Vec::new();
    for (tag, model) in set.iter() {
        if cfg.image.as_ref().is_some_and(|want| want.normalized() != *tag) {
            continue;
        }
        let Some(rows) = ds.images.get(tag) else {
            tracing::warn!(image = %tag, "the database has no rows for this image");
            continue;
        };
        let (x, y): (Vec<Vec<f64>>, Vec<Vec<f64>>) = match &cfg.split {
            Some(split) => {
                let s = Sets::from_rows(rows, split)?;
                (s.test_x, s.test_y)
            }
            None => rows.rows.iter().map(|r| (r.x.clone(), r.y.clone())).unzip(),
        };
        // The model decides its inputs: the five fixed ones, then its payload
        // features, which must be the ones the database declares.
        let info = model.info();
        let k = info.payload_features.len();
        if k > 0 && info.payload_features != rows.schema.payload_features {
            anyhow::bail!(
                "{}: the model of {tag} reads payload features {} but the database declares {}",
                cfg.model.display(),
                info.payload_features.to_json(),
                rows.schema.payload_features.to_json()
            );
        }
        #[allow(clippy::cast_possible_truncation)]
        let input: Vec<Vec<f32>> = x.iter().map(|r| r[..5 + k].iter().map(|v| *v as f32).collect()).collect();
        let pred = model.predict_rows(&input).with_context(|| format!("predicting {tag}"))?;
        let pred: Vec<Vec<f32>> = pred.iter().map(|p| p.to_vec()).collect();
        let mut metrics = BTreeMap::new();
        let mut noise_ceiling = BTreeMap::new();
        let payload: Vec<Vec<f64>> = x.iter().map(|r| r[5..5 + k].to_vec()).collect();
        let near = ceiling::near_pairs(&payload);
        for (t, name) in info.output_names().iter().enumerate() {
            let Some(col) = rows.schema.target(name) else { continue };
            let a: Vec<f64> = y.iter().map(|r| r[col]).collect();
            let p: Vec<f64> = pred.iter().map(|r| r.get(t).map_or(f64::NAN, |v| f64::from(*v))).collect();
            if let Some(m) = Metrics::compute(&a, &p) {
                metrics.insert(name.to_string(), m);
            }
            if let Some(c) = near.as_ref().and_then(|near| ceiling::noise_ceiling(near, &a)) {
                noise_ceiling.insert(name.to_string(), c);
            }
        }
        images.push(ImageEvaluation {
            image_tag: tag.to_string(),
            kind: model.info().kind.to_string(),
            rows: y.len(),
            rows_dropped_null: rows.dropped_null,
            metrics,
            noise_ceiling,
        });
    }
    if images.is_empty() {
        anyhow::bail!(
            "{} has no model for any image in the database{}",
            cfg.model.display(),
            cfg.image.as_ref().map(|i| format!(" matching {i}")).unwrap_or_default()
        );
    }
    Ok(Evaluation {
        model: cfg.model.display().to_string(),
        sources: ds.sources.iter().map(|p| p.display().to_string()).collect(),
        table: cfg.table,
        rows_used: match &cfg.split {
            Some(s) => format!("test rows of the {} split with seed {}", split_name(s.mode), s.seed),
            None => "all rows".into(),
        },
        images,
    })
}

impl Evaluation {
    /// One table per target (rows: image and model kind), the errors in
    /// the unit its columns name.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "# Evaluation of {}\n\nOn {} of table `{}` in {}.\n\n",
            self.model,
            self.rows_used,
            self.table.name(),
            self.sources.join(", ")
        );
        for t in ALL_TARGETS {
            let rows: Vec<(&ImageEvaluation, &Metrics)> =
                self.images.iter().filter_map(|i| i.metrics.get(t).map(|m| (i, m))).collect();
            if rows.is_empty() {
                continue;
            }
            let cols = MetricColumns::fit(Unit::from_name(unit_of(t)), rows.iter().map(|r| r.1));
            let headers = ["image", "kind", "rows"].map(String::from).into_iter().chain(cols.headers());
            let mut table = ReportTable::new(2, headers);
            for (img, m) in &rows {
                let mut row = vec![img.image_tag.clone(), img.kind.clone(), m.rows.to_string()];
                row.extend(cols.cells(m));
                table.rows.push(row);
            }
            let _ = write!(s, "**{t}**\n\n{}", table.markdown());
            for (img, _) in &rows {
                if let Some(c) = img.noise_ceiling.get(t) {
                    let _ = writeln!(
                        s,
                        "R² ceiling of {}: {} — between requests whose payload features agree within {} % ({} pairs), the target still varies this much, so no model of the payload can reach a higher R² on these rows.\n",
                        img.image_tag,
                        format::quantity(Unit::Ratio, c.r2),
                        ceiling::NEAR * 100.0,
                        c.pairs
                    );
                }
            }
        }
        s
    }
}
