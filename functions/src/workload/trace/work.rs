//! The busy loop: write the requested memory and keep one thread busy until
//! the requested wall-clock deadline, paced to the instance's CPU quota.
//!
//! Why paced. A trace's duration is the handler's wall time. Under a CFS
//! quota (`--cpus 0.25`: 25 ms per 100 ms period) a thread that spins flat
//! out is stopped for the rest of a period once it used the quota, so a loop
//! that checks the clock only notices its deadline passed when the next
//! period starts: up to 75 ms late, 37 % of a 200 ms call. Instead the loop
//! keeps its own busy time (its thread's CPU time, so that time the host
//! gave to other processes does not count) at the quota's share of the
//! elapsed time (spin while behind, sleep while ahead), a little below the quota
//! ([`PACE_MARGIN`]) so the kernel never has to throttle it; the deadline is
//! then met to within a sleep's wake-up latency, and the CPU time used is
//! the share a CPU-bound function at that quota would get. Concurrent calls
//! in one instance split the share.
//!
//! Calibration (once per instance, [`Calibration::measure`]): how many
//! iterations of the spin kernel take [`CHECK_INTERVAL`], so the clock is
//! read often enough to stop within that interval of the deadline without
//! spending the loop reading it.

use std::hint::black_box;
use std::time::{Duration, Instant};

use super::memory::Pages;

/// How often the spinning loop reads the clock.
pub const CHECK_INTERVAL: Duration = Duration::from_micros(20);
/// How long the loop spins before it re-checks its pace.
pub const SLICE: Duration = Duration::from_millis(1);
/// Busy fraction of the quota kept when paced: the gRPC runtime and the
/// sleeps' wake-ups need the rest, and a loop at exactly 100 % would still
/// be throttled now and then.
pub const PACE_MARGIN: f64 = 0.95;
/// Pages written per spin unit while memory remains unwritten.
const PAGES_PER_UNIT: usize = 16;

/// Spin-kernel speed of this machine, measured once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Calibration {
    /// Iterations of [`spin`] per [`CHECK_INTERVAL`].
    pub iterations_per_check: u32,
}

impl Calibration {
    /// Times 1 000 iterations 25 times and keeps the fastest (a run that was
    /// descheduled or throttled only looks slower), then scales to
    /// [`CHECK_INTERVAL`]. Takes about a millisecond.
    pub fn measure() -> Calibration {
        const ITERATIONS: u32 = 1000;
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let fastest = (0..25)
            .map(|_| {
                let start = Instant::now();
                spin(ITERATIONS, &mut state);
                start.elapsed()
            })
            .min()
            .unwrap_or(Duration::from_micros(1))
            .max(Duration::from_nanos(1));
        let per_check = CHECK_INTERVAL.as_secs_f64() / fastest.as_secs_f64() * f64::from(ITERATIONS);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let iterations_per_check = per_check.clamp(1.0, 1e9) as u32;
        Calibration { iterations_per_check }
    }
}

/// `n` rounds of xorshift64, kept from being optimised away.
pub fn spin(n: u32, state: &mut u64) {
    for _ in 0..n {
        let mut x = *state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *state = black_box(x);
    }
}

/// The busy fraction one call may use: the CPU share split among the calls
/// in flight, a little below the quota when that is under one core, flat
/// out (1) when unlimited or at least a core each.
pub fn duty(cpu_share: Option<f64>, in_flight: usize) -> f64 {
    let Some(share) = cpu_share else { return 1.0 };
    #[allow(clippy::cast_precision_loss)]
    let each = share / in_flight.max(1) as f64;
    if each >= 1.0 { 1.0 } else { (each * PACE_MARGIN).max(0.001) }
}

/// What one call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Wall time from the call's start to the loop's end.
    pub elapsed: Duration,
    /// CPU time the call's thread used (spinning and writing memory).
    pub busy: Duration,
    /// Pages written (faulted in), each once.
    pub pages: usize,
}

