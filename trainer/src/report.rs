//! The accuracy report of a training run: `report.json` (read back by
//! `compare`), `report.md` and `report.html` (with the plots inline).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use hyperfake_model::{ModelKind, TARGETS};
use serde::{Deserialize, Serialize};

use crate::data::{Table, unit_of};
use crate::export::write_atomic;
use crate::forest::ForestConfig;
use crate::linear::RidgeConfig;
use crate::metrics::Metrics;
use crate::split::SplitConfig;

/// Bumped when `report.json` changes incompatibly.
pub const REPORT_FORMAT: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub format: u32,
    pub run: String,
    pub created_at: String,
    /// The databases read.
    pub sources: Vec<String>,
    pub table: Table,
    pub split: SplitConfig,
    pub ridge: RidgeConfig,
    pub forest: ForestConfig,
    /// Rows without an image tag.
    pub dropped_no_image: u64,
    /// Whether declared payload features were used as inputs.
    #[serde(default = "yes")]
    pub payload_features_used: bool,
    /// Notes from reading the databases (declared features without a column, …).
    #[serde(default)]
    pub notes: Vec<String>,
    pub images: Vec<ImageReport>,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageReport {
    pub image_tag: String,
    /// Rows read for this image, complete or not.
    pub rows_read: u64,
    /// Rows dropped for a NULL in a used column.
    pub rows_dropped_null: u64,
    pub rows_train: usize,
    pub rows_val: usize,
    pub rows_test: usize,
    /// Fingerprint of the test rows' keys (see `split::fingerprint`).
    pub test_fingerprint: String,
    /// Why no model was trained, if none was.
    pub skipped: Option<String>,
    pub models: Vec<ModelReport>,
    /// Input columns, in model order (the five fixed ones, then `feature_<name>`).
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Target columns, in model order.
    #[serde(default)]
    pub targets: Vec<String>,
    /// NULL (or non-finite) values per used column in the dropped rows.
    #[serde(default)]
    pub nulls_by_column: BTreeMap<String, u64>,
    /// Payload feature name → the training median written as its default.
    #[serde(default)]
    pub payload_feature_defaults: BTreeMap<String, f64>,
    /// Measured instance start durations (rows of `cold_starts`).
    #[serde(default)]
    pub cold_starts: usize,
}

impl ImageReport {
    /// The targets, in model order (HyperFake's three for reports that predate the field).
    pub fn target_names(&self) -> Vec<String> {
        if self.targets.is_empty() {
            TARGETS.iter().map(|s| s.to_string()).collect()
        } else {
            self.targets.clone()
        }
    }
}

/// How a residual spread was computed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpreadReport {
    /// Regions of the predicted value.
    pub regions: usize,
    /// Rows the residuals came from.
    pub rows: usize,
    /// Which rows: held-out or training.
    pub rows_from: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelReport {
    pub kind: ModelKind,
    pub fit_seconds: f64,
    /// Files written, relative to the run directory.
    pub files: Vec<String>,
    /// Ridge: the penalty chosen per target.
    pub ridge_penalties: Option<Vec<f64>>,
    /// Forest: total node count.
    pub forest_nodes: Option<usize>,
    /// Held-out test metrics, by target name.
    pub test: BTreeMap<String, Metrics>,
    /// Validation metrics, by target name.
    pub validation: BTreeMap<String, Metrics>,
    /// Predicted-vs-actual and residual plot (SVG), relative to the run directory.
    pub plot: Option<String>,
    /// The runtime spread written into the model file.
    #[serde(default)]
    pub runtime_spread: Option<SpreadReport>,
    /// The worker overhead spread written into the model file.
    #[serde(default)]
    pub overhead_spread: Option<SpreadReport>,
}

impl Report {
    pub fn read(run_dir: &Path) -> Result<Report> {
        let path = run_dir.join("report.json");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let report: Report = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a trainer report", path.display()))?;
        if report.format != REPORT_FORMAT {
            anyhow::bail!(
                "{}: report format {} (this trainer reads {REPORT_FORMAT})",
                path.display(),
                report.format
            );
        }
        Ok(report)
    }

