//! Plots of a trace replay (loadgen's `trace:`), drawn beside the run's other
//! plots when the run replayed a trace:
//!
//! - `trace_minutes`: per trace minute, the calls scheduled and the calls
//!   sent, one panel per trace function (the 12 with most calls);
//! - `trace_iat_ecdf`: the ECDF of the inter-arrival times within each trace
//!   minute, scheduled and as sent, against the distribution the workload
//!   chose. Each gap is divided by its minute's mean gap (minute length / the
//!   minute's calls `n`), so functions of every rate share one axis.
//!   Exponential gaps scaled to fill the minute (In-Vitro's placement) are
//!   the spacings of `n` uniform points: each is `Beta(1, n − 1)` of the
//!   minute, so the expected CDF is the mean over the gaps of
//!   `1 − (1 − x/n)^(n−1)` (→ `1 − e^(−x)` for large `n`); uniform draws
//!   scaled to the minute give about `U(0, 2)`; equidistant ones a step at 1.
//!   With `shift`, the minute's calls are rotated and the gap the rotation
//!   splits is not a gap between calls of the minute; a long gap is likelier
//!   to be split, so the ECDF runs a little above the curve at large x (seen
//!   in the example's run: 0.93 vs 0.87 at x = 2).
//!
//! Read from the run database: `runs.resolved_schedule_json` (the trace's
//! minute length, arrival and first minute; which phases are trace
//! functions), `schedule` (offsets) and `calls` (send times; warm-up calls
//! are not in `schedule`, so they are left out).

#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use rusqlite::Connection;

use crate::error::{ProcessError, Result};
use crate::plots::{Axes, DrawResult, SIZE, draw_err, ensure_font, lines};

/// The trace plots' file stems and titles, in page order.
pub const TRACE_PLOTS: [(&str, &str); 2] = [
    ("trace_minutes", "Calls per trace minute, scheduled vs sent, per trace function"),
    ("trace_iat_ecdf", "Inter-arrival times within a trace minute against the chosen distribution"),
];
/// Panels in `trace_minutes`: the functions with most calls.
const MAX_PANELS: usize = 12;

/// What the trace plots need.
#[derive(Debug, Default, PartialEq)]
pub struct TracePlotData {
    /// `trace.arrival`: exponential, uniform or equidistant.
    pub arrival: String,
    /// The trace minute the run's minute 0 replays.
    pub first_minute: i64,
    /// Trace function (phase name) → calls scheduled and sent per run minute.
    pub per_minute: BTreeMap<String, (Vec<u32>, Vec<u32>)>,
    /// Gaps within a minute over the minute's mean gap: scheduled, and as sent.
    pub gaps_scheduled: Vec<f64>,
    /// Calls in the minute of each scheduled gap, counted: `n` → gaps.
    pub gap_minute_calls: BTreeMap<u32, u64>,
    pub gaps_sent: Vec<f64>,
}

