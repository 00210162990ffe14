//! The open-loop dispatcher: every call is sent at its scheduled time whether
//! or not earlier calls returned.
//!
//! Three parts, so that none of them can delay the send clock:
//! - a blocking thread builds request bodies ahead of time (bounded lookahead);
//! - the dispatcher sleeps until each call is due and spawns it;
//! - each call runs in its own task, with the per-call deadline, and hands
//!   its record to the recorder thread.
//!
//! Every call that comes due produces exactly one record: OK, a gRPC error,
//! `DEADLINE_EXCEEDED`, or `NOT_SENT` when `max_in_flight` calls are already
//! outstanding (dropping keeps an overloaded run honest: queueing inside the
//! generator would show up as server latency). On [`Stop::Drain`] no new call
//! is started and the ones in flight are waited for, each up to its deadline;
//! on [`Stop::Abandon`] the wait ends at once and each call still in flight is
//! recorded as `ABANDONED`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use hyperfake_core::{FunctionId, ImageTag, trailers};
use proto::auth::AuthChannel;
use proto::leaf::ScheduleCallRequest;
use proto::leaf::leaf_client::LeafClient;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tonic::metadata::{KeyAndValueRef, MetadataMap, MetadataValue};

use crate::payload::Payloads;
use crate::record::{CallRecord, CallStatus};
use crate::schedule::{Schedule, ScheduledCall};

/// The dispatcher sleeps precisely (blocking its own thread) for at most this
/// long before a call; longer waits use tokio's 1 ms timer and can be stopped.
const COARSE_WAIT_MARGIN: Duration = Duration::from_millis(2);
/// Extra time past a call's gRPC deadline before the client gives up on its
/// own, in case the server does not honour `grpc-timeout`.
const DEADLINE_GRACE: Duration = Duration::from_secs(1);

/// The time base of a run: schedule offset 0 is `instant` on the monotonic
/// clock and `unix_ns` on the wall clock. All recorded times derive from it,
/// so `sent_ns - scheduled_ns` is measured on one clock.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub instant: Instant,
    pub unix_ns: i64,
}

impl Clock {
    /// A clock whose time 0 is `lead` from now.
    pub fn starting_in(lead: Duration) -> Clock {
        let now = Instant::now();
        let unix = hyperfake_core::time::now_unix();
        Clock { instant: now + lead, unix_ns: unix.as_i64().saturating_add(nanos_i64(lead)) }
    }

    /// Wall-clock ns of a monotonic instant.
    pub fn unix_at(&self, at: Instant) -> i64 {
        if at >= self.instant {
            self.unix_ns.saturating_add(nanos_i64(at - self.instant))
        } else {
            self.unix_ns.saturating_sub(nanos_i64(self.instant - at))
        }
    }
}

/// How far a run has been asked to stop (Ctrl-C once: drain; twice: abandon).
/// Ordered: a later level includes the earlier ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stop {
    #[default]
    Running,
    /// Send no new call; wait for the calls in flight (each ends by its deadline).
    Drain,
    /// Stop waiting: every call still in flight is recorded as `ABANDONED`.
    Abandon,
}

/// Live counts, read by the progress bar.
#[derive(Debug, Default)]
pub struct Counters {
    /// Calls whose time came (sent or not).
    pub due: AtomicU64,
    pub sent: AtomicU64,
    pub completed: AtomicU64,
    pub in_flight: AtomicU64,
    /// Calls that were not OK (including `NOT_SENT`).
    pub errors: AtomicU64,
}

/// Where calls go: the leaf and the functions created for each image (one per
/// copy, indexed by [`ScheduledCall::copy`]).
#[derive(Clone, Debug)]
pub struct Target {
    pub client: LeafClient<AuthChannel>,
    pub functions: HashMap<ImageTag, Vec<FunctionId>>,
}

#[derive(Clone, Debug)]
pub struct SendOptions {
    pub run_id: String,
    pub call_timeout: Duration,
    pub max_in_flight: Option<usize>,
    /// Bodies built ahead of their send time.
    pub lookahead: usize,
}

/// What happened, once every call that came due has been recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendReport {
    pub due: u64,
    pub interrupted: bool,
    /// Records the recorder could not take (it stopped early); 0 unless it failed.
    pub lost_records: u64,
}

/// The request id of a call: `<run_id>-<call index>`.
pub fn request_id(run_id: &str, index: u64) -> String {
    format!("{run_id}-{index}")
}

/// Sends every call of `schedule` on `clock`, until the schedule ends or
/// `stop` leaves [`Stop::Running`]. Returns after every call that came due is
/// recorded (handed to `records`).
///
/// The dispatch loop runs on a thread of its own (a current-thread runtime),
/// so its timers fire on time even when the main runtime's workers are busy
/// with responses; call tasks run on the caller's runtime.
#[allow(clippy::too_many_arguments)]
pub async fn send_all(
    schedule: Arc<Schedule>,
    payloads: Arc<Payloads>,
    target: Target,
    options: SendOptions,
    clock: Clock,
    records: mpsc::Sender<CallRecord>,
    stop: watch::Receiver<Stop>,
    counters: Arc<Counters>,
) -> SendReport {
    let calls = tokio::runtime::Handle::current();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new().name("loadgen-dispatch".into()).spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime only fails to build when out of resources");
        let report = runtime
            .block_on(dispatch(schedule, payloads, target, options, clock, records, stop, counters, calls));
        let _ = done_tx.send(report);
    });
    if let Err(e) = spawned {
        panic!("cannot start the dispatch thread: {e}");
    }
    done_rx.await.expect("the dispatch thread always reports unless it panicked")
}

