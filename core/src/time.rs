//! Wall-clock timestamps. Every recorded timestamp is nanoseconds since the Unix
//! epoch on the clock of the host that took it (see `docs/units.md`).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::units::Nanos;

/// Now, as nanoseconds since the Unix epoch.
pub fn now_unix() -> Nanos {
    SystemTime::now().duration_since(UNIX_EPOCH).map(Nanos::from_duration).unwrap_or(Nanos::ZERO)
}

/// A UTC calendar time to the second, for run ids and report timestamps
/// (without a date-time dependency).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UtcTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl UtcTime {
    pub fn now() -> UtcTime {
        UtcTime::from_unix_secs(now_unix().0 / 1_000_000_000)
    }

    /// Seconds since the Unix epoch, in UTC (days to civil date after Howard
    /// Hinnant's algorithm).
    pub fn from_unix_secs(secs: u64) -> UtcTime {
        let rem = secs % 86_400;
        let z = i64::try_from(secs / 86_400).unwrap_or(0) + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
        let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
        let [hour, minute, second] =
            [rem / 3600, rem / 60 % 60, rem % 60].map(|v| u32::try_from(v).unwrap_or(0));
        UtcTime { year: yoe + era * 400 + i64::from(month <= 2), month, day, hour, minute, second }
    }

    /// `2026-11-23T03:15:00Z`.
    pub fn rfc3339(&self) -> String {
        let UtcTime { year, month, day, hour, minute, second } = self;
        format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
    }

    /// `20261123T031500Z`: sorts by time and is safe in file names.
    pub fn compact(&self) -> String {
        let UtcTime { year, month, day, hour, minute, second } = self;
        format!("{year:04}{month:02}{day:02}T{hour:02}{minute:02}{second:02}Z")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(UtcTime::from_unix_secs(0).rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(UtcTime::from_unix_secs(951_782_400).rfc3339(), "2000-02-29T00:00:00Z");
        assert_eq!(UtcTime::from_unix_secs(1_700_000_000).rfc3339(), "2023-11-14T22:13:20Z");
        assert_eq!(UtcTime::from_unix_secs(1_700_000_000).compact(), "20231114T221320Z");
        assert_eq!(UtcTime::from_unix_secs(20_415 * 86_400).rfc3339(), "2025-11-23T00:00:00Z");
    }
}