/// Reads the trace plot data of `run_id`; `None` when the run replayed no trace.
pub fn read(conn: &Connection, run_id: &str) -> Result<Option<TracePlotData>> {
    let json: Option<String> = conn
        .query_row("SELECT resolved_schedule_json FROM runs WHERE run_id = ?1", [run_id], |r| r.get(0))
        .map(Some)
        .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
        .map_err(ProcessError::sql("reading runs.resolved_schedule_json"))?;
    let Some(schedule) = json.and_then(|j| serde_json::from_str::<serde_json::Value>(&j).ok()) else {
        return Ok(None);
    };
    let trace = &schedule["trace"];
    let Some(minute_ns) = trace["minute_length"].as_str().and_then(go_duration_ns).filter(|ns| *ns > 0)
    else {
        return Ok(None);
    };
    let phases: BTreeSet<String> = schedule["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["kind"] == "trace")
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect();
    let mut stmt = conn
        .prepare(
            "SELECT s.phase, s.offset_ns, c.sent_ns - r.started_at_ns
             FROM schedule s JOIN runs r ON r.run_id = s.run_id
             LEFT JOIN calls c ON c.run_id = s.run_id AND c.call_index = s.call_index
             WHERE s.run_id = ?1 ORDER BY s.phase, s.offset_ns",
        )
        .map_err(ProcessError::sql("reading the trace schedule"))?;
    let rows = stmt
        .query_map([run_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, Option<i64>>(2)?))
        })
        .map_err(ProcessError::sql("reading the trace schedule"))?;
    // Phase → calls (scheduled offset, sent offset) in schedule order.
    let mut calls: BTreeMap<String, Vec<(i64, Option<i64>)>> = BTreeMap::new();
    for row in rows {
        let (phase, offset, sent) = row.map_err(ProcessError::sql("reading the trace schedule"))?;
        if phases.contains(&phase) {
            calls.entry(phase).or_default().push((offset, sent));
        }
    }
    let mut data = TracePlotData {
        arrival: trace["arrival"].as_str().unwrap_or("exponential").to_string(),
        first_minute: trace["first_minute"].as_i64().unwrap_or(1),
        ..TracePlotData::default()
    };
    for (phase, calls) in calls {
        let (per_minute, scheduled, sent) = minutes_and_gaps(&calls, minute_ns);
        for &n in per_minute.0.iter().filter(|n| **n >= 2) {
            *data.gap_minute_calls.entry(n).or_default() += u64::from(n - 1);
        }
        data.per_minute.insert(phase, per_minute);
        data.gaps_scheduled.extend(scheduled);
        data.gaps_sent.extend(sent);
    }
    data.gaps_scheduled.sort_by(f64::total_cmp);
    data.gaps_sent.sort_by(f64::total_cmp);
    Ok(Some(data))
}

type MinuteCounts = (Vec<u32>, Vec<u32>);

/// One function's calls (scheduled offset, sent offset; ns after time 0,
/// sorted by scheduled offset): calls scheduled and sent per minute, and the
/// normalised gaps between consecutive calls of each minute, scheduled and
/// as sent (a pair with an unsent call has no sent gap).
pub fn minutes_and_gaps(calls: &[(i64, Option<i64>)], minute_ns: i64) -> (MinuteCounts, Vec<f64>, Vec<f64>) {
    let minute_of = |t: i64| usize::try_from(t.max(0) / minute_ns).unwrap_or(0);
    let last = calls.iter().flat_map(|&(s, sent)| [Some(s), sent]).flatten().map(minute_of).max();
    let len = last.map_or(0, |m| m + 1);
    let (mut scheduled, mut sent) = (vec![0_u32; len], vec![0_u32; len]);
    let mut by_minute: BTreeMap<usize, Vec<(i64, Option<i64>)>> = BTreeMap::new();
    for &(s, t) in calls {
        scheduled[minute_of(s)] += 1;
        if let Some(t) = t {
            sent[minute_of(t)] += 1;
        }
        by_minute.entry(minute_of(s)).or_default().push((s, t));
    }
    let (mut gaps_scheduled, mut gaps_sent) = (Vec::new(), Vec::new());
    for minute in by_minute.values() {
        let mean_gap = minute_ns as f64 / minute.len() as f64;
        for pair in minute.windows(2) {
            gaps_scheduled.push((pair[1].0 - pair[0].0) as f64 / mean_gap);
            if let (Some(a), Some(b)) = (pair[0].1, pair[1].1) {
                gaps_sent.push((b - a) as f64 / mean_gap);
            }
        }
    }
    ((scheduled, sent), gaps_scheduled, gaps_sent)
}

