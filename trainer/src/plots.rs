//! Predicted-vs-actual and residual plots (SVG, plotters).

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::data::unit_of;

/// At most this many points per panel: enough to see the shape, small enough
/// for an SVG a browser opens quickly.
const MAX_POINTS: usize = 1500;

/// Writes a 2×n panel SVG: top row predicted vs actual (with y = x), bottom
/// row residual (actual − predicted) vs predicted, one column per target.
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
    let width = 400 * n as u32;
    let root = SVGBackend::new(path, (width, 760)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(plot_err)?;
    let panels = root.split_evenly((2, n));
    for (t, name) in targets.iter().enumerate() {
        let a: Vec<f64> = idx.iter().map(|&i| actual[i][t]).collect();
        let p: Vec<f64> = idx.iter().map(|&i| predicted[i][t]).collect();
        let r: Vec<f64> = a.iter().zip(&p).map(|(a, p)| a - p).collect();
        let label = format!("{name} ({})", unit_of(name));

        let (lo, hi) = bounds(a.iter().chain(&p));
        scatter(
            &panels[t],
            Some(&label),
            ("actual", "predicted"),
            (lo..hi, lo..hi),
            [(lo, lo), (hi, hi)],
            a.iter().copied().zip(p.iter().copied()),
            BLUE,
        )?;
        let ((plo, phi), (rlo, rhi)) = (bounds(p.iter()), bounds(r.iter()));
        scatter(
            &panels[n + t],
            None,
            ("predicted", "residual"),
            (plo..phi, rlo..rhi),
            [(plo, 0.0), (phi, 0.0)],
            p.iter().copied().zip(r.iter().copied()),
            GREEN,
        )?;
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

/// One panel: `points` in `color` over a red reference line from `line[0]` to `line[1]`.
fn scatter<DB: DrawingBackend>(
    panel: &DrawingArea<DB, plotters::coord::Shift>,
    caption: Option<&str>,
    (x_desc, y_desc): (&str, &str),
    (x, y): (std::ops::Range<f64>, std::ops::Range<f64>),
    line: [(f64, f64); 2],
    points: impl Iterator<Item = (f64, f64)>,
    color: RGBColor,
) -> Result<()> {
    let mut builder = ChartBuilder::on(panel);
    if let Some(caption) = caption {
        builder.caption(caption, ("sans-serif", 13));
    }
    let mut chart = builder
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(x, y)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(5)
        .y_labels(5)
        .x_label_formatter(&|v| short(*v))
        .y_label_formatter(&|v| short(*v))
        .draw()
        .map_err(plot_err)?;
    chart.draw_series(LineSeries::new(line, RED.stroke_width(1))).map_err(plot_err)?;
    chart.draw_series(points.map(|p| Circle::new(p, 2, color.mix(0.35).filled()))).map_err(plot_err)?;
    Ok(())
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting failed: {e:?}")
}

/// Finite min/max with a little padding; never an empty range.
fn bounds<'a>(v: impl Iterator<Item = &'a f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &x in v.filter(|x| x.is_finite()) {
        lo = lo.min(x);
        hi = hi.max(x);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.03).max(hi.abs() * 1e-6).max(1e-12);
    (lo - pad, hi + pad)
}

fn short(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-2..1e5).contains(&a) { format!("{v:.1e}") } else { format!("{v:.2}") }
}
