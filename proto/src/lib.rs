//! The wire contract: HyperFaaS's protobuf packages with their original field
//! numbers, plus hyperfake's additions (see the `.proto` files for which).
//!
//! Proto integers become the unit types of [`hyperfake_core`] here and nowhere
//! else: see [`convert`].

#![allow(unreachable_pub, missing_debug_implementations, clippy::all)]

pub mod common {
    tonic::include_proto!("common");
}
pub mod function {
    tonic::include_proto!("function");
}
pub mod controller {
    tonic::include_proto!("controller");
}
pub mod leaf {
    tonic::include_proto!("leaf");
}
pub mod database {
    tonic::include_proto!("database");
}

pub mod auth;
pub mod convert;
pub mod deadline;
pub mod net;
pub mod server;

/// The endpoint for a service address as users write it: `host:port`, or a
/// URI with its scheme (`http://host:port`). Every client dials through this,
/// so they all accept the same addresses and dial with `TCP_NODELAY` (tonic's
/// default, set here explicitly so no client depends on it; see [`net`]), a
/// TCP keepalive of [`net::TCP_KEEPALIVE`], the servers' HTTP/2 connection
/// window ([`server::CONNECTION_WINDOW`]: a busy client must not lose its
/// connection to h2's budget for small answers it has not read yet) and room
/// to cancel calls: h2 remembers only 50 streams a client reset (for a
/// second), answers that arrive for a forgotten one count as protocol errors,
/// and 1 024 of those close the connection with every call on it. A fake-worker process whose
/// calls to the database timed out under load logged that limit three times
/// in one run (the scale benchmark at 5 000 calls/s, after the servers' own
/// limits were raised). Now a client remembers as many resets as it may have
/// streams open ([`server::MAX_CONCURRENT_STREAMS`]) and tolerates
/// [`server::MAX_LOCAL_ERROR_RESET_STREAMS`].
pub fn endpoint(address: &str) -> Result<tonic::transport::Endpoint, tonic::transport::Error> {
    let uri = if address.contains("://") { address.to_string() } else { format!("http://{address}") };
    Ok(tonic::transport::Endpoint::from_shared(uri)?
        .tcp_nodelay(true)
        .tcp_keepalive(Some(net::TCP_KEEPALIVE))
        .initial_connection_window_size(server::CONNECTION_WINDOW)
        .http2_max_concurrent_reset_streams(server::MAX_CONCURRENT_STREAMS as usize)
        .http2_max_local_error_reset_streams(server::MAX_LOCAL_ERROR_RESET_STREAMS))
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_address_dials_with_or_without_its_scheme() {
        let bare = super::endpoint("127.0.0.1:50050").unwrap();
        let full = super::endpoint("http://127.0.0.1:50050").unwrap();
        assert_eq!(bare.uri(), full.uri());
        assert_eq!(bare.uri().authority().unwrap().as_str(), "127.0.0.1:50050");
        assert!(super::endpoint("not a host:port").is_err());
    }

    #[test]
    fn every_endpoint_dials_without_nagle() {
        let endpoint = super::endpoint("127.0.0.1:50050").unwrap();
        assert!(endpoint.get_tcp_nodelay());
        assert_eq!(endpoint.get_tcp_keepalive(), Some(super::net::TCP_KEEPALIVE));
    }
}
