//! Phases → the list of calls, each with its send time and request parameters.
//!
//! Everything random comes from the workload's seed through [`rng`], one
//! ChaCha8 stream per purpose (phase generation, each phase's arrivals, request
//! parameters, each call's payload, each thumbnail source), so the same seed
//! gives the same schedule byte for byte, and a change to one phase does not
//! shift the randomness of the others.
//!
//! Time model: phase second `k` covers `[start_time + k s, start_time + (k+1) s)`
//! and has rate `start_rps` for constant phases; variable phases start at
//! `start_rps` and move `step` per second towards `end_rps`, then hold (as the
//! original generator's ticker did, but clamped so they never overshoot). A
//! final partial second gets a proportional share of calls. Calls that would
//! fall at or after `max_duration` are not scheduled (and are counted).
//!
//! A trace (`trace:`) adds one phase per selected function, after the
//! workload's own; its calls come from [`crate::trace::arrivals`] with their
//! parameters, on streams of their own, and merge into the same send order.

use std::collections::BTreeMap;
use std::time::Duration;

use hyperfake_core::ImageTag;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::config::{Arrival, DataProvider, Pattern, Phase, PhaseKind, PhaseSource, Workload};
use crate::trace::TraceSpec;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Most calls a workload may schedule unless its file raises
/// `max_scheduled_calls`. The whole schedule is built in memory before the
/// first call: about 150 bytes a call at its peak (the call with its image
/// tag and request parameters, the arrival times being sorted), so 20 M calls
/// is about 3 GB. That is an hour at 5 000 calls/s, beyond this generator's
/// target; a typo such as 100 000 calls/s for an hour (360 M calls) is
/// refused as a config error instead of ending in an out-of-memory kill.
pub const DEFAULT_MAX_SCHEDULED_CALLS: u64 = 20_000_000;

/// Random streams: each purpose draws from its own ChaCha8 stream.
pub(crate) mod stream {
    pub(crate) const GENERATED_PHASES: u64 = 1;
    pub(crate) const REQUEST_PARAMS: u64 = 2;
    pub(crate) const FUNCTION_COPY: u64 = 3;
    pub(crate) const TRACE_SELECTION: u64 = 4;
    /// + trace function index: its counts' rounding, gaps and shifts.
    pub(crate) const TRACE_ARRIVALS: u64 = 1 << 44;
    /// + trace function index: its calls' durations and memory.
    pub(crate) const TRACE_WORK: u64 = 1 << 45;
    /// + phase index.
    pub(crate) const ARRIVALS: u64 = 1 << 32;
    /// + `width << 16 | height`.
    pub(crate) const THUMBNAIL_SOURCE: u64 = 1 << 40;
    /// + call index.
    pub(crate) const PAYLOAD: u64 = 1 << 48;
}

/// The random stream `stream` of `seed`.
pub(crate) fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// The parameters that decide a request's body (and the work it causes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RequestParams {
    /// Random bytes (echo, generic).
    Bytes { size: u64 },
    /// A BFS over a graph of `size` nodes built from `seed`.
    Bfs { size: u32, seed: u32 },
    /// A thumbnail of `width`×`height` from a generated source image.
    Thumbnail { source_width: u32, source_height: u32, quality: u8, width: u32, height: u32 },
    /// A trace invocation: the duration and memory the trace asks for, sent
    /// as `{"duration_us":D,"memory_mib":M}` (memory left out when unknown).
    Trace {
        duration_us: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        memory_mib: Option<u32>,
    },
}

/// One call to send.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScheduledCall {
    /// Position in send order, from 0; part of the request id.
    pub index: u64,
    /// When to send, in ns after the run's start.
    pub offset_ns: u64,
    /// Index into [`Schedule::phases`].
    pub phase: u32,
    pub image_tag: ImageTag,
    /// Which of the image's functions (`copies`) the call goes to, from 0.
    /// Left out of the JSON when the image has one function.
    #[serde(skip_serializing_if = "is_first_copy")]
    pub copy: u32,
    pub request: RequestParams,
}

fn is_first_copy(copy: &u32) -> bool {
    *copy == 0
}

/// A resolved workload: the phases (generated if the file asked for that) and
/// every call in send order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Schedule {
    pub seed: u64,
    #[serde(serialize_with = "as_go_duration")]
    pub max_duration: Duration,
    pub generated: bool,
    pub phases: Vec<Phase>,
    /// Calls the phases ask for at or after `max_duration`, not scheduled.
    pub past_max_duration: u64,
    /// The replayed trace's settings; its functions are the `trace` phases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceSpec>,
    pub calls: Vec<ScheduledCall>,
}

