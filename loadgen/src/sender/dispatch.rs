//! The dispatch loop: sleeps until each call is due, then starts it.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::Either;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::call::{Call, CallMeta};
use super::lookahead::Lookahead;
use super::{Dispatcher, SendReport, Stop, reaches};
use crate::record::CallRecord;

/// The dispatcher sleeps precisely (blocking its own thread) for at most this
/// long before a call; longer waits use tokio's 1 ms timer and can be stopped.
const COARSE_WAIT_MARGIN: Duration = Duration::from_millis(2);

/// Shortest time between two batches. A call due sooner after the last
/// batch waits for the next one, so it goes out up to this much late (well
/// inside the 2 ms send-lag budget), and at 20 000 calls/s a batch holds
/// about 4 calls instead of 1 (each batch costs a wake-up of the runtime and
/// a write to the socket).
const DISPATCH_QUANTUM: Duration = Duration::from_micros(200);
/// Most calls started at once; more due at the same time go in the next batch.
const MAX_BATCH: usize = 256;

impl Dispatcher {
    /// Runs on the dispatch thread; call tasks go to `calls`, the caller's runtime.
    pub(super) async fn dispatch(self, calls: tokio::runtime::Handle) -> SendReport {
        let Dispatcher { schedule, payloads, target, options, clock, records, mut stop, counters } = self;
        let (mut lookahead, producer) =
            Lookahead::start(schedule.clone(), payloads, options.lookahead.max(1), &calls);
        let lost = Arc::new(AtomicU64::new(0));
        // Calls start on the caller's runtime in batches: one wake-up of it
        // per batch instead of one per call, and the calls of one batch go
        // out on the HTTP/2 connection in one write. Each connection has a
        // launcher task of its own and the batches go to them in turn, so
        // that the runtime's threads share the calls' work: with one launcher
        // and one connection, the generator never used more than one core and
        // new batches waited behind the answers of earlier ones.
        let (launches, launchers): (Vec<_>, Vec<_>) = target
            .clients
            .iter()
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel::<Vec<Launch>>();
                (tx, calls.spawn(launch(rx, records.clone(), lost.clone())))
            })
            .unzip();
        let mut lane = 0;
        let mut interrupted = false;
        let mut due = 0u64;
        let mut last_batch = clock.instant - DISPATCH_QUANTUM;
        let due_at = |i: usize| clock.instant + Duration::from_nanos(schedule.calls[i].offset_ns);
        loop {
            if *stop.borrow() != Stop::Running {
                interrupted = true;
                break;
            }
            // The writer gave up (it says why): no more calls whose rows would be lost.
            if records.is_closed() {
                tracing::error!("the call writer stopped; sending no more calls");
                break;
            }
            let Some(first) = lookahead.next().await else { break };
            // Never wake sooner than DISPATCH_QUANTUM after the last batch:
            // at high rates the calls due meanwhile then go out together.
            let at = due_at(first.0).max(last_batch + DISPATCH_QUANTUM);
            // tokio's timer has 1 ms resolution: wait with it (interruptibly)
            // until shortly before the call is due, then sleep the rest on this
            // dedicated thread, which the kernel's high-resolution timers wake
            // within tens of µs.
            if at.saturating_duration_since(Instant::now()) > COARSE_WAIT_MARGIN {
                tokio::select! {
                    biased;
                    () = reaches(&mut stop, Stop::Drain) => {
                        interrupted = true;
                        break;
                    }
                    () = records.closed() => {
                        tracing::error!("the call writer stopped; sending no more calls");
                        break;
                    }
                    () = tokio::time::sleep_until(at - COARSE_WAIT_MARGIN) => {}
                }
            }
            let rest = at.saturating_duration_since(Instant::now());
            if !rest.is_zero() {
                std::thread::sleep(rest);
            }
            // This call, and every call after it that is due by now (the
            // sleep ends a little late, so at high rates there are several).
            let mut batch = Vec::new();
            let mut ready = Some(first);
            while let Some((i, body, features)) = ready.take() {
                due += 1;
                counters.due.fetch_add(1, Ordering::Relaxed);
                let call = &schedule.calls[i];
                let meta =
                    CallMeta::new(&schedule, call, &options.run_id, &target, clock, body.len(), features);
                let in_flight = counters.in_flight.load(Ordering::Relaxed);
                if options.max_in_flight.is_some_and(|cap| in_flight >= cap as u64) {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    let record = meta.not_sent(format!(
                        "not sent: {in_flight} calls in flight, max_in_flight is {}",
                        options.max_in_flight.unwrap_or_default()
                    ));
                    // Never wait on the recorder here: a full queue hands the
                    // record to the launcher instead of delaying the next send.
                    match records.try_send(record) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(record)) => batch.push(Launch::Record(record)),
                        Err(mpsc::error::TrySendError::Closed(_)) => {
                            lost.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                } else {
                    counters.in_flight.fetch_add(1, Ordering::Relaxed);
                    counters.sent.fetch_add(1, Ordering::Relaxed);
                    batch.push(Launch::Call(Call {
                        client: target.clients[lane].clone(),
                        meta,
                        body,
                        timeout: options.call_timeout,
                        records: records.clone(),
                        counters: counters.clone(),
                        lost: lost.clone(),
                        stop: stop.clone(),
                    }));
                }
                if batch.len() >= MAX_BATCH {
                    break;
                }
                match lookahead.try_next() {
                    Some(r) if due_at(r.0) <= Instant::now() => ready = Some(r),
                    Some(r) => lookahead.put_back(r),
                    None => {}
                }
            }
            last_batch = Instant::now();
            if !batch.is_empty() {
                if launches[lane].send(batch).is_err() {
                    tracing::error!("a call launcher stopped; sending no more calls");
                    break;
                }
                lane = (lane + 1) % launches.len();
            }
        }
        drop(lookahead);
        drop(launches);
        // Calls in flight end by their deadline (plus grace), or at once on
        // `Stop::Abandon`, so this is bounded.
        for launcher in launchers {
            if let Err(e) = launcher.await {
                tracing::error!("call launcher failed, records may be lost: {e}");
            }
        }
        if let Err(e) = producer.await {
            tracing::error!("body builder failed: {e}");
        }
        SendReport { due, interrupted, lost_records: lost.load(Ordering::Relaxed) }
    }
}

