//! Predicted-vs-actual and residual plots (SVG, plotters).
//!
//! Values are drawn in the unit the axis names (ms, MiB, cores; see
//! [`hyperfake_core::format`]). Heavy-tailed targets (runtimes, sizes) get
//! log-scale axes, and residuals are clipped to their 1st–99th percentile,
//! so that the bulk of the points is not squashed against zero by a few
//! outliers; the panel's caption says when either happened.

use std::path::Path;

use anyhow::{Result, anyhow};
use hyperfake_core::format::{self, Column, Unit};
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::prelude::*;

use crate::data::unit_of;
use crate::metrics::quantile_sorted;

/// At most this many points per panel: enough to see the shape, small enough
/// for an SVG a browser opens quickly.
const MAX_POINTS: usize = 1500;
/// Width and height of one panel (px).
const PANEL: (u32, u32) = (450, 340);
/// Residuals outside these quantiles are drawn at the panel's edge when the
/// full range is more than [`CLIP_WHEN_WIDER`] times the clipped one.
const CLIP_QUANTILES: (f64, f64) = (0.01, 0.99);
const CLIP_WHEN_WIDER: f64 = 3.0;

/// Writes an n×2 panel SVG, one row per target: left predicted vs actual
/// (with y = x), right residual (actual − predicted) vs predicted.
pub fn write(
    path: &Path,
    title: &str,
    targets: &[String],
    actual: &[Vec<f64>],
    predicted: &[Vec<f64>],
) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    hyperfake_plotfont::ensure()?;
    let step = actual.len().div_ceil(MAX_POINTS).max(1);
    let idx: Vec<usize> = (0..actual.len()).step_by(step).collect();
    let n = targets.len().max(1);
    #[allow(clippy::cast_possible_truncation)]
    let height = PANEL.1 * n as u32 + 40;
    let root = SVGBackend::new(path, (2 * PANEL.0, height)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(plot_err)?;
    let panels = root.split_evenly((n, 2));
    for (t, name) in targets.iter().enumerate() {
        let col = Column::fit(Unit::from_name(unit_of(name)), idx.iter().map(|&i| actual[i][t]));
        let a: Vec<f64> = idx.iter().map(|&i| col.scaled(actual[i][t])).collect();
        let p: Vec<f64> = idx.iter().map(|&i| col.scaled(predicted[i][t])).collect();
        let r: Vec<f64> = a.iter().zip(&p).map(|(a, p)| a - p).collect();
        let unit = col.symbol();
        predicted_vs_actual(&panels[2 * t], name, unit, &a, &p)?;
        residuals(&panels[2 * t + 1], unit, &p, &r)?;
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

/// "actual (ms, log scale)", "residual (cores)", "predicted".
fn axis_desc(what: &str, unit: &str, log: bool) -> String {
    match (unit.is_empty(), log) {
        (true, false) => what.to_string(),
        (true, true) => format!("{what} (log scale)"),
        (false, false) => format!("{what} ({unit})"),
        (false, true) => format!("{what} ({unit}, log scale)"),
    }
}

/// Predicted against actual on the same axes, log-scale when the actual
/// values are heavy-tailed; predictions ≤ 0 then sit on the axis floor.
fn predicted_vs_actual<DB: DrawingBackend>(
    panel: &DrawingArea<DB, plotters::coord::Shift>,
    name: &str,
    unit: &str,
    a: &[f64],
    p: &[f64],
) -> Result<()> {
    let caption = if unit.is_empty() { name.to_string() } else { format!("{name} ({unit})") };
    if format::wants_log_axis(a) {
        let (lo, hi) = log_bounds(a.iter().chain(p));
        let floored = a.iter().chain(p).filter(|v| v.is_finite() && **v <= 0.0).count();
        let caption = if floored > 0 {
            format!("{caption}; {} ≤ 0 on the floor", count(floored, "value"))
        } else {
            caption
        };
        let points = a.iter().zip(p).map(|(a, p)| (a.max(lo), p.max(lo)));
        let desc = (axis_desc("actual", unit, true), axis_desc("predicted", unit, true));
        let range = || (lo..hi).log_scale();
        scatter(panel, &caption, desc, (range(), range()), (true, true), [(lo, lo), (hi, hi)], points, BLUE)
    } else {
        let (lo, hi) = bounds(a.iter().chain(p));
        let desc = (axis_desc("actual", unit, false), axis_desc("predicted", unit, false));
        let points = a.iter().copied().zip(p.iter().copied());
        scatter(panel, &caption, desc, (lo..hi, lo..hi), (false, false), [(lo, lo), (hi, hi)], points, BLUE)
    }
}

/// Residuals against predictions: y clipped to the 1st–99th percentile when
/// a few residuals would stretch it, x log-scale when the predictions are
/// heavy-tailed.
fn residuals<DB: DrawingBackend>(
    panel: &DrawingArea<DB, plotters::coord::Shift>,
    unit: &str,
    p: &[f64],
    r: &[f64],
) -> Result<()> {
    let (mut rlo, mut rhi) = bounds(r.iter().chain(&[0.0]));
    let mut notes = Vec::new();
    let mut sorted: Vec<f64> = r.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    if !sorted.is_empty() {
        let (qlo, qhi) =
            (quantile_sorted(&sorted, CLIP_QUANTILES.0), quantile_sorted(&sorted, CLIP_QUANTILES.1));
        let (clo, chi) = bounds([qlo, qhi, 0.0].iter());
        if (rhi - rlo) > CLIP_WHEN_WIDER * (chi - clo) {
            let outside = sorted.iter().filter(|v| **v < clo || **v > chi).count();
            notes.push(format!("y clipped to p1–p99, {} on the edge", count(outside, "point")));
            (rlo, rhi) = (clo, chi);
        }
    }
    let y_desc = axis_desc("residual = actual − predicted", unit, false);
    let clip = |v: f64| v.clamp(rlo, rhi);
    if format::wants_log_axis(p) {
        let (plo, phi) = log_bounds(p.iter());
        let floored = p.iter().filter(|v| v.is_finite() && **v <= 0.0).count();
        if floored > 0 {
            notes.push(format!("{} ≤ 0 on the left edge", count(floored, "prediction")));
        }
        let points = p.iter().zip(r).map(|(p, r)| (p.max(plo), clip(*r)));
        scatter(
            panel,
            &notes.join("; "),
            (axis_desc("predicted", unit, true), y_desc),
            ((plo..phi).log_scale(), rlo..rhi),
            (true, false),
            [(plo, 0.0), (phi, 0.0)],
            points,
            GREEN,
        )
    } else {
        let (plo, phi) = bounds(p.iter());
        let points = p.iter().zip(r).map(|(p, r)| (*p, clip(*r)));
        scatter(
            panel,
            &notes.join("; "),
            (axis_desc("predicted", unit, false), y_desc),
            (plo..phi, rlo..rhi),
            (false, false),
            [(plo, 0.0), (phi, 0.0)],
            points,
            GREEN,
        )
    }
}

/// One panel: `points` in `color` over a red reference line from `line[0]`
/// to `line[1]`; `log` says which axes are log-scale (for the tick labels).
#[allow(clippy::too_many_arguments)]
fn scatter<DB, X, Y>(
    panel: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    (x_desc, y_desc): (String, String),
    (x, y): (X, Y),
    log: (bool, bool),
    line: [(f64, f64); 2],
    points: impl Iterator<Item = (f64, f64)>,
    color: RGBColor,
) -> Result<()>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let tick = |log: bool| -> fn(&f64) -> String { if log { log_tick } else { linear_tick } };
    let (x_tick, y_tick) = (tick(log.0), tick(log.1));
    let mut builder = ChartBuilder::on(panel);
    builder.caption(caption, ("sans-serif", 13));
    let mut chart = builder
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(x, y)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(if log.0 { 40 } else { 6 })
        .y_labels(if log.1 { 40 } else { 6 })
        .x_label_formatter(&x_tick)
        .y_label_formatter(&y_tick)
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(plot_err)?;
    chart.draw_series(LineSeries::new(line, RED.stroke_width(1))).map_err(plot_err)?;
    chart.draw_series(points.map(|p| Circle::new(p, 2, color.mix(0.35).filled()))).map_err(plot_err)?;
    Ok(())
}

fn log_tick(v: &f64) -> String {
    format::log_tick(*v)
}

fn linear_tick(v: &f64) -> String {
    format::axis_tick(*v)
}

fn plot_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("plotting failed: {e}")
}