/// The CDF a normalised gap follows under `arrival`, at `x`, for gaps from
/// minutes of `minute_calls` (`n` → gaps with `n` calls in their minute).
pub fn expected_cdf(arrival: &str, x: f64, minute_calls: &BTreeMap<u32, u64>) -> f64 {
    match arrival {
        "uniform" => (x / 2.0).clamp(0.0, 1.0),
        "equidistant" => {
            if x >= 1.0 {
                1.0
            } else {
                0.0
            }
        }
        _ => {
            let total: u64 = minute_calls.values().sum();
            if total == 0 {
                return 1.0 - (-x.max(0.0)).exp();
            }
            let sum: f64 = minute_calls
                .iter()
                .map(|(&n, &gaps)| {
                    let n = f64::from(n);
                    let below = if x >= n { 1.0 } else { 1.0 - (1.0 - x.max(0.0) / n).powf(n - 1.0) };
                    below * gaps as f64
                })
                .sum();
            sum / total as f64
        }
    }
}

/// Draws the trace plots of `run_id` into `out` when it replayed a trace;
/// returns the files written (none for a run without a trace).
pub fn draw(conn: &Connection, run_id: &str, out: &Path) -> Result<Vec<PathBuf>> {
    let Some(data) = read(conn, run_id)? else { return Ok(Vec::new()) };
    ensure_font()?;
    std::fs::create_dir_all(out).map_err(|source| ProcessError::Write { path: out.to_owned(), source })?;
    let mut written = Vec::new();
    for (stem, _) in TRACE_PLOTS {
        let png = out.join(format!("{stem}.png"));
        let svg = out.join(format!("{stem}.svg"));
        {
            let area = BitMapBackend::new(&png, SIZE).into_drawing_area();
            draw_one(stem, &area, &data).and_then(|()| area.present()).map_err(|e| draw_err(&png, e))?;
        }
        {
            let area = SVGBackend::new(&svg, SIZE).into_drawing_area();
            draw_one(stem, &area, &data).and_then(|()| area.present()).map_err(|e| draw_err(&svg, e))?;
        }
        written.push(png);
        written.push(svg);
    }
    Ok(written)
}

fn draw_one<DB: DrawingBackend>(
    stem: &str,
    area: &DrawingArea<DB, Shift>,
    data: &TracePlotData,
) -> DrawResult<DB> {
    if stem == "trace_minutes" { minutes(area, data) } else { iat_ecdf(area, data) }
}

fn minutes<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, data: &TracePlotData) -> DrawResult<DB> {
    area.fill(&WHITE)?;
    let mut functions: Vec<(&String, &MinuteCounts)> = data.per_minute.iter().collect();
    functions.sort_by_key(|(name, (scheduled, _))| {
        (std::cmp::Reverse(scheduled.iter().sum::<u32>()), (*name).clone())
    });
    functions.truncate(MAX_PANELS);
    if functions.is_empty() {
        return lines(area, "No trace calls", "trace minute", "calls", &BTreeMap::new(), Axes::default());
    }
    let cols = functions.len().min(4);
    let rows = functions.len().div_ceil(cols);
    let panels = area.split_evenly((rows, cols));
    for ((name, (scheduled, sent)), panel) in functions.into_iter().zip(panels.iter()) {
        let series: BTreeMap<String, Vec<(f64, f64)>> =
            [("1 scheduled".to_string(), scheduled), ("2 sent".to_string(), sent)]
                .into_iter()
                .map(|(k, v)| (k, v.iter().enumerate().map(|(m, n)| (m as f64, f64::from(*n))).collect()))
                .collect();
        // The function's hash is long: its last path part, shortened.
        let short: String = name.rsplit('/').next().unwrap_or(name).chars().take(10).collect();
        // The replay's minute 0 is trace minute `first_minute`.
        let x_label = format!("trace minute − {}", data.first_minute);
        lines(
            panel,
            &short,
            &x_label,
            "calls",
            &series,
            Axes { count_y: true, small: true, ..Axes::default() },
        )?;
    }
    Ok(())
}

