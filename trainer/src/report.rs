//! The accuracy report of a training run: `report.json` (read back by
//! `compare`), `report.md` and `report.html` (with the plots inline).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use hyperfake_core::format::{self, Column, Unit};
use hyperfake_model::{ModelKind, TARGETS};
use serde::{Deserialize, Serialize};

use crate::data::{Table, unit_of};
use crate::export::write_atomic;
use crate::forest::ForestConfig;
use crate::linear::RidgeConfig;
use crate::metrics::{ERROR_PERCENTILES, Metrics};
use crate::split::{SplitConfig, SplitMode};

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
                "Split: {}, seed {}, validation {:.0} %, test {:.0} %. Ridge: {} folds over {} penalties. \
                 Forest: {} trees per target, max depth {}, min samples per leaf {}, {} features per split.",
                split_name(self.split.mode),
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
            METRICS_NOTE.to_string(),
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
            for (target, table) in metrics_tables(img) {
                let _ = write!(s, "**{target}**\n\n{}", table.markdown());
            }
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
             body{font-family:sans-serif;margin:2em;max-width:1400px}\
             table{border-collapse:collapse;font-variant-numeric:tabular-nums}\
             caption{font-weight:bold;text-align:left;padding:2px 0}\
             td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;white-space:nowrap}th{background:#eee}\
             td.l,th.l{text-align:left}.tables{display:flex;flex-wrap:wrap;gap:1em 2em;margin:1em 0}\
             svg{max-width:100%;height:auto}</style></head><body>\n",
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
            s.push_str("<div class=\"tables\">\n");
            for (target, table) in metrics_tables(img) {
                s.push_str(&table.html(&target));
            }
            s.push_str("</div>\n");
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

/// What the metric tables show, once per report.
const METRICS_NOTE: &str = "Metrics are on the test rows, one table per target: R² (1 = perfect), mean \
     absolute error (MAE), root mean square error (RMSE), mean absolute percentage error (MAPE) and \
     percentiles of the absolute error, in the unit each column names.";

/// A split mode as the `--split` flag spells it.
pub fn split_name(mode: SplitMode) -> &'static str {
    match mode {
        SplitMode::Random => "random",
        SplitMode::Time => "time",
    }
}

/// Per-image lines besides the row counts: inputs, targets, NULLs per
/// column, payload feature defaults, cold starts, spreads, fit times.
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
        let d: Vec<String> = img
            .payload_feature_defaults
            .iter()
            .map(|(f, v)| format!("{f} = {}", format::quantity(Unit::Plain, *v)))
            .collect();
        out.push(format!("Payload feature defaults (training median): {}.", d.join(", ")));
    }
    if img.cold_starts > 0 {
        let durations = if img.cold_starts == 1 { "duration" } else { "durations" };
        out.push(format!(
            "Cold starts: {} measured start {durations} (101 quantiles in the model files).",
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
    if !img.models.is_empty() {
        let fit = Column::fit(Unit::Nanos, img.models.iter().map(|m| m.fit_seconds * 1e9));
        let times: Vec<String> =
            img.models.iter().map(|m| format!("{} {}", m.kind, fit.quantity(m.fit_seconds * 1e9))).collect();
        out.push(format!("Fit time: {}.", times.join(", ")));
    }
    out
}

/// The columns of a metric table whose errors are in `unit`: R², MAE,
/// RMSE, MAPE and the |error| percentiles. The error columns share one scale,
/// fitted to every error in the table, so that they compare at a glance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricColumns {
    pub r2: Column,
    pub error: Column,
    pub percent: Column,
}

impl MetricColumns {
    pub fn fit<'a>(unit: Unit, metrics: impl IntoIterator<Item = &'a Metrics>) -> MetricColumns {
        let errors = metrics
            .into_iter()
            .flat_map(|m| [m.mae, m.rmse].into_iter().chain(m.abs_error_percentiles.iter().map(|(_, v)| *v)));
        MetricColumns {
            r2: Column::fit(Unit::Ratio, []),
            error: Column::fit(unit, errors),
            percent: Column::fit(Unit::Percent, []),
        }
    }

    /// Headers of [`MetricColumns::cells`].
    pub fn headers(&self) -> Vec<String> {
        let mut h = vec![
            self.r2.header("R²"),
            self.error.header("MAE"),
            self.error.header("RMSE"),
            self.percent.header("MAPE"),
        ];
        // "|err| p50", then "p90", "p95", "p99".
        h.extend(
            ERROR_PERCENTILES.iter().enumerate().map(|(i, p)| {
                self.error.header(&if i == 0 { format!("|err| p{p}") } else { format!("p{p}") })
            }),
        );
        h
    }

    pub fn cells(&self, m: &Metrics) -> Vec<String> {
        let mut row = vec![
            self.r2.cell_opt(m.r2),
            self.error.cell(m.mae),
            self.error.cell(m.rmse),
            self.percent.cell_opt(m.mape),
        ];
        row.extend(m.abs_error_percentiles.iter().map(|(_, v)| self.error.cell(*v)));
        row
    }
}

