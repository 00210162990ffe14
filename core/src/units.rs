//! Units as types. A bare number never crosses a crate boundary: runtime is
//! [`Nanos`], CPU is [`Cores`], memory and payloads are [`Bytes`].

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Nanoseconds: a duration or, where a field says so, a time since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Nanos(pub u64);

/// CPU in cores: 1.0 is one core busy for the whole interval. Never a percentage.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cores(pub f64);

/// A size in bytes (memory, payloads).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Bytes(pub u64);

/// A value that cannot be read as a unit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// The size is not a number followed by an optional unit (B, KB, MB, GB, KiB, MiB, GiB).
    #[error("invalid size {0:?}: expected a number with an optional unit such as 512KB, 256MB or 2GB")]
    InvalidSize(String),
}

// === impl Nanos ===

impl Nanos {
    pub const ZERO: Nanos = Nanos(0);

    pub const fn from_millis(ms: u64) -> Self {
        Nanos(ms * 1_000_000)
    }

    pub const fn from_micros(us: u64) -> Self {
        Nanos(us * 1_000)
    }

    /// Saturates at `u64::MAX` ns (584 years).
    pub fn from_duration(d: Duration) -> Self {
        Nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    pub const fn as_duration(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    pub fn as_millis_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    pub const fn saturating_sub(self, other: Nanos) -> Nanos {
        Nanos(self.0.saturating_sub(other.0))
    }

    /// Converts a floating-point nanosecond value (a model's prediction) into a
    /// duration. NaN and negative values become zero, infinity saturates: a
    /// prediction can never turn into a nonsensical sleep.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    pub fn from_f64_saturating(ns: f64) -> Self {
        if ns.is_nan() || ns <= 0.0 {
            Nanos(0)
        } else if ns >= u64::MAX as f64 {
            Nanos(u64::MAX)
        } else {
            Nanos(ns as u64)
        }
    }

    /// As `i64`, the type SQLite and the wire use for timestamps. Saturates.
    pub fn as_i64(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }
}

impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ns", self.0)
    }
}

impl From<Duration> for Nanos {
    fn from(d: Duration) -> Self {
        Nanos::from_duration(d)
    }
}

// === impl Cores ===

impl Cores {
    /// CPU time consumed over a wall-clock interval, in cores. An empty interval
    /// has no defined usage and yields zero.
    pub fn from_cpu_time(cpu: Nanos, wall: Nanos) -> Self {
        if wall.0 == 0 { Cores(0.0) } else { Cores(cpu.0 as f64 / wall.0 as f64) }
    }

    /// A CFS quota/period pair as cores (quota 50000 / period 100000 = 0.5).
    pub fn from_cfs(quota_us: u64, period_us: u64) -> Self {
        if period_us == 0 { Cores(0.0) } else { Cores(quota_us as f64 / period_us as f64) }
    }
}

impl fmt::Display for Cores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3} cores", self.0)
    }
}

// === impl Bytes ===

impl Bytes {
    pub const KIB: u64 = 1024;
    pub const MIB: u64 = 1024 * 1024;
    pub const GIB: u64 = 1024 * 1024 * 1024;

    pub const fn mib(n: u64) -> Self {
        Bytes(n * Self::MIB)
    }

    /// Parses sizes as HyperFaaS configs write them: `256MB`, `2GB`, `512KB`,
    /// `1024` (bytes). Like Docker, `KB/MB/GB` are binary (1024-based), and so
    /// are `KiB/MiB/GiB`.
    pub fn parse_size(text: &str) -> Result<Self, UnitError> {
        let err = || UnitError::InvalidSize(text.to_string());
        let trimmed = text.trim();
        let split = trimmed.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let number: f64 = number.parse().map_err(|_| err())?;
        let factor = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => Self::KIB,
            "m" | "mb" | "mib" => Self::MIB,
            "g" | "gb" | "gib" => Self::GIB,
            _ => return Err(err()),
        };
        let bytes = number * factor as f64;
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
            return Err(err());
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(Bytes(bytes.round() as u64))
    }

    pub fn as_i64(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}B", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hyperfaas_sizes() {
        assert_eq!(Bytes::parse_size("256MB"), Ok(Bytes(256 * Bytes::MIB)));
        assert_eq!(Bytes::parse_size("2GB"), Ok(Bytes(2 * Bytes::GIB)));
        assert_eq!(Bytes::parse_size("512KiB"), Ok(Bytes(512 * Bytes::KIB)));
        assert_eq!(Bytes::parse_size("1.5 MB"), Ok(Bytes(1_572_864)));
        assert_eq!(Bytes::parse_size("100"), Ok(Bytes(100)));
        for bad in ["", "MB", "12XB", "-1MB", "1e999GB"] {
            assert!(Bytes::parse_size(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn predictions_never_become_nonsense_sleeps() {
        assert_eq!(Nanos::from_f64_saturating(f64::NAN), Nanos(0));
        assert_eq!(Nanos::from_f64_saturating(-5.0), Nanos(0));
        assert_eq!(Nanos::from_f64_saturating(f64::INFINITY), Nanos(u64::MAX));
        assert_eq!(Nanos::from_f64_saturating(50e6), Nanos::from_millis(50));
    }

    #[test]
    fn cores_from_cpu_time() {
        assert_eq!(Cores::from_cpu_time(Nanos(2_000), Nanos(1_000)), Cores(2.0));
        assert_eq!(Cores::from_cpu_time(Nanos(5), Nanos(0)), Cores(0.0));
        assert_eq!(Cores::from_cfs(50_000, 100_000), Cores(0.5));
    }
}