/// What the dispatcher hands to the caller's runtime.
// `Call` is the common variant and `Record` the rare one: boxing either would
// allocate for nothing on the path that matters.
#[allow(clippy::large_enum_variant)]
enum Launch {
    /// A call to send.
    Call(Call),
    /// A `NOT_SENT` record the recorder's full queue could not take at once.
    Record(CallRecord),
}

/// Runs every call of every batch it is handed (one connection's), then
/// waits for all of them. The calls
/// are futures of this one task rather than tasks of their own: the calls of
/// a batch are polled one after the other before the task yields, so the
/// connection's task finds them all queued and writes them in one system
/// call, where a task per call let it wake (and write) after each. Writes to
/// the socket were half the generator's CPU time at 12 000 calls/s.
async fn launch(
    mut batches: mpsc::UnboundedReceiver<Vec<Launch>>,
    records: mpsc::Sender<CallRecord>,
    lost: Arc<AtomicU64>,
) {
    let mut running = FuturesUnordered::new();
    let mut open = true;
    while open || !running.is_empty() {
        tokio::select! {
            batch = batches.recv(), if open => match batch {
                Some(batch) => {
                    for item in batch {
                        running.push(match item {
                            Launch::Call(call) => Either::Left(AssertUnwindSafe(call.run()).catch_unwind()),
                            Launch::Record(record) => {
                                let (records, lost) = (records.clone(), lost.clone());
                                Either::Right(AssertUnwindSafe(async move {
                                    if records.send(record).await.is_err() {
                                        lost.fetch_add(1, Ordering::Relaxed);
                                    }
                                }).catch_unwind())
                            }
                        });
                    }
                }
                None => open = false,
            },
            Some(done) = running.next(), if !running.is_empty() => {
                if done.is_err() {
                    // Only a bug panics a call; its record is lost, so say so loudly.
                    tracing::error!("a call panicked, its record is lost");
                }
            }
        }
    }
}