/// Counts for `loadgen validate`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub calls: u64,
    pub past_max_duration: u64,
    pub calls_per_image: BTreeMap<String, u64>,
    pub calls_per_phase: Vec<u64>,
    /// Most calls scheduled in any one-second window.
    pub peak_calls_per_second: u64,
    #[serde(serialize_with = "as_go_duration")]
    pub last_call_at: Duration,
}

impl Schedule {
    /// Expands the workload into calls. Pure: same workload, same schedule.
    pub fn resolve(workload: &Workload) -> Schedule {
        let (mut phases, generated) = resolve_phases(&workload.phases, workload.seed, workload.max_duration);
        let max_ns = u64::try_from(workload.max_duration.as_nanos()).unwrap_or(u64::MAX);
        let mut arrivals: Vec<(u64, u32, u64)> = Vec::new();
        let mut past_max_duration = 0;
        let first_trace_phase = phases.len();
        for (i, phase) in phases.iter().enumerate() {
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            let mut rng = rng(workload.seed, stream::ARRIVALS + u64::from(index));
            past_max_duration += calls_in_seconds_past(phase, max_ns);
            for (seq, at) in phase_arrivals(phase, &mut rng, max_ns).into_iter().enumerate() {
                if at >= max_ns {
                    past_max_duration += 1;
                } else {
                    arrivals.push((at, index, seq as u64));
                }
            }
        }
        // Trace calls: their parameters are drawn with their times; the
        // arrival's third field indexes them.
        let mut trace_params: Vec<Option<RequestParams>> = Vec::new();
        if let Some(trace) = &workload.trace {
            phases.extend(trace.phases());
            for f in 0..trace.functions.len() {
                let phase = u32::try_from(first_trace_phase + f).unwrap_or(u32::MAX);
                for (at, params) in crate::trace::arrivals::function_calls(trace, f, workload.seed) {
                    if at >= max_ns {
                        past_max_duration += 1;
                    } else {
                        arrivals.push((at, phase, trace_params.len() as u64));
                        trace_params.push(Some(params));
                    }
                }
            }
        }
        // Ties (burst arrivals, overlapping phases) keep phase order, then
        // arrival order: a total order, so the result never depends on sorting.
        arrivals.sort_unstable();

        let mut params_rng = rng(workload.seed, stream::REQUEST_PARAMS);
        // Drawn only for images with several functions, so adding copies to
        // one image leaves every other draw unchanged.
        let mut copy_rng = rng(workload.seed, stream::FUNCTION_COPY);
        let calls = arrivals
            .into_iter()
            .enumerate()
            .map(|(index, (offset_ns, phase, seq))| {
                let image_tag = phases[phase as usize].image_tag.clone();
                let spec = &workload.functions[&image_tag];
                // Trace function k always goes to copy k mod copies: with
                // `copies`, each trace function gets a function of its own.
                let (copy, request) = match (phase as usize).checked_sub(first_trace_phase) {
                    Some(k) => (
                        u32::try_from(k % spec.copies as usize).unwrap_or(0),
                        trace_params[seq as usize].take().expect("each trace call is taken once"),
                    ),
                    None => (
                        if spec.copies > 1 { copy_rng.random_range(0..spec.copies) } else { 0 },
                        draw_request(&spec.provider, &mut params_rng),
                    ),
                };
                ScheduledCall { index: index as u64, offset_ns, phase, request, image_tag, copy }
            })
            .collect();
        Schedule {
            seed: workload.seed,
            max_duration: workload.max_duration,
            generated,
            phases,
            past_max_duration,
            trace: workload.trace.as_ref().map(|t| t.spec.clone()),
            calls,
        }
    }

