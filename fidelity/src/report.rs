//! The comparison and its JSON / Markdown / HTML forms.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hyperfake_core::format::{Column, Unit};
use serde::Serialize;

use crate::data::{ImageCalls, RunData};
use crate::decompose::{DecompositionSummary, Part, largest_difference};
use crate::plots::PlotFiles;
use crate::reference::{RealVsReal, Reference, within_variation};
use crate::stats::{ks_distance, percentile};

/// Targets a faithful fake meets per function (issue 10): KS distance at most
/// this, and fake/real p50 and p99 within [`RATIO_LOW`, `RATIO_HIGH`].
pub const KS_LIMIT: f64 = 0.1;
pub const RATIO_LOW: f64 = 0.9;
pub const RATIO_HIGH: f64 = 1.1;

/// Printed when the caller did not say how the compared runs relate to the
/// models' training data.
pub const NOT_STATED: &str = "sample relation not stated";

/// How the compared runs relate to the data the fake's models were trained
/// on, as the caller states it (`--trained-on`, `--validation`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SampleRelation {
    /// Which data trained the models, e.g. `training_data/run-a.db (seed 42)`.
    pub trained_on: Option<String>,
    /// How the compared runs relate to it, e.g. `out of sample: same config, seed 43`.
    pub validation: Option<String>,
}

impl SampleRelation {
    /// One line for the report's header.
    pub fn summary(&self) -> String {
        match (&self.validation, &self.trained_on) {
            (None, None) => NOT_STATED.to_string(),
            (Some(v), Some(t)) => format!("{v}; models trained on {t}"),
            (Some(v), None) => format!("{v}; training data not stated"),
            (None, Some(t)) => format!("models trained on {t}; relation of the compared runs not stated"),
        }
    }
}

/// One side's numbers for one function.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Side {
    pub calls: u64,
    pub ok: u64,
    pub error_rate: f64,
    /// Successful calls per second over the run.
    pub throughput_per_s: f64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p90_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub handler_p50_ms: Option<f64>,
    pub instances_used: u64,
}

/// A statistic outside its target.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Miss {
    /// `ks`, `p50_ratio` or `p99_ratio`.
    pub statistic: String,
    pub value: f64,
    /// The target, e.g. `≤ 0.10` or `0.90–1.10`.
    pub target: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ImageComparison {
    pub image_tag: String,
    pub real: Side,
    pub fake: Side,
    /// fake / real for each latency percentile (1.0 = identical).
    pub latency_ratio_p50: Option<f64>,
    pub latency_ratio_p90: Option<f64>,
    pub latency_ratio_p99: Option<f64>,
    /// Two-sample KS statistic of the successful calls' latencies.
    pub ks_distance: Option<f64>,
    /// Where the successful calls' latency went, per side (median and p99 per part, ms).
    pub real_decomposition: DecompositionSummary,
    pub fake_decomposition: DecompositionSummary,
    /// Statistics outside their targets (empty: the function meets them all).
    pub misses: Vec<Miss>,
    /// Why the function misses, with the numbers; `None` when it does not.
    pub why_it_misses: Option<String>,
    /// A second real run against the real one (`--reference`); `None` without.
    pub real_vs_real: Option<RealVsReal>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    pub real_db: PathBuf,
    pub real_run: String,
    pub fake_db: PathBuf,
    pub fake_run: String,
    /// Which data trained the models (`--trained-on`); `null` when not stated.
    pub trained_on: Option<String>,
    /// How the compared runs relate to it (`--validation`); `null` when not stated.
    pub validation: Option<String>,
    /// The header line built from the two: `sample relation not stated` when neither is given.
    pub sample_relation: String,
    /// The second real run the real platform's own variation is measured on.
    pub reference: Option<Reference>,
    /// Same seed and same workload file: the two runs sent the same calls.
    pub same_workload: bool,
    pub images: Vec<ImageComparison>,
    pub real_instances_over_time: Vec<(f64, i64)>,
    pub fake_instances_over_time: Vec<(f64, i64)>,
}

fn ms(ns: Option<u64>) -> Option<f64> {
    ns.map(|v| v as f64 / 1e6)
}

