//! SVG plots: latency ECDF per function (real vs. fake) and live instances over time.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::data::RunData;
use crate::report::Comparison;

const REAL: RGBColor = RGBColor(31, 119, 180);
const FAKE: RGBColor = RGBColor(255, 127, 14);

fn ecdf(sorted_ns: &[u64]) -> Vec<(f64, f64)> {
    let n = sorted_ns.len() as f64;
    sorted_ns.iter().enumerate().map(|(i, v)| (*v as f64 / 1e6, (i + 1) as f64 / n)).collect()
}

fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing a plot: {e}")
}

pub fn write_all(
    dir: &Path,
    real: &RunData,
    fake: &RunData,
    comparison: &Comparison,
) -> anyhow::Result<Vec<PathBuf>> {
    hyperfake_plotfont::ensure()?;
    let mut files = Vec::new();
    for image in &comparison.images {
        let empty = Vec::new();
        let r = real.by_image.get(&image.image_tag).map_or(&empty, |c| &c.latencies_ok);
        let f = fake.by_image.get(&image.image_tag).map_or(&empty, |c| &c.latencies_ok);
        if r.is_empty() && f.is_empty() {
            continue;
        }
        let name = image.image_tag.replace([':', '/'], "_");
        let path = dir.join(format!("latency-ecdf-{name}.svg"));
        let max_ms = r.iter().chain(f.iter()).max().copied().unwrap_or(1) as f64 / 1e6;
        let root = SVGBackend::new(&path, (900, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("Latency ECDF: {}", image.image_tag), ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..max_ms * 1.05, 0.0..1.0)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("latency (ms)")
            .y_desc("fraction of calls")
            .draw()
            .map_err(plot_error)?;
        for (label, data, color) in [("real", r, REAL), ("fake", f, FAKE)] {
            chart
                .draw_series(LineSeries::new(ecdf(data), color.stroke_width(2)))
                .map_err(plot_error)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
        drop(chart);
        drop(root);
        files.push(path);
    }
    let (ri, fi) = (&comparison.real_instances_over_time, &comparison.fake_instances_over_time);
    if !ri.is_empty() || !fi.is_empty() {
        let path = dir.join("instances-over-time.svg");
        let max_t = ri.iter().chain(fi.iter()).map(|p| p.0).fold(1.0, f64::max);
        let max_n = ri.iter().chain(fi.iter()).map(|p| p.1).max().unwrap_or(1).max(1);
        let root = SVGBackend::new(&path, (900, 400)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Live instances over time", ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..max_t, 0i64..max_n + 1)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("time since run start (s)")
            .y_desc("instances")
            .draw()
            .map_err(plot_error)?;
        for (label, data, color) in [("real", ri, REAL), ("fake", fi, FAKE)] {
            chart
                .draw_series(LineSeries::new(data.iter().copied(), color.stroke_width(2)))
                .map_err(plot_error)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
        drop(chart);
        drop(root);
        files.push(path);
    }
    Ok(files)
}
