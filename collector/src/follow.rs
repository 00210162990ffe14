//! Following one worker: its `Status` stream (lifecycle events) and its
//! `Resources` stream (cgroup and host samples), each in its own task that
//! reconnects with exponential backoff for as long as the collector runs.
//!
//! The worker keeps no history: whatever happens while a stream is down is
//! not recorded, and the log says so. When the worker cuts off a subscriber
//! that fell behind (`DATA_LOSS`), the follower logs it as an error, counts
//! it, and resubscribes at once.

use std::future::Future;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyperfake_core::defaults::MAX_MESSAGE_SIZE;
use proto::auth::{AuthChannel, BearerToken};
use proto::controller::controller_client::ControllerClient;
use proto::controller::{ResourcesRequest, StatusRequest};
use tokio::sync::{mpsc, watch};
use tonic::Streaming;
use tonic::transport::Endpoint;

use crate::record::{Record, event_row, sample_rows};

/// A controller client that sends the shared token, if any.
pub type Client = ControllerClient<AuthChannel>;

/// First wait after a failed attempt; doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest wait between attempts: a worker that comes back is followed
/// within 5 s, and a worker that stays away costs one attempt per 5 s.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long one connection attempt may take (a remote host that drops SYNs).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 pings on idle connections: a `Status` stream can be silent for
/// minutes, and without pings a worker host that vanished (no FIN, no RST)
/// would never be noticed.
pub const KEEPALIVE: Duration = Duration::from_secs(10);
/// A resource stream without a sample for this long (or 20 intervals, if
/// longer) is taken as dead and reconnected.
pub const STALL_MIN: Duration = Duration::from_secs(10);

/// What the followers of every worker share.
#[derive(Clone, Debug)]
pub struct FollowSettings {
    /// Names the `Status` subscriptions.
    pub run_id: String,
    /// Resource sampling interval asked of the worker.
    pub interval: Duration,
    /// Record `CALL` and `RESPONSE` events (two per call) too.
    pub record_call_events: bool,
    pub token: BearerToken,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

// === Stats ===

/// Where one stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum LinkState {
    /// Trying for the first time, or again after a wait.
    Connecting = 0,
    /// Subscribed; messages flow.
    Connected = 1,
    /// The last attempt failed or the stream broke; waiting before the next.
    Retrying = 2,
    /// The collector is stopping.
    Stopped = 3,
}

impl LinkState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => LinkState::Connecting,
            1 => LinkState::Connected,
            2 => LinkState::Retrying,
            _ => LinkState::Stopped,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Connecting => "connecting",
            LinkState::Connected => "connected",
            LinkState::Retrying => "retrying",
            LinkState::Stopped => "stopped",
        }
    }
}

/// Counters of one stream, readable while it runs.
#[derive(Debug)]
pub struct StreamStats {
    state: AtomicU8,
    /// Messages received.
    pub messages: AtomicU64,
    /// Successful subscriptions (1 after the first connect).
    pub subscriptions: AtomicU64,
    /// Failed attempts since the last successful subscription.
    pub failures: AtomicU64,
    /// Times the worker cut this subscriber off for falling behind.
    pub data_loss: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Default for StreamStats {
    fn default() -> Self {
        StreamStats {
            state: AtomicU8::new(LinkState::Connecting as u8),
            messages: AtomicU64::new(0),
            subscriptions: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            data_loss: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }
}

impl StreamStats {
    pub fn state(&self) -> LinkState {
        LinkState::from_u8(self.state.load(Ordering::Acquire))
    }

    fn set_state(&self, state: LinkState) {
        self.state.store(state as u8, Ordering::Release);
    }

    /// Why the last attempt failed or the stream last broke.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_error(&self, error: String) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    pub fn messages(&self) -> u64 {
        self.messages.load(Ordering::Acquire)
    }

    pub fn subscriptions(&self) -> u64 {
        self.subscriptions.load(Ordering::Acquire)
    }
}

/// Everything the collector knows about one worker.
#[derive(Debug)]
pub struct WorkerStats {
    /// As given on the command line; the `worker` column of every row.
    pub address: Arc<str>,
    pub status: StreamStats,
    pub resources: StreamStats,
    /// `CALL`/`RESPONSE` events received but not recorded (no `--record-call-events`).
    pub call_events_skipped: AtomicU64,
    /// `container_samples` rows handed to the writer.
    pub container_rows: AtomicU64,
}

impl WorkerStats {
    pub fn new(address: &str) -> Self {
        WorkerStats {
            address: Arc::from(address),
            status: StreamStats::default(),
            resources: StreamStats::default(),
            call_events_skipped: AtomicU64::new(0),
            container_rows: AtomicU64::new(0),
        }
    }
}

// === Connecting ===

/// The endpoint for a worker address (`host:port`, or a full `http://` URI).
pub fn endpoint(address: &str) -> Result<Endpoint, tonic::transport::Error> {
    Ok(proto::endpoint(address)?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE)
        .keep_alive_timeout(KEEPALIVE)
        .keep_alive_while_idle(true))
}

