//! `patterns:` (with `generate_workload: true`): phases drawn from ranges.

use std::collections::BTreeMap;

use hyperfake_core::ImageTag;

use super::defaults::MAX_PHASE_COUNT;
use super::errors::{Problem, Problems};
use super::raw::{RawPattern, RawRange};
use super::scalar::rate;
use super::validated::{Arrival, Pattern};
use crate::yaml_path::YamlPath;

/// Every pattern of `patterns:` (the map or the list form); records each
/// image's first use in `used`.
pub(super) fn validate_all(
    p: &mut Problems<'_>,
    root: &YamlPath,
    patterns: Vec<(String, RawPattern)>,
    arrival: Arrival,
    used: &mut BTreeMap<String, YamlPath>,
) -> Vec<Pattern> {
    if patterns.is_empty() {
        p.push(&root.key("patterns"), Problem::Missing);
    }
    let list_form = text_has_pattern_list(p.text());
    let mut out = Vec::new();
    for (i, (name, raw)) in patterns.into_iter().enumerate() {
        let path = if list_form { root.key("patterns").index(i) } else { root.key("patterns").key(&name) };
        used.entry(raw.image_tag.clone()).or_insert_with(|| path.key("image_tag"));
        if let Some(pattern) = validate_pattern(p, &path, name, raw, arrival) {
            out.push(pattern);
        }
    }
    out
}

/// Whether `patterns:` is written as a list, so paths can say `patterns[0]`.
fn text_has_pattern_list(text: &str) -> bool {
    let mut lines = text.lines().skip_while(|l| !l.starts_with("patterns:"));
    let Some(first) = lines.next() else { return false };
    let inline = first["patterns:".len()..].trim_start();
    if !inline.is_empty() && !inline.starts_with('#') {
        return inline.starts_with('[');
    }
    lines
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .is_some_and(|l| l.trim_start().starts_with('-'))
}

fn validate_pattern(
    p: &mut Problems<'_>,
    path: &YamlPath,
    name: String,
    raw: RawPattern,
    default_arrival: Arrival,
) -> Option<Pattern> {
    let RawPattern {
        name: _,
        image_tag,
        phase_count,
        constant_likelihood,
        ramping_likelihood,
        parameters,
        arrival,
    } = raw;
    let count = range(p, &path.key("phase_count"), phase_count);
    if let Some((min, _)) = count
        && min == 0
    {
        p.push(
            &path.key("phase_count").key("min"),
            Problem::OutOfRange { value: "0".into(), expected: "at least 1".into() },
        );
    }
    if let Some((_, max)) = count
        && max > MAX_PHASE_COUNT
    {
        p.push(
            &path.key("phase_count").key("max"),
            Problem::OutOfRange { value: max.to_string(), expected: format!("at most {MAX_PHASE_COUNT}") },
        );
    }
    let likelihood = |p: &mut Problems<'_>, key: &str, v: f64| {
        let ok = (0.0..=1.0).contains(&v);
        if !ok {
            p.push(
                &path.key(key),
                Problem::OutOfRange { value: v.to_string(), expected: "0.0..=1.0".into() },
            );
        }
        ok.then_some(v)
    };
    let constant = likelihood(p, "constant_likelihood", constant_likelihood);
    if let Some(r) = ramping_likelihood {
        likelihood(p, "ramping_likelihood", r);
    }
    let params = path.key("parameters");
    let start = range(p, &params.key("start_rps"), parameters.start_rps);
    let end = range(p, &params.key("end_rps"), parameters.end_rps);
    let step = range(p, &params.key("step"), parameters.step);
    Some(Pattern {
        name,
        image_tag: ImageTag::new(image_tag),
        phase_count: count.filter(|(min, max)| *min > 0 && *max <= MAX_PHASE_COUNT)?,
        constant_likelihood: constant?,
        start_rps: start?,
        end_rps: end?,
        step: step?,
        arrival: arrival.unwrap_or(default_arrival),
    })
}

fn range(p: &mut Problems<'_>, path: &YamlPath, raw: RawRange) -> Option<(u32, u32)> {
    let min = p.check(&path.key("min"), rate(raw.min));
    let max = p.check(&path.key("max"), rate(raw.max));
    let (min, max) = (min?, max?);
    if min > max {
        p.push(path, Problem::MinAboveMax { min: min.to_string(), max: max.to_string() });
        return None;
    }
    Some((min, max))
}
