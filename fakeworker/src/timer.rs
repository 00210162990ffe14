//! Sleeps that end on time.
//!
//! A tokio sleep ends late: its deadline is rounded up to the timer's next
//! 1 ms tick, and the runtime thread that should wake it may be parked in
//! `epoll_wait`, whose timeout is whole milliseconds too. In the fake replay
//! of 2026-12-03 this put a simulated call's worker overhead 1.0–1.6 ms above
//! the real platform's at the median (echo, hello, bfs), for overheads that
//! are themselves about 1 ms. Aiming early by the mean lateness does not fix
//! it: the next replay came out 0.6 ms short, since a sleep shorter than the
//! correction is skipped altogether.
//!
//! [`PreciseTimer`] instead keeps the deadlines in one thread of its own that
//! waits on a channel with a timeout (a futex wait with nanosecond timeout,
//! ending within the kernel's timer slack, 50 µs by default) and completes a
//! oneshot for each due deadline, which wakes its task at once. One thread
//! serves every simulated call of a process.
//!
//! Waking the task still takes time: the timer thread's futex wake-up, then
//! the tokio worker's, each a scheduler hop on a VM. Measured in the fake
//! replay of 2026-12-03 09:05 (after the leaf and worker were optimised in the
//! dev build), a simulated call's worker overhead came out 0.21–0.26 ms above
//! what the model drew, at the median (echo 1.377 ms against the real 1.068
//! ms). The timer therefore aims each sleep early by its own running median
//! lateness, which it measures on every sleep (a streaming median: the
//! estimate moves a fixed step toward each new measurement), so a sleep ends
//! on its deadline at the median whatever the machine's wake-up cost.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Ends sleeps within the kernel's timer slack of their deadline. Clones
/// share the one thread (it ends when the last clone is dropped).
#[derive(Clone, Debug)]
pub struct PreciseTimer {
    requests: mpsc::Sender<(Instant, oneshot::Sender<()>)>,
    /// The running median of how late a task resumes after its aim, ns.
    lateness_ns: Arc<AtomicU64>,
}

/// How far one measurement moves the lateness estimate, ns: it follows a
/// change of 250 µs within about 60 sleeps.
const LATENESS_STEP_NS: u64 = 4_000;
/// The estimate never exceeds this: a sleep is never aimed more than 2 ms early.
const MAX_LATENESS_NS: u64 = 2_000_000;

impl Default for PreciseTimer {
    fn default() -> Self {
        PreciseTimer::new()
    }
}

/// A pending deadline; ordered by time, then by arrival.
struct Pending {
    at: Instant,
    seq: u64,
    done: oneshot::Sender<()>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl PreciseTimer {
    /// Starts the timer thread; it ends when the timer is dropped and no
    /// deadline is pending.
    pub fn new() -> Self {
        let (requests, incoming) = mpsc::channel::<(Instant, oneshot::Sender<()>)>();
        std::thread::Builder::new()
            .name("fake-timer".into())
            .spawn(move || run(&incoming))
            .expect("spawning the fake worker's timer thread");
        PreciseTimer { requests, lateness_ns: Arc::new(AtomicU64::new(0)) }
    }

    /// The current estimate of how late a sleep resumes (the running median).
    pub fn lateness(&self) -> Duration {
        Duration::from_nanos(self.lateness_ns.load(Ordering::Relaxed))
    }

    /// Sleeps until `deadline`: aims early by [`PreciseTimer::lateness`] and
    /// updates it with how late this sleep resumed after its aim.
    pub async fn sleep_until(&self, deadline: tokio::time::Instant) {
        let deadline = deadline.into_std();
        let aim = deadline.checked_sub(self.lateness()).unwrap_or(deadline);
        if aim <= Instant::now() {
            return;
        }
        let (done, woken) = oneshot::channel();
        if self.requests.send((aim, done)).is_err() {
            // The thread is gone (it cannot be while `self` lives): fall back.
            tokio::time::sleep_until(deadline.into()).await;
            return;
        }
        // An error means the thread dropped the request: it ended.
        if woken.await.is_ok() {
            self.measured(Instant::now().saturating_duration_since(aim));
        }
    }

    /// Moves the lateness estimate one step toward `late`.
    fn measured(&self, late: Duration) {
        let late = u64::try_from(late.as_nanos()).unwrap_or(u64::MAX);
        let _ = self.lateness_ns.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |est| {
            let next = if late > est {
                est.saturating_add(LATENESS_STEP_NS)
            } else {
                est.saturating_sub(LATENESS_STEP_NS)
            };
            Some(next.min(MAX_LATENESS_NS))
        });
    }
}