#[allow(clippy::too_many_arguments)]
async fn dispatch(
    schedule: Arc<Schedule>,
    payloads: Arc<Payloads>,
    target: Target,
    options: SendOptions,
    clock: Clock,
    records: mpsc::Sender<CallRecord>,
    mut stop: watch::Receiver<Stop>,
    counters: Arc<Counters>,
    calls: tokio::runtime::Handle,
) -> SendReport {
    let (ready_tx, mut ready_rx) = mpsc::channel::<Ready>(options.lookahead.max(1));
    let producer = {
        let schedule = schedule.clone();
        calls.spawn_blocking(move || {
            for (i, call) in schedule.calls.iter().enumerate() {
                // Features are computed here, off the send clock, from the
                // exact bytes the call will carry.
                let body = payloads.body(call);
                let features = payloads.feature_values(call, &body);
                if ready_tx.blocking_send((i, body, features)).is_err() {
                    break; // The dispatcher stopped.
                }
            }
        })
    };
    let lost = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    let mut interrupted = false;
    let mut due = 0u64;
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
        let Some((i, body, features)) = ready_rx.recv().await else { break };
        let call = &schedule.calls[i];
        let at = clock.instant + Duration::from_nanos(call.offset_ns);
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
        due += 1;
        counters.due.fetch_add(1, Ordering::Relaxed);
        let meta = CallMeta::new(&schedule, call, &options.run_id, &target, clock, body.len(), features);
        let in_flight = counters.in_flight.load(Ordering::Relaxed);
        if options.max_in_flight.is_some_and(|cap| in_flight >= cap as u64) {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            let record = meta.not_sent(format!(
                "not sent: {in_flight} calls in flight, max_in_flight is {}",
                options.max_in_flight.unwrap_or_default()
            ));
            // Never wait on the recorder here: a full queue hands the record
            // to a task instead of delaying the next send.
            match records.try_send(record) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(record)) => {
                    let (records, lost) = (records.clone(), lost.clone());
                    tasks.spawn_on(
                        async move {
                            if records.send(record).await.is_err() {
                                lost.fetch_add(1, Ordering::Relaxed);
                            }
                        },
                        &calls,
                    );
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    lost.fetch_add(1, Ordering::Relaxed);
                }
            }
            continue;
        }
        counters.in_flight.fetch_add(1, Ordering::Relaxed);
        counters.sent.fetch_add(1, Ordering::Relaxed);
        tasks.spawn_on(
            call_one(
                target.client.clone(),
                meta,
                body,
                options.call_timeout,
                records.clone(),
                counters.clone(),
                lost.clone(),
                stop.clone(),
            ),
            &calls,
        );
        while let Some(done) = tasks.try_join_next() {
            log_panic(done);
        }
    }
    drop(ready_rx);
    // Calls in flight end by their deadline (plus grace), or at once on
    // `Stop::Abandon`, so this is bounded.
    while let Some(done) = tasks.join_next().await {
        log_panic(done);
    }
    if let Err(e) = producer.await {
        tracing::error!("body builder failed: {e}");
    }
    SendReport { due, interrupted, lost_records: lost.load(Ordering::Relaxed) }
}