/// Connects to a worker (one attempt).
pub async fn connect(address: &str, token: &BearerToken) -> Result<Client, tonic::transport::Error> {
    let channel = endpoint(address)?.connect().await?;
    Ok(ControllerClient::with_interceptor(channel, token.clone())
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE))
}

/// A subscriber id no other subscription uses: the worker replaces a
/// subscription with the same id, so two collectors (or two reconnects of one)
/// must never share one.
fn subscriber_id(run_id: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("collector-{run_id}-{}-{n}", std::process::id())
}

/// Exponential backoff between attempts.
#[derive(Debug)]
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Backoff { min, max, next: min }
    }

    fn next(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Resolves once the collector is told to stop (or its handle is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

// === Followers ===

/// Follows `Status` on one worker until `stop`.
pub async fn follow_status(
    worker: Arc<WorkerStats>,
    settings: FollowSettings,
    records: mpsc::Sender<Record>,
    stop: watch::Receiver<bool>,
) {
    let run_id = settings.run_id.clone();
    let record_calls = settings.record_call_events;
    let address = Arc::clone(&worker.address);
    let stats = Arc::clone(&worker);
    follow(
        Stream { name: "Status", stats: &worker.status, worker: &worker.address, stall: None },
        &settings,
        records,
        stop,
        move |mut client: Client| {
            let node_id = subscriber_id(&run_id);
            async move {
                tracing::debug!(%node_id, "subscribing to Status");
                Ok::<_, tonic::Status>(client.status(StatusRequest { node_id }).await?.into_inner())
            }
        },
        move |update| {
            let row = event_row(&address, &update);
            if row.is_call_event() && !record_calls {
                stats.call_events_skipped.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            Some(Record::Event(row))
        },
    )
    .await;
}

/// Follows `Resources` on one worker until `stop`.
pub async fn follow_resources(
    worker: Arc<WorkerStats>,
    settings: FollowSettings,
    records: mpsc::Sender<Record>,
    stop: watch::Receiver<bool>,
) {
    let interval_ms = interval_ms(settings.interval);
    let address = Arc::clone(&worker.address);
    let stats = Arc::clone(&worker);
    let stall = STALL_MIN.max(settings.interval * 20);
    follow(
        Stream { name: "Resources", stats: &worker.resources, worker: &worker.address, stall: Some(stall) },
        &settings,
        records,
        stop,
        move |mut client: Client| async move {
            Ok::<_, tonic::Status>(client.resources(ResourcesRequest { interval_ms }).await?.into_inner())
        },
        move |sample| {
            let rows = sample_rows(&address, &sample);
            stats.container_rows.fetch_add(rows.containers.len() as u64, Ordering::Relaxed);
            Some(Record::Sample(rows))
        },
    )
    .await;
}

/// The interval as the wire's milliseconds (at least 1: 0 would mean "the
/// worker's default").
pub fn interval_ms(interval: Duration) -> u32 {
    u32::try_from(interval.as_millis()).unwrap_or(u32::MAX).max(1)
}

struct Stream<'a> {
    name: &'static str,
    stats: &'a StreamStats,
    worker: &'a str,
    /// Reconnect when no message arrives for this long.
    stall: Option<Duration>,
}

/// Why an open stream ended.
enum Broken {
    Ended,
    DataLoss(tonic::Status),
    Failed(tonic::Status),
    Stalled(Duration),
}

/// The reconnect loop shared by both streams.
async fn follow<T, Open, Fut, Convert>(
    stream: Stream<'_>,
    settings: &FollowSettings,
    records: mpsc::Sender<Record>,
    mut stop: watch::Receiver<bool>,
    mut open: Open,
    mut convert: Convert,
) where
    Open: FnMut(Client) -> Fut,
    Fut: Future<Output = Result<Streaming<T>, tonic::Status>>,
    Convert: FnMut(T) -> Option<Record>,
{
    let Stream { name, stats, worker, stall } = stream;
    let mut backoff = Backoff::new(settings.backoff_min, settings.backoff_max);
    'reconnect: loop {
        if stats.state() != LinkState::Retrying {
            stats.set_state(LinkState::Connecting);
        }
        let attempt = async {
            let client = connect(worker, &settings.token).await.map_err(|e| crate::error_chain(&e))?;
            open(client).await.map_err(|s| describe(&s))
        };
        let opened = tokio::select! {
            () = stopped(&mut stop) => break 'reconnect,
            opened = attempt => opened,
        };
        match opened {
            Err(error) => {
                let failures = stats.failures.fetch_add(1, Ordering::AcqRel) + 1;
                let changed = stats.last_error().as_deref() != Some(error.as_str());
                if failures == 1 || changed {
                    tracing::warn!(
                        %worker, stream = name, %error,
                        "worker unreachable; retrying every ≤{:?} until it answers",
                        settings.backoff_max
                    );
                } else if failures % 20 == 0 {
                    tracing::warn!(%worker, stream = name, failures, %error, "worker still unreachable; retrying");
                } else {
                    tracing::debug!(%worker, stream = name, failures, %error, "attempt failed");
                }
                stats.set_error(error);
            }
            Ok(mut messages) => {
                let failures = stats.failures.swap(0, Ordering::AcqRel);
                let subscriptions = stats.subscriptions.fetch_add(1, Ordering::AcqRel) + 1;
                stats.set_state(LinkState::Connected);
                if subscriptions == 1 {
                    tracing::info!(%worker, stream = name, "connected; following");
                } else {
                    tracing::info!(%worker, stream = name, failed_attempts = failures, "reconnected; following again");
                }
                let broken = loop {
                    let next = async {
                        match stall {
                            Some(limit) => tokio::time::timeout(limit, messages.message())
                                .await
                                .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded(STALLED))),
                            None => messages.message().await,
                        }
                    };
                    let next = tokio::select! {
                        () = stopped(&mut stop) => break 'reconnect,
                        next = next => next,
                    };
                    match next {
                        Ok(Some(message)) => {
                            backoff.reset();
                            stats.messages.fetch_add(1, Ordering::Relaxed);
                            if let Some(record) = convert(message)
                                && records.send(record).await.is_err()
                            {
                                // The writer is gone: the collector was killed.
                                break 'reconnect;
                            }
                        }
                        Ok(None) => break Broken::Ended,
                        Err(s) if s.code() == tonic::Code::DataLoss => break Broken::DataLoss(s),
                        Err(s) if s.message() == STALLED => break Broken::Stalled(stall.unwrap_or_default()),
                        Err(s) => break Broken::Failed(s),
                    }
                };
                let error = match broken {
                    Broken::Ended => {
                        tracing::warn!(%worker, stream = name, "the worker ended the stream; resubscribing");
                        "stream ended by the worker".to_string()
                    }
                    Broken::DataLoss(s) => {
                        stats.data_loss.fetch_add(1, Ordering::AcqRel);
                        tracing::error!(
                            %worker, stream = name, message = s.message(),
                            "DATA LOSS: the worker cut the collector off for falling behind; events \
                             in the gap are NOT recorded. Resubscribing"
                        );
                        backoff.reset();
                        format!("data loss: {}", s.message())
                    }
                    Broken::Stalled(after) => {
                        tracing::warn!(%worker, stream = name, ?after, "no message for too long; reconnecting");
                        format!("stalled: no message for {after:?}")
                    }
                    Broken::Failed(s) => {
                        let error = describe(&s);
                        tracing::warn!(%worker, stream = name, %error, "stream broke; reconnecting");
                        error
                    }
                };
                stats.set_error(error);
            }
        }
        stats.set_state(LinkState::Retrying);
        let delay = backoff.next();
        tokio::select! {
            () = stopped(&mut stop) => break 'reconnect,
            () = tokio::time::sleep(delay) => {}
        }
    }
    stats.set_state(LinkState::Stopped);
}