    /// Writes `report.json`, `report.md` and `report.html` into `run_dir`.
    pub fn write(&self, run_dir: &Path) -> Result<()> {
        let mut json = serde_json::to_string_pretty(self)?;
        json.push('\n');
        write_atomic(&run_dir.join("report.json"), json.as_bytes())?;
        write_atomic(&run_dir.join("report.md"), self.markdown().as_bytes())?;
        write_atomic(&run_dir.join("report.html"), self.html(run_dir).as_bytes())?;
        Ok(())
    }

    fn header_lines(&self) -> Vec<String> {
        vec![
            format!(
                "Created {} from table `{}` of: {}",
                self.created_at,
                self.table.name(),
                self.sources.join(", ")
            ),
            format!(
                "Split: {:?}, seed {}, validation {:.0} %, test {:.0} %. Ridge: {} folds over {} penalties. \
                 Forest: {} trees per target, max depth {}, min samples per leaf {}, {} features per split.",
                self.split.mode,
                self.split.seed,
                self.split.val_fraction * 100.0,
                self.split.test_fraction * 100.0,
                self.ridge.folds,
                self.ridge.penalties.len(),
                self.forest.n_trees,
                self.forest.max_depth.map_or("none".into(), |d| d.to_string()),
                self.forest.min_samples_leaf,
                if self.forest.max_features == 0 {
                    "all".to_string()
                } else {
                    self.forest.max_features.to_string()
                },
            ),
            format!(
                "Rows without an image tag (dropped): {}. Payload features {}.",
                self.dropped_no_image,
                if self.payload_features_used {
                    "used where declared"
                } else {
                    "not used (--no-payload-features)"
                }
            ),
        ]
        .into_iter()
        .chain(self.notes.iter().map(|n| format!("Note: {n}")))
        .collect()
    }

    pub fn markdown(&self) -> String {
        let mut s = format!("# Training report: {}\n\n", self.run);
        for l in self.header_lines() {
            let _ = writeln!(s, "{l}\n");
        }
        for img in &self.images {
            let _ = writeln!(s, "## {}\n", img.image_tag);
            let _ = writeln!(
                s,
                "Rows read {}, dropped (NULL) {}, train {}, validation {}, test {} (test rows {}).\n",
                img.rows_read,
                img.rows_dropped_null,
                img.rows_train,
                img.rows_val,
                img.rows_test,
                img.test_fingerprint
            );
            for l in image_lines(img) {
                let _ = writeln!(s, "{l}\n");
            }
            if let Some(why) = &img.skipped {
                let _ = writeln!(s, "**Skipped:** {why}\n");
                continue;
            }
            s.push_str(&metrics_table_md(img));
            for m in &img.models {
                if let Some(p) = &m.plot {
                    let _ = writeln!(s, "![{} {}]({p})\n", img.image_tag, m.kind);
                }
            }
        }
        s
    }

    pub fn html(&self, run_dir: &Path) -> String {
        let mut s = String::from(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Training report</title><style>\
             body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}\
             td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}\
             td.l{text-align:left}</style></head><body>\n",
        );
        let _ = writeln!(s, "<h1>Training report: {}</h1>", esc(&self.run));
        for l in self.header_lines() {
            let _ = writeln!(s, "<p>{}</p>", esc(&l));
        }
        for img in &self.images {
            let _ = writeln!(s, "<h2>{}</h2>", esc(&img.image_tag));
            let _ = writeln!(
                s,
                "<p>Rows read {}, dropped (NULL) {}, train {}, validation {}, test {}.</p>",
                img.rows_read, img.rows_dropped_null, img.rows_train, img.rows_val, img.rows_test
            );
            for l in image_lines(img) {
                let _ = writeln!(s, "<p>{}</p>", esc(&l));
            }
            if let Some(why) = &img.skipped {
                let _ = writeln!(s, "<p><b>Skipped:</b> {}</p>", esc(why));
                continue;
            }
            s.push_str("<table><tr><th>model</th><th>target</th><th>R²</th><th>MAE</th><th>RMSE</th>\
                        <th>MAPE %</th><th>|err| p50</th><th>p90</th><th>p95</th><th>p99</th><th>fit s</th></tr>\n");
            for row in metrics_rows(img) {
                s.push_str("<tr>");
                for (i, cell) in row.iter().enumerate() {
                    // The model and target columns are text, left-aligned.
                    let class = if i < 2 { " class=l" } else { "" };
                    let _ = write!(s, "<td{class}>{}</td>", esc(cell));
                }
                s.push_str("</tr>\n");
            }
            s.push_str("</table>\n");
            for m in &img.models {
                if let Some(p) = &m.plot
                    && let Ok(svg) = std::fs::read_to_string(run_dir.join(p))
                {
                    let _ = writeln!(s, "<h3>{} — {}</h3>\n{svg}", esc(&img.image_tag), m.kind);
                }
            }
        }
        s.push_str("</body></html>\n");
        s
    }
}

