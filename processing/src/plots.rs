//! Plots of one run, each as PNG and SVG, with an `index.html` linking them:
//! throughput per second by status, latency decomposition per image, latency
//! ECDF per image, live instances over time, worker CPU and RAM over time;
//! and for a trace replay a section of its own ([`crate::trace_plots`]).
//!
//! Labels are drawn with a TrueType font read at run time (plotters'
//! `ab_glyph` backend: no fontconfig). [`hyperfake_plotfont::FONT_ENV`] names one; otherwise the
//! DejaVu Sans of Debian's `fonts-dejavu-core` is used.

// Plot coordinates: small values, lossy conversions are the point.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hyperfake_core::format;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::error::{ProcessError, Result};
use crate::features::Lifecycle;
use crate::raw::{self, RawRun};

pub(crate) const SIZE: (u32, u32) = (1000, 600);

/// Every plot's file stem and title, in page order.
pub const PLOTS: [(&str, &str); 6] = [
    ("throughput", "Throughput per second by status"),
    ("latency_decomposition", "Mean latency decomposition per image"),
    ("latency_ecdf", "Client latency ECDF per image"),
    ("instances", "Live instances per worker"),
    ("worker_cpu", "Worker CPU (cores)"),
    ("worker_ram", "Worker RAM (GiB)"),
];

pub(crate) fn ensure_font() -> Result<()> {
    hyperfake_plotfont::ensure().map_err(|e| ProcessError::NoFont { tried: e.tried })
}

/// Reads `run_id` (or the only run) from `db` and draws it into `out`.
/// Returns the files written (PNGs, SVGs and `index.html`).
pub fn draw_db(db: &Path, run_id: Option<&str>, out: &Path) -> Result<Vec<PathBuf>> {
    let conn = raw::open_read(db)?;
    let runs = raw::run_ids(&conn, db)?;
    let run = match run_id {
        Some(r) if runs.iter().any(|k| k == r) => r.to_owned(),
        Some(r) => {
            return Err(ProcessError::UnknownRun {
                path: db.to_owned(),
                run_id: r.to_owned(),
                known: runs.join(", "),
            });
        }
        None => runs[0].clone(),
    };
    if run_id.is_none() && runs.len() > 1 {
        tracing::warn!(
            run,
            others = runs.len() - 1,
            "several runs in the file; drawing the first (use --run-id)"
        );
    }
    let raw = raw::read_run(&conn, &run, &indicatif::ProgressBar::hidden())?;
    let mut written = draw(&raw, out)?;
    // A trace replay gets its own section: calls per trace minute and
    // inter-arrival times (`trace_plots`).
    let trace = crate::trace_plots::draw(&conn, &run, out)?;
    if !trace.is_empty() {
        written.extend(trace);
        let index = out.join("index.html");
        std::fs::write(&index, index_html(&raw.run_id, true))
            .map_err(|source| ProcessError::Write { path: index.clone(), source })?;
    }
    Ok(written)
}

/// Draws every plot of `raw` into `out`.
pub fn draw(raw: &RawRun, out: &Path) -> Result<Vec<PathBuf>> {
    ensure_font()?;
    std::fs::create_dir_all(out).map_err(|source| ProcessError::Write { path: out.to_owned(), source })?;
    let data = PlotData::new(raw);
    let mut written = Vec::new();
    macro_rules! both {
        ($name:expr, $f:ident) => {{
            let png = out.join(format!("{}.png", $name));
            {
                let area = BitMapBackend::new(&png, SIZE).into_drawing_area();
                $f(&area, &data).and_then(|()| area.present()).map_err(|e| draw_err(&png, e))?;
            }
            let svg = out.join(format!("{}.svg", $name));
            {
                let area = SVGBackend::new(&svg, SIZE).into_drawing_area();
                $f(&area, &data).and_then(|()| area.present()).map_err(|e| draw_err(&svg, e))?;
            }
            written.push(png);
            written.push(svg);
        }};
    }
    both!("throughput", throughput);
    both!("latency_decomposition", latency_decomposition);
    both!("latency_ecdf", latency_ecdf);
    both!("instances", instances);
    both!("worker_cpu", worker_cpu);
    both!("worker_ram", worker_ram);
    let index = out.join("index.html");
    std::fs::write(&index, index_html(&raw.run_id, false))
        .map_err(|source| ProcessError::Write { path: index.clone(), source })?;
    written.push(index);
    Ok(written)
}

