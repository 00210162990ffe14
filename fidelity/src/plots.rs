//! SVG plots: per function the latency ECDF on a log axis (real vs. fake) and
//! the latency decomposition as stacked bars (real next to fake); live
//! instances over time.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hyperfake_core::format::{self, Column, Unit};
use plotters::prelude::*;

use crate::data::RunData;
use crate::decompose::{DecompositionSummary, Part};
use crate::report::{Comparison, ImageComparison};
use crate::stats::ks_point;

const REAL: RGBColor = RGBColor(31, 119, 180);
const FAKE: RGBColor = RGBColor(255, 127, 14);

/// One colour per [`Part`], in [`Part::ALL`] order.
pub const PART_COLORS: [RGBColor; 6] = [
    RGBColor(78, 121, 167),
    RGBColor(242, 142, 43),
    RGBColor(225, 87, 89),
    RGBColor(118, 183, 178),
    RGBColor(89, 161, 79),
    RGBColor(237, 201, 72),
];

/// Width of every per-function plot (px); two fit side by side on the page.
pub const PLOT_WIDTH: u32 = 660;
/// Height of every per-function plot (px).
pub const PLOT_HEIGHT: u32 = 420;

fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing a plot: {e}")
}

/// The plots written for one function.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImagePlots {
    pub ecdf: Option<PathBuf>,
    pub decomposition: Option<PathBuf>,
}

/// Every plot written, by function.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlotFiles {
    pub by_image: BTreeMap<String, ImagePlots>,
    pub instances: Option<PathBuf>,
}

impl PlotFiles {
    pub fn all(&self) -> Vec<PathBuf> {
        let per_image = self.by_image.values().flat_map(|p| p.ecdf.iter().chain(&p.decomposition));
        per_image.chain(&self.instances).cloned().collect()
    }
}

/// A file-name stem for an image tag: ASCII letters, digits, `-` and `.` kept,
/// everything else `_`; distinct tags that map to the same stem get `-2`, `-3`, …
pub fn file_stem(tag: &str, taken: &mut BTreeSet<String>) -> String {
    let base: String = tag
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
        .collect();
    let base = if base.trim_matches('.').is_empty() { format!("_{base}") } else { base };
    let mut stem = base.clone();
    let mut n = 2;
    while !taken.insert(stem.clone()) {
        stem = format!("{base}-{n}");
        n += 1;
    }
    stem
}

/// The ECDF as a step line: (latency ms, fraction of calls ≤ it).
fn ecdf_steps(sorted_ns: &[u64]) -> Vec<(f64, f64)> {
    let n = sorted_ns.len() as f64;
    let mut points = Vec::with_capacity(2 * sorted_ns.len());
    for (i, v) in sorted_ns.iter().enumerate() {
        let x = *v as f64 / 1e6;
        points.push((x, i as f64 / n));
        points.push((x, (i + 1) as f64 / n));
    }
    points
}

