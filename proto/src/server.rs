//! How every hyperfake gRPC server is built: [`builder`] returns a
//! `tonic::transport::Server` with the limits below, and every server (leaf,
//! load-balancer node, worker and the fake worker that serves through it,
//! database, the function SDK) starts from it instead of
//! `Server::builder()`. Connections still come from [`crate::net::incoming`]
//! (`TCP_NODELAY`, TCP keepalive), which tonic's own settings cannot do.
//!
//! tonic's defaults leave a server open-ended: any number of HTTP/2 streams
//! per connection (hyper's own default of 200 is replaced by "unlimited"), no
//! HTTP/2 keepalive, no request timeout. A call whose caller set no deadline
//! then waits as long as the work below it does, and holds whatever it took
//! (a leaf's pending permit for the function, a load-balancer node's) for as
//! long, possibly forever. The limits:
//!
//! - **Streams per connection**: [`MAX_CONCURRENT_STREAMS`], announced in the
//!   server's HTTP/2 SETTINGS; a client queues streams beyond it on its side.
//! - **A deadline for every call**: [`crate::deadline::CallDeadline`] gives a
//!   call without `grpc-timeout` (or with a longer one) [`MAX_CALL_DURATION`],
//!   so handlers that read [`crate::deadline::from_metadata`] answer
//!   DEADLINE_EXCEEDED themselves and release what they hold.
//! - **An outer bound** for handlers that never look at the deadline: tonic's
//!   `Server::timeout`, [`TRANSPORT_TIMEOUT_MARGIN`] after the maximum (it
//!   answers CANCELLED "Timeout expired", so it must not win the race).
//! - **HTTP/2 keepalive**: a PING every [`HTTP2_KEEPALIVE_INTERVAL`]; a peer
//!   that does not answer within [`HTTP2_KEEPALIVE_TIMEOUT`] is dropped with
//!   its streams, so a vanished caller's calls end.
//!
//! There is no `concurrency_limit_per_connection`: tonic implements it as a
//! `ConcurrencyLimit` whose waiters queue inside the server, invisible to the
//! caller, and with a value at or above the stream limit it adds nothing. The
//! stream limit already bounds what one connection has in flight, and the
//! leaf bounds each function's pending calls with RESOURCE_EXHAUSTED.
//!
//! Every server then reads (`service` being any generated tonic server):
//!
//! ```ignore
//! proto::server::builder()
//!     .add_service(service)
//!     .serve_with_incoming_shutdown(proto::net::incoming(listener), shutdown)
//!     .await
//! ```

use std::time::Duration;

use tonic::service::InterceptorLayer;
use tonic::transport::Server;
use tower::layer::util::{Identity, Stack};

use crate::deadline::CallDeadline;

/// HTTP/2 streams (calls) one connection may have open at once. The load
/// generator sends a whole run over one connection, and calls in flight are
/// rate × latency: 2 000 calls/s of 1 s functions is 2 000 streams. A leaf
/// lets each function have 1 024 calls pending (`DEFAULT_MAX_PENDING_CALLS`),
/// and a workload calls several functions, so the connection limit must sit
/// above that, or the client would queue calls the leaf would take. Each
/// stream costs a few KiB of state, so 4 096 is a few tens of MiB at most.
pub const MAX_CONCURRENT_STREAMS: u32 = 4096;
/// Idle time on a connection before the server PINGs the peer. Long enough
/// to cost nothing, short enough that a peer that vanished without closing
/// (a killed host, a dropped NAT entry) is noticed within a minute.
pub const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long a PING may go unanswered before the connection is closed.
/// tonic's own default; generous for a loaded 2-core host.
pub const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// The deadline of a call whose caller set none, and the longest any call
/// gets. No call in hyperfake legitimately runs this long: functions answer
/// in seconds, a cold start gives up after 30 s, the load generator's calls
/// default to 60 s; so a call at 5 minutes is stuck, not slow.
pub const MAX_CALL_DURATION: Duration = Duration::from_secs(300);
/// How much later than [`MAX_CALL_DURATION`] tonic's own timer ends a call
/// whose handler ignored its deadline. Handlers answer DEADLINE_EXCEEDED with
/// a message at the deadline; this timer answers a bare CANCELLED, so it only
/// runs for handlers that never look.
pub const TRANSPORT_TIMEOUT_MARGIN: Duration = Duration::from_secs(5);

/// A server whose every call gets a deadline; what [`builder`] returns. Add
/// services and more layers to it as to `Server::builder()`.
pub type Builder = Server<Stack<InterceptorLayer<CallDeadline>, Identity>>;

/// A server with the [`ServerLimits::default`] limits.
pub fn builder() -> Builder {
    ServerLimits::default().builder()
}

/// The limits [`builder`] sets, overridable (tests shorten the durations).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// Default: [`MAX_CONCURRENT_STREAMS`].
    pub max_concurrent_streams: u32,
    /// Default: [`HTTP2_KEEPALIVE_INTERVAL`].
    pub keepalive_interval: Duration,
    /// Default: [`HTTP2_KEEPALIVE_TIMEOUT`].
    pub keepalive_timeout: Duration,
    /// Default: [`MAX_CALL_DURATION`].
    pub max_call_duration: Duration,
    /// Default: [`TRANSPORT_TIMEOUT_MARGIN`].
    pub transport_timeout_margin: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_concurrent_streams: MAX_CONCURRENT_STREAMS,
            keepalive_interval: HTTP2_KEEPALIVE_INTERVAL,
            keepalive_timeout: HTTP2_KEEPALIVE_TIMEOUT,
            max_call_duration: MAX_CALL_DURATION,
            transport_timeout_margin: TRANSPORT_TIMEOUT_MARGIN,
        }
    }
}

impl ServerLimits {
    /// A server with these limits.
    pub fn builder(&self) -> Builder {
        let ServerLimits {
            max_concurrent_streams,
            keepalive_interval,
            keepalive_timeout,
            max_call_duration,
            transport_timeout_margin,
        } = *self;
        Server::builder()
            .max_concurrent_streams(max_concurrent_streams)
            .http2_keepalive_interval(Some(keepalive_interval))
            .http2_keepalive_timeout(Some(keepalive_timeout))
            .timeout(max_call_duration.saturating_add(transport_timeout_margin))
            .layer(InterceptorLayer::new(CallDeadline::new(max_call_duration)))
    }
}

#[cfg(test)]
mod tests;
