//! Sleeps that end on time on average.
//!
//! A tokio sleep ends late: its deadline is rounded up to the timer's next
//! 1 ms tick, and the thread that wakes it may be parked in `epoll_wait`,
//! whose timeout is whole milliseconds too. Measured in the fake replay of
//! 2026-12-03, a simulated call's worker overhead came out 1.0–1.6 ms longer
//! than the real platform's (echo, hello, bfs), most of it this lateness.
//! [`LateTimer`] measures how late its sleeps wake (an exponentially weighted
//! mean) and aims that much early, so a simulated call takes the drawn time
//! on average. A single sleep still ends within about a tick of its
//! deadline; only the mean is corrected.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Weight of the newest lateness in the running mean (1/16).
const WEIGHT_SHIFT: u32 = 4;
/// The correction never exceeds this: a wake-up that late is a stalled host,
/// not the timer's rounding.
pub const MAX_CORRECTION: Duration = Duration::from_millis(2);

/// A sleep that aims early by the mean lateness it has measured.
#[derive(Debug, Default)]
pub struct LateTimer {
    /// Mean lateness, ns, ×16 (fixed point).
    mean_x16: AtomicU64,
}

impl LateTimer {
    /// The current correction: the measured mean lateness, at most [`MAX_CORRECTION`].
    pub fn correction(&self) -> Duration {
        let mean = self.mean_x16.load(Ordering::Relaxed) >> WEIGHT_SHIFT;
        Duration::from_nanos(mean).min(MAX_CORRECTION)
    }

    /// Sleeps until `deadline` minus the correction (not at all when that
    /// has passed), then records how late it woke.
    pub async fn sleep_until(&self, deadline: Instant) {
        let aim = deadline.checked_sub(self.correction()).unwrap_or(deadline);
        if aim <= Instant::now() {
            return;
        }
        tokio::time::sleep_until(aim).await;
        #[allow(clippy::cast_possible_truncation)]
        let late = Instant::now().saturating_duration_since(aim).as_nanos().min(u128::from(u64::MAX)) as u64;
        // mean += (late − mean) / 16, in ×16 fixed point; racing updates
        // lose a sample now and then, which a running mean does not mind.
        let old = self.mean_x16.load(Ordering::Relaxed);
        let new = old - (old >> WEIGHT_SHIFT) + late;
        self.mean_x16.store(new, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_mean_end_moves_to_the_deadline() {
        let timer = LateTimer::default();
        let mut early_errors = vec![];
        let mut late_errors = vec![];
        for i in 0..200 {
            let deadline = Instant::now() + Duration::from_micros(2_300);
            timer.sleep_until(deadline).await;
            let woke = Instant::now();
            // Signed: positive when late, negative when early.
            let error = woke.saturating_duration_since(deadline).as_secs_f64()
                - deadline.saturating_duration_since(woke).as_secs_f64();
            if i < 20 {
                early_errors.push(error)
            } else if i >= 100 {
                late_errors.push(error)
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        // The correction is what the timer measured, and it narrows the gap
        // between where a sleep ends and its deadline.
        assert!(timer.correction() > Duration::ZERO);
        assert!(
            mean(&late_errors).abs() < mean(&early_errors).abs(),
            "uncorrected mean error {:.3} ms, corrected {:.3} ms",
            mean(&early_errors) * 1e3,
            mean(&late_errors) * 1e3
        );
    }
}
