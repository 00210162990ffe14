//! A load-balancer node: serves the same `leaf.Leaf` API over children that are
//! leaves or other load-balancer nodes, so a client cannot tell how deep the
//! tree is.
//!
//! - `CreateFunction` is created at one child (which stores it in the shared
//!   database) and then registered at every other child under the same id
//!   (`CreateFunctionRequest.function_id`). A child that misses it finds it in
//!   the database on its first call.
//! - `ScheduleCall` goes to the function's child by [`affinity`]: the first
//!   in rotation of the children ranked by a rendezvous hash of the function
//!   id, so all of a function's calls, and its instances, stay on one child
//!   (not one instance per child).
//! - A child whose `State` fails, or a call that could not connect, takes it
//!   out of rotation until its next `State` answers; that call is retried on
//!   the function's next-ranked child. A child that refuses a call at its
//!   bound ([`Failure::Refused`], RESOURCE_EXHAUSTED before anything ran)
//!   spills it to the next-ranked child too.
//! - **Bounded load**, as in a leaf: each function may have
//!   `max_pending_calls` calls in this node; more are refused with
//!   RESOURCE_EXHAUSTED instead of piling up on a slow child. And the
//!   `CreateFunction` fan-out ends within [`DEFAULT_CREATE_TIMEOUT`] (or the
//!   caller's deadline, if shorter), so one hung child cannot hold it forever.

mod affinity;
mod child;
mod create;
mod pending;
mod service;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyperfake_core::defaults::MAX_MESSAGE_SIZE;
use hyperfake_core::time::now_unix;
use hyperfake_core::{FunctionId, trailers};
use proto::auth::BearerToken;
use proto::leaf::leaf_client::LeafClient;
use proto::leaf::{FunctionLoad, LeafStateResponse, ScheduleCallRequest, ScheduleCallResponse};
use tokio::task::JoinHandle;
use tonic::metadata::AsciiMetadataValue;
use tonic::{Request, Response};

use crate::config::{DEFAULT_MAX_PENDING_CALLS, PoolSettings};
use crate::error::LeafError;
use crate::failure::Failure;
use crate::health::HealthCell;
use crate::metadata;
use crate::workers::channel;

pub use child::Child;
use pending::Pending;
pub use service::BalancerService;

/// How long a `CreateFunction` through a load-balancer node may take, all
/// children included, when the caller's deadline is not shorter. A child
/// leaf's create is one database write and a registration one database read,
/// each bounded by the database client's 5 s (`DATABASE_TIMEOUT`); a child
/// that is itself a load-balancer node gets what is left, passed down as its
/// deadline. So 20 s is room for a tree of a few levels, and a child that has
/// not answered by then is hung, not slow.
pub const DEFAULT_CREATE_TIMEOUT: Duration = Duration::from_secs(20);

/// What a load-balancer node bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BalancerLimits {
    /// Calls of one function in this node at once; more are refused with
    /// RESOURCE_EXHAUSTED. Default: a leaf's [`DEFAULT_MAX_PENDING_CALLS`]
    /// (a node uses its `max_pending_calls` setting).
    pub max_pending_calls: u32,
    /// Default: [`DEFAULT_CREATE_TIMEOUT`].
    pub create_timeout: Duration,
}

impl Default for BalancerLimits {
    fn default() -> Self {
        BalancerLimits {
            max_pending_calls: DEFAULT_MAX_PENDING_CALLS,
            create_timeout: DEFAULT_CREATE_TIMEOUT,
        }
    }
}

/// A load-balancer node's children and routing.
#[derive(Debug)]
pub struct Balancer {
    children: Vec<Arc<Child>>,
    settings: PoolSettings,
    limits: BalancerLimits,
    pending: Pending,
}

impl Balancer {
    /// A node over the children at `addresses`, sending `token` with every request.
    pub fn new(
        addresses: &[String],
        settings: PoolSettings,
        limits: BalancerLimits,
        token: &BearerToken,
    ) -> Result<Arc<Self>, tonic::transport::Error> {
        let children = addresses
            .iter()
            .enumerate()
            .map(|(index, address)| {
                let client =
                    LeafClient::with_interceptor(channel(address, settings.connect_timeout)?, token.clone())
                        .max_decoding_message_size(MAX_MESSAGE_SIZE)
                        .max_encoding_message_size(MAX_MESSAGE_SIZE);
                Ok(Arc::new(Child {
                    index,
                    address: address.clone(),
                    client,
                    health: HealthCell::default(),
                    loads: Mutex::default(),
                }))
            })
            .collect::<Result<_, _>>()?;
        let pending = Pending { limit: limits.max_pending_calls, calls: Mutex::default() };
        Ok(Arc::new(Balancer { children, settings, limits, pending }))
    }

    pub fn children(&self) -> &[Arc<Child>] {
        &self.children
    }

