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

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Instant;

use tokio::sync::oneshot;

/// Ends sleeps within the kernel's timer slack of their deadline. Clones
/// share the one thread (it ends when the last clone is dropped).
#[derive(Clone, Debug)]
pub struct PreciseTimer {
    requests: mpsc::Sender<(Instant, oneshot::Sender<()>)>,
}

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
        PreciseTimer { requests }
    }

    /// Sleeps until `deadline`.
    pub async fn sleep_until(&self, deadline: tokio::time::Instant) {
        let deadline = deadline.into_std();
        if deadline <= Instant::now() {
            return;
        }
        let (done, woken) = oneshot::channel();
        if self.requests.send((deadline, done)).is_err() {
            // The thread is gone (it cannot be while `self` lives): fall back.
            tokio::time::sleep_until(deadline.into()).await;
            return;
        }
        // An error means the thread dropped the request: it ended.
        let _ = woken.await;
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

    /// Mean signed error (ms) of `n` sleeps of 2.3 ms each.
    async fn mean_error<F: std::future::Future<Output = ()>>(
        sleep: impl Fn(tokio::time::Instant) -> F,
    ) -> f64 {
        let mut total = 0.0;
        for _ in 0..100 {
            let deadline = tokio::time::Instant::now() + Duration::from_micros(2_300);
            sleep(deadline).await;
            let woke = tokio::time::Instant::now();
            total += woke.saturating_duration_since(deadline).as_secs_f64()
                - deadline.saturating_duration_since(woke).as_secs_f64();
        }
        total / 100.0 * 1e3
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sleeps_end_closer_to_their_deadline_than_tokios_and_never_early() {
        let timer = PreciseTimer::new();
        let precise = mean_error(|d| timer.sleep_until(d)).await;
        let tokio = mean_error(tokio::time::sleep_until).await;
        assert!(precise >= 0.0, "a sleep ended early: mean error {precise:.3} ms");
        assert!(precise < tokio, "precise {precise:.3} ms late on average, tokio {tokio:.3} ms");
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
