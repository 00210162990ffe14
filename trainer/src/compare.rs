//! Side-by-side comparison of training runs' test metrics.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use hyperfake_core::format::{Column, Unit};
use serde::{Deserialize, Serialize};

use crate::data::unit_of;
use crate::export::write_atomic;
use crate::metrics::Metrics;
use crate::report::{Report, ReportTable};

/// A metric, which way is better, and its unit: `None` for an error in
/// the target's own unit.
#[derive(Clone, Copy, Debug)]
struct MetricDef {
    name: &'static str,
    higher_is_better: bool,
    get: fn(&Metrics) -> Option<f64>,
    unit: Option<Unit>,
}

const METRICS: [MetricDef; 4] = [
    MetricDef { name: "R²", higher_is_better: true, get: |m| m.r2, unit: Some(Unit::Ratio) },
    MetricDef { name: "MAE", higher_is_better: false, get: |m| Some(m.mae), unit: None },
    MetricDef { name: "RMSE", higher_is_better: false, get: |m| Some(m.rmse), unit: None },
    MetricDef { name: "MAPE %", higher_is_better: false, get: |m| m.mape, unit: Some(Unit::Percent) },
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub runs: Vec<String>,
    /// Column headers: `<run>/<model kind>`.
    pub columns: Vec<String>,
    pub rows: Vec<ComparisonRow>,
    /// Problems that make cells not directly comparable.
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComparisonRow {
    pub image_tag: String,
    pub target: String,
    pub metric: String,
    pub values: Vec<Option<f64>>,
    /// Index into `values` of the best value.
    pub best: Option<usize>,
}

/// Compares the reports in `run_dirs` (at least two, or one run with
/// several model kinds).
pub fn compare(run_dirs: &[PathBuf]) -> Result<Comparison> {
    if run_dirs.is_empty() {
        bail!("compare needs at least one run directory");
    }
    let reports: Vec<Report> = run_dirs.iter().map(|d| Report::read(d)).collect::<Result<_>>()?;
    let mut warnings = Vec::new();
    // Columns: every (run, kind) in order.
    let mut columns = Vec::new();
    let mut col_keys = Vec::new();
    for (ri, r) in reports.iter().enumerate() {
        let mut kinds: Vec<_> = r.images.iter().flat_map(|i| i.models.iter().map(|m| m.kind)).collect();
        kinds.sort();
        kinds.dedup();
        for k in kinds {
            columns.push(format!("{}/{k}", r.run));
            col_keys.push((ri, k));
        }
    }
    let mut images: Vec<&str> =
        reports.iter().flat_map(|r| r.images.iter().map(|i| i.image_tag.as_str())).collect();
    images.sort();
    images.dedup();
    for img in &images {
        let prints: Vec<(&str, &str)> = reports
            .iter()
            .filter_map(|r| {
                r.images
                    .iter()
                    .find(|i| i.image_tag == *img)
                    .map(|i| (r.run.as_str(), i.test_fingerprint.as_str()))
            })
            .collect();
        if let Some((first_run, first)) = prints.first()
            && let Some((run, _)) = prints.iter().find(|(_, p)| p != first)
        {
            warnings.push(format!(
                "{img}: runs {first_run} and {run} were tested on different rows; their metrics are not directly comparable"
            ));
        }
    }
    let mut rows = Vec::new();
    for img in &images {
        // Targets of this image in any run, in model order.
        let mut targets: Vec<String> = vec![];
        for r in &reports {
            for i in r.images.iter().filter(|i| i.image_tag == *img) {
                for t in i.target_names() {
                    if !targets.contains(&t) {
                        targets.push(t);
                    }
                }
            }
        }
        for t in &targets {
            for def in METRICS {
                let values: Vec<Option<f64>> = col_keys
                    .iter()
                    .map(|(ri, kind)| {
                        let i = reports[*ri].images.iter().find(|i| i.image_tag == *img)?;
                        let m = i.models.iter().find(|m| m.kind == *kind)?;
                        (def.get)(m.test.get(t.as_str())?).filter(|v| v.is_finite())
                    })
                    .collect();
                let best = values
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.map(|v| (i, v)))
                    .reduce(|a, b| {
                        let better = if def.higher_is_better { b.1 > a.1 } else { b.1 < a.1 };
                        if better { b } else { a }
                    })
                    .map(|(i, _)| i);
                rows.push(ComparisonRow {
                    image_tag: img.to_string(),
                    target: t.to_string(),
                    metric: def.name.to_string(),
                    values,
                    best,
                });
            }
        }
    }
    Ok(Comparison { runs: reports.iter().map(|r| r.run.clone()).collect(), columns, rows, warnings })
}

impl Comparison {
    /// One table per function and target, a row per run and model kind, a
    /// column per metric (in the unit its header names); the best value per
    /// column in bold (and starred for plain text).
    pub fn markdown(&self) -> String {
        let mut s = format!("# Comparison: {}\n\n", self.runs.join(" vs "));
        for w in &self.warnings {
            let _ = writeln!(s, "> **Warning:** {w}\n");
        }
        s.push_str(
            "Test metrics, one table per function and target. Best value per column in **bold** and \
             marked *. R²: higher is better; the others: lower.\n\n",
        );
        let mut image = None;
        for group in self.rows.chunk_by(|a, b| a.image_tag == b.image_tag && a.target == b.target) {
            let first = &group[0];
            if image != Some(&first.image_tag) {
                let _ = writeln!(s, "## {}\n", first.image_tag);
                image = Some(&first.image_tag);
            }
            let def = |r: &ComparisonRow| METRICS.iter().find(|d| d.name == r.metric);
            let errors = group
                .iter()
                .filter(|r| def(r).is_some_and(|d| d.unit.is_none()))
                .flat_map(|r| r.values.iter().flatten().copied());
            let error = Column::fit(Unit::from_name(unit_of(&first.target)), errors);
            let columns: Vec<Column> = group
                .iter()
                .map(|r| def(r).and_then(|d| d.unit).map_or(error, |u| Column::fit(u, [])))
                .collect();
            let name = |r: &ComparisonRow| r.metric.trim_end_matches(" %").to_string();
            let headers = std::iter::once("run/model".to_string())
                .chain(group.iter().zip(&columns).map(|(r, c)| c.header(&name(r))));
            let mut table = ReportTable::new(1, headers);
            for (j, run) in self.columns.iter().enumerate() {
                let mut row = vec![run.clone()];
                for (r, c) in group.iter().zip(&columns) {
                    let v = r.values.get(j).copied().flatten();
                    let several = r.values.iter().flatten().count() > 1;
                    row.push(match v {
                        Some(v) if r.best == Some(j) && several => format!("**{}** *", c.cell(v)),
                        v => c.cell_opt(v),
                    });
                }
                table.rows.push(row);
            }
            let _ = write!(s, "**{}**\n\n{}", first.target, table.markdown());
        }
        s
    }

    /// Writes `comparison.md` and `comparison.json` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_atomic(&dir.join("comparison.md"), self.markdown().as_bytes())?;
        let mut json = serde_json::to_string_pretty(self)?;
        json.push('\n');
        write_atomic(&dir.join("comparison.json"), json.as_bytes())
    }
}