    /// Calls of `function` in this node now.
    pub fn pending_calls(&self, function: &FunctionId) -> u32 {
        self.pending.count(function)
    }

    fn state_timeout(&self) -> Duration {
        self.settings.state_interval.max(self.settings.connect_timeout)
    }

    /// Asks every child for its state once: with each function's load
    /// (`loads`), or only whether it answers (the periodic probe).
    pub async fn refresh(&self, loads: bool) {
        let within = self.state_timeout();
        futures::future::join_all(self.children.iter().map(|c| c.refresh(within, loads))).await;
    }

    /// Polls children's state every `state_interval`.
    pub fn spawn(self: &Arc<Self>) -> Vec<JoinHandle<()>> {
        let weak = Arc::downgrade(self);
        let interval = self.settings.state_interval;
        vec![tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(this) = weak.upgrade() else { return };
                this.refresh(false).await;
            }
        })]
    }

    /// The child for a call of `function`, skipping `excluded`: the
    /// function's highest-ranked child in rotation ([`affinity`]). With no
    /// child known to be healthy, the highest-ranked of the others rather than
    /// a refusal: a dead one fails fast on connect.
    pub fn route(&self, function: &FunctionId, excluded: &HashSet<usize>) -> Option<Arc<Child>> {
        let open = || self.children.iter().filter(|c| !excluded.contains(&c.index));
        let rank = |c: &&Arc<Child>| (affinity::score(function, &c.address), std::cmp::Reverse(c.index));
        open()
            .filter(|c| c.in_rotation())
            .max_by_key(rank)
            .or_else(|| open().max_by_key(rank))
            .map(Arc::clone)
    }

    pub async fn call(
        &self,
        function: &FunctionId,
        data: Vec<u8>,
        deadline: Option<Duration>,
        request_id: Option<AsciiMetadataValue>,
    ) -> Result<Response<ScheduleCallResponse>, LeafError> {
        let got_request_at = now_unix();
        let expires = deadline.map(|d| Instant::now() + d);
        let _pending = self.pending.begin(function)?;
        let mut excluded = HashSet::new();
        // The last child's refusal, answered when every child refused.
        let mut refused = None;
        loop {
            let Some(child) = self.route(function, &excluded) else {
                return Err(refused.map_or(LeafError::NoChild, LeafError::Downstream));
            };
            let mut request =
                Request::new(ScheduleCallRequest { function_id: Some(function.into()), data: data.clone() });
            if let Some(id) = &request_id {
                request.metadata_mut().insert(trailers::REQUEST_ID, id.clone());
            }
            let forwarded_at = now_unix();
            let result = match expires {
                None => child.client.clone().schedule_call(request).await,
                Some(expires) => {
                    let remaining = expires.saturating_duration_since(Instant::now());
                    crate::deadline::call_within(remaining, request, |r| {
                        let mut client = child.client.clone();
                        async move { client.schedule_call(r).await }
                    })
                    .await
                }
            };
            let status = match result {
                Ok(response) => {
                    let (md, body, _) = response.into_parts();
                    let mut response = Response::new(body);
                    let out = response.metadata_mut();
                    metadata::forward(&md, out);
                    proto::convert::put_nanos(out, trailers::LB_GOT_REQUEST_TIMESTAMP, got_request_at);
                    proto::convert::put_nanos(out, trailers::LB_FORWARDED_CALL_TIMESTAMP, forwarded_at);
                    metadata::put_if_absent(out, metadata::LEAF_ADDRESS, &child.address);
                    return Ok(response);
                }
                Err(status) => status,
            };
            match Failure::of(&status) {
                Failure::Expired => return Err(LeafError::DeadlineExceeded(deadline.unwrap_or_default())),
                // Never reached the child: another may take it.
                Failure::Unreachable => {
                    child.mark_down(&format!("call failed: {}", status.message()));
                    excluded.insert(child.index);
                }
                Failure::ConnectionLost => {
                    child.mark_down(&format!("connection lost mid-call: {}", status.message()));
                    return Err(LeafError::ConnectionLost { node: child.address.clone(), status });
                }
                // Full for this function, nothing ran: spill to the next-ranked
                // child, which starts an instance of its own if it must. The
                // child stays in rotation for the functions it has room for.
                Failure::Refused => {
                    tracing::debug!(child = %child.address, %function, "child refused the call: {}", status.message());
                    excluded.insert(child.index);
                    refused = Some(status);
                }
                // The child's own answer (it has already retried what it could).
                Failure::Unavailable | Failure::Gone | Failure::NotFound | Failure::Answered => {
                    return Err(LeafError::Downstream(status));
                }
            }
        }
    }

    /// The children's loads, summed by function (asked of them now); without
    /// `functions`, only how many children are in rotation.
    pub async fn state(&self, functions: bool) -> LeafStateResponse {
        let mut sum: HashMap<FunctionId, FunctionLoad> = HashMap::new();
        if functions {
            self.refresh(true).await;
            for child in &self.children {
                for (id, l) in child.loads.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                    let entry = sum.entry(id.clone()).or_insert_with(|| FunctionLoad {
                        function_id: Some(id.into()),
                        ..Default::default()
                    });
                    entry.ready_instances += l.ready_instances;
                    entry.starting_instances += l.starting_instances;
                    entry.in_flight_calls += l.in_flight_calls;
                    entry.capacity += l.capacity;
                }
            }
        }
        LeafStateResponse {
            functions: sum.into_values().collect(),
            nodes_in_rotation: u32::try_from(self.children.iter().filter(|c| c.in_rotation()).count())
                .unwrap_or(u32::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::{Code, Status};

    use super::*;
    use crate::health::HealthEvent;

    fn balancer(n: usize) -> Arc<Balancer> {
        let addresses: Vec<_> = (0..n).map(|i| format!("127.0.0.1:{}", 1000 + i)).collect();
        let limits = BalancerLimits { max_pending_calls: 2, ..BalancerLimits::default() };
        let b = Balancer::new(&addresses, PoolSettings::default(), limits, &BearerToken::default()).unwrap();
        for c in b.children() {
            c.health.apply(HealthEvent::Up);
        }
        b
    }

    #[tokio::test]
    async fn a_function_keeps_to_one_child_while_it_is_in_rotation() {
        let b = balancer(4);
        let none = HashSet::new();
        let f = FunctionId::from("f");
        let first = b.route(&f, &none).unwrap().index;
        for _ in 0..10 {
            assert_eq!(b.route(&f, &none).unwrap().index, first);
        }
        // Its load elsewhere does not draw it away (that would start a second instance).
        let other = &b.children()[(first + 1) % 4];
        other.loads.lock().unwrap().insert(
            f.clone(),
            FunctionLoad {
                function_id: Some((&f).into()),
                ready_instances: 3,
                capacity: 48,
                ..Default::default()
            },
        );
        assert_eq!(b.route(&f, &none).unwrap().index, first);
        // Out of rotation, or excluded after a failed attempt: the next-ranked
        // child, the same one both ways.
        let second = b.route(&f, &HashSet::from([first])).unwrap().index;
        assert_ne!(second, first);
        b.children()[first].mark_down("test");
        assert_eq!(b.route(&f, &none).unwrap().index, second);
        let third = b.route(&f, &HashSet::from([second])).unwrap().index;
        assert!(third != first && third != second, "never a child out of rotation while others are in");
        // Back in rotation: back to the first choice.
        b.children()[first].health.apply(HealthEvent::Up);
        assert_eq!(b.route(&f, &none).unwrap().index, first);
        // With none in rotation, still the ranking; with all excluded, none.
        for c in b.children() {
            c.mark_down("test");
        }
        assert_eq!(b.route(&f, &none).unwrap().index, first);
        assert!(b.route(&f, &(0..4).collect()).is_none());
    }

    #[tokio::test]
    async fn functions_spread_roughly_evenly_over_the_children() {
        let addresses: Vec<_> = (0..4).map(|i| format!("127.0.0.1:{}", 40_000 + i)).collect();
        let b = Balancer::new(
            &addresses,
            PoolSettings::default(),
            BalancerLimits::default(),
            &BearerToken::default(),
        )
        .unwrap();
        for c in b.children() {
            c.health.apply(HealthEvent::Up);
        }
        let mut counts = [0usize; 4];
        for i in 0..1000 {
            counts[b.route(&FunctionId::new(format!("fn-{i:05}")), &HashSet::new()).unwrap().index] += 1;
        }
        // 250 expected each; the binomial standard deviation is under 14.
        assert!(counts.iter().all(|n| n.abs_diff(250) <= 60), "{counts:?}");
    }

    #[tokio::test]
    async fn pending_calls_beyond_the_limit_are_refused_and_counted_down_when_they_end() {
        let b = balancer(1);
        let (f, g) = (FunctionId::from("f"), FunctionId::from("g"));
        let first = b.pending.begin(&f).unwrap();
        let second = b.pending.begin(&f).unwrap();
        let refused = b.pending.begin(&f).map(|_| ()).unwrap_err();
        assert!(matches!(refused, LeafError::Overloaded { ref function, limit: 2 } if *function == f));
        assert_eq!(Status::from(refused).code(), Code::ResourceExhausted);
        // Another function has its own bound.
        let other = b.pending.begin(&g).unwrap();
        assert_eq!((b.pending_calls(&f), b.pending_calls(&g)), (2, 1));
        drop(first);
        let third = b.pending.begin(&f).unwrap();
        drop((second, third, other));
        assert_eq!((b.pending_calls(&f), b.pending_calls(&g)), (0, 0));
        assert!(b.pending.calls.lock().unwrap().is_empty(), "no entry outlives its last call");
    }
}
