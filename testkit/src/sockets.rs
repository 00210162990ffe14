//! The TCP sockets this process has open, read from `/proc/self/fd`, so a test
//! can check the options a server set on a connection it accepted: start the
//! server in-process, connect with [`connect_observed`], make one call, then
//! look at [`accepted`]. Linux only (it reads `/proc`).

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use socket2::SockRef;

/// One TCP socket open in this process and the options it carries.
#[derive(Clone, Debug)]
pub struct TcpSocketInfo {
    /// The descriptor number in this process.
    pub fd: RawFd,
    /// `getsockname`.
    pub local: SocketAddr,
    /// `getpeername`; `None` for a listener or an unconnected socket.
    pub peer: Option<SocketAddr>,
    /// `TCP_NODELAY`.
    pub nodelay: bool,
    /// `SO_KEEPALIVE`.
    pub keepalive: bool,
}

/// Every TCP socket (IPv4 or IPv6) open in this process. Descriptors closed
/// while this runs are skipped.
pub fn tcp_sockets() -> Vec<TcpSocketInfo> {
    let entries = std::fs::read_dir("/proc/self/fd").expect("reading /proc/self/fd (Linux only)");
    let mut sockets = Vec::new();
    for entry in entries.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<RawFd>().ok()) else { continue };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        if is_socket && let Some(info) = inspect(fd) {
            sockets.push(info);
        }
    }
    sockets
}

/// Reads `fd`'s addresses and options through a duplicate this function owns,
/// so a descriptor another thread closes meanwhile is never touched.
fn inspect(fd: RawFd) -> Option<TcpSocketInfo> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) only reads the descriptor table; on a
    // descriptor that was closed meanwhile it fails with EBADF (checked below).
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return None;
    }
    // SAFETY: `dup` is a fresh descriptor that nothing else owns; the OwnedFd
    // closes it (and only it: the original socket stays open) when dropped.
    let owned = unsafe { OwnedFd::from_raw_fd(dup) };
    let socket = SockRef::from(&owned);
    if socket.r#type().ok()? != socket2::Type::STREAM {
        return None;
    }
    let local = socket.local_addr().ok()?.as_socket()?;
    let peer = socket.peer_addr().ok().and_then(|a| a.as_socket());
    Some(TcpSocketInfo {
        fd,
        local,
        peer,
        nodelay: socket.tcp_nodelay().ok()?,
        keepalive: socket.keepalive().ok()?,
    })
}

/// Local addresses of this process's sockets connected to `server`: the
/// client ends of every connection to it made from this process.
pub fn clients_of(server: SocketAddr) -> BTreeSet<SocketAddr> {
    tcp_sockets().into_iter().filter(|s| s.peer == Some(server)).map(|s| s.local).collect()
}

/// A listing of this process's TCP sockets, for failure messages.
fn listing() -> String {
    tcp_sockets()
        .iter()
        .map(|s| {
            format!(
                "  fd {} {} -> {} nodelay={} keepalive={}\n",
                s.fd,
                s.local,
                s.peer.map_or_else(|| "(none)".to_string(), |p| p.to_string()),
                s.nodelay,
                s.keepalive
            )
        })
        .collect()
}

/// Runs `connect`, which must open exactly one new connection from this
/// process to `server` (an eager `Endpoint::connect`, not `connect_lazy`),
/// and returns its output with that connection's client-side address.
/// Panics if it opened none or several.
pub async fn connect_observed<T>(server: SocketAddr, connect: impl Future<Output = T>) -> (T, SocketAddr) {
    let before = clients_of(server);
    let output = connect.await;
    let new: Vec<_> = clients_of(server).difference(&before).copied().collect();
    match new.as_slice() {
        [client] => (output, *client),
        _ => panic!(
            "expected one new connection to {server}, found {}: {new:?}\nTCP sockets:\n{}",
            new.len(),
            listing()
        ),
    }
}

/// The socket this process's server on `server` accepted for the connection
/// from `client`. Call it after a call over that connection has been answered
/// (so the server has accepted it). Panics, listing every TCP socket, if there
/// is none.
pub fn accepted(server: SocketAddr, client: SocketAddr) -> TcpSocketInfo {
    find(server, client).unwrap_or_else(|| {
        panic!("no accepted socket {server} <- {client} in this process\nTCP sockets:\n{}", listing())
    })
}

/// The client side of the connection from `client` to `server` in this process.
pub fn dialled(server: SocketAddr, client: SocketAddr) -> TcpSocketInfo {
    find(client, server).unwrap_or_else(|| {
        panic!("no socket {client} -> {server} in this process\nTCP sockets:\n{}", listing())
    })
}

fn find(local: SocketAddr, peer: SocketAddr) -> Option<TcpSocketInfo> {
    tcp_sockets().into_iter().find(|s| s.local == local && s.peer == Some(peer))
}

/// Asserts both ends of the connection `client` → `server` (both in this
/// process) run without Nagle's algorithm and with TCP keepalive, naming
/// `what` on failure.
pub fn assert_no_nagle(what: &str, server: SocketAddr, client: SocketAddr) {
    let server_side = accepted(server, client);
    assert!(
        server_side.nodelay,
        "{what}: the accepted socket {server} <- {client} has TCP_NODELAY off (Nagle on): {server_side:?}"
    );
    assert!(
        server_side.keepalive,
        "{what}: the accepted socket {server} <- {client} has SO_KEEPALIVE off: {server_side:?}"
    );
    let client_side = dialled(server, client);
    assert!(
        client_side.nodelay,
        "{what}: the client socket {client} -> {server} has TCP_NODELAY off (Nagle on): {client_side:?}"
    );
}

/// Asserts this process has dialled `server` (e.g. a worker's connection to
/// its function container, whose accepting end is in another network
/// namespace) and that every such connection runs without Nagle's algorithm,
/// naming `what` on failure.
pub fn assert_dials_without_nagle(what: &str, server: SocketAddr) {
    let clients = clients_of(server);
    assert!(!clients.is_empty(), "{what}: no connection from this process to {server}");
    for client in clients {
        let socket = dialled(server, client);
        assert!(socket.nodelay, "{what} {server}: TCP_NODELAY off: {socket:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finds_both_ends_and_reads_their_options() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        let (stream, client) =
            connect_observed(server, async { tokio::net::TcpStream::connect(server).await.unwrap() }).await;
        assert_eq!(stream.local_addr().unwrap(), client);
        let (accepted_stream, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client);
        // Linux defaults: Nagle on, no keepalive.
        let plain = accepted(server, client);
        assert!(!plain.nodelay && !plain.keepalive, "{plain:?}");
        accepted_stream.set_nodelay(true).unwrap();
        assert!(accepted(server, client).nodelay);
        assert!(!dialled(server, client).nodelay);
        let listed = tcp_sockets();
        assert!(listed.iter().any(|s| s.local == server && s.peer.is_none()), "the listener: {listed:?}");
    }
}
