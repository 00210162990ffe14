//! Durations as HyperFaaS configs write them: Go's `time.ParseDuration` syntax
//! (`5m`, `1h30m`, `1.5s`, `250ms`), since the original generator was written in
//! Go and its files must keep working unchanged.

use std::time::Duration;

/// What is wrong with a duration text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty")]
    Empty,
    #[error("negative durations are not allowed")]
    Negative,
    #[error("missing unit after {0:?} (use ns, us, ms, s, m or h, e.g. 30s)")]
    MissingUnit(String),
    #[error("unknown unit {0:?} (use ns, us, ms, s, m or h)")]
    UnknownUnit(String),
    #[error("expected a number at {0:?}")]
    ExpectedNumber(String),
    #[error("too large")]
    Overflow,
}

/// Parses `0`, or one or more `<decimal><unit>` pairs such as `1h30m` or `1.5s`.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.starts_with('-') {
        return Err(DurationError::Negative);
    }
    let text = text.strip_prefix('+').unwrap_or(text);
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total_ns: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() || number == "." {
            return Err(DurationError::ExpectedNumber(rest.to_string()));
        }
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let unit_ns: u128 = match unit {
            "" => return Err(DurationError::MissingUnit(number.to_string())),
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            other => return Err(DurationError::UnknownUnit(other.to_string())),
        };
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| DurationError::ExpectedNumber(number.to_string()))?
        };
        if frac.contains('.') {
            return Err(DurationError::ExpectedNumber(number.to_string()));
        }
        // Fractions are exact down to the nanosecond, as in Go.
        let mut frac_ns: u128 = 0;
        let mut scale = unit_ns;
        for digit in frac.bytes().take(30) {
            scale /= 10;
            frac_ns += u128::from(digit - b'0') * scale;
        }
        total_ns = whole
            .checked_mul(unit_ns)
            .and_then(|ns| ns.checked_add(frac_ns))
            .and_then(|ns| ns.checked_add(total_ns))
            .ok_or(DurationError::Overflow)?;
        rest = next;
    }
    let ns = u64::try_from(total_ns).map_err(|_| DurationError::Overflow)?;
    Ok(Duration::from_nanos(ns))
}

/// Formats a duration the way [`parse`] reads it back (`1h30m`, `1.5s`, `250ms`).
pub fn format(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".to_string();
    }
    if !ns.is_multiple_of(1_000_000_000) {
        return if ns.is_multiple_of(1_000_000) {
            format!("{}ms", ns / 1_000_000)
        } else {
            format!("{ns}ns")
        };
    }
    let secs = ns / 1_000_000_000;
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(parse(".5s"), Ok(Duration::from_millis(500)));
    }

    #[test]
    fn rejects_bad_durations() {
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert_eq!(parse("-5s"), Err(DurationError::Negative));
        assert_eq!(parse("30"), Err(DurationError::MissingUnit("30".into())));
        assert_eq!(parse("10x"), Err(DurationError::UnknownUnit("x".into())));
        assert_eq!(parse("5 m"), Err(DurationError::UnknownUnit(" m".into())));
        assert!(parse("s").is_err());
        assert!(parse("1.2.3s").is_err());
        assert_eq!(parse("999999999999h"), Err(DurationError::Overflow));
    }

    #[test]
    fn formats_round_trip() {
        for text in ["1h30m", "5m", "30s", "250ms", "0s", "1h0m1s"] {
            let d = parse(text).unwrap();
            assert_eq!(parse(&format(d)).unwrap(), d);
        }
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
    }
}