/// The test metrics, one table per target (one row per model), in target
/// order. Markdown and HTML render the same tables.
fn metrics_tables(img: &ImageReport) -> Vec<(String, ReportTable)> {
    let mut tables = Vec::new();
    for t in img.target_names() {
        let rows: Vec<(&ModelReport, &Metrics)> =
            img.models.iter().filter_map(|m| m.test.get(&t).map(|x| (m, x))).collect();
        if rows.is_empty() {
            continue;
        }
        let cols = MetricColumns::fit(Unit::from_name(unit_of(&t)), rows.iter().map(|r| r.1));
        let mut table = ReportTable::new(1, ["model".to_string()].into_iter().chain(cols.headers()));
        for (m, x) in rows {
            table.rows.push([m.kind.to_string()].into_iter().chain(cols.cells(x)).collect());
        }
        tables.push((t, table));
    }
    tables
}

/// A table rendered alike in Markdown and HTML: the first `text_columns`
/// columns are text (left-aligned), the others numbers (right-aligned).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReportTable {
    pub text_columns: usize,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl ReportTable {
    pub fn new(text_columns: usize, headers: impl IntoIterator<Item = String>) -> ReportTable {
        ReportTable { text_columns, headers: headers.into_iter().collect(), rows: Vec::new() }
    }

    /// A Markdown table (pipes in cells escaped), ending with a blank line.
    pub fn markdown(&self) -> String {
        let cells =
            |row: &[String]| row.iter().map(|c| c.replace('|', "\\|")).collect::<Vec<_>>().join(" | ");
        let mut s = format!("| {} |\n|", cells(&self.headers));
        for i in 0..self.headers.len() {
            s.push_str(if i < self.text_columns { "---|" } else { "---:|" });
        }
        s.push('\n');
        for row in &self.rows {
            let _ = writeln!(s, "| {} |", cells(row));
        }
        s.push('\n');
        s
    }

    /// An HTML table with `caption` (escaped).
    pub fn html(&self, caption: &str) -> String {
        let class = |i: usize| if i < self.text_columns { " class=l" } else { "" };
        let mut s = format!("<table><caption>{}</caption><tr>", esc(caption));
        for (i, h) in self.headers.iter().enumerate() {
            let _ = write!(s, "<th{}>{}</th>", class(i), esc(h));
        }
        s.push_str("</tr>\n");
        for row in &self.rows {
            s.push_str("<tr>");
            for (i, cell) in row.iter().enumerate() {
                let _ = write!(s, "<td{}>{}</td>", class(i), esc(cell));
            }
            s.push_str("</tr>\n");
        }
        s.push_str("</table>\n");
        s
    }
}

/// One plain number, three significant digits, never an exponent (for a
/// table whose unit its header names; prefer a [`Column`] fitted to the
/// whole column).
pub fn num(v: f64) -> String {
    Column::fit(Unit::Plain, [v]).cell(v)
}

/// `v` with `decimals` decimals, or `–`.
pub fn opt(v: Option<f64>, decimals: usize) -> String {
    Column::fixed(Unit::Plain, decimals).cell_opt(v)
}

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