/// Resolves once `stop` is at `level` or beyond; never if its sender is gone.
pub async fn reaches(stop: &mut watch::Receiver<Stop>, level: Stop) {
    if stop.wait_for(|s| *s >= level).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn log_panic(result: Result<(), tokio::task::JoinError>) {
    if let Err(e) = result {
        // A call task only panics on a bug; its record is lost, so say so loudly.
        tracing::error!("call task failed, its record is lost: {e}");
    }
}

/// A call's position in the schedule, its body and its payload feature values.
type Ready = (usize, Vec<u8>, Option<Vec<Option<f64>>>);

/// What a record needs to know about its call, captured at dispatch.
struct CallMeta {
    template: CallRecord,
    function_id: Option<FunctionId>,
    clock: Clock,
}

impl CallMeta {
    fn new(
        schedule: &Schedule,
        call: &ScheduledCall,
        run_id: &str,
        target: &Target,
        clock: Clock,
        request_bytes: usize,
        payload_features: Option<Vec<Option<f64>>>,
    ) -> Self {
        let function_id =
            target.functions.get(&call.image_tag).and_then(|ids| ids.get(call.copy as usize)).cloned();
        CallMeta {
            template: CallRecord {
                call_index: call.index,
                request_id: request_id(run_id, call.index),
                image_tag: call.image_tag.to_string(),
                function_id: function_id.as_ref().map(|f| f.to_string()).unwrap_or_default(),
                phase: schedule.phases[call.phase as usize].name.clone(),
                scheduled_ns: clock.unix_ns.saturating_add(i64::try_from(call.offset_ns).unwrap_or(i64::MAX)),
                request_bytes: i64::try_from(request_bytes).unwrap_or(i64::MAX),
                request: Some(call.request.clone()),
                payload_features,
                ..CallRecord::default()
            },
            function_id,
            clock,
        }
    }

    fn not_sent(self, why: String) -> CallRecord {
        CallRecord { status: CallStatus::NotSent, error: Some(why), ..self.template }
    }
}

#[allow(clippy::too_many_arguments)]
async fn call_one(
    mut client: LeafClient<AuthChannel>,
    meta: CallMeta,
    body: Vec<u8>,
    timeout: Duration,
    records: mpsc::Sender<CallRecord>,
    counters: Arc<Counters>,
    lost: Arc<AtomicU64>,
    mut stop: watch::Receiver<Stop>,
) {
    let CallMeta { template, function_id, clock } = meta;
    let mut request = tonic::Request::new(ScheduleCallRequest {
        function_id: function_id.as_ref().map(Into::into),
        data: body,
    });
    request.set_timeout(timeout);
    if let Ok(value) = MetadataValue::try_from(template.request_id.as_str()) {
        request.metadata_mut().insert(trailers::REQUEST_ID, value);
    }
    let sent = Instant::now();
    let outcome = tokio::select! {
        outcome = tokio::time::timeout(timeout + DEADLINE_GRACE, client.schedule_call(request)) => Some(outcome),
        () = reaches(&mut stop, Stop::Abandon) => None,
    };
    let latency = sent.elapsed();
    counters.in_flight.fetch_sub(1, Ordering::Relaxed);
    counters.completed.fetch_add(1, Ordering::Relaxed);
    let mut record =
        CallRecord { sent_ns: Some(clock.unix_at(sent)), latency_ns: Some(nanos_i64(latency)), ..template };
    let Some(outcome) = outcome else {
        // Dropping the request cancels it on the wire; whether the function
        // ran is unknown, so the row says so instead of guessing a code.
        counters.errors.fetch_add(1, Ordering::Relaxed);
        record.status = CallStatus::Abandoned;
        record.latency_ns = None;
        record.error = Some(format!(
            "abandoned {latency:?} after sending (second interrupt): outcome unknown, the platform may still run it"
        ));
        if records.send(record).await.is_err() {
            lost.fetch_add(1, Ordering::Relaxed);
        }
        return;
    };
    match outcome {
        Ok(Ok(response)) => {
            record.metadata = metadata_map(response.metadata());
            let response = response.into_inner();
            record.status = CallStatus::Ok;
            record.grpc_code = Some(0);
            record.response_bytes = Some(i64::try_from(response.data.len()).unwrap_or(i64::MAX));
            record.function_error = response.error.map(|e| e.message);
            record.response_instance_id =
                proto::convert::instance_id(response.instance_id.as_ref()).map(|i| i.0);
        }
        Ok(Err(status)) => {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            // tonic reports its own client-side deadline as CANCELLED ("Timeout
            // expired"); gRPC's name for a passed deadline is DEADLINE_EXCEEDED.
            let code = if status.code() == tonic::Code::Cancelled && latency >= timeout {
                tonic::Code::DeadlineExceeded
            } else {
                status.code()
            };
            record.metadata = metadata_map(status.metadata());
            record.status = call_status(code);
            record.grpc_code = Some(code as i32);
            record.error = Some(status.message().to_string());
        }
        Err(_) => {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            record.status = CallStatus::DeadlineExceeded;
            record.grpc_code = Some(tonic::Code::DeadlineExceeded as i32);
            record.error =
                Some(format!("no response within the deadline ({timeout:?}) plus {DEADLINE_GRACE:?}"));
        }
    }
    if records.send(record).await.is_err() {
        lost.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every metadata entry as text; binary (`-bin`) values as base64. Repeated
/// keys are joined with `,` as HTTP does.
pub fn metadata_map(md: &MetadataMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for entry in md.iter() {
        let (key, value) = match entry {
            KeyAndValueRef::Ascii(k, v) => {
                (k.as_str().to_string(), v.to_str().map(str::to_string).unwrap_or_else(|_| format!("{v:?}")))
            }
            KeyAndValueRef::Binary(k, v) => (
                k.as_str().to_string(),
                v.to_bytes().map(|b| base64::engine::general_purpose::STANDARD.encode(b)).unwrap_or_default(),
            ),
        };
        out.entry(key)
            .and_modify(|existing| {
                existing.push(',');
                existing.push_str(&value);
            })
            .or_insert(value);
    }
    out
}

/// The stored status of a gRPC code (`CallStatus` covers every code).
pub fn call_status(code: tonic::Code) -> CallStatus {
    CallStatus::from_grpc_code(code as i32).unwrap_or(CallStatus::Unknown)
}

fn nanos_i64(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}
