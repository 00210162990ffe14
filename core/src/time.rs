//! Wall-clock timestamps. Every recorded timestamp is nanoseconds since the Unix
//! epoch on the clock of the host that took it (see `docs/units.md`).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::units::Nanos;

/// Now, as nanoseconds since the Unix epoch.
pub fn now_unix() -> Nanos {
    SystemTime::now().duration_since(UNIX_EPOCH).map(Nanos::from_duration).unwrap_or(Nanos::ZERO)
}