fn side(calls: Option<&ImageCalls>, duration_s: f64) -> Side {
    let Some(c) = calls else { return Side::default() };
    Side {
        calls: c.calls,
        ok: c.ok,
        error_rate: if c.calls == 0 { 0.0 } else { (c.calls - c.ok) as f64 / c.calls as f64 },
        throughput_per_s: c.ok as f64 / duration_s,
        latency_p50_ms: ms(percentile(&c.latencies_ok, 0.50)),
        latency_p90_ms: ms(percentile(&c.latencies_ok, 0.90)),
        latency_p99_ms: ms(percentile(&c.latencies_ok, 0.99)),
        handler_p50_ms: ms(percentile(&c.handler_ok, 0.50)),
        instances_used: c.instances_used,
    }
}

fn ratio(fake: Option<f64>, real: Option<f64>) -> Option<f64> {
    match (fake, real) {
        (Some(f), Some(r)) if r > 0.0 => Some(f / r),
        _ => None,
    }
}

/// Every number the report shows, one format per column (see
/// [`hyperfake_core::format`]): latencies in ms with two decimals, parts of
/// the decomposition in ms with three (they go down to microseconds), ratios
/// and KS distances with three, error rates in % with one.
const LATENCY: Column = Column::millis(2);
const PART: Column = Column::millis(3);

fn ratio_col() -> Column {
    Column::fit(Unit::Ratio, [])
}

fn count_col() -> Column {
    Column::fit(Unit::Count, [])
}

fn percent_col() -> Column {
    Column::fit(Unit::Percent, [])
}

/// Successful calls per second, two decimals.
fn throughput_col() -> Column {
    Column::fixed(Unit::Plain, 2)
}

/// A value in ms (as the comparison keeps it) in `col`, or `–`.
fn ms_cell(col: Column, ms: Option<f64>) -> String {
    col.cell_opt(ms.map(|v| v * 1e6))
}

fn ratio_ok(r: Option<f64>) -> Option<bool> {
    r.map(|r| (RATIO_LOW..=RATIO_HIGH).contains(&r))
}

fn ks_ok(k: Option<f64>) -> Option<bool> {
    k.map(|k| k <= KS_LIMIT)
}

/// The statistics of `image` outside their targets.
fn misses(image: &ImageComparison) -> Vec<Miss> {
    let mut out = Vec::new();
    let target = format!("{RATIO_LOW:.2}–{RATIO_HIGH:.2}");
    for (name, r) in [("p50_ratio", image.latency_ratio_p50), ("p99_ratio", image.latency_ratio_p99)] {
        if let (Some(v), Some(false)) = (r, ratio_ok(r)) {
            out.push(Miss { statistic: name.into(), value: v, target: target.clone() });
        }
    }
    if let (Some(v), Some(false)) = (image.ks_distance, ks_ok(image.ks_distance)) {
        out.push(Miss { statistic: "ks".into(), value: v, target: format!("≤ {KS_LIMIT:.2}") });
    }
    out
}