/// Latency ECDF of the real and the fake calls on a log latency axis, with the
/// KS distance marked where it occurs.
fn latency_ecdf(path: &Path, tag: &str, real: &[u64], fake: &[u64]) -> anyhow::Result<()> {
    let both = || real.iter().chain(fake).map(|v| *v as f64 / 1e6).filter(|v| *v > 0.0);
    let lo = both().fold(f64::INFINITY, f64::min);
    let hi = both().fold(0.0, f64::max);
    // The axis starts at a power of ten so that it has labels below the data's first decade.
    let (lo, hi) =
        if lo.is_finite() && hi > 0.0 { (format::log_axis_start(lo), hi * 1.2) } else { (0.01, 1.0) };
    let hi = hi.max(lo * 10.0);
    let root = SVGBackend::new(path, (PLOT_WIDTH, PLOT_HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut plot = ChartBuilder::on(&root)
        .caption(format!("Latency ECDF: {tag}"), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..1.0)
        .map_err(plot_error)?;
    plot.configure_mesh()
        .x_desc("client latency (ms, log scale)")
        .y_desc("fraction of calls ≤ latency")
        .x_labels(40)
        .x_label_formatter(&|v| format::log_tick(*v))
        .y_labels(11)
        .y_label_formatter(&|v| format::axis_tick(*v))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(plot_error)?;
    for (label, data, color) in [("real", real, REAL), ("fake", fake, FAKE)] {
        let steps = ecdf_steps(data);
        plot.draw_series(LineSeries::new(steps.into_iter().filter(|p| p.0 > 0.0), color.stroke_width(2)))
            .map_err(plot_error)?
            .label(format!("{label} ({} calls)", data.len()))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    if let Some((x_ns, fr, ff)) = ks_point(real, fake) {
        let x = (x_ns as f64 / 1e6).max(lo);
        let black = BLACK.stroke_width(1);
        plot.draw_series(std::iter::once(PathElement::new(vec![(x, fr), (x, ff)], black)))
            .map_err(plot_error)?;
        let label = format!(
            "KS {} at {}",
            Column::fit(Unit::Ratio, []).cell((fr - ff).abs()),
            format::quantity(Unit::Nanos, x_ns as f64)
        );
        let y = (fr + ff) / 2.0;
        plot.draw_series(std::iter::once(Text::new(label, (x * 1.04, y), ("sans-serif", 13).into_font())))
            .map_err(plot_error)?;
    }
    plot.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)
}

/// Stacked bars of the part medians, real next to fake, with each side's
/// median client latency marked; a legend on the right.
fn decomposition(
    path: &Path,
    tag: &str,
    real: &DecompositionSummary,
    fake: &DecompositionSummary,
    latency_p50_ms: [Option<f64>; 2],
) -> anyhow::Result<()> {
    let sides = [real, fake];
    let stacked = |s: &DecompositionSummary| -> f64 {
        s.parts.iter().filter_map(|p| p.p50_ms).map(|v| v.max(0.0)).sum()
    };
    let top =
        sides.iter().map(|s| stacked(s)).chain(latency_p50_ms.iter().flatten().copied()).fold(0.0, f64::max);
    let top = if top > 0.0 { top * 1.1 } else { 1.0 };
    let root = SVGBackend::new(path, (PLOT_WIDTH, PLOT_HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (left, legend) = root.split_horizontally(PLOT_WIDTH - 240);
    let mut plot = ChartBuilder::on(&left)
        .caption(format!("Latency decomposition (medians): {tag}"), ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(55)
        .build_cartesian_2d((0u32..1u32).into_segmented(), 0.0..top)
        .map_err(plot_error)?;
    plot.configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(0) => "real".to_string(),
            SegmentValue::CenterOf(1) => "fake".to_string(),
            _ => String::new(),
        })
        .y_desc("median latency per part (ms)")
        .y_label_formatter(&|v| format::axis_tick(*v))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(plot_error)?;
    for (x, side) in (0u32..).zip(sides) {
        let mut base = 0.0;
        for (part, color) in Part::ALL.iter().zip(PART_COLORS) {
            let Some(v) = side.part(*part).and_then(|p| p.p50_ms) else { continue };
            let v = v.max(0.0);
            let mut bar = Rectangle::new(
                [(SegmentValue::Exact(x), base), (SegmentValue::Exact(x + 1), base + v)],
                color.filled(),
            );
            bar.set_margin(0, 0, 25, 25);
            plot.draw_series(std::iter::once(bar)).map_err(plot_error)?;
            base += v;
        }
        if let Some(latency) = latency_p50_ms[x as usize] {
            let line = PathElement::new(
                vec![(SegmentValue::Exact(x), latency), (SegmentValue::Exact(x + 1), latency)],
                BLACK.stroke_width(2),
            );
            plot.draw_series(std::iter::once(line)).map_err(plot_error)?;
        }
    }
    // The legend, drawn in its own area so it never covers a bar.
    let font = ("sans-serif", 14).into_font();
    let mut y = 60;
    for (part, color) in Part::ALL.iter().zip(PART_COLORS).rev() {
        legend.draw(&Rectangle::new([(10, y), (26, y + 16)], color.filled())).map_err(plot_error)?;
        legend.draw(&Text::new(part.label(), (34, y + 1), font.clone())).map_err(plot_error)?;
        y += 26;
    }
    legend
        .draw(&PathElement::new(vec![(10, y + 8), (26, y + 8)], BLACK.stroke_width(2)))
        .map_err(plot_error)?;
    legend.draw(&Text::new("median client latency", (34, y + 1), font.clone())).map_err(plot_error)?;
    legend
        .draw(&Text::new("(medians of parts need not", (10, y + 32), ("sans-serif", 12).into_font()))
        .map_err(plot_error)?;
    legend
        .draw(&Text::new("add up to the median latency)", (10, y + 48), ("sans-serif", 12).into_font()))
        .map_err(plot_error)?;
    root.present().map_err(plot_error)
}

/// Live instances over time, real and fake on the same axes.
fn instances(path: &Path, real: &[(f64, i64)], fake: &[(f64, i64)]) -> anyhow::Result<()> {
    let as_f64 =
        |points: &[(f64, i64)]| -> Vec<(f64, f64)> { points.iter().map(|&(t, n)| (t, n as f64)).collect() };
    let (real, fake) = (as_f64(real), as_f64(fake));
    let both = || real.iter().chain(&fake);
    let max_x = both().map(|p| p.0).fold(f64::MIN_POSITIVE, f64::max);
    let max_y = both().map(|p| p.1).fold(1.0, f64::max);
    let root = SVGBackend::new(path, (2 * PLOT_WIDTH, 360)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut plot = ChartBuilder::on(&root)
        .caption("Live instances over time (all functions)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..max_x * 1.02, 0.0..max_y * 1.1)
        .map_err(plot_error)?;
    plot.configure_mesh()
        .x_desc("time since run start (s)")
        .y_desc("live instances")
        .x_label_formatter(&|v| format::axis_tick(*v))
        .y_label_formatter(&|v| format::count_tick(*v))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(plot_error)?;
    for (label, data, color) in [("real", &real, REAL), ("fake", &fake, FAKE)] {
        plot.draw_series(LineSeries::new(data.iter().copied(), color.stroke_width(2)))
            .map_err(plot_error)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    plot.configure_series_labels().border_style(BLACK).background_style(WHITE).draw().map_err(plot_error)?;
    root.present().map_err(plot_error)
}

fn image_plots(
    dir: &Path,
    stem: &str,
    real: &RunData,
    fake: &RunData,
    image: &ImageComparison,
) -> anyhow::Result<ImagePlots> {
    let tag = &image.image_tag;
    let mut plots = ImagePlots::default();
    let empty = Vec::new();
    let r = real.by_image.get(tag).map_or(&empty, |c| &c.latencies_ok);
    let f = fake.by_image.get(tag).map_or(&empty, |c| &c.latencies_ok);
    if !r.is_empty() || !f.is_empty() {
        let path = dir.join(format!("latency-ecdf-{stem}.svg"));
        latency_ecdf(&path, tag, r, f)?;
        plots.ecdf = Some(path);
    }
    let (rd, fd) = (&image.real_decomposition, &image.fake_decomposition);
    if rd.complete_calls > 0 || fd.complete_calls > 0 {
        let path = dir.join(format!("decomposition-{stem}.svg"));
        decomposition(&path, tag, rd, fd, [image.real.latency_p50_ms, image.fake.latency_p50_ms])?;
        plots.decomposition = Some(path);
    }
    Ok(plots)
}

pub fn write_all(
    dir: &Path,
    real: &RunData,
    fake: &RunData,
    comparison: &Comparison,
) -> anyhow::Result<PlotFiles> {
    hyperfake_plotfont::ensure()?;
    let mut files = PlotFiles::default();
    let mut taken = BTreeSet::new();
    for image in &comparison.images {
        let stem = file_stem(&image.image_tag, &mut taken);
        let plots = image_plots(dir, &stem, real, fake, image)?;
        files.by_image.insert(image.image_tag.clone(), plots);
    }
    let (ri, fi) = (&comparison.real_instances_over_time, &comparison.fake_instances_over_time);
    if !ri.is_empty() || !fi.is_empty() {
        let path = dir.join("instances-over-time.svg");
        instances(&path, ri, fi)?;
        files.instances = Some(path);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_are_safe_and_distinct() {
        let mut taken = BTreeSet::new();
        assert_eq!(file_stem("hyperfaas-echo:latest", &mut taken), "hyperfaas-echo_latest");
        assert_eq!(file_stem("hyperfaas/echo:latest", &mut taken), "hyperfaas_echo_latest");
        assert_eq!(file_stem("hyperfaas_echo:latest", &mut taken), "hyperfaas_echo_latest-2");
        assert_eq!(file_stem("\"><script>", &mut taken), "___script_");
        assert_eq!(file_stem("..", &mut taken), "_..");
    }
}