    /// The whole schedule as JSON (what `loadgen schedule --json` prints).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a schedule always serializes")
    }

    /// The phases and counts, without the call list (stored with each run;
    /// the calls go to the `schedule` table).
    pub fn to_json_without_calls(&self) -> String {
        #[derive(Serialize)]
        struct Resolved<'a> {
            seed: u64,
            #[serde(serialize_with = "as_go_duration")]
            max_duration: Duration,
            generated: bool,
            phases: &'a [Phase],
            #[serde(skip_serializing_if = "Option::is_none")]
            trace: Option<&'a TraceSpec>,
            summary: Summary,
        }
        serde_json::to_string_pretty(&Resolved {
            seed: self.seed,
            max_duration: self.max_duration,
            generated: self.generated,
            phases: &self.phases,
            trace: self.trace.as_ref(),
            summary: self.summary(),
        })
        .expect("a schedule always serializes")
    }

    pub fn summary(&self) -> Summary {
        let mut calls_per_image = BTreeMap::new();
        let mut calls_per_phase = vec![0; self.phases.len()];
        for call in &self.calls {
            *calls_per_image.entry(call.image_tag.to_string()).or_insert(0) += 1;
            calls_per_phase[call.phase as usize] += 1;
        }
        let mut peak = 0;
        let mut lo = 0;
        for hi in 0..self.calls.len() {
            while self.calls[hi].offset_ns - self.calls[lo].offset_ns >= NANOS_PER_SEC {
                lo += 1;
            }
            peak = peak.max(hi - lo + 1);
        }
        Summary {
            calls: self.calls.len() as u64,
            past_max_duration: self.past_max_duration,
            calls_per_image,
            calls_per_phase,
            peak_calls_per_second: peak as u64,
            last_call_at: Duration::from_nanos(self.calls.last().map_or(0, |c| c.offset_ns)),
        }
    }
}

/// The phases a workload runs: its own, or those generated from its patterns
/// (then `true`).
pub fn resolve_phases(source: &PhaseSource, seed: u64, max_duration: Duration) -> (Vec<Phase>, bool) {
    match source {
        PhaseSource::Manual(phases) => (phases.clone(), false),
        PhaseSource::Generated(patterns) => (generate_phases(patterns, seed, max_duration), true),
    }
}

/// How many calls `phase` asks for before `max_duration`, counted without
/// making them: its rate summed over its seconds, in closed form, so a phase
/// of a year costs no more than one of a second. A final partial second
/// counts whole, so this is at most one second's rate above what
/// [`Schedule::resolve`] schedules (for Poisson arrivals, above the expected
/// count).
/// Calls `phase` plans in its whole seconds that start at or after `until_ns`
/// (which [`phase_arrivals`] does not expand).
fn calls_in_seconds_past(phase: &Phase, until_ns: u64) -> u64 {
    let until = Duration::from_nanos(until_ns);
    let Some(into_phase) = until.checked_sub(phase.start_time) else {
        return planned_calls(phase, Duration::MAX);
    };
    let expanded = Duration::from_secs(
        into_phase.as_nanos().div_ceil(u128::from(NANOS_PER_SEC)).try_into().unwrap_or(u64::MAX),
    );
    planned_calls(phase, Duration::MAX)
        .saturating_sub(planned_calls(phase, phase.start_time.saturating_add(expanded)))
}

pub fn planned_calls(phase: &Phase, max_duration: Duration) -> u64 {
    let Some(left) = max_duration.checked_sub(phase.start_time).filter(|d| !d.is_zero()) else { return 0 };
    let span = u128::from(u64::try_from(phase.duration.min(left).as_nanos()).unwrap_or(u64::MAX));
    let seconds = span.div_ceil(u128::from(NANOS_PER_SEC));
    let (start, end, step) = (u128::from(phase.start_rps), u128::from(phase.end_rps), u128::from(phase.step));
    let total = match phase.kind {
        // Counted by `Trace::planned_calls`.
        PhaseKind::Trace => 0,
        PhaseKind::Constant => seconds * start,
        PhaseKind::Variable if step == 0 => seconds * start,
        PhaseKind::Variable => {
            // Seconds before the rate reaches `end_rps` (then it holds there).
            let ramp = start.abs_diff(end).div_ceil(step).min(seconds);
            // Σ_{k<ramp} (start ± k·step), then the rest at `end_rps`.
            let moved = step * ramp * ramp.saturating_sub(1) / 2;
            let ramping = if end >= start { ramp * start + moved } else { ramp * start - moved };
            ramping + (seconds - ramp) * end
        }
    };
    u64::try_from(total).unwrap_or(u64::MAX)
}