/// The "why it misses" sentence: each statistic that missed with its numbers,
/// then the decomposition part that differs most between real and fake at
/// the median (and at p99 when p99 missed). `None` when nothing missed.
pub fn why_it_misses(image: &ImageComparison) -> Option<String> {
    let mut reasons = Vec::new();
    for (side, s) in [("real", &image.real), ("fake", &image.fake)] {
        if s.latency_p50_ms.is_none() {
            reasons
                .push(format!("no successful calls with a latency on the {side} side, nothing to compare"));
        }
    }
    if !reasons.is_empty() {
        return Some(reasons.join("; "));
    }
    let missed = misses(image);
    if missed.is_empty() {
        return None;
    }
    let ratio = ratio_col();
    for m in &missed {
        let text = match m.statistic.as_str() {
            "ks" => format!(
                "KS distance {} (target ≤ {KS_LIMIT:.2}, {} over)",
                ratio.cell(m.value),
                ratio.cell(m.value - KS_LIMIT)
            ),
            stat => {
                let (label, real, fake) = if stat == "p50_ratio" {
                    ("p50", image.real.latency_p50_ms, image.fake.latency_p50_ms)
                } else {
                    ("p99", image.real.latency_p99_ms, image.fake.latency_p99_ms)
                };
                let (real, fake) = (real.unwrap_or(0.0), fake.unwrap_or(0.0));
                let direction = if m.value < 1.0 { "fake too fast" } else { "fake too slow" };
                format!(
                    "{label} fake/real {} (fake {} vs real {}, {}, {direction}; target {})",
                    ratio.cell(m.value),
                    LATENCY.quantity(fake * 1e6),
                    LATENCY.quantity(real * 1e6),
                    LATENCY.signed_quantity((fake - real) * 1e6),
                    m.target
                )
            }
        };
        reasons.push(text);
    }
    let mut text = format!("{}.", reasons.join("; "));
    let (rd, fd) = (&image.real_decomposition, &image.fake_decomposition);
    let mut parts = Vec::new();
    let p99_missed = missed.iter().any(|m| m.statistic == "p99_ratio");
    for (p99, at) in [(false, "median"), (true, "p99")] {
        if p99 && !p99_missed {
            continue;
        }
        if let Some((part, real, fake)) = largest_difference(rd, fd, p99) {
            parts.push(format!(
                "at the {at}, {} differs most: fake {} vs real {} ({})",
                part.label(),
                PART.quantity(fake * 1e6),
                PART.quantity(real * 1e6),
                PART.signed_quantity((fake - real) * 1e6)
            ));
        }
    }
    if parts.is_empty() {
        text.push_str(" No latency decomposition: the calls lack leaf or worker timings.");
    } else {
        let _ = write!(text, " Decomposition: {}.", parts.join("; "));
    }
    Some(text)
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for a Markdown table cell or line: HTML-significant
/// characters, table pipes, and Markdown emphasis and code markers.
pub fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '|' | '`' | '*' | '_' | '[' | ']' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a file name for an `href`/`src` (then HTML-escaped by the caller).
fn url_path(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

impl Comparison {
    pub fn new(real: &RunData, fake: &RunData) -> Self {
        let mut images: Vec<String> = real.by_image.keys().chain(fake.by_image.keys()).cloned().collect();
        images.sort();
        images.dedup();
        let images = images
            .into_iter()
            .map(|image| {
                let (r, f) = (real.by_image.get(&image), fake.by_image.get(&image));
                let (rs, fs) = (side(r, real.duration_s), side(f, fake.duration_s));
                let mut c = ImageComparison {
                    latency_ratio_p50: ratio(fs.latency_p50_ms, rs.latency_p50_ms),
                    latency_ratio_p90: ratio(fs.latency_p90_ms, rs.latency_p90_ms),
                    latency_ratio_p99: ratio(fs.latency_p99_ms, rs.latency_p99_ms),
                    ks_distance: match (r, f) {
                        (Some(r), Some(f)) => ks_distance(&r.latencies_ok, &f.latencies_ok),
                        _ => None,
                    },
                    real_decomposition: r.map(|c| c.decomposition.summary()).unwrap_or_default(),
                    fake_decomposition: f.map(|c| c.decomposition.summary()).unwrap_or_default(),
                    image_tag: image,
                    real: rs,
                    fake: fs,
                    misses: Vec::new(),
                    why_it_misses: None,
                    real_vs_real: None,
                };
                c.misses = misses(&c);
                c.why_it_misses = why_it_misses(&c);
                c
            })
            .collect();
        Comparison {
            real_db: real.path.clone(),
            real_run: real.run_id.clone(),
            fake_db: fake.path.clone(),
            fake_run: fake.run_id.clone(),
            trained_on: None,
            validation: None,
            sample_relation: NOT_STATED.to_string(),
            reference: None,
            same_workload: real.seed == fake.seed && real.config_yaml == fake.config_yaml,
            images,
            real_instances_over_time: real.instances_over_time.clone(),
            fake_instances_over_time: fake.instances_over_time.clone(),
        }
    }

    /// Measures the real platform's own run-to-run variation: `reference`
    /// (a second real run of the workload) against `real`, per function, and
    /// says for each miss whether the fake is within it.
    pub fn with_reference(mut self, reference: &RunData, real: &RunData) -> Self {
        for image in &mut self.images {
            let tag = image.image_tag.as_str();
            image.real_vs_real = RealVsReal::new(reference.by_image.get(tag), real.by_image.get(tag));
            if let Some(more) = within_variation(image)
                && let Some(why) = &mut image.why_it_misses
            {
                why.push(' ');
                why.push_str(&more);
            }
        }
        self.reference = Some(Reference { db: reference.path.clone(), run: reference.run_id.clone() });
        self
    }

    /// States which data trained the models and how the compared runs relate to it.
    pub fn with_sample(mut self, sample: SampleRelation) -> Self {
        self.sample_relation = sample.summary();
        self.trained_on = sample.trained_on;
        self.validation = sample.validation;
        self
    }

    pub fn to_markdown(&self) -> String {
        let (count, percent, ratio, throughput) = (count_col(), percent_col(), ratio_col(), throughput_col());
        let f = |v: Option<f64>| ms_cell(LATENCY, v);
        let r = |v: Option<f64>| ratio.cell_opt(v);
        let mut md = String::from("# Fidelity: real vs. fake\n\n");
        let _ = writeln!(md, "- **sample:** {}", md_escape(&self.sample_relation));
        let stated = |v: &Option<String>| v.as_deref().map_or("not stated".to_string(), md_escape);
        let _ = writeln!(md, "- **trained on:** {}", stated(&self.trained_on));
        let _ = writeln!(md, "- **validation:** {}", stated(&self.validation));
        let _ = writeln!(
            md,
            "- **real:** {} run {}",
            md_escape(&self.real_db.display().to_string()),
            md_escape(&self.real_run)
        );
        let _ = writeln!(
            md,
            "- **fake:** {} run {}",
            md_escape(&self.fake_db.display().to_string()),
            md_escape(&self.fake_run)
        );
        if !self.same_workload {
            md.push_str("\n**Warning:** the runs used different seeds or workload files; they did not send the same calls.\n");
        }
        md.push_str(
            "\nLatency is client-measured for successful calls, in ms. Ratio = fake / real. \
             KS = two-sample Kolmogorov–Smirnov distance of the latency distributions (0 = identical). \
             Targets: KS ≤ 0.10, p50 and p99 ratio within 0.90–1.10.\n\n\
             | function | calls real/fake | errors % real/fake | throughput calls/s real/fake | p50 ms real/fake (ratio) | p90 ms real/fake (ratio) | p99 ms real/fake (ratio) | KS | instances real/fake |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for i in &self.images {
            let _ = writeln!(
                md,
                "| {} | {}/{} | {}/{} | {}/{} | {}/{} ({}) | {}/{} ({}) | {}/{} ({}) | {} | {}/{} |",
                md_escape(&i.image_tag),
                count.cell(i.real.calls as f64),
                count.cell(i.fake.calls as f64),
                percent.cell(100.0 * i.real.error_rate),
                percent.cell(100.0 * i.fake.error_rate),
                throughput.cell(i.real.throughput_per_s),
                throughput.cell(i.fake.throughput_per_s),
                f(i.real.latency_p50_ms),
                f(i.fake.latency_p50_ms),
                r(i.latency_ratio_p50),
                f(i.real.latency_p90_ms),
                f(i.fake.latency_p90_ms),
                r(i.latency_ratio_p90),
                f(i.real.latency_p99_ms),
                f(i.fake.latency_p99_ms),
                r(i.latency_ratio_p99),
                r(i.ks_distance),
                count.cell(i.real.instances_used as f64),
                count.cell(i.fake.instances_used as f64),
            );
        }
        md.push_str("\n## Why it misses\n\n");
        let mut any = false;
        for i in &self.images {
            if let Some(why) = &i.why_it_misses {
                let _ = writeln!(md, "- **{}**: {}", md_escape(&i.image_tag), md_escape(why));
                any = true;
            }
        }
        if !any {
            md.push_str("Every function meets the targets.\n");
        }
        md.push_str(&crate::reference::markdown(self.reference.as_ref(), &self.images));
        md.push_str("\n## Latency decomposition\n\n");
        md.push_str(DECOMPOSITION_NOTE);
        md.push('\n');
        for i in &self.images {
            let _ = writeln!(md, "\n### {}\n", md_escape(&i.image_tag));
            md.push_str(
                "| part | p50 ms real | p50 ms fake | p50 fake − real | p99 ms real | p99 ms fake |\n\
                 |---|---:|---:|---:|---:|---:|\n",
            );
            for row in decomposition_rows(i) {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} |",
                    md_escape(row.part.label()),
                    row.real_p50,
                    row.fake_p50,
                    row.diff_p50,
                    row.real_p99,
                    row.fake_p99
                );
            }
            let _ = writeln!(md, "\n{}", md_escape(&decomposition_counts(i)));
        }
        md
    }

    /// The HTML page: header, summary table, why-it-misses lines, and per
    /// function the plots (`<img>` of the SVG files beside it) and the
    /// decomposition table. Every string from the databases or the command
    /// line is escaped.
    pub fn to_html(&self, plots: &PlotFiles) -> String {
        let e = html_escape;
        let mut h = String::from(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>hyperfake fidelity</title>\n<style>\n",
        );
        h.push_str(CSS);
        h.push_str("</style></head><body>\n<h1>Fidelity: real vs. fake</h1>\n<table class=\"header\">\n");
        let stated_class =
            if self.trained_on.is_none() && self.validation.is_none() { " class=\"warn\"" } else { "" };
        let _ = writeln!(h, "<tr><th>sample</th><td{stated_class}>{}</td></tr>", e(&self.sample_relation));
        let stated = |v: &Option<String>| v.as_deref().map_or("<em>not stated</em>".to_string(), e);
        let _ = writeln!(h, "<tr><th>trained on</th><td>{}</td></tr>", stated(&self.trained_on));
        let _ = writeln!(h, "<tr><th>validation</th><td>{}</td></tr>", stated(&self.validation));
        for (name, db, run) in
            [("real", &self.real_db, &self.real_run), ("fake", &self.fake_db, &self.fake_run)]
        {
            let _ = writeln!(
                h,
                "<tr><th>{name}</th><td><code>{}</code> run <code>{}</code></td></tr>",
                e(&db.display().to_string()),
                e(run)
            );
        }
        let _ = writeln!(
            h,
            "<tr><th>workload</th><td{}>{}</td></tr>\n</table>",
            if self.same_workload { "" } else { " class=\"warn\"" },
            if self.same_workload {
                "same seed and workload file on both sides"
            } else {
                "<strong>Warning:</strong> the runs used different seeds or workload files; they did not send the same calls"
            }
        );

        h.push_str(
            "<h2>Summary</h2>\n<p>Client-measured latency of successful calls. Ratio = fake / real. \
             KS = two-sample Kolmogorov–Smirnov distance of the latency distributions (0 = identical). \
             Targets: KS ≤ 0.10, p50 and p99 ratio within 0.90–1.10; <span class=\"miss\">misses</span> \
             are shaded.</p>\n<table class=\"numbers\">\n<thead><tr><th rowspan=\"2\">function</th>\
             <th colspan=\"2\">calls</th><th colspan=\"2\">errors (%)</th><th colspan=\"2\">throughput (calls/s)</th>\
             <th colspan=\"3\">p50 latency (ms)</th><th colspan=\"3\">p90 latency (ms)</th>\
             <th colspan=\"3\">p99 latency (ms)</th><th rowspan=\"2\">KS</th><th colspan=\"2\">instances</th></tr>\n<tr>",
        );
        for group in ["rf", "rf", "rf", "rfx", "rfx", "rfx", "rf"] {
            for c in group.chars() {
                h.push_str(match c {
                    'r' => "<th>real</th>",
                    'f' => "<th>fake</th>",
                    _ => "<th>ratio</th>",
                });
            }
        }
        h.push_str("</tr></thead>\n<tbody>\n");
        for i in &self.images {
            let class = |ok: Option<bool>| match ok {
                Some(false) => " class=\"miss\"",
                Some(true) => " class=\"hit\"",
                None => "",
            };
            let (count, percent, ratio, throughput) =
                (count_col(), percent_col(), ratio_col(), throughput_col());
            let _ = write!(
                h,
                "<tr><th><a href=\"#{}\">{}</a></th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
                e(&anchor(&i.image_tag)),
                e(&i.image_tag),
                count.cell(i.real.calls as f64),
                count.cell(i.fake.calls as f64),
                percent.cell(100.0 * i.real.error_rate),
                percent.cell(100.0 * i.fake.error_rate),
                throughput.cell(i.real.throughput_per_s),
                throughput.cell(i.fake.throughput_per_s)
            );
            for (real, fake, r, judged) in [
                (i.real.latency_p50_ms, i.fake.latency_p50_ms, i.latency_ratio_p50, true),
                (i.real.latency_p90_ms, i.fake.latency_p90_ms, i.latency_ratio_p90, false),
                (i.real.latency_p99_ms, i.fake.latency_p99_ms, i.latency_ratio_p99, true),
            ] {
                let cls = if judged { class(ratio_ok(r)) } else { "" };
                let _ = write!(
                    h,
                    "<td>{}</td><td>{}</td><td{cls}>{}</td>",
                    ms_cell(LATENCY, real),
                    ms_cell(LATENCY, fake),
                    ratio.cell_opt(r)
                );
            }
            let _ = writeln!(
                h,
                "<td{}>{}</td><td>{}</td><td>{}</td></tr>",
                class(ks_ok(i.ks_distance)),
                ratio.cell_opt(i.ks_distance),
                count.cell(i.real.instances_used as f64),
                count.cell(i.fake.instances_used as f64)
            );
        }
        h.push_str("</tbody></table>\n<h2>Why it misses</h2>\n");
        let missing: Vec<_> = self.images.iter().filter(|i| i.why_it_misses.is_some()).collect();
        if missing.is_empty() {
            h.push_str("<p>Every function meets the targets.</p>\n");
        } else {
            h.push_str("<ul class=\"why\">\n");
            for i in missing {
                let _ = writeln!(
                    h,
                    "<li><strong>{}</strong>: {}</li>",
                    e(&i.image_tag),
                    e(i.why_it_misses.as_deref().unwrap_or_default())
                );
            }
            h.push_str("</ul>\n");
        }

        h.push_str(&crate::reference::html(self.reference.as_ref(), &self.images));
        h.push_str("<h2>Per function</h2>\n<p class=\"note\">");
        h.push_str(&e(DECOMPOSITION_NOTE));
        h.push_str("</p>\n<dl class=\"parts\">");
        for part in Part::ALL {
            let _ = write!(h, "<dt>{}</dt><dd>{}</dd>", e(part.label()), e(part.definition()));
        }
        h.push_str("</dl>\n");
        for i in &self.images {
            let _ = writeln!(h, "<section id=\"{}\"><h3>{}</h3>", e(&anchor(&i.image_tag)), e(&i.image_tag));
            if let Some(why) = &i.why_it_misses {
                let _ = writeln!(h, "<p class=\"why\">Why it misses: {}</p>", e(why));
            }
            h.push_str("<div class=\"plots\">");
            let image_plots = plots.by_image.get(&i.image_tag);
            for (plot, alt) in [
                (image_plots.and_then(|p| p.ecdf.as_ref()), "latency ECDF, real vs fake"),
                (image_plots.and_then(|p| p.decomposition.as_ref()), "latency decomposition, real vs fake"),
            ] {
                if let Some(name) = plot.and_then(|p| p.file_name()) {
                    let _ = write!(
                        h,
                        "<img src=\"{}\" alt=\"{}: {alt}\" width=\"{}\" height=\"{}\">",
                        e(&url_path(&name.to_string_lossy())),
                        e(&i.image_tag),
                        crate::plots::PLOT_WIDTH,
                        crate::plots::PLOT_HEIGHT
                    );
                }
            }
            h.push_str(
                "</div>\n<table class=\"numbers decomposition\"><thead><tr><th>part</th>\
                 <th>p50 real (ms)</th><th>p50 fake (ms)</th><th>p50 fake − real (ms)</th>\
                 <th>p99 real (ms)</th><th>p99 fake (ms)</th></tr></thead><tbody>\n",
            );
            let biggest =
                largest_difference(&i.real_decomposition, &i.fake_decomposition, false).map(|d| d.0);
            for row in decomposition_rows(i) {
                let cls = if Some(row.part) == biggest { " class=\"biggest\"" } else { "" };
                let _ = writeln!(
                    h,
                    "<tr{cls}><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    e(row.part.label()),
                    row.real_p50,
                    row.fake_p50,
                    row.diff_p50,
                    row.real_p99,
                    row.fake_p99
                );
            }
            let _ = writeln!(
                h,
                "</tbody></table>\n<p class=\"note\">{}</p></section>",
                e(&decomposition_counts(i))
            );
        }
        if let Some(name) = plots.instances.as_ref().and_then(|p| p.file_name()) {
            let _ = writeln!(
                h,
                "<h2>Instances</h2>\n<img src=\"{}\" alt=\"live instances over time, real vs fake\" class=\"wide\">",
                e(&url_path(&name.to_string_lossy()))
            );
        }
        h.push_str("</body></html>\n");
        h
    }

    /// Writes `fidelity.{json,md,html}` and the plots into `dir`; returns the files.
    pub fn write(&self, dir: &Path, real: &RunData, fake: &RunData) -> anyhow::Result<Vec<PathBuf>> {
        use anyhow::Context;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let write = |name: &str, text: &str| -> anyhow::Result<PathBuf> {
            let path = dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        };
        let mut files = vec![
            write("fidelity.json", &serde_json::to_string_pretty(self)?)?,
            write("fidelity.md", &self.to_markdown())?,
        ];
        let plots = crate::plots::write_all(dir, real, fake, self)?;
        files.push(write("fidelity.html", &self.to_html(&plots))?);
        files.extend(plots.all());
        Ok(files)
    }
}