fn iat_ecdf<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, data: &TracePlotData) -> DrawResult<DB> {
    let ecdf = |v: &[f64]| -> Vec<(f64, f64)> {
        let n = v.len();
        let step = (n / 2000).max(1);
        (0..n).step_by(step).map(|i| (v[i], (i + 1) as f64 / n as f64)).collect()
    };
    let x_max = data.gaps_scheduled.iter().chain(&data.gaps_sent).copied().fold(3.0_f64, f64::max).min(8.0);
    let expected: Vec<(f64, f64)> = (0..=400)
        .map(|i| x_max * f64::from(i) / 400.0)
        .map(|x| (x, expected_cdf(&data.arrival, x, &data.gap_minute_calls)))
        .collect();
    let series: BTreeMap<String, Vec<(f64, f64)>> = [
        (format!("1 scheduled (n = {})", data.gaps_scheduled.len()), ecdf(&data.gaps_scheduled)),
        (format!("2 sent (n = {})", data.gaps_sent.len()), ecdf(&data.gaps_sent)),
        (format!("3 expected: {}", data.arrival), expected),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.into_iter().filter(|p| p.0 <= x_max).collect()))
    .collect();
    lines(
        area,
        "Inter-arrival times within a trace minute",
        "gap / (minute length / calls in the minute)",
        "fraction of gaps ≤ x",
        &series,
        Axes { legend_lower_right: true, ..Axes::default() },
    )
}

/// Go duration text as loadgen writes it (`6s`, `1m30s`, `1.5s`, `250ms`) in ns.
pub fn go_duration_ns(text: &str) -> Option<i64> {
    let mut total = 0.0_f64;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3.6e12,
            "m" => 6e10,
            "s" => 1e9,
            "ms" => 1e6,
            "us" | "µs" => 1e3,
            "ns" => 1.0,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Some(total.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration_ns("6s"), Some(6_000_000_000));
        assert_eq!(go_duration_ns("1m30s"), Some(90_000_000_000));
        assert_eq!(go_duration_ns("1.5s"), Some(1_500_000_000));
        assert_eq!(go_duration_ns("250ms"), Some(250_000_000));
        assert_eq!(go_duration_ns("1h"), Some(3_600_000_000_000));
        assert_eq!(go_duration_ns(""), None);
        assert_eq!(go_duration_ns("6 parsecs"), None);
    }

    #[test]
    fn minutes_and_gaps_count_and_normalise() {
        // Minute length 100: three calls in minute 0 (one never sent), one in minute 1.
        let calls = [(0, Some(1)), (30, None), (60, Some(61)), (150, Some(250))];
        let ((scheduled, sent), gaps_scheduled, gaps_sent) = minutes_and_gaps(&calls, 100);
        assert_eq!(scheduled, [2 + 1, 1, 0]);
        assert_eq!(sent, [2, 0, 1], "the last call was sent a minute late");
        // Mean gap in minute 0: 100 / 3.
        let mean = 100.0 / 3.0;
        assert_eq!(gaps_scheduled, [30.0 / mean, 30.0 / mean]);
        assert!(gaps_sent.is_empty(), "each pair of minute 0 has an unsent call");
    }

    #[test]
    fn expected_cdfs() {
        let none = BTreeMap::new();
        assert!((expected_cdf("exponential", 1.0, &none) - (1.0 - (-1.0_f64).exp())).abs() < 1e-12);
        // Two calls in a minute: the one gap is uniform on [0, 2] after normalising.
        let two = BTreeMap::from([(2, 1)]);
        assert!((expected_cdf("exponential", 0.5, &two) - 0.25).abs() < 1e-12);
        assert_eq!(expected_cdf("exponential", 2.5, &two), 1.0);
        // Many calls: close to 1 − e^(−x).
        let many = BTreeMap::from([(10_000, 9_999)]);
        assert!((expected_cdf("exponential", 1.0, &many) - (1.0 - (-1.0_f64).exp())).abs() < 1e-4);
        assert_eq!(expected_cdf("uniform", 1.0, &none), 0.5);
        assert_eq!(expected_cdf("uniform", 3.0, &none), 1.0);
        assert_eq!(expected_cdf("equidistant", 0.99, &none), 0.0);
        assert_eq!(expected_cdf("equidistant", 1.0, &none), 1.0);
    }
}
