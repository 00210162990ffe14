//! Passing the caller's deadline downstream.
//!
//! `Request::set_timeout` would arm tonic's client timer, which fails as
//! CANCELLED ("Timeout expired"), racing the downstream node's own
//! DEADLINE_EXCEEDED. Instead the `grpc-timeout` header tells the node below
//! how long it has, and our own timer, armed [`MARGIN`] earlier than tonic's,
//! answers DEADLINE_EXCEEDED.

use std::future::Future;
use std::time::Duration;

use tonic::{Request, Response, Status};

/// Our timer fires this much before tonic's.
pub const MARGIN: Duration = Duration::from_millis(1);

/// Runs `rpc` with `remaining` as its deadline; an expiry is DEADLINE_EXCEEDED.
pub async fn call_within<Req, Res, F, Fut>(
    remaining: Duration,
    mut request: Request<Req>,
    rpc: F,
) -> Result<Response<Res>, Status>
where
    F: FnOnce(Request<Req>) -> Fut,
    Fut: Future<Output = Result<Response<Res>, Status>>,
{
    if remaining.is_zero() {
        return Err(Status::deadline_exceeded("deadline exceeded before forwarding"));
    }
    request.set_timeout(remaining);
    match tokio::time::timeout(remaining.saturating_sub(MARGIN), rpc(request)).await {
        Ok(result) => result,
        Err(_) => Err(Status::deadline_exceeded(format!("deadline of {remaining:?} exceeded"))),
    }
}