fn run(incoming: &mpsc::Receiver<(Instant, oneshot::Sender<()>)>) {
    let mut pending: BinaryHeap<Reverse<Pending>> = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        let now = Instant::now();
        while pending.peek().is_some_and(|p| p.0.at <= now) {
            if let Some(Reverse(p)) = pending.pop() {
                let _ = p.done.send(());
            }
        }
        let received = match pending.peek() {
            Some(next) => incoming.recv_timeout(next.0.at.saturating_duration_since(now)),
            None => incoming.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match received {
            Ok((at, done)) => {
                seq += 1;
                pending.push(Reverse(Pending { at, seq, done }));
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) if pending.is_empty() => return,
            Err(RecvTimeoutError::Disconnected) => {
                if let Some(next) = pending.peek() {
                    std::thread::sleep(next.0.at.saturating_duration_since(Instant::now()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Median absolute error (ms) of the last 100 of 200 sleeps of 2.3 ms each.
    async fn median_error<F: std::future::Future<Output = ()>>(
        sleep: impl Fn(tokio::time::Instant) -> F,
    ) -> f64 {
        let mut errors = Vec::new();
        for _ in 0..200 {
            let deadline = tokio::time::Instant::now() + Duration::from_micros(2_300);
            sleep(deadline).await;
            let woke = tokio::time::Instant::now();
            let error =
                woke.saturating_duration_since(deadline).max(deadline.saturating_duration_since(woke));
            errors.push(error.as_secs_f64() * 1e3);
        }
        let mut last = errors.split_off(100);
        last.sort_by(f64::total_cmp);
        last[50]
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sleeps_end_closer_to_their_deadline_than_tokios() {
        let timer = PreciseTimer::new();
        let precise = median_error(|d| timer.sleep_until(d)).await;
        let tokio = median_error(tokio::time::sleep_until).await;
        assert!(precise < tokio, "precise {precise:.3} ms off at the median, tokio {tokio:.3} ms");
    }

    #[test]
    fn the_lateness_estimate_follows_the_median_in_steps_and_is_bounded() {
        let timer = PreciseTimer::new();
        for _ in 0..100 {
            timer.measured(Duration::from_micros(200));
        }
        assert_eq!(timer.lateness(), Duration::from_micros(200), "it reaches 200 µs and stays around it");
        // Half the sleeps at 100 µs, half at 300 µs: the estimate stays between.
        for i in 0..100 {
            timer.measured(Duration::from_micros(if i % 2 == 0 { 100 } else { 300 }));
        }
        assert!((Duration::from_micros(100)..=Duration::from_micros(300)).contains(&timer.lateness()));
        for _ in 0..10_000 {
            timer.measured(Duration::from_secs(1));
        }
        assert_eq!(timer.lateness(), Duration::from_nanos(MAX_LATENESS_NS));
    }

    #[tokio::test]
    async fn deadlines_complete_in_time_order() {
        let timer = std::sync::Arc::new(PreciseTimer::new());
        let start = tokio::time::Instant::now();
        let order = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
        let tasks: Vec<_> = [30u64, 10, 20, 0]
            .into_iter()
            .map(|ms| {
                let (timer, order) = (timer.clone(), order.clone());
                tokio::spawn(async move {
                    timer.sleep_until(start + Duration::from_millis(ms)).await;
                    order.lock().unwrap().push(ms);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 10, 20, 30]);
    }
}
