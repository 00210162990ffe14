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

/// The text of one real-vs-fake line chart.
struct Chart<'a> {
    caption: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    height: u32,
}

/// Draws the real and the fake series on shared axes starting at 0, with a legend.
fn real_vs_fake(
    path: &Path,
    chart: &Chart<'_>,
    real: &[(f64, f64)],
    fake: &[(f64, f64)],
) -> anyhow::Result<()> {
    let both = || real.iter().chain(fake);
    let max_x = both().map(|p| p.0).fold(f64::MIN_POSITIVE, f64::max);
    let max_y = both().map(|p| p.1).fold(f64::MIN_POSITIVE, f64::max);
    let root = SVGBackend::new(path, (900, chart.height)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut plot = ChartBuilder::on(&root)
        .caption(chart.caption, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..max_x * 1.05, 0.0..max_y * 1.05)
        .map_err(plot_error)?;
    plot.configure_mesh().x_desc(chart.x_desc).y_desc(chart.y_desc).draw().map_err(plot_error)?;
    for (label, data, color) in [("real", real, REAL), ("fake", fake, FAKE)] {
        plot.draw_series(LineSeries::new(data.iter().copied(), color.stroke_width(2)))
            .map_err(plot_error)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    plot.configure_series_labels().border_style(BLACK).background_style(WHITE).draw().map_err(plot_error)?;
    root.present().map_err(plot_error)
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
        let caption = format!("Latency ECDF: {}", image.image_tag);
        let chart =
            Chart { caption: &caption, x_desc: "latency (ms)", y_desc: "fraction of calls", height: 500 };
        real_vs_fake(&path, &chart, &ecdf(r), &ecdf(f))?;
        files.push(path);
    }
    let (ri, fi) = (&comparison.real_instances_over_time, &comparison.fake_instances_over_time);
    if !ri.is_empty() || !fi.is_empty() {
        let path = dir.join("instances-over-time.svg");
        let as_f64 = |points: &[(f64, i64)]| -> Vec<(f64, f64)> {
            points.iter().map(|&(t, n)| (t, n as f64)).collect()
        };
        let chart = Chart {
            caption: "Live instances over time",
            x_desc: "time since run start (s)",
            y_desc: "instances",
            height: 400,
        };
        real_vs_fake(&path, &chart, &as_f64(ri), &as_f64(fi))?;
        files.push(path);
    }
    Ok(files)
}