/// Finite min/max with a little padding; never an empty range, and a
/// constant gets a tenth of its size either side (not a sliver that the tick
/// labels cannot tell apart).
fn bounds<'a>(v: impl Iterator<Item = &'a f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &x in v.filter(|x| x.is_finite()) {
        lo = lo.min(x);
        hi = hi.max(x);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let size = lo.abs().max(hi.abs());
    let pad = if hi - lo > size * 1e-3 {
        (hi - lo) * 0.03
    } else if size > 0.0 {
        size * 0.1
    } else {
        1.0
    };
    (lo - pad, hi + pad)
}

/// The positive finite min/max on a log axis: from the power of ten below
/// the smallest (plotters puts ticks only from the first power of ten on) to
/// a little above the largest.
fn log_bounds<'a>(v: impl Iterator<Item = &'a f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for &x in v.filter(|x| x.is_finite() && **x > 0.0) {
        lo = lo.min(x);
        hi = hi.max(x);
    }
    if !lo.is_finite() {
        return (1.0, 10.0);
    }
    let lo = format::log_axis_start(lo);
    (lo, (hi * 1.2).max(lo * 10.0))
}

/// "1 value", "6 values".
fn count(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heavy_tailed_targets_get_log_axes_in_the_shown_unit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.svg");
        // Runtimes from 1 ms to 200 ms with one outlier residual.
        let actual: Vec<Vec<f64>> = (1..=200).map(|i| vec![f64::from(i) * 1e6, 0.25]).collect();
        let mut predicted: Vec<Vec<f64>> = actual.iter().map(|r| vec![r[0] * 0.9, 0.2]).collect();
        predicted[0][0] = -5e6;
        predicted[1][0] = 2e9;
        let targets = ["function_processing_time_ns".to_string(), "function_cpu_usage".to_string()];
        write(&path, "t", &targets, &actual, &predicted).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        for needle in [
            "actual (ms, log scale)",
            "predicted (ms, log scale)",
            "1 value ≤ 0 on the floor",
            "y clipped to p1–p99",
            "actual (cores)",
            "residual = actual − predicted (cores)",
        ] {
            assert!(svg.contains(needle), "{needle} missing");
        }
        assert!(!svg.contains("e6") && !svg.contains("e7"), "exponent in a label");
    }
}
