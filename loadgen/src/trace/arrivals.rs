//! Per-minute invocation counts → send times, and each call's duration and
//! memory drawn from what the trace gives for its function.
//!
//! Within one trace minute of length `L` (the run's `minute_length`) the `n`
//! calls are placed as In-Vitro places them: `n` gaps drawn from the
//! inter-arrival distribution and scaled so they add up to `L`; the first call
//! is at the minute's start and each later one a gap after the previous, so
//! the last gap ends where the next minute starts. With `shift`, the minute's
//! calls are rotated by an offset drawn uniformly from `[0, L)` (wrapping
//! around), so functions do not all call at second 0 of each minute.
//!
//! - `exponential`: gaps of a Poisson process given its count; mean `L/n`,
//!   variance `L²(n−1)/(n²(n+1))`.
//! - `uniform`: gaps drawn uniformly, then scaled; mean `L/n`, variance
//!   about `L²/(3n²)`.
//! - `equidistant`: every gap `L/n`.
//!
//! A rate scale `s` turns a count `c` into `⌊c·s⌋` plus one more with
//! probability `frac(c·s)`, so the expected count is `c·s`.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Trace, WorkDist};
use crate::schedule::{RequestParams, rng, stream};

/// How calls are spread within a trace minute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceArrival {
    /// Exponential gaps (a Poisson process with the minute's count); the default.
    #[default]
    Exponential,
    /// Gaps drawn uniformly, then scaled to the minute.
    Uniform,
    /// Evenly spaced.
    Equidistant,
}

/// The calls of trace function `index`: send time in ns after the run's
/// start and request parameters, in time order. Its own random streams, so
/// one function's calls do not depend on another's.
pub(crate) fn function_calls(trace: &Trace, index: usize, seed: u64) -> Vec<(u64, RequestParams)> {
    let function = &trace.functions[index];
    let spec = &trace.spec;
    let minute_ns = u64::try_from(spec.minute_length.as_nanos()).unwrap_or(u64::MAX);
    let mut arrivals = rng(seed, stream::TRACE_ARRIVALS + index as u64);
    let mut work = rng(seed, stream::TRACE_WORK + index as u64);
    let mut out = Vec::new();
    for &(minute, count) in &function.counts {
        let n = scaled_count(count, spec.rate_scale, &mut arrivals);
        let start = u64::from(minute).saturating_mul(minute_ns);
        for offset in minute_offsets(n, spec.arrival, spec.shift, &mut arrivals) {
            let at = start.saturating_add(fraction_of(offset, minute_ns));
            let duration_us = micros(function.duration.draw(&mut work) * 1000.0);
            let memory_mib = function.memory.as_ref().map(|m| mib(m.draw(&mut work)));
            out.push((at, RequestParams::Trace { duration_us, memory_mib }));
        }
    }
    out
}

/// `count × scale`, rounded up or down at random so the mean is exact.
pub fn scaled_count(count: u32, scale: f64, rng: &mut ChaCha8Rng) -> u64 {
    if scale == 1.0 {
        return u64::from(count);
    }
    let x = f64::from(count) * scale;
    let whole = x.floor();
    let extra = u64::from(rng.random::<f64>() < x - whole);
    to_u64(whole) + extra
}

/// The `n` send times of one minute as fractions of it, in `[0, 1)`, sorted.
pub fn minute_offsets(n: u64, arrival: TraceArrival, shift: bool, rng: &mut ChaCha8Rng) -> Vec<f64> {
    if n == 0 {
        return Vec::new();
    }
    let len = usize::try_from(n).unwrap_or(usize::MAX);
    let mut times = Vec::with_capacity(len);
    match arrival {
        TraceArrival::Equidistant => times.extend((0..n).map(|j| j as f64 / n as f64)),
        TraceArrival::Exponential | TraceArrival::Uniform => {
            let gaps: Vec<f64> = (0..n)
                .map(|_| {
                    let u: f64 = rng.random();
                    match arrival {
                        TraceArrival::Exponential => -(1.0 - u).ln(),
                        _ => u,
                    }
                })
                .collect();
            let total: f64 = gaps.iter().sum();
            let mut t = 0.0;
            for gap in &gaps {
                times.push(if total > 0.0 { t / total } else { 0.0 });
                t += gap;
            }
        }
    }
    if shift {
        let by: f64 = rng.random();
        for t in &mut times {
            *t = (*t + by).fract();
        }
        times.sort_by(f64::total_cmp);
    }
    times
}