/// Per-image lines besides the row counts: inputs, targets, NULLs per
/// column, payload feature defaults, cold starts, spreads.
fn image_lines(img: &ImageReport) -> Vec<String> {
    let mut out = vec![];
    if !img.inputs.is_empty() {
        out.push(format!("Inputs ({}): {}.", img.inputs.len(), img.inputs.join(", ")));
        out.push(format!("Targets ({}): {}.", img.targets.len(), img.targets.join(", ")));
    }
    if !img.nulls_by_column.is_empty() {
        let cols: Vec<String> = img.nulls_by_column.iter().map(|(c, n)| format!("{c} {n}")).collect();
        out.push(format!("NULL values in dropped rows, by column: {}.", cols.join(", ")));
    }
    if !img.payload_feature_defaults.is_empty() {
        let d: Vec<String> =
            img.payload_feature_defaults.iter().map(|(f, v)| format!("{f} = {}", num(*v))).collect();
        out.push(format!("Payload feature defaults (training median): {}.", d.join(", ")));
    }
    if img.cold_starts > 0 {
        out.push(format!(
            "Cold starts: {} measured start durations (101 quantiles in the model files).",
            img.cold_starts
        ));
    }
    for m in &img.models {
        let describe = |what: &str, s: &Option<SpreadReport>| {
            s.as_ref()
                .map(|s| format!("{what} spread: {} regions over {} {} rows", s.regions, s.rows, s.rows_from))
        };
        let parts: Vec<String> =
            [describe("runtime", &m.runtime_spread), describe("overhead", &m.overhead_spread)]
                .into_iter()
                .flatten()
                .collect();
        if !parts.is_empty() {
            out.push(format!("{}: {}.", m.kind, parts.join("; ")));
        }
    }
    out
}

fn metrics_table_md(img: &ImageReport) -> String {
    let mut s = String::from(
        "| model | target | R² | MAE | RMSE | MAPE % | \\|err\\| p50 | p90 | p95 | p99 | fit s |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in metrics_rows(img) {
        let _ = writeln!(s, "| {} |", row.join(" | "));
    }
    s.push('\n');
    s
}

/// The test metrics, one row of cells per model and target: model, target
/// (unit), R², MAE, RMSE, MAPE %, |err| percentiles, fit seconds. Markdown
/// and HTML render the same rows.
fn metrics_rows(img: &ImageReport) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let targets = img.target_names();
    for m in &img.models {
        for t in &targets {
            let unit = unit_of(t);
            let Some(x) = m.test.get(t) else { continue };
            let mut row = vec![
                m.kind.to_string(),
                format!("{t} ({unit})"),
                opt(x.r2, 4),
                num(x.mae),
                num(x.rmse),
                opt(x.mape, 2),
            ];
            row.extend(x.abs_error_percentiles.iter().map(|(_, v)| num(*v)));
            row.push(format!("{:.3}", m.fit_seconds));
            rows.push(row);
        }
    }
    rows
}

/// Compact number: 4 significant digits.
pub fn num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if (1e-3..1e6).contains(&a) {
        format!("{:.4}", v).trim_end_matches('0').trim_end_matches('.').into()
    } else {
        format!("{v:.3e}")
    }
}

pub fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.decimals$}"))
}

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