const DECOMPOSITION_NOTE: &str = "Latency decomposition: per successful call, the client latency is split into \
     consecutive parts that add up to it (definitions below); the table shows each part's median and p99 over the \
     calls (medians of parts need not add up to the median latency). Leaf and worker timestamps are on their \
     hosts' clocks: leaf→worker compares the two, so on separate hosts it carries their clock offset, and the \
     return path carries the same offset with the opposite sign.";

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1400px;margin:1.5em auto;\
padding:0 1em;color:#222;line-height:1.4}\n\
h1{margin-bottom:.3em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}h3{margin:1.4em 0 .4em}\n\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px}\n\
thead th{background:#f3f3f3}tbody th{text-align:left;font-weight:600;white-space:nowrap}\n\
table.numbers{font-size:.88em}table.numbers td{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n\
table.numbers td,table.numbers th{padding:3px 6px}\n\
table.header th{text-align:left;background:#f3f3f3}\n\
.miss{background:#fbd5d0}.hit{background:#dcf1dc}.warn{background:#fff1c2}\n\
tr.biggest td,tr.biggest th{background:#fff1c2}\n\
.plots{display:flex;flex-wrap:wrap;gap:8px}.plots img{box-sizing:border-box;max-width:100%;height:auto;border:1px solid #eee}\n\
img.wide{max-width:100%;height:auto}\n\
p.why,ul.why li{color:#7a1d12}p.note{color:#555;font-size:.9em;max-width:1100px}\n\
dl.parts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;font-size:.9em}dl.parts dt{font-weight:600}\n\
dl.parts dd{margin:0}a{color:#1f5fa8}\n";

/// An `id` for a function's section: the tag with everything but ASCII
/// letters, digits and `-` replaced by `-`.
fn anchor(tag: &str) -> String {
    let id: String = tag.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    format!("fn-{id}")
}

/// One decomposition table row, formatted (ms, three decimals).
struct DecompositionRow {
    part: Part,
    real_p50: String,
    fake_p50: String,
    diff_p50: String,
    real_p99: String,
    fake_p99: String,
}

fn decomposition_rows(i: &ImageComparison) -> Vec<DecompositionRow> {
    Part::ALL
        .iter()
        .map(|&part| {
            let r = i.real_decomposition.part(part);
            let f = i.fake_decomposition.part(part);
            let (r50, f50) = (r.and_then(|p| p.p50_ms), f.and_then(|p| p.p50_ms));
            DecompositionRow {
                part,
                real_p50: ms_cell(PART, r50),
                fake_p50: ms_cell(PART, f50),
                diff_p50: match (r50, f50) {
                    (Some(r), Some(f)) => PART.signed((f - r) * 1e6),
                    _ => hyperfake_core::format::MISSING.into(),
                },
                real_p99: ms_cell(PART, r.and_then(|p| p.p99_ms)),
                fake_p99: ms_cell(PART, f.and_then(|p| p.p99_ms)),
            }
        })
        .collect()
}

fn decomposition_counts(i: &ImageComparison) -> String {
    let side = |name: &str, d: &DecompositionSummary| {
        let mut s = format!("{name}: {} calls with every timing", d.complete_calls);
        if d.incomplete_calls > 0 {
            let _ = write!(s, ", {} without", d.incomplete_calls);
        }
        if d.negative_calls > 0 {
            let _ = write!(s, ", {} with a negative part (clock offset between hosts)", d.negative_calls);
        }
        s
    };
    format!("{}; {}.", side("real", &i.real_decomposition), side("fake", &i.fake_decomposition))
}