/// Marks our own stall timeout apart from a worker's DEADLINE_EXCEEDED.
const STALLED: &str = "hyperfake-collector: stream stalled";

/// A gRPC status as one line: code, message, and the transport cause if any.
fn describe(status: &tonic::Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    if let Some(source) = std::error::Error::source(status) {
        text.push_str(": ");
        text.push_str(&crate::error_chain(source));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
        let delays: Vec<u128> = (0..8).map(|_| b.next().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        b.reset();
        assert_eq!(b.next(), BACKOFF_MIN);
    }

    #[test]
    fn subscriber_ids_are_unique_and_name_the_run() {
        let a = subscriber_id("r1");
        let b = subscriber_id("r1");
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("collector-r1-{}-", std::process::id())), "{a}");
    }

    #[test]
    fn addresses_become_http_uris() {
        assert_eq!(endpoint("127.0.0.1:50051").unwrap().uri().to_string(), "http://127.0.0.1:50051/");
        assert_eq!(endpoint("http://w:1").unwrap().uri().to_string(), "http://w:1/");
        assert!(endpoint("not a uri").is_err());
    }

    #[test]
    fn interval_on_the_wire() {
        assert_eq!(interval_ms(Duration::from_millis(100)), 100);
        assert_eq!(interval_ms(Duration::from_micros(10)), 1);
    }
}
