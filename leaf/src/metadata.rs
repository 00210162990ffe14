//! Response metadata: the worker's timing keys forwarded up the tree, plus each
//! node's own, so a client sees the whole latency decomposition.

use hyperfake_core::trailers;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};

/// Every key a node copies from the response of the node below it.
pub const FORWARDED_KEYS: [&str; 12] = [
    trailers::CALL_QUEUED_TIMESTAMP,
    trailers::CALL_STARTED_TIMESTAMP,
    trailers::GOT_RESPONSE_TIMESTAMP,
    trailers::FUNCTION_PROCESSING_TIME,
    trailers::FUNCTION_HANDLER_TIME,
    trailers::INSTANCE_ID,
    trailers::LEAF_GOT_REQUEST_TIMESTAMP,
    trailers::LEAF_SCHEDULED_CALL_TIMESTAMP,
    trailers::WORKER_ADDRESS,
    trailers::LB_GOT_REQUEST_TIMESTAMP,
    trailers::LB_FORWARDED_CALL_TIMESTAMP,
    LEAF_ADDRESS,
];

/// The leaf that served the call (set by the load-balancer node above it).
pub const LEAF_ADDRESS: &str = "leafaddress";

/// Set on a RESOURCE_EXHAUSTED a node sends when it refuses a call at its
/// bound for the function, before anything ran (value: the node's role).
/// It is what tells that refusal apart from a RESOURCE_EXHAUSTED that did run
/// (a function's response too large to send), so a load-balancer node may
/// give the call to another child ([`crate::failure::Failure::Refused`]).
pub const REFUSED: &str = "hyperfake-refused";

/// Copies the known timing keys present in `from`.
pub fn forward(from: &MetadataMap, to: &mut MetadataMap) {
    for key in FORWARDED_KEYS {
        if let Some(value) = from.get(key) {
            to.insert(key, value.clone());
        }
    }
}

/// Sets `key` to `value` (values that are not ASCII are skipped).
pub fn put(to: &mut MetadataMap, key: &'static str, value: impl ToString) {
    if let Ok(v) = AsciiMetadataValue::try_from(value.to_string()) {
        to.insert(key, v);
    }
}

/// Sets `key` unless a node below already did (the one nearest the worker wins).
pub fn put_if_absent(to: &mut MetadataMap, key: &'static str, value: impl ToString) {
    if !to.contains_key(key) {
        put(to, key, value);
    }
}
