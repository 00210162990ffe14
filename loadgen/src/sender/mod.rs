//! The open-loop dispatcher: every call is sent at its scheduled time whether
//! or not earlier calls returned.
//!
//! Three parts, so that none of them can delay the send clock:
//! - a blocking thread builds request bodies ahead of time (bounded lookahead);
//! - the dispatcher (`dispatch`) sleeps until each call is due and spawns it;
//! - each call (`call`) runs in its own task, with the per-call deadline,
//!   and hands its record to the recorder thread.
//!
//! Every call that comes due produces exactly one record: OK, a gRPC error,
//! `DEADLINE_EXCEEDED`, or `NOT_SENT` when `max_in_flight` calls are already
//! outstanding (dropping keeps an overloaded run honest: queueing inside the
//! generator would show up as server latency). On [`Stop::Drain`] no new call
//! is started and the ones in flight are waited for, each up to its deadline;
//! on [`Stop::Abandon`] the wait ends at once and each call still in flight is
//! recorded as `ABANDONED`.

mod call;
mod dispatch;
mod lookahead;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use hyperfake_core::{FunctionId, ImageTag};
use proto::auth::AuthChannel;
use proto::leaf::leaf_client::LeafClient;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

pub use call::{call_status, metadata_map, record_answer};

use crate::payload::Payloads;
use crate::record::CallRecord;
use crate::schedule::Schedule;

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

/// Where calls go: the leaf, over one or more connections, and the functions
/// created for each image (one per copy, indexed by [`ScheduledCall::copy`]).
#[derive(Clone, Debug)]
pub struct Target {
    /// One client per connection to the leaf; never empty. The dispatcher
    /// hands its batches to them in turn, each served by a task of its own.
    clients: Vec<LeafClient<AuthChannel>>,
    pub functions: HashMap<ImageTag, Vec<FunctionId>>,
}

impl Target {
    /// Calls go over `clients` (one per connection).
    ///
    /// # Panics
    /// If `clients` is empty.
    pub fn new(clients: Vec<LeafClient<AuthChannel>>, functions: HashMap<ImageTag, Vec<FunctionId>>) -> Self {
        assert!(!clients.is_empty(), "a target needs at least one connection to the leaf");
        Target { clients, functions }
    }

    /// The first connection's client (the warm-up's calls go on it).
    pub fn client(&self) -> &LeafClient<AuthChannel> {
        &self.clients[0]
    }
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

/// One run's sending: the calls, where they go, and where their records go.
#[derive(Debug)]
pub struct Dispatcher {
    pub schedule: Arc<Schedule>,
    pub payloads: Arc<Payloads>,
    pub target: Target,
    pub options: SendOptions,
    /// The run's time base: schedule offset 0 is `clock.instant`.
    pub clock: Clock,
    /// The recorder's queue; every call that comes due is handed to it once.
    pub records: mpsc::Sender<CallRecord>,
    pub stop: watch::Receiver<Stop>,
    pub counters: Arc<Counters>,
}

impl Dispatcher {
    /// Sends every call of the schedule on the clock, until the schedule
    /// ends or `stop` leaves [`Stop::Running`]. Returns after every call that
    /// came due is recorded (handed to `records`).
    ///
    /// The dispatch loop runs on a thread of its own (a current-thread
    /// runtime), so its timers fire on time even when the main runtime's
    /// workers are busy with responses; call tasks run on the caller's runtime.
    pub async fn send_all(self) -> SendReport {
        let calls = tokio::runtime::Handle::current();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new().name("loadgen-dispatch".into()).spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a current-thread runtime only fails to build when out of resources");
            let report = runtime.block_on(self.dispatch(calls));
            let _ = done_tx.send(report);
        });
        if let Err(e) = spawned {
            panic!("cannot start the dispatch thread: {e}");
        }
        done_rx.await.expect("the dispatch thread always reports unless it panicked")
    }
}

/// Resolves once `stop` is at `level` or beyond; never if its sender is gone.
pub async fn reaches(stop: &mut watch::Receiver<Stop>, level: Stop) {
    if stop.wait_for(|s| *s >= level).await.is_err() {
        std::future::pending::<()>().await;
    }
}

pub(crate) fn nanos_i64(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}