/// Generates phases from patterns the way HyperFaaS's generator does: per
/// pattern, `phase_count` phases of `max_duration / phase_count` each, back to
/// back per image; each constant with probability `constant_likelihood`, with
/// start/end rps and step drawn uniformly from their ranges. Patterns are taken
/// in file order (the original iterated a Go map, in random order).
pub fn generate_phases(patterns: &[Pattern], seed: u64, max_duration: Duration) -> Vec<Phase> {
    let mut rng = rng(seed, stream::GENERATED_PHASES);
    let mut next_start: BTreeMap<ImageTag, Duration> = BTreeMap::new();
    let mut phases = Vec::new();
    for pattern in patterns {
        let count = rng.random_range(pattern.phase_count.0..=pattern.phase_count.1);
        let duration = max_duration / count;
        for i in 0..count {
            let start = next_start.entry(pattern.image_tag.clone()).or_insert(Duration::ZERO);
            let start_time = *start;
            *start += duration;
            let constant = rng.random::<f64>() < pattern.constant_likelihood;
            let start_rps = rng.random_range(pattern.start_rps.0..=pattern.start_rps.1);
            let end_rps = rng.random_range(pattern.end_rps.0..=pattern.end_rps.1);
            let step = rng.random_range(pattern.step.0..=pattern.step.1);
            phases.push(Phase {
                name: format!("{}_{i}", pattern.image_tag),
                kind: if constant { PhaseKind::Constant } else { PhaseKind::Variable },
                start_time,
                duration,
                start_rps,
                end_rps: if constant { start_rps } else { end_rps },
                step: if constant { 0 } else { step },
                image_tag: pattern.image_tag.clone(),
                arrival: pattern.arrival,
            });
        }
    }
    phases
}

/// The rate in phase second `k`.
pub fn rate_at(phase: &Phase, k: u64) -> u64 {
    let start = u64::from(phase.start_rps);
    let end = u64::from(phase.end_rps);
    let moved = k.saturating_mul(u64::from(phase.step));
    match phase.kind {
        PhaseKind::Trace => 0,
        PhaseKind::Constant => start,
        PhaseKind::Variable if end >= start => start.saturating_add(moved).min(end),
        PhaseKind::Variable => start.saturating_sub(moved).max(end),
    }
}

