//! The one place that says what a failed call to a node below means: a
//! worker's `Call`, `Start` or `Stop`, a child's `ScheduleCall` or
//! `CreateFunction`. Callers decide what to do with each kind (retry on
//! another instance, take the node out of rotation, pass the status up);
//! none of them looks at codes or messages itself.

use tonic::{Code, Status};

use crate::metadata;

/// What a status from a node below means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The deadline passed: ours, tonic's client timer ("Timeout expired"),
    /// or a node's below (DEADLINE_EXCEEDED).
    Expired,
    /// The call never reached the node: refused, reset, unreachable. tonic
    /// reports these as UNAVAILABLE made on the client side (a transport
    /// error as the source, or no response metadata: a status the node sent
    /// always carries its response headers). The node leaves rotation.
    Unreachable,
    /// The connection broke with the call in flight (UNKNOWN or CANCELLED made
    /// on the client side, without response metadata). The call may have run,
    /// so it is not retried; the node leaves rotation.
    ConnectionLost,
    /// The node answered UNAVAILABLE itself: a worker could not reach the
    /// instance (the call did not reach the function), a child had nowhere to
    /// send it.
    Unavailable,
    /// The node no longer has the instance named, or it is not ready
    /// (FAILED_PRECONDITION). Nothing ran.
    Gone,
    /// The node has no such instance or function (NOT_FOUND). Nothing ran.
    NotFound,
    /// The node refused the call at its bound for the function
    /// (RESOURCE_EXHAUSTED marked [`metadata::REFUSED`]). Nothing ran; another
    /// node may take it, and this one stays in rotation. An unmarked
    /// RESOURCE_EXHAUSTED may come after the function ran (its response was
    /// too large) and is [`Failure::Answered`].
    Refused,
    /// Anything else: the function's or the node's own answer, passed up as it is.
    Answered,
}

impl Failure {
    /// Classifies `status`, in this order: expired, connection lost,
    /// unreachable / unavailable, gone / not found, refused, answered.
    pub fn of(status: &Status) -> Failure {
        match status.code() {
            Code::DeadlineExceeded => Failure::Expired,
            Code::Cancelled if status.message().contains("Timeout expired") => Failure::Expired,
            Code::Unknown | Code::Cancelled if status.metadata().is_empty() => Failure::ConnectionLost,
            Code::Unavailable if is_transport_failure(status) => Failure::Unreachable,
            Code::Unavailable => Failure::Unavailable,
            Code::FailedPrecondition => Failure::Gone,
            Code::NotFound => Failure::NotFound,
            Code::ResourceExhausted if status.metadata().contains_key(metadata::REFUSED) => Failure::Refused,
            _ => Failure::Answered,
        }
    }

    /// Whether the call certainly did not reach a function (a worker's
    /// `Call`): another instance may take it.
    pub fn before_function(self) -> bool {
        matches!(
            self,
            Failure::Unreachable
                | Failure::Unavailable
                | Failure::Gone
                | Failure::NotFound
                | Failure::Refused
        )
    }

    /// Whether the node should leave rotation.
    pub fn node_down(self) -> bool {
        matches!(self, Failure::Unreachable | Failure::ConnectionLost)
    }
}

fn is_transport_failure(status: &Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = source {
        if e.is::<tonic::transport::Error>() {
            return true;
        }
        source = e.source();
    }
    status.metadata().is_empty()
}

#[cfg(test)]
mod tests {
    use tonic::metadata::MetadataMap;

    use super::*;

    /// A status as a node sends it: with response metadata.
    fn sent(code: Code, message: &str) -> Status {
        let mut md = MetadataMap::new();
        md.insert("content-type", "application/grpc".parse().unwrap());
        Status::with_metadata(code, message, md)
    }

    #[test]
    fn every_kind_is_told_apart() {
        let cases = [
            (sent(Code::DeadlineExceeded, "deadline"), Failure::Expired),
            (Status::cancelled("Timeout expired"), Failure::Expired),
            (Status::unknown("connection reset"), Failure::ConnectionLost),
            (Status::cancelled("h2 protocol error"), Failure::ConnectionLost),
            (Status::unavailable("tcp connect error"), Failure::Unreachable),
            (sent(Code::Unavailable, "instance unreachable"), Failure::Unavailable),
            (sent(Code::FailedPrecondition, "instance draining"), Failure::Gone),
            (sent(Code::NotFound, "no such instance"), Failure::NotFound),
            (sent(Code::Unknown, "the function panicked"), Failure::Answered),
            (sent(Code::Aborted, "the function said so"), Failure::Answered),
            (sent(Code::ResourceExhausted, "response too large"), Failure::Answered),
            (Status::from(crate::LeafError::Overloaded { function: "f".into(), limit: 1 }), Failure::Refused),
        ];
        for (status, kind) in cases {
            assert_eq!(Failure::of(&status), kind, "{status:?}");
        }
    }

    #[test]
    fn only_failures_before_the_function_are_retried_and_only_broken_links_take_a_node_down() {
        use Failure::*;
        let all = [Expired, Unreachable, ConnectionLost, Unavailable, Gone, NotFound, Refused, Answered];
        let retried: Vec<_> = all.iter().filter(|f| f.before_function()).collect();
        assert_eq!(retried, [&Unreachable, &Unavailable, &Gone, &NotFound, &Refused]);
        let down: Vec<_> = all.iter().filter(|f| f.node_down()).collect();
        assert_eq!(down, [&Unreachable, &ConnectionLost]);
    }
}
