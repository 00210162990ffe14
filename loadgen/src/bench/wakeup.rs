//! How late a plain sleeping thread wakes up on this machine: the floor
//! under any generator's send lag. A thread that does nothing but sleep 1 ms
//! and note how late it woke, run once on its own before the steps and then
//! beside each step, says how much of a late send was waiting for a CPU: on
//! its own it measures the machine (a VM's host takes its CPUs away now and
//! then), beside a step the machine under the load the generator and the
//! leaf put on it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How long the probe sleeps each time (1 000 wake-ups a second: no load
/// worth counting next to the generator).
const PERIOD: Duration = Duration::from_millis(1);

/// How late the probe woke, over its run.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Lateness {
    pub samples: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

/// A running probe; [`WakeupProbe::finish`] stops it and reads it.
#[derive(Debug)]
pub struct WakeupProbe {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<i64>>>,
}

impl WakeupProbe {
    /// Starts the probe thread (none when the thread cannot be started: the
    /// report then shows no figures rather than failing the bench).
    pub fn start() -> WakeupProbe {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wakeup-probe".into())
            .spawn(move || {
                let mut late_ns = Vec::with_capacity(64 * 1024);
                while !flag.load(Ordering::Relaxed) {
                    let asked = Instant::now() + PERIOD;
                    std::thread::sleep(PERIOD);
                    let late = Instant::now().saturating_duration_since(asked);
                    late_ns.push(i64::try_from(late.as_nanos()).unwrap_or(i64::MAX));
                }
                late_ns
            })
            .map_err(|e| tracing::warn!("cannot start the wake-up probe: {e}"))
            .ok();
        WakeupProbe { stop, thread }
    }

    /// Stops the probe and summarises how late it woke.
    pub fn finish(mut self) -> Lateness {
        self.stop.store(true, Ordering::Relaxed);
        let late = self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default();
        lateness(late)
    }
}

impl Drop for WakeupProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Runs the probe alone for `how_long`.
pub fn measure_idle(how_long: Duration) -> Lateness {
    let probe = WakeupProbe::start();
    std::thread::sleep(how_long);
    probe.finish()
}

fn lateness(mut late_ns: Vec<i64>) -> Lateness {
    late_ns.sort_unstable();
    let us = |q: f64| super::report::percentile(&late_ns, q) / 1e3;
    Lateness {
        samples: late_ns.len(),
        p50_us: us(0.50),
        p99_us: us(0.99),
        p999_us: us(0.999),
        max_us: late_ns.last().map_or(f64::NAN, |v| *v as f64 / 1e3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_in_microseconds() {
        let late = lateness((1..=1000).map(|i| i * 1000).collect());
        assert_eq!(late.samples, 1000);
        assert_eq!((late.p50_us, late.p99_us, late.p999_us, late.max_us), (500.0, 990.0, 999.0, 1000.0));
        assert!(lateness(Vec::new()).p99_us.is_nan(), "no sample, no figure");
    }

    #[test]
    fn the_probe_wakes_about_once_a_millisecond_and_is_never_early() {
        let late = measure_idle(Duration::from_millis(100));
        assert!((10..=100).contains(&late.samples), "{late:?}");
        assert!(late.p50_us >= 0.0 && late.max_us >= late.p99_us, "{late:?}");
    }
}
