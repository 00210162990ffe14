//! Readers of single values (rates, durations, sizes), shared by the
//! section validators. Each returns the [`Problem`] without a place; the
//! caller records it at its path.

use std::time::Duration;

use hyperfake_core::Bytes;

use super::errors::Problem;
use super::raw::Scalar;
use crate::duration;

pub(super) fn too_large(v: i64) -> Problem {
    Problem::OutOfRange { value: v.to_string(), expected: format!("0..={}", u32::MAX) }
}

/// A request rate in calls per second.
pub(super) fn rate(v: i64) -> Result<u32, Problem> {
    if v < 0 {
        return Err(Problem::Negative(v));
    }
    u32::try_from(v).map_err(|_| too_large(v))
}

pub(super) fn positive_usize(v: i64) -> Result<usize, Problem> {
    if v < 0 {
        return Err(Problem::Negative(v));
    }
    usize::try_from(v)
        .ok()
        .filter(|v| *v > 0)
        .ok_or(Problem::OutOfRange { value: v.to_string(), expected: "at least 1".into() })
}

/// A duration written with a unit (`30s`). A bare `0` is accepted.
pub(super) fn any_duration(s: &Scalar) -> Result<Duration, Problem> {
    match s {
        Scalar::Int(0) => Ok(Duration::ZERO),
        Scalar::Int(i) if *i < 0 => Err(Problem::Negative(*i)),
        Scalar::Int(i) => Err(Problem::Duration {
            text: i.to_string(),
            reason: duration::DurationError::MissingUnit(i.to_string()),
        }),
        Scalar::Float(x) => Err(Problem::Duration {
            text: x.to_string(),
            reason: duration::DurationError::MissingUnit(x.to_string()),
        }),
        Scalar::Text(t) => duration::parse(t).map_err(|reason| Problem::Duration { text: t.clone(), reason }),
    }
}

pub(super) fn positive_duration(s: &Scalar) -> Result<Duration, Problem> {
    any_duration(s).and_then(nonzero)
}

pub(super) fn nonzero(d: Duration) -> Result<Duration, Problem> {
    if d.is_zero() {
        Err(Problem::OutOfRange { value: "0".into(), expected: "must be longer than 0".into() })
    } else {
        Ok(d)
    }
}

/// HyperFaaS writes `timeout: 60` (seconds); a duration text is accepted too.
pub(super) fn seconds_or_duration(s: &Scalar) -> Result<Duration, Problem> {
    match s {
        Scalar::Int(i) if *i < 0 => Err(Problem::Negative(*i)),
        Scalar::Int(i) => Ok(Duration::from_secs(i.unsigned_abs())),
        other => any_duration(other),
    }
}

/// A size: integer bytes, or a number with a unit (`256MB`).
pub(super) fn size(s: &Scalar) -> Result<Bytes, Problem> {
    match s {
        Scalar::Int(i) if *i < 0 => Err(Problem::Negative(*i)),
        Scalar::Int(i) => Ok(Bytes(i.unsigned_abs())),
        Scalar::Float(x) => Err(Problem::Size(x.to_string())),
        Scalar::Text(t) => Bytes::parse_size(t).map_err(|_| Problem::Size(format!("{t:?}"))),
    }
}

pub(super) fn at_most(b: Bytes, max: Bytes) -> Result<Bytes, Problem> {
    if b > max {
        Err(Problem::OutOfRange {
            value: b.to_string(),
            expected: format!("at most {max} (the gRPC message limit)"),
        })
    } else {
        Ok(b)
    }
}

/// `WIDTHxHEIGHT`, each 1..=8192 pixels.
pub(super) fn image_size(text: &str) -> Result<(u32, u32), Problem> {
    let bad =
        || Problem::OutOfRange { value: format!("{text:?}"), expected: "WIDTHxHEIGHT, each 1..=8192".into() };
    let (w, h) = text.trim().split_once(['x', 'X']).ok_or_else(bad)?;
    let w: u32 = w.trim().parse().map_err(|_| bad())?;
    let h: u32 = h.trim().parse().map_err(|_| bad())?;
    if !(1..=8192).contains(&w) || !(1..=8192).contains(&h) {
        return Err(bad());
    }
    Ok((w, h))
}
