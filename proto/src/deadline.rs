//! The caller's deadline, read from the `grpc-timeout` header, so servers can
//! answer DEADLINE_EXCEEDED themselves and pass the rest of it downstream; and
//! [`CallDeadline`], which gives every call a deadline of at most a maximum,
//! so a call whose caller set none still ends (and frees what it holds).

use std::time::Duration;

use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// The request header carrying the caller's deadline.
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

/// Taken off the caller's deadline so our own timeout fires (and answers
/// DEADLINE_EXCEEDED with a message) before tonic's transport timer, which
/// would answer CANCELLED.
pub const SERVER_MARGIN: Duration = Duration::from_millis(5);

/// The time the caller allows, minus [`SERVER_MARGIN`]; `None` without a deadline.
pub fn from_metadata(metadata: &MetadataMap) -> Option<Duration> {
    let value = metadata.get(GRPC_TIMEOUT)?.to_str().ok()?;
    parse_grpc_timeout(value).map(|d| d.saturating_sub(SERVER_MARGIN))
}

/// Parses a `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    // Checked: the last byte may be inside a multi-byte character.
    let (digits, unit) = value.split_at_checked(value.len() - 1)?;
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// `d` as a `grpc-timeout` value: the finest unit whose count fits the
/// header's 8 digits, rounded down (so the deadline never grows).
pub fn encode_grpc_timeout(d: Duration) -> String {
    const MAX_DIGITS: u128 = 99_999_999;
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    let nanos = d.as_nanos();
    for (per, unit) in units {
        let n = nanos / per;
        if n <= MAX_DIGITS {
            return format!("{n}{unit}");
        }
    }
    format!("{MAX_DIGITS}H")
}

// === impl CallDeadline ===

/// A server interceptor that gives every request a `grpc-timeout` of at most
/// `max`: a request without one (or with an unreadable one) gets `max`, a
/// longer one is cut to `max`, a shorter one is left alone. Handlers that read
/// [`from_metadata`] then always have a deadline, so a call whose caller set
/// none cannot wait forever and hold a slot (a leaf's pending permit, a
/// worker's instance) for good. Server-streaming RPCs are not cut: their
/// handlers return the stream at once and never read the deadline.
///
/// Installed by [`crate::server::builder`]; not meant for clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallDeadline {
    max: Duration,
}

impl CallDeadline {
    pub fn new(max: Duration) -> Self {
        CallDeadline { max }
    }

    /// The longest deadline a call gets.
    pub fn max(&self) -> Duration {
        self.max
    }
}

impl Interceptor for CallDeadline {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let given =
            request.metadata().get(GRPC_TIMEOUT).and_then(|v| v.to_str().ok()).and_then(parse_grpc_timeout);
        if given.is_none_or(|d| d > self.max) {
            let value = AsciiMetadataValue::try_from(encode_grpc_timeout(self.max))
                .expect("a number and a unit letter are always a valid header value");
            request.metadata_mut().insert(GRPC_TIMEOUT, value);
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_rejects_garbage() {
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("150m"), Some(Duration::from_millis(150)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        for bad in ["", "S", "12", "5x", "123456789S", "-1S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_value_ending_in_a_multibyte_character_is_refused_not_a_panic() {
        // Found by fuzzing (fuzz/fuzz_targets/wire.rs): splitting off the last
        // byte cut "ǌ" in half.
        assert_eq!(parse_grpc_timeout("9\u{1cc}"), None);
        assert_eq!(parse_grpc_timeout("1µ"), None);
    }

    #[test]
    fn encoding_round_trips_and_never_lengthens_a_deadline() {
        for d in [
            Duration::from_nanos(7),
            Duration::from_millis(150),
            Duration::from_secs(300),
            Duration::from_secs(86_400),
            Duration::from_secs(u64::MAX / 4),
        ] {
            let text = encode_grpc_timeout(d);
            let back = parse_grpc_timeout(&text).unwrap_or_else(|| panic!("{text:?} does not parse"));
            assert!(back <= d, "{d:?} became {back:?}");
        }
        assert_eq!(encode_grpc_timeout(Duration::from_secs(300)), "300000m");
        assert_eq!(
            parse_grpc_timeout(&encode_grpc_timeout(Duration::from_secs(300))),
            Some(Duration::from_secs(300))
        );
    }

    fn deadline_after(interceptor: &mut CallDeadline, given: Option<&str>) -> Option<Duration> {
        let mut request = Request::new(());
        if let Some(value) = given {
            request.metadata_mut().insert(GRPC_TIMEOUT, value.parse().unwrap());
        }
        let request = interceptor.call(request).unwrap();
        parse_grpc_timeout(request.metadata().get(GRPC_TIMEOUT)?.to_str().unwrap())
    }

    #[test]
    fn every_call_leaves_with_a_deadline_no_longer_than_the_maximum() {
        let mut cap = CallDeadline::new(Duration::from_secs(300));
        assert_eq!(deadline_after(&mut cap, None), Some(Duration::from_secs(300)), "none: the maximum");
        assert_eq!(deadline_after(&mut cap, Some("2S")), Some(Duration::from_secs(2)), "shorter: kept");
        assert_eq!(deadline_after(&mut cap, Some("1H")), Some(Duration::from_secs(300)), "longer: cut");
        assert_eq!(deadline_after(&mut cap, Some("soon")), Some(Duration::from_secs(300)), "unreadable");
    }
}
