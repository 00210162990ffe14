//! Report tonic's message-size refusals as RESOURCE_EXHAUSTED.
//!
//! tonic refuses a request larger than `max_decoding_message_size` with
//! OUT_OF_RANGE, but gRPC (and grpc-go, which HyperFaaS clients use) reports a
//! message over the limit as RESOURCE_EXHAUSTED. tonic rejects the request
//! before the call reaches our service, in a headers-only response, so the
//! status is rewritten there. Nothing else in a function server answers
//! OUT_OF_RANGE: the call service never returns it.

use http::{HeaderValue, Response};
use tonic::Code;

const GRPC_STATUS: &str = "grpc-status";

/// Rewrites a headers-only OUT_OF_RANGE status to RESOURCE_EXHAUSTED.
pub(crate) fn resource_exhausted_for_oversized<B>(mut response: Response<B>) -> Response<B> {
    let out_of_range = HeaderValue::from(Code::OutOfRange as i32);
    if response.headers().get(GRPC_STATUS) == Some(&out_of_range) {
        response.headers_mut().insert(GRPC_STATUS, HeaderValue::from(Code::ResourceExhausted as i32));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_out_of_range() {
        let response = Response::builder().header(GRPC_STATUS, "11").body(()).unwrap();
        let rewritten = resource_exhausted_for_oversized(response);
        assert_eq!(rewritten.headers()[GRPC_STATUS], "8");

        let ok = Response::builder().header(GRPC_STATUS, "0").body(()).unwrap();
        assert_eq!(resource_exhausted_for_oversized(ok).headers()[GRPC_STATUS], "0");

        let no_status = Response::builder().body(()).unwrap();
        assert!(resource_exhausted_for_oversized(no_status).headers().get(GRPC_STATUS).is_none());
    }
}