/// Writes every page of `memory` (the pages of the call's memory that the
/// instance does not hold yet) once, and stays busy until
/// `start + duration`, paced by `duty()` (re-read every [`SLICE`], as calls
/// come and go). The writes are part of the paced work before the
/// deadline; each costs a page fault, and a large first touch at a small
/// quota can take longer than `duration`: the outcome then shows it.
pub fn run(
    start: Instant,
    duration: Duration,
    memory: &Pages,
    calibration: Calibration,
    duty: impl Fn() -> f64,
) -> Outcome {
    let deadline = start + duration;
    let pages = memory.len();
    let mut touched = 0_usize;
    let cpu_start = thread_cpu_time();
    let mut wall_busy = Duration::ZERO;
    // CPU time of this thread since the start (wall time spinning if the
    // thread's CPU clock cannot be read).
    let busy = |wall_busy: Duration| match (cpu_start, thread_cpu_time()) {
        (Some(start), Some(now)) => now.saturating_sub(start),
        _ => wall_busy,
    };
    let mut state = 0x2545_F491_4F6C_DD1D_u64;
    loop {
        let now = Instant::now();
        let memory_done = touched == pages;
        if now >= deadline && memory_done {
            break;
        }
        let duty = duty();
        let elapsed = now - start;
        let spent = busy(wall_busy);
        if duty >= 1.0 || spent <= elapsed.mul_f64(duty) {
            // Behind (or unpaced): work one slice, or up to the deadline.
            let slice_end = if memory_done { (now + SLICE).min(deadline) } else { now + SLICE };
            loop {
                if touched < pages {
                    let end = (touched + PAGES_PER_UNIT).min(pages);
                    (touched..end).for_each(|page| memory.touch(page));
                    touched = end;
                } else {
                    spin(calibration.iterations_per_check, &mut state);
                }
                if Instant::now() >= slice_end {
                    break;
                }
            }
            wall_busy += now.elapsed();
        } else {
            // Ahead: sleep until the pace catches up with the busy time.
            let wake = start + spent.div_f64(duty);
            let wake = if memory_done { wake.min(deadline) } else { wake };
            std::thread::sleep(wake.saturating_duration_since(now));
        }
    }
    Outcome { elapsed: start.elapsed(), busy: busy(wall_busy), pages: touched }
}

/// This thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), `None` if unreadable.
pub fn thread_cpu_time() -> Option<Duration> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec owned by this frame, and
    // clock_gettime writes only into it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return None;
    }
    Some(Duration::new(u64::try_from(ts.tv_sec).ok()?, u32::try_from(ts.tv_nsec).ok()?))
}

#[cfg(test)]
mod tests {
    use super::super::memory::{Arena, CHUNK, PAGE};
    use super::*;

    #[test]
    fn the_thread_cpu_clock_advances_with_work_not_sleep() {
        let before = thread_cpu_time().expect("Linux has a thread CPU clock");
        std::thread::sleep(Duration::from_millis(20));
        let slept = thread_cpu_time().unwrap() - before;
        let mut state = 1;
        spin(Calibration::measure().iterations_per_check * 500, &mut state);
        let worked = thread_cpu_time().unwrap() - before - slept;
        assert!(slept < Duration::from_millis(10), "sleeping used {slept:?} of CPU");
        assert!(worked > Duration::ZERO);
    }

    #[test]
    fn duty_follows_the_quota_and_the_calls_in_flight() {
        assert_eq!(duty(None, 3), 1.0);
        assert_eq!(duty(Some(2.0), 1), 1.0);
        assert_eq!(duty(Some(2.0), 2), 1.0);
        assert!((duty(Some(0.5), 1) - 0.5 * PACE_MARGIN).abs() < 1e-12);
        assert!((duty(Some(1.0), 4) - 0.25 * PACE_MARGIN).abs() < 1e-12);
        assert!((duty(Some(0.5), 0) - 0.5 * PACE_MARGIN).abs() < 1e-12, "0 in flight counts as 1");
    }

    #[test]
    fn calibration_gives_a_usable_iteration_count() {
        let calibration = Calibration::measure();
        // At least one iteration, and not the clamp's ceiling (a clock that
        // did not advance would give that).
        assert!((1..1_000_000_000).contains(&calibration.iterations_per_check), "{calibration:?}");
    }

    #[test]
    fn touches_every_page_and_reaches_the_deadline() {
        let calibration = Calibration::measure();
        let start = Instant::now();
        let arena = Arena::default();
        let outcome = run(start, Duration::from_millis(30), &arena.take(2), calibration, || 1.0);
        assert_eq!(outcome.pages, 2 * CHUNK / PAGE);
        assert!(outcome.elapsed >= Duration::from_millis(30), "{outcome:?}");
        assert!(outcome.busy <= outcome.elapsed);
    }

    #[test]
    fn a_paced_call_is_busy_for_its_share() {
        let calibration = Calibration::measure();
        let outcome =
            run(Instant::now(), Duration::from_millis(200), &Pages::default(), calibration, || 0.25);
        assert!(outcome.elapsed >= Duration::from_millis(200), "{outcome:?}");
        // Never ahead of the pace by more than the last slice: CPU time at
        // most 25 % of the elapsed time plus one slice. (Not a lower bound:
        // a busy machine may give the thread less than its share.)
        let cap = outcome.elapsed.mul_f64(0.25) + SLICE + Duration::from_millis(2);
        assert!(outcome.busy > Duration::ZERO && outcome.busy <= cap, "{outcome:?}");
    }

    #[test]
    fn zero_duration_and_memory_return_at_once() {
        let outcome = run(Instant::now(), Duration::ZERO, &Pages::default(), Calibration::measure(), || 1.0);
        assert_eq!(outcome.pages, 0);
        assert!(outcome.elapsed < Duration::from_secs(1));
    }
}