pub(crate) fn draw_err<E: std::fmt::Display>(path: &Path, e: E) -> ProcessError {
    ProcessError::Draw { path: path.to_owned(), message: e.to_string() }
}

fn index_html(run_id: &str, trace: bool) -> String {
    let mut body = String::new();
    let trace_plots = trace.then_some(crate::trace_plots::TRACE_PLOTS).into_iter().flatten();
    for (i, (stem, title)) in PLOTS.into_iter().chain(trace_plots).enumerate() {
        if i == PLOTS.len() {
            body.push_str("<h1>Trace replay</h1>\n");
        }
        body.push_str(&format!(
            "<section><h2>{title}</h2><a href=\"{stem}.svg\"><img src=\"{stem}.png\" alt=\"{title}\" \
             width=\"{w}\"></a><p><a href=\"{stem}.png\">PNG</a> · <a href=\"{stem}.svg\">SVG</a></p></section>\n",
            w = SIZE.0
        ));
    }
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>run {run}</title></head>\n<body>\n\
         <h1>run {run}</h1>\n<p>Times: client clock for throughput, worker clock for the rest \
         (definitions: docs/units.md).</p>\n{body}</body></html>\n",
        run = html_escape(run_id)
    )
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub(crate) type DrawResult<DB> =
    std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Everything the plots need, in plot units (seconds, ms, cores, GiB).
#[derive(Debug, Default)]
struct PlotData {
    /// status → completions per second (index = second since the first call).
    throughput: BTreeMap<String, Vec<u32>>,
    /// image → mean ms of [leaf scheduling, leaf→worker & network, worker queue, processing].
    decomposition: BTreeMap<String, [f64; 4]>,
    /// image → sorted client latencies (ms) of OK calls.
    latency: BTreeMap<String, Vec<f64>>,
    /// worker → (s, live instances) steps.
    instances: BTreeMap<String, Vec<(f64, f64)>>,
    /// worker → (s, cores).
    cpu: BTreeMap<String, Vec<(f64, f64)>>,
    /// worker → (s, GiB).
    ram: BTreeMap<String, Vec<(f64, f64)>>,
}

const DECOMPOSITION: [&str; 4] = ["leaf scheduling", "leaf→worker & network", "worker queue", "processing"];

impl PlotData {
    fn new(raw: &RawRun) -> PlotData {
        let c = &raw.calls;
        let mut d = PlotData::default();

        // Throughput: completions (client clock) per second by status.
        let client0 = c.scheduled_ns.iter().copied().min().unwrap_or(0);
        for i in 0..c.len() {
            let done = match (c.sent_ns[i], c.latency_ns[i]) {
                (Some(s), Some(l)) => s + l,
                _ => c.scheduled_ns[i],
            };
            let sec = usize::try_from((done - client0) / 1_000_000_000).unwrap_or(0);
            let v = d.throughput.entry(c.status[i].clone()).or_default();
            if v.len() <= sec {
                v.resize(sec + 1, 0);
            }
            v[sec] += 1;
        }

        // Latency decomposition and ECDF of OK calls. Each part is measured on
        // one clock; the leaf→worker part is what remains of the client latency.
        let mut sums: BTreeMap<String, ([f64; 4], u64)> = BTreeMap::new();
        for i in (0..c.len()).filter(|&i| c.status[i] == rundb::CallStatus::Ok.as_str()) {
            let Some(latency) = c.latency_ns[i] else { continue };
            d.latency.entry(c.image_tag[i].clone()).or_default().push(latency as f64 / 1e6);
            let parts = (|| {
                let sched = c.leaf_scheduled_call_ns[i]? - c.leaf_got_request_ns[i]?;
                let queue = c.call_started_ns[i]? - c.call_queued_ns[i]?;
                let processing = c.got_response_ns[i]? - c.call_started_ns[i]?;
                let rest = (latency - sched - queue - processing).max(0);
                Some([sched, rest, queue, processing].map(|ns| ns as f64 / 1e6))
            })();
            if let Some(p) = parts {
                let e = sums.entry(c.image_tag[i].clone()).or_default();
                (0..4).for_each(|k| e.0[k] += p[k]);
                e.1 += 1;
            }
        }
        d.decomposition = sums.into_iter().map(|(k, (s, n))| (k, s.map(|v| v / n as f64))).collect();
        d.latency.values_mut().for_each(|v| v.sort_by(f64::total_cmp));

        // Worker-clock series, from the first worker-clock time seen.
        let worker0 = raw
            .events
            .timestamp_ns
            .iter()
            .chain(&raw.worker_samples.timestamp_ns)
            .chain(c.call_started_ns.iter().flatten())
            .copied()
            .min()
            .unwrap_or(0);
        let secs = |t: i64| (t - worker0) as f64 / 1e9;
        let worker_end = raw
            .events
            .timestamp_ns
            .iter()
            .chain(&raw.worker_samples.timestamp_ns)
            .chain(c.got_response_ns.iter().flatten())
            .copied()
            .max()
            .unwrap_or(worker0);
        for (worker, mut steps) in Lifecycle::from_events(&raw.events).steps() {
            // Hold the last count to the end of the run.
            if let Some(&(_, n)) = steps.last() {
                steps.push((worker_end, n));
            }
            d.instances.insert(worker, steps.into_iter().map(|(t, n)| (secs(t), n as f64)).collect());
        }
        let ws = &raw.worker_samples;
        for i in 0..ws.timestamp_ns.len() {
            if let Some(cores) = ws.cpu_cores[i] {
                d.cpu.entry(ws.worker[i].clone()).or_default().push((secs(ws.timestamp_ns[i]), cores));
            }
            if let Some(bytes) = ws.ram_bytes[i] {
                let gib = bytes as f64 / (1u64 << 30) as f64;
                d.ram.entry(ws.worker[i].clone()).or_default().push((secs(ws.timestamp_ns[i]), gib));
            }
        }
        d
    }
}

