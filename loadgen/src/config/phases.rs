//! `workload.phases`: phases written by hand.

use std::collections::BTreeMap;
use std::time::Duration;

use hyperfake_core::ImageTag;

use super::errors::{Problem, Problems};
use super::raw::RawPhase;
use super::scalar::{any_duration, positive_duration, rate, too_large};
use super::validated::{Arrival, Phase, PhaseKind};
use crate::duration;
use crate::yaml_path::YamlPath;

/// Every phase of `workload.phases`; records each image's first use in `used`.
pub(super) fn validate_all(
    p: &mut Problems<'_>,
    wpath: &YamlPath,
    raw: Vec<RawPhase>,
    arrival: Arrival,
    max_duration: Option<Duration>,
    used: &mut BTreeMap<String, YamlPath>,
) -> Vec<Phase> {
    let mut out = Vec::new();
    for (i, raw) in raw.into_iter().enumerate() {
        let path = wpath.key("phases").index(i);
        used.entry(raw.image_tag.clone()).or_insert_with(|| path.key("image_tag"));
        if let Some(phase) = validate_phase(p, &path, i, raw, arrival, max_duration) {
            out.push(phase);
        }
    }
    out
}

fn validate_phase(
    p: &mut Problems<'_>,
    path: &YamlPath,
    index: usize,
    raw: RawPhase,
    default_arrival: Arrival,
    max_duration: Option<Duration>,
) -> Option<Phase> {
    let RawPhase { name, kind, start_time, duration, start_rps, end_rps, step, image_tag, arrival } = raw;
    let start_time = match &start_time {
        None => Some(Duration::ZERO),
        Some(s) => p.check(&path.key("start_time"), any_duration(s)),
    };
    let duration = p.check(&path.key("duration"), positive_duration(&duration));
    let start = p.check(&path.key("start_rps"), rate(start_rps));
    let (end, step) = match kind {
        PhaseKind::Constant => {
            if start == Some(0) {
                p.push(
                    &path.key("start_rps"),
                    Problem::OutOfRange {
                        value: "0".into(),
                        expected: "a constant phase needs at least 1".into(),
                    },
                );
            }
            // HyperFaaS wants end_rps and step absent (0) here; the same value
            // as start_rps is accepted too, since it means the same thing.
            if let Some(end) = end_rps
                && end != 0
                && end != start_rps
            {
                p.push(
                    &path.key("end_rps"),
                    Problem::Conflict(format!(
                        "a constant phase runs at start_rps ({start_rps}); end_rps must be absent, 0 or equal"
                    )),
                );
            }
            if step.is_some_and(|s| s != 0) {
                p.push(
                    &path.key("step"),
                    Problem::Conflict("a constant phase has no step; remove it".into()),
                );
            }
            (start, Some(0))
        }
        PhaseKind::Variable => {
            let end = match end_rps {
                None => {
                    p.push(&path.key("end_rps"), Problem::Missing);
                    None
                }
                Some(e) => p.check(&path.key("end_rps"), rate(e)),
            };
            let step = match step {
                None | Some(0) => {
                    p.push(
                        &path.key("step"),
                        Problem::OutOfRange {
                            value: step.unwrap_or(0).to_string(),
                            expected: "a variable phase needs a non-zero step".into(),
                        },
                    );
                    None
                }
                Some(s) => {
                    // A negative step ramps down (HyperFaaS's convention); it
                    // must then point towards end_rps.
                    if let (Some(start), Some(end)) = (start, end)
                        && s < 0
                        && end > start
                    {
                        p.push(
                            &path.key("step"),
                            Problem::Conflict(format!(
                                "negative step {s} moves away from end_rps {end} (start_rps {start})"
                            )),
                        );
                    }
                    p.check(&path.key("step"), u32::try_from(s.unsigned_abs()).map_err(|_| too_large(s)))
                }
            };
            (end, step)
        }
        PhaseKind::Trace => unreachable!("`type: trace` is never deserialized (skip_deserializing); a bug"),
    };
    if let (Some(start_time), Some(max)) = (start_time, max_duration)
        && start_time >= max
    {
        p.push(
            &path.key("start_time"),
            Problem::OutOfRange {
                value: duration::format(start_time),
                expected: format!("the phase must start before max_duration ({})", duration::format(max)),
            },
        );
    }
    Some(Phase {
        name: name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| format!("phase{index}")),
        kind,
        start_time: start_time?,
        duration: duration?,
        start_rps: start?,
        end_rps: end?,
        step: step?,
        image_tag: ImageTag::new(image_tag),
        arrival: arrival.unwrap_or(default_arrival),
    })
}
