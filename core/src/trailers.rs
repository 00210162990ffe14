//! Names of the timing metadata that worker and leaf attach to every call
//! response. HyperFaaS's names are kept; values are decimal ASCII integers,
//! timestamps in ns since the Unix epoch on the sending host, durations in ns.
//!
//! tonic sends unary response metadata as HTTP/2 headers; tonic clients see
//! headers and trailers merged in `Response::metadata()`.

/// Worker: when the call was accepted (before waiting for a concurrency slot).
pub const CALL_QUEUED_TIMESTAMP: &str = "callqueuedtimestamp";
/// Worker: when the function's response arrived.
pub const GOT_RESPONSE_TIMESTAMP: &str = "gotresponsetimestamp";
/// Worker: duration of the call to the function instance, as the worker saw it (ns).
pub const FUNCTION_PROCESSING_TIME: &str = "functionprocessingtime";
/// Function (forwarded by the worker): time spent inside the handler (ns).
pub const FUNCTION_HANDLER_TIME: &str = "functionhandlertime";
/// Worker: when the call got a concurrency slot on its instance.
pub const CALL_STARTED_TIMESTAMP: &str = "callstartedtimestamp";
/// Leaf: when the leaf received the request.
pub const LEAF_GOT_REQUEST_TIMESTAMP: &str = "leafgotrequesttimestamp";
/// Leaf: when the leaf handed the call to a worker.
pub const LEAF_SCHEDULED_CALL_TIMESTAMP: &str = "leafscheduledcalltimestamp";
/// Leaf and worker: the instance that served the call.
pub const INSTANCE_ID: &str = "instanceid";
/// Leaf: the worker that served the call.
pub const WORKER_ADDRESS: &str = "workeraddress";
/// Request metadata: the caller's id for the call (the load generator sends
/// `<run_id>-<call index>`), so server logs and records can be joined on it.
pub const REQUEST_ID: &str = "requestid";
/// Load-balancer node: when the node received the request (the topmost node's
/// value is the one the client sees).
pub const LB_GOT_REQUEST_TIMESTAMP: &str = "lbgotrequesttimestamp";
/// Load-balancer node: when the node handed the call to a child.
pub const LB_FORWARDED_CALL_TIMESTAMP: &str = "lbforwardedcalltimestamp";

/// Every key the leaf sets itself (it also forwards [`WORKER_KEYS`]).
pub const LEAF_KEYS: [&str; 4] =
    [LEAF_GOT_REQUEST_TIMESTAMP, LEAF_SCHEDULED_CALL_TIMESTAMP, INSTANCE_ID, WORKER_ADDRESS];

/// Every timing key the worker sets, in the order they happen.
pub const WORKER_KEYS: [&str; 6] = [
    CALL_QUEUED_TIMESTAMP,
    CALL_STARTED_TIMESTAMP,
    GOT_RESPONSE_TIMESTAMP,
    FUNCTION_PROCESSING_TIME,
    FUNCTION_HANDLER_TIME,
    INSTANCE_ID,
];