fn color(k: usize) -> RGBColor {
    const COLORS: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    COLORS[k % COLORS.len()]
}

/// How a line chart's axes are drawn.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Axes {
    /// Log-scale x axis (heavy-tailed latencies); points with x ≤ 0 are left out.
    pub(crate) log_x: bool,
    /// The y axis counts things: whole-number ticks only.
    pub(crate) count_y: bool,
    /// The legend goes to the lower right (an ECDF ends at the upper right).
    pub(crate) legend_lower_right: bool,
    /// One panel of several: smaller caption and axis label areas.
    pub(crate) small: bool,
}

/// A line chart of named (x, y) series; an empty map draws an empty frame.
pub(crate) fn lines<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &BTreeMap<String, Vec<(f64, f64)>>,
    axes: Axes,
) -> DrawResult<DB> {
    area.fill(&WHITE)?;
    let points = series.values().flatten();
    let x_max = points.clone().map(|p| p.0).fold(1e-9, f64::max);
    let y_max = points.clone().map(|p| p.1).fold(1e-9, f64::max) * 1.1;
    let mut builder = ChartBuilder::on(area);
    if axes.small {
        builder.caption(title, ("sans-serif", 14)).margin(6).x_label_area_size(28).y_label_area_size(36);
    } else {
        builder.caption(title, ("sans-serif", 24)).margin(12).x_label_area_size(40).y_label_area_size(60);
    }
    let y_tick: fn(&f64) -> String = if axes.count_y { count_tick } else { linear_tick };
    if axes.log_x {
        let x_min = points.map(|p| p.0).filter(|x| *x > 0.0).fold(f64::INFINITY, f64::min);
        let x_min = if x_min.is_finite() { format::log_axis_start(x_min) } else { 1e-3 };
        let x_max = (x_max * 1.2).max(x_min * 10.0);
        let chart = builder.build_cartesian_2d((x_min..x_max).log_scale(), 0.0..y_max)?;
        draw_lines(chart, x_label, y_label, series, (log_tick, y_tick), 40, axes)
    } else {
        let chart = builder.build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
        draw_lines(chart, x_label, y_label, series, (linear_tick, y_tick), 10, axes)
    }
}

fn draw_lines<'a, DB: DrawingBackend + 'a, X: Ranged<ValueType = f64> + ValueFormatter<f64>>(
    mut chart: ChartContext<'a, DB, Cartesian2d<X, RangedCoordf64>>,
    x_label: &str,
    y_label: &str,
    series: &BTreeMap<String, Vec<(f64, f64)>>,
    (x_tick, y_tick): (fn(&f64) -> String, fn(&f64) -> String),
    x_labels: usize,
    axes: Axes,
) -> DrawResult<DB> {
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_labels(x_labels)
        .x_label_formatter(&x_tick)
        .y_label_formatter(&y_tick)
        // Only the labelled grid lines: a log axis has a light line at every
        // integer multiple, which greys the chart out.
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()?;
    for (k, (name, pts)) in series.iter().enumerate() {
        let c = color(k);
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    if !series.is_empty() {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(if axes.legend_lower_right {
                SeriesLabelPosition::LowerRight
            } else {
                SeriesLabelPosition::UpperRight
            })
            .draw()?;
    }
    Ok(())
}

fn linear_tick(v: &f64) -> String {
    format::axis_tick(*v)
}

fn count_tick(v: &f64) -> String {
    format::count_tick(*v)
}

fn log_tick(v: &f64) -> String {
    format::log_tick(*v)
}

fn throughput<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, d: &PlotData) -> DrawResult<DB> {
    let series = d
        .throughput
        .iter()
        .map(|(status, v)| {
            (status.clone(), v.iter().enumerate().map(|(s, n)| (s as f64, f64::from(*n))).collect())
        })
        .collect();
    lines(
        area,
        "Throughput by status",
        "time since first call (s, client clock)",
        "calls completed per s",
        &series,
        Axes { count_y: true, ..Axes::default() },
    )
}

