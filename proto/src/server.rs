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
//! - **Oversized requests** are RESOURCE_EXHAUSTED ([`OversizedLayer`]), not
//!   tonic's OUT_OF_RANGE, and leaf and worker refuse a payload that would
//!   not fit the next hop's envelope the same way ([`check_payload`]).
//! - **HTTP/2 keepalive**: a PING every [`HTTP2_KEEPALIVE_INTERVAL`]; a peer
//!   that does not answer within [`HTTP2_KEEPALIVE_TIMEOUT`] is dropped with
//!   its streams, so a vanished caller's calls end.
//! - **A connection window of [`CONNECTION_WINDOW`]**, which also sizes
//!   h2's budget for small DATA frames received but not yet read by a
//!   handler (half the window). With hyper's 1 MiB window it held about
//!   2 000 one-byte frames, fewer than a peer may have streams open: a burst
//!   of small calls to a busy server (the load generator's 10 000 warm-up
//!   calls to the load-balancer node) exceeded it, and h2 closed the
//!   connection with GOAWAY `ENHANCE_YOUR_CALM` "too_many_data_frames",
//!   logging nothing above debug, in 4 of 11 full-size scale runs (in none
//!   of the 6 since). Clients ([`crate::endpoint`]) get the same window for
//!   the answers.
//! - **HTTP/2 reset limits sized for a loaded caller**
//!   ([`MAX_PENDING_ACCEPT_RESET_STREAMS`], [`MAX_LOCAL_ERROR_RESET_STREAMS`]):
//!   h2 closes a connection (GOAWAY `ENHANCE_YOUR_CALM`) when a peer resets
//!   more than 20 streams the server has not accepted yet, or provokes more
//!   than 1 024 resets in the connection's life. Both are defences against
//!   reset floods, but a starved server meets them under honest load: a leaf
//!   cancels every call whose deadline passed, and a busy server has not
//!   accepted them yet. In the scale benchmark at 2 000 and 5 000 calls/s
//!   the load-balancer node, the database and the fake workers' process
//!   logged the first ("remotely-reset pending-accept streams reached
//!   limit"), and each time every call on that connection failed at once.
//!   The second limit is raised with it, as h2's own default for servers is
//!   sized for a connection's life, not for a long-lived link between nodes.
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

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyperfake_core::defaults::MAX_PAYLOAD_SIZE;
use tonic::Status;
use tonic::codegen::http;
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
/// The HTTP/2 connection window of every hyperfake server and client. h2
/// lets a peer have half of it in small DATA frames (under 256 bytes: a
/// gRPC call with a small payload is one) that no handler has read yet
/// before it closes the connection; half of 4 MiB at 256 bytes per frame is
/// two frames for each of the [`MAX_CONCURRENT_STREAMS`] streams a peer may
/// have open.
pub const CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;
/// Streams a peer may reset before the server accepted them, at once, before
/// the connection is closed: as many as it may have open
/// ([`MAX_CONCURRENT_STREAMS`]), so cancelling its calls never costs a peer
/// its connection, while a reset flood still holds no more than open streams
/// would (h2's default is 20).
pub const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = MAX_CONCURRENT_STREAMS as usize;
/// Resets the server itself sends because of what the peer did (a frame for
/// a stream that is over, a stream beyond the limit), over a connection's
/// life, before it is closed. h2's default of 1 024 is reached by a
/// long-lived connection between two hyperfake nodes in minutes of overload;
/// 64 times that still bounds a peer that provokes resets on purpose.
pub const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 65_536;
/// How much later than [`MAX_CALL_DURATION`] tonic's own timer ends a call
/// whose handler ignored its deadline. Handlers answer DEADLINE_EXCEEDED with
/// a message at the deadline; this timer answers a bare CANCELLED, so it only
/// runs for handlers that never look.
pub const TRANSPORT_TIMEOUT_MARGIN: Duration = Duration::from_secs(5);

/// A server whose every call gets a deadline and whose oversized requests
/// are RESOURCE_EXHAUSTED; what [`builder`] returns. Add services and more
/// layers to it as to `Server::builder()`.
pub type Builder = Server<Stack<InterceptorLayer<CallDeadline>, Stack<OversizedLayer, Identity>>>;

/// Rewrites a headers-only OUT_OF_RANGE status to RESOURCE_EXHAUSTED, in
/// every response of the service it wraps (the outermost layer of
/// [`builder`], so whatever layers a server adds below it).
///
/// tonic refuses a request larger than `max_decoding_message_size` with
/// OUT_OF_RANGE, before the call reaches the service, but gRPC (and grpc-go,
/// which HyperFaaS clients use) reports a message over the limit as
/// RESOURCE_EXHAUSTED, as hyperfake's own check ([`check_payload`]) and
/// function servers do. No hyperfake service answers OUT_OF_RANGE itself, so
/// every such status is tonic's size refusal; without the rewrite a caller
/// saw OUT_OF_RANGE or RESOURCE_EXHAUSTED depending on which hop refused
/// (e2e `faults::payload_limit`).
#[derive(Clone, Copy, Debug, Default)]
pub struct OversizedLayer;

impl<S> tower::Layer<S> for OversizedLayer {
    type Service = Oversized<S>;

    fn layer(&self, inner: S) -> Oversized<S> {
        Oversized(inner)
    }
}

/// The service of [`OversizedLayer`].
#[derive(Clone, Debug)]
pub struct Oversized<S>(S);

impl<S, Req, B> tower::Service<Req> for Oversized<S>
where
    S: tower::Service<Req, Response = http::Response<B>>,
    S::Future: Send + 'static,
    B: 'static,
{
    type Response = http::Response<B>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<B>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let response = self.0.call(request);
        Box::pin(async move { response.await.map(resource_exhausted_for_oversized) })
    }
}

/// The rewrite [`OversizedLayer`] applies to one response.
pub fn resource_exhausted_for_oversized<B>(mut response: http::Response<B>) -> http::Response<B> {
    let out_of_range = http::HeaderValue::from(tonic::Code::OutOfRange as i32);
    if response.headers().get("grpc-status") == Some(&out_of_range) {
        response
            .headers_mut()
            .insert("grpc-status", http::HeaderValue::from(tonic::Code::ResourceExhausted as i32));
    }
    response
}

/// Refuses a call's payload larger than [`MAX_PAYLOAD_SIZE`] with
/// RESOURCE_EXHAUSTED, before it is forwarded: a payload just under the
/// 16 MiB message limit would otherwise pass this hop and fail the next one,
/// whose envelope is larger, as an HTTP/2 INTERNAL error.
pub fn check_payload(len: usize) -> Result<(), Status> {
    if len > MAX_PAYLOAD_SIZE {
        return Err(Status::resource_exhausted(format!(
            "payload of {len} bytes is larger than the {MAX_PAYLOAD_SIZE} bytes a call may carry \
             (the 16 MiB message limit less 64 KiB for each hop's envelope)"
        )));
    }
    Ok(())
}

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
            .layer(OversizedLayer)
            .max_concurrent_streams(max_concurrent_streams)
            .http2_keepalive_interval(Some(keepalive_interval))
            .http2_keepalive_timeout(Some(keepalive_timeout))
            .initial_connection_window_size(CONNECTION_WINDOW)
            .http2_max_pending_accept_reset_streams(Some(MAX_PENDING_ACCEPT_RESET_STREAMS))
            .http2_max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESET_STREAMS))
            .timeout(max_call_duration.saturating_add(transport_timeout_margin))
            .layer(InterceptorLayer::new(CallDeadline::new(max_call_duration)))
    }
}

#[cfg(test)]
mod tests;
