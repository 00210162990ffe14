//! How every hyperfake gRPC server accepts connections and every client dials.
//!
//! Why this module exists: tonic applies `Server::tcp_nodelay` and
//! `Server::tcp_keepalive` only when it binds the address itself
//! (`Server::serve`). With `serve_with_incoming*`, which every hyperfake server
//! uses (they bind first so port 0 can be reported), those settings are ignored
//! (tonic 0.14's own documentation says so), and `TcpIncoming::from(listener)`
//! leaves `TCP_NODELAY` unset. Accepted sockets then run with Nagle's algorithm
//! on: a response written in more than one segment waits for the peer's
//! delayed ACK, about 40 ms on Linux. That stall showed up as a bimodal latency
//! (0–1 ms or 41–43 ms) in every recorded run. So every server — leaf,
//! load-balancer node, worker (and the fake worker, which serves through it),
//! database, and the function SDK inside each container — turns its bound
//! listener into connections through [`incoming`], and every client dials
//! through [`endpoint`](crate::endpoint), which sets the same options.

use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

/// Idle time before the first TCP keepalive probe, on accepted and dialled
/// sockets: a peer that vanished without closing is noticed eventually even
/// when HTTP/2 keep-alives are off.
pub const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// The connections accepted on `listener`, each with `TCP_NODELAY` and a TCP
/// keepalive of [`TCP_KEEPALIVE`]. Pass the result to
/// `Server::serve_with_incoming*` (see the [module docs](self) for why the
/// server's own `tcp_nodelay` is not enough).
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true)).with_keepalive(Some(TCP_KEEPALIVE))
}