fn latency_ecdf<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, d: &PlotData) -> DrawResult<DB> {
    // At most ~2000 points per image: enough for a smooth curve.
    let series: BTreeMap<String, Vec<(f64, f64)>> = d
        .latency
        .iter()
        .map(|(image, v)| {
            let n = v.len();
            let step = (n / 2000).max(1);
            let mut pts: Vec<(f64, f64)> =
                (0..n).step_by(step).map(|i| (v[i], (i + 1) as f64 / n as f64)).collect();
            if let Some(&last) = v.last() {
                pts.push((last, 1.0));
            }
            (image.clone(), pts)
        })
        .collect();
    // Latencies of different functions span orders of magnitude (µs echoes
    // next to 200 ms simulations), and each has a tail.
    let all: Vec<f64> = d.latency.values().flatten().copied().collect();
    let log_x = format::wants_log_axis(&all);
    let (x_label, series) = if log_x {
        let positive = |(k, v): (String, Vec<(f64, f64)>)| (k, v.into_iter().filter(|p| p.0 > 0.0).collect());
        ("client latency (ms, log scale)", series.into_iter().map(positive).collect())
    } else {
        ("client latency (ms)", series)
    };
    lines(
        area,
        "Client latency ECDF (OK calls)",
        x_label,
        "fraction of calls ≤ latency",
        &series,
        Axes { log_x, legend_lower_right: true, ..Axes::default() },
    )
}

fn instances<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, d: &PlotData) -> DrawResult<DB> {
    let axes = Axes { count_y: true, ..Axes::default() };
    lines(area, "Live instances per worker", "time (s, worker clock)", "live instances", &d.instances, axes)
}

fn worker_cpu<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, d: &PlotData) -> DrawResult<DB> {
    lines(area, "Worker CPU", "time (s, worker clock)", "CPU (cores)", &d.cpu, Axes::default())
}

fn worker_ram<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, d: &PlotData) -> DrawResult<DB> {
    lines(area, "Worker RAM", "time (s, worker clock)", "RAM (GiB)", &d.ram, Axes::default())
}

/// Horizontal stacked bars: one per image, one segment per latency part.
fn latency_decomposition<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, d: &PlotData) -> DrawResult<DB> {
    area.fill(&WHITE)?;
    let images: Vec<&String> = d.decomposition.keys().collect();
    let x_max = d.decomposition.values().map(|p| p.iter().sum::<f64>()).fold(1e-9, f64::max) * 1.25;
    // A segmented range 0..last has last + 1 rows: one per image (at least two).
    let last = (images.len().max(2) - 1) as u32;
    let mut chart = ChartBuilder::on(area)
        .caption("Mean latency decomposition (OK calls)", ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(260)
        .build_cartesian_2d(0.0..x_max, (0u32..last).into_segmented())?;
    chart
        .configure_mesh()
        .x_desc("mean latency (ms)")
        .x_label_formatter(&linear_tick)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => images.get(*i as usize).map(|s| s.to_string()).unwrap_or_default(),
            _ => String::new(),
        })
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()?;
    for (part, name) in DECOMPOSITION.iter().enumerate() {
        let c = color(part);
        let bars = images.iter().enumerate().map(|(row, image)| {
            let p = d.decomposition[*image];
            let x0: f64 = p[..part].iter().sum();
            let row = row as u32;
            let mut bar = Rectangle::new(
                [(x0, SegmentValue::Exact(row)), (x0 + p[part], SegmentValue::Exact(row + 1))],
                c.filled(),
            );
            bar.set_margin(12, 12, 0, 0);
            bar
        });
        chart
            .draw_series(bars)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    Ok(())
}