/// Send times of one phase, in ns after the run's start, in order.
fn phase_arrivals(phase: &Phase, rng: &mut ChaCha8Rng, until_ns: u64) -> Vec<u64> {
    let start = u64::try_from(phase.start_time.as_nanos()).unwrap_or(u64::MAX);
    let total = u64::try_from(phase.duration.as_nanos()).unwrap_or(u64::MAX);
    let mut out = Vec::new();
    let mut k = 0u64;
    // Seconds that start at or after `until_ns` are not expanded (a phase far
    // longer than the run would otherwise be built whole; found by fuzzing):
    // [`calls_in_seconds_past`] counts their calls.
    while k.saturating_mul(NANOS_PER_SEC) < total && start.saturating_add(k * NANOS_PER_SEC) < until_ns {
        let window_start = start.saturating_add(k * NANOS_PER_SEC);
        let window = (total - k * NANOS_PER_SEC).min(NANOS_PER_SEC);
        let rate = rate_at(phase, k);
        if rate > 0 {
            // A partial last second gets its share of calls, rounded.
            let n = (u128::from(rate) * u128::from(window) + u128::from(NANOS_PER_SEC / 2))
                / u128::from(NANOS_PER_SEC);
            let n = u64::try_from(n).unwrap_or(u64::MAX);
            match phase.arrival {
                Arrival::Burst => {
                    out.extend(std::iter::repeat_n(window_start, usize::try_from(n).unwrap_or(usize::MAX)))
                }
                Arrival::Uniform => {
                    out.extend((0..n).map(|j| window_start + j * NANOS_PER_SEC / rate));
                }
                Arrival::Poisson => {
                    // Exponential gaps; memoryless, so restarting each second
                    // with the new rate is exact for a piecewise-constant rate.
                    let mut t = 0.0_f64;
                    loop {
                        let u: f64 = rng.random();
                        t += -(1.0 - u).ln() / rate as f64;
                        let ns = secs_to_nanos(t);
                        if ns >= window {
                            break;
                        }
                        out.push(window_start + ns);
                    }
                }
            }
        }
        k += 1;
    }
    out
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn secs_to_nanos(secs: f64) -> u64 {
    // Callers compare against a window of at most 1 s; saturating is enough.
    if secs.is_nan() || secs <= 0.0 {
        0
    } else if secs >= 1e9 {
        u64::MAX
    } else {
        (secs * NANOS_PER_SEC as f64) as u64
    }
}

fn draw_request(provider: &DataProvider, rng: &mut ChaCha8Rng) -> RequestParams {
    match provider {
        DataProvider::Echo { min, max } | DataProvider::Generic { min, max } => {
            RequestParams::Bytes { size: rng.random_range(min.0..=max.0) }
        }
        DataProvider::BfsJson { min_nodes, max_nodes } => {
            RequestParams::Bfs { size: rng.random_range(*min_nodes..=*max_nodes), seed: rng.random() }
        }
        DataProvider::ThumbnailerJson { sources, width, height, jpeg_quality } => {
            let (source_width, source_height) = sources[rng.random_range(0..sources.len())];
            RequestParams::Thumbnail {
                source_width,
                source_height,
                quality: *jpeg_quality,
                width: rng.random_range(width.0..=width.1),
                height: rng.random_range(height.0..=height.1),
            }
        }
    }
}

fn as_go_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::duration::format(*d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(kind: PhaseKind, start: u32, end: u32, step: u32, secs: f64, arrival: Arrival) -> Phase {
        Phase {
            name: "p".into(),
            kind,
            start_time: Duration::from_secs(10),
            duration: Duration::from_secs_f64(secs),
            start_rps: start,
            end_rps: end,
            step,
            image_tag: ImageTag::from("x"),
            arrival,
        }
    }

    #[test]
    fn variable_rates_move_by_step_and_hold() {
        let up = phase(PhaseKind::Variable, 1, 8, 3, 10.0, Arrival::Uniform);
        assert_eq!((0..5).map(|k| rate_at(&up, k)).collect::<Vec<_>>(), [1, 4, 7, 8, 8]);
        let down = phase(PhaseKind::Variable, 10, 4, 4, 10.0, Arrival::Uniform);
        assert_eq!((0..4).map(|k| rate_at(&down, k)).collect::<Vec<_>>(), [10, 6, 4, 4]);
        let constant = phase(PhaseKind::Constant, 5, 5, 0, 10.0, Arrival::Uniform);
        assert_eq!(rate_at(&constant, 9), 5);
    }

    #[test]
    fn uniform_and_burst_place_calls_within_each_second() {
        let mut rng = rng(1, 0);
        let uniform =
            phase_arrivals(&phase(PhaseKind::Constant, 4, 4, 0, 2.0, Arrival::Uniform), &mut rng, u64::MAX);
        let s = NANOS_PER_SEC;
        assert_eq!(
            uniform,
            [
                10 * s,
                10 * s + s / 4,
                10 * s + s / 2,
                10 * s + 3 * s / 4,
                11 * s,
                11 * s + s / 4,
                11 * s + s / 2,
                11 * s + 3 * s / 4
            ]
        );
        let burst =
            phase_arrivals(&phase(PhaseKind::Constant, 3, 3, 0, 1.5, Arrival::Burst), &mut rng, u64::MAX);
        // 3 at 10 s; the half second at 11 s gets round(1.5) = 2.
        assert_eq!(burst, [10 * s, 10 * s, 10 * s, 11 * s, 11 * s]);
    }

    #[test]
    fn poisson_counts_average_to_the_rate() {
        let mut rng = rng(7, 0);
        let calls = phase_arrivals(
            &phase(PhaseKind::Constant, 50, 50, 0, 200.0, Arrival::Poisson),
            &mut rng,
            u64::MAX,
        );
        // 10_000 expected; a Poisson count has sd 100, so ±500 cannot fail by chance.
        assert!((9_500..=10_500).contains(&calls.len()), "{}", calls.len());
        assert!(calls.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn planned_calls_match_the_schedule_without_making_it() {
        let cases = [
            phase(PhaseKind::Constant, 5, 5, 0, 10.0, Arrival::Uniform),
            phase(PhaseKind::Constant, 3, 3, 0, 4.0, Arrival::Burst),
            phase(PhaseKind::Variable, 1, 8, 3, 10.0, Arrival::Uniform),
            phase(PhaseKind::Variable, 10, 4, 4, 10.0, Arrival::Burst),
            phase(PhaseKind::Variable, 2, 50, 5, 6.0, Arrival::Uniform),
        ];
        for p in &cases {
            let made = phase_arrivals(p, &mut rng(1, 0), u64::MAX).len() as u64;
            assert_eq!(planned_calls(p, Duration::from_secs(3600)), made, "{p:?}");
        }
        // A partial last second counts whole: an upper bound by under one second's rate.
        let partial = phase(PhaseKind::Constant, 4, 4, 0, 2.5, Arrival::Uniform);
        let made = phase_arrivals(&partial, &mut rng(1, 0), u64::MAX).len() as u64;
        assert_eq!((made, planned_calls(&partial, Duration::from_secs(3600))), (10, 12));
        // Only what starts before max_duration (the phases start at 10 s).
        let p = &cases[0];
        assert_eq!(planned_calls(p, Duration::from_secs(12)), 10);
        assert_eq!(planned_calls(p, Duration::from_secs(10)), 0);
        // A year at the largest rate is counted at once, without overflow.
        let huge = phase(PhaseKind::Variable, 1, u32::MAX, 1, 3.2e7, Arrival::Poisson);
        assert!(planned_calls(&huge, Duration::from_secs(40_000_000)) > 1_000_000_000_000);
    }
}
