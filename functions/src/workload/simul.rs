//! `simul`: simulated work, an idle wait drawn uniformly from [`DURATION_MS`]
//! milliseconds, then returns nothing.

use std::convert::Infallible;
use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;

pub const DURATION_MS: Range<u64> = 100..200;

pub async fn handle(_input: Bytes) -> Result<Vec<u8>, Infallible> {
    tokio::time::sleep(duration()).await;
    Ok(Vec::new())
}

/// One draw from [`DURATION_MS`].
pub fn duration() -> Duration {
    Duration::from_millis(rand::rng().random_range(DURATION_MS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_stay_in_range() {
        for _ in 0..1000 {
            let ms = duration().as_millis();
            assert!((100..200).contains(&ms), "{ms} ms");
        }
    }
}