impl WorkDist {
    /// One draw: from the percentiles by linear interpolation between them,
    /// or one of the recorded values uniformly.
    pub fn draw(&self, rng: &mut ChaCha8Rng) -> f64 {
        match self {
            WorkDist::Percentiles(points) => {
                let p: f64 = rng.random::<f64>() * 100.0;
                interpolate(points, p)
            }
            WorkDist::Samples(values) => values[rng.random_range(0..values.len())],
        }
    }

    /// The mean: of the recorded values, or of the interpolated distribution.
    pub fn mean(&self) -> f64 {
        match self {
            WorkDist::Samples(values) => values.iter().sum::<f64>() / values.len().max(1) as f64,
            WorkDist::Percentiles(points) => {
                // Trapezoids between the points, flat beyond the first and last.
                let (first, last) = (points[0], points[points.len() - 1]);
                let mut sum = first.0 * first.1 + (100.0 - last.0) * last.1;
                for w in points.windows(2) {
                    sum += (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0;
                }
                sum / 100.0
            }
        }
    }
}

/// The value at percentile `p` of sorted `(percentile, value)` points.
fn interpolate(points: &[(f64, f64)], p: f64) -> f64 {
    let Some(hi) = points.iter().position(|&(q, _)| q >= p) else { return points[points.len() - 1].1 };
    if hi == 0 {
        return points[0].1;
    }
    let ((q0, v0), (q1, v1)) = (points[hi - 1], points[hi]);
    if q1 <= q0 { v1 } else { v0 + (v1 - v0) * (p - q0) / (q1 - q0) }
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub(crate) fn to_u64(x: f64) -> u64 {
    // NaN and negatives become 0; values beyond u64 saturate.
    x as u64
}

fn fraction_of(fraction: f64, whole_ns: u64) -> u64 {
    to_u64(fraction * whole_ns as f64).min(whole_ns.saturating_sub(1))
}

fn micros(x: f64) -> u64 {
    to_u64(x.round())
}

fn mib(x: f64) -> u32 {
    u32::try_from(to_u64(x.round())).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_and_clamp() {
        let points = [(0.0, 10.0), (50.0, 20.0), (100.0, 120.0)];
        assert_eq!(interpolate(&points, 0.0), 10.0);
        assert_eq!(interpolate(&points, 25.0), 15.0);
        assert_eq!(interpolate(&points, 75.0), 70.0);
        assert_eq!(interpolate(&points, 100.0), 120.0);
        // Memory percentiles start at 1: flat below.
        assert_eq!(interpolate(&[(1.0, 5.0), (100.0, 7.0)], 0.5), 5.0);
        assert_eq!(WorkDist::Percentiles(points.to_vec()).mean(), 42.5);
    }

    #[test]
    fn scaled_counts_keep_their_mean() {
        let mut r = rng(3, 0);
        assert_eq!(scaled_count(7, 1.0, &mut r), 7);
        assert_eq!(scaled_count(7, 2.0, &mut r), 14);
        let total: u64 = (0..10_000).map(|_| scaled_count(3, 0.5, &mut r)).sum();
        // Each draw is 1 or 2, mean 1.5, sd 0.5: 15 000 ± 50·sd(sum)=±2 500 never fails by chance.
        assert!((14_000..=16_000).contains(&total), "{total}");
    }

    #[test]
    fn offsets_stay_in_the_minute_and_sorted() {
        for arrival in [TraceArrival::Exponential, TraceArrival::Uniform, TraceArrival::Equidistant] {
            for shift in [false, true] {
                let t = minute_offsets(50, arrival, shift, &mut rng(1, 0));
                assert_eq!(t.len(), 50);
                assert!(t.iter().all(|x| (0.0..1.0).contains(x)), "{arrival:?} {shift}");
                assert!(t.windows(2).all(|w| w[0] <= w[1]));
                assert_eq!(t[0] == 0.0, !shift, "{arrival:?}: the first call is at second 0 unless shifted");
            }
        }
        assert_eq!(
            minute_offsets(4, TraceArrival::Equidistant, false, &mut rng(1, 0)),
            [0.0, 0.25, 0.5, 0.75]
        );
    }
}
