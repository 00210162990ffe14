//! `trace:`: a trace to replay (Azure Functions 2019 or 2021 files). The
//! section is checked here with the rest of the file; its files are read
//! once afterwards by [`load_checked`] (through [`Trace::load`]), so every
//! file problem is reported before any call is sent.

use std::path::PathBuf;

use hyperfake_core::ImageTag;

use super::errors::{Problem, Problems};
use super::raw::Scalar;
use crate::trace::{
    DEFAULT_MINUTE_LENGTH, DEFAULT_NAME, MINUTES_PER_DAY, RawTrace, Selection, Trace, TraceFormat, TraceSpec,
};
use crate::yaml_path::YamlPath;

/// Validates `trace:`; every problem is recorded at its key.
pub(super) fn validate(p: &mut Problems<'_>, path: &YamlPath, raw: RawTrace) -> Option<TraceSpec> {
    let RawTrace {
        format,
        invocations,
        durations,
        memory,
        image_tag,
        sample,
        hashes,
        first_minute,
        minutes,
        minute_length,
        rate_scale,
        arrival,
        shift,
        name,
    } = raw;
    let before = p.errors.len();
    let file = |p: &mut Problems<'_>, key: &str, v: Option<String>, required: bool| match v {
        Some(f) if f.trim().is_empty() => {
            p.push(&path.key(key), Problem::Missing);
            None
        }
        Some(f) if format == TraceFormat::Azure2021 && key != "invocations" => {
            p.push(
                &path.key(key),
                Problem::Conflict(format!("format azure_2021 has no {key} file; remove it")),
            );
            Some(PathBuf::from(f))
        }
        Some(f) => Some(PathBuf::from(f.trim())),
        None if required => {
            p.push(&path.key(key), Problem::Missing);
            None
        }
        None => None,
    };
    let invocations = file(p, "invocations", Some(invocations), true);
    let durations = file(p, "durations", durations, format == TraceFormat::Azure2019);
    let memory = file(p, "memory", memory, false);
    if image_tag.trim().is_empty() {
        p.push(&path.key("image_tag"), Problem::Missing);
    }
    let selection = match (sample, hashes) {
        (Some(n), None) => match u32::try_from(n) {
            Ok(n) if n >= 1 => Some(Selection::Sample(n)),
            _ => {
                let expected = format!("1..={}", u32::MAX);
                p.push(&path.key("sample"), Problem::OutOfRange { value: n.to_string(), expected });
                None
            }
        },
        (None, Some(list)) => {
            let mut seen = std::collections::BTreeSet::new();
            for (i, h) in list.iter().enumerate() {
                if h.trim().is_empty() {
                    p.push(&path.key("hashes").index(i), Problem::Missing);
                } else if !seen.insert(h.trim()) {
                    p.push(&path.key("hashes").index(i), Problem::Conflict(format!("{h} is listed twice")));
                }
            }
            if list.is_empty() {
                p.push(&path.key("hashes"), Problem::Missing);
            }
            Some(Selection::Hashes(list.iter().map(|h| h.trim().to_string()).collect()))
        }
        (Some(_), Some(_)) => {
            p.push(&path.key("hashes"), Problem::Conflict("give sample or hashes, not both".into()));
            None
        }
        (None, None) => {
            p.push(&path.key("sample"), Problem::Missing);
            None
        }
    };
    let minute = |p: &mut Problems<'_>, key: &str, v: Option<i64>, default: Option<u32>| match v {
        None => Some(default),
        Some(m) => match u32::try_from(m) {
            Ok(m) if m >= 1 && (format == TraceFormat::Azure2021 || m <= MINUTES_PER_DAY) => Some(Some(m)),
            _ => {
                let max = if format == TraceFormat::Azure2019 { MINUTES_PER_DAY } else { u32::MAX };
                let expected = format!("1..={max} (trace minutes)");
                p.push(&path.key(key), Problem::OutOfRange { value: m.to_string(), expected });
                None
            }
        },
    };
    let first_minute = minute(p, "first_minute", first_minute, Some(1)).flatten();
    let minutes = minute(p, "minutes", minutes, None);
    let minute_length = match minute_length {
        None => Some(DEFAULT_MINUTE_LENGTH),
        Some(Scalar::Text(t)) => match crate::duration::parse(&t) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                let expected = "must be longer than 0".into();
                p.push(&path.key("minute_length"), Problem::OutOfRange { value: t, expected });
                None
            }
            Err(reason) => {
                p.push(&path.key("minute_length"), Problem::Duration { text: t, reason });
                None
            }
        },
        Some(other) => {
            let reason = crate::duration::DurationError::MissingUnit(other.to_string());
            p.push(&path.key("minute_length"), Problem::Duration { text: other.to_string(), reason });
            None
        }
    };
    let rate_scale = rate_scale.unwrap_or(1.0);
    if !(rate_scale.is_finite() && rate_scale > 0.0 && rate_scale <= 1e6) {
        let expected = "a number above 0, at most 1e6".into();
        p.push(&path.key("rate_scale"), Problem::OutOfRange { value: rate_scale.to_string(), expected });
    }
    let name = name.map(|n| n.trim().to_string()).unwrap_or_else(|| DEFAULT_NAME.to_string());
    if name.is_empty() || name.contains('/') {
        let expected = "a non-empty name without '/'".into();
        p.push(&path.key("name"), Problem::OutOfRange { value: format!("{name:?}"), expected });
    }
    if p.errors.len() > before {
        return None;
    }
    Some(TraceSpec {
        format,
        invocations: invocations?,
        durations,
        memory,
        image_tag: ImageTag::new(image_tag.trim().to_string()),
        selection: selection?,
        first_minute: first_minute?,
        minutes: minutes?,
        minute_length: minute_length?,
        rate_scale,
        arrival: arrival.unwrap_or_default(),
        shift: shift.unwrap_or(false),
        name,
    })
}

/// Loads the validated trace, if any; a file problem is recorded at
/// `trace.<key of the file>` and returned as `Err`.
pub(super) fn load_checked(
    p: &mut Problems<'_>,
    path: &YamlPath,
    spec: Option<TraceSpec>,
    seed: u64,
) -> Result<Option<Trace>, ()> {
    let Some(spec) = spec else { return Ok(None) };
    match Trace::load(spec.clone(), seed) {
        Ok(trace) => Ok(Some(trace)),
        Err(e) => {
            p.push(&path.key(Trace::key_of(&spec, &e)), Problem::Trace(e));
            Err(())
        }
    }
}
