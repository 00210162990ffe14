//! A load-balancer node: serves the same `leaf.Leaf` API over children that are
//! leaves or other load-balancer nodes, so a client cannot tell how deep the
//! tree is.
//!
//! - `CreateFunction` is created at one child (which stores it in the shared
//!   database) and then registered at every other child under the same id
//!   (`CreateFunctionRequest.function_id`). A child that misses it finds it in
//!   the database on its first call.
//! - `ScheduleCall` goes to a child with warm capacity for the function (ready
//!   instances whose capacity is not used up, as its `State` reported and the
//!   node's own in-flight count confirms), else to the child a rendezvous hash
//!   of the function id picks, so a function's cold starts land on one child.
//! - A child whose `State` fails, or a call that could not connect, takes it
//!   out of rotation until its next `State` answers; that call is retried on
//!   another child.
//! - **Bounded load**, as in a leaf: each function may have
//!   `max_pending_calls` calls in this node; more are refused with
//!   RESOURCE_EXHAUSTED instead of piling up on a slow child. And the
//!   `CreateFunction` fan-out ends within [`DEFAULT_CREATE_TIMEOUT`] (or the
//!   caller's deadline, if shorter), so one hung child cannot hold it forever.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyperfake_core::defaults::MAX_MESSAGE_SIZE;
use hyperfake_core::time::now_unix;
use hyperfake_core::{FunctionId, trailers};
use proto::auth::{AuthChannel, BearerToken};
use proto::leaf::leaf_client::LeafClient;
use proto::leaf::leaf_server::Leaf;
use proto::leaf::{
    CreateFunctionRequest, CreateFunctionResponse, FunctionLoad, LeafStateRequest, LeafStateResponse,
    ScheduleCallRequest, ScheduleCallResponse,
};
use tokio::task::JoinHandle;
use tonic::metadata::AsciiMetadataValue;
use tonic::{Code, Request, Response, Status};

use crate::config::{DEFAULT_MAX_PENDING_CALLS, PoolSettings};
use crate::error::LeafError;
use crate::metadata;
use crate::workers::{channel, is_connection_lost, is_transport_failure};

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

/// Calls this node has in flight, by function. A count per function rather
/// than a semaphore per function (as a leaf has): a node does not know which
/// function ids exist, so entries must go when their last call ends.
#[derive(Debug)]
struct Pending {
    limit: u32,
    calls: Mutex<HashMap<FunctionId, u32>>,
}

/// One call counted in [`Pending`]; uncounted when dropped (the call ended,
/// or its caller went away).
struct PendingCall<'a> {
    pending: &'a Pending,
    function: FunctionId,
}

impl Pending {
    fn begin(&self, function: &FunctionId) -> Result<PendingCall<'_>, LeafError> {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let n = calls.entry(function.clone()).or_default();
        if *n >= self.limit {
            if *n == 0 {
                calls.remove(function);
            }
            return Err(LeafError::Overloaded { function: function.clone(), limit: self.limit });
        }
        *n += 1;
        Ok(PendingCall { pending: self, function: function.clone() })
    }

    fn count(&self, function: &FunctionId) -> u32 {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).get(function).copied().unwrap_or(0)
    }
}

impl Drop for PendingCall<'_> {
    fn drop(&mut self) {
        let mut calls = self.pending.calls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = calls.get_mut(&self.function) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                calls.remove(&self.function);
            }
        }
    }
}

/// One child of a load-balancer node.
#[derive(Debug)]
pub struct Child {
    pub index: usize,
    pub address: String,
    client: LeafClient<AuthChannel>,
    healthy: AtomicBool,
    /// The child's last `State`, by function.
    loads: Mutex<HashMap<FunctionId, FunctionLoad>>,
    /// Calls this node has in flight on the child, by function.
    in_flight: Mutex<HashMap<FunctionId, u32>>,
}

impl Child {
    pub fn in_rotation(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    fn mark_down(&self, why: &str) {
        if self.healthy.swap(false, Ordering::AcqRel) {
            tracing::warn!(child = %self.address, "child out of rotation: {why}");
        }
    }

    /// Calls the child can take for `function` before it has to scale up.
    fn spare(&self, function: &FunctionId) -> u32 {
        let loads = self.loads.lock().unwrap_or_else(|e| e.into_inner());
        let Some(load) = loads.get(function).filter(|l| l.ready_instances > 0) else { return 0 };
        let ours =
            self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).get(function).copied().unwrap_or(0);
        load.capacity.saturating_sub(load.in_flight_calls.max(ours))
    }

    fn begin(&self, function: &FunctionId) {
        *self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).entry(function.clone()).or_default() += 1;
    }

    fn end(&self, function: &FunctionId) {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(function) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(function);
            }
        }
    }

    async fn refresh(&self, within: Duration) {
        let mut request = Request::new(LeafStateRequest {});
        request.set_timeout(within);
        match tokio::time::timeout(within, self.client.clone().state(request)).await {
            Ok(Ok(state)) => {
                let loads = state
                    .into_inner()
                    .functions
                    .into_iter()
                    .filter_map(|l| Some((proto::convert::function_id(l.function_id.as_ref())?, l)))
                    .collect();
                *self.loads.lock().unwrap_or_else(|e| e.into_inner()) = loads;
                if !self.healthy.swap(true, Ordering::AcqRel) {
                    tracing::info!(child = %self.address, "child in rotation");
                }
            }
            Ok(Err(status)) => self.mark_down(&format!("State failed: {}", status.message())),
            Err(_) => self.mark_down("State timed out"),
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

/// FNV-1a: a hash that is the same on every node and every run, so every
/// load-balancer node sends a function's cold calls to the same child.
fn stable_hash(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
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
                    healthy: AtomicBool::new(false),
                    loads: Mutex::default(),
                    in_flight: Mutex::default(),
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

    /// Asks every child for its state once.
    pub async fn refresh(&self) {
        let within = self.state_timeout();
        futures::future::join_all(self.children.iter().map(|c| c.refresh(within))).await;
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
                this.refresh().await;
            }
        })]
    }

    /// The child for a call of `function`, skipping `excluded`.
    pub fn route(&self, function: &FunctionId, excluded: &HashSet<usize>) -> Option<Arc<Child>> {
        let open: Vec<_> = self.children.iter().filter(|c| !excluded.contains(&c.index)).collect();
        let healthy: Vec<_> = open.iter().copied().filter(|c| c.in_rotation()).collect();
        // With no child known to be healthy, try the others rather than refuse:
        // a dead one fails fast on connect.
        let candidates = if healthy.is_empty() { open } else { healthy };
        let warm = candidates
            .iter()
            .map(|c| (c.spare(function), *c))
            .filter(|(spare, _)| *spare > 0)
            .max_by_key(|(spare, c)| (*spare, std::cmp::Reverse(c.index)));
        if let Some((_, child)) = warm {
            return Some(Arc::clone(child));
        }
        candidates.into_iter().max_by_key(|c| stable_hash(&[function.as_str(), &c.address])).map(Arc::clone)
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
        loop {
            let child = self.route(function, &excluded).ok_or(LeafError::NoChild)?;
            let mut request =
                Request::new(ScheduleCallRequest { function_id: Some(function.into()), data: data.clone() });
            if let Some(id) = &request_id {
                request.metadata_mut().insert(trailers::REQUEST_ID, id.clone());
            }
            let forwarded_at = now_unix();
            child.begin(function);
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
            child.end(function);
            match result {
                Ok(response) => {
                    let (md, body, _) = response.into_parts();
                    let mut response = Response::new(body);
                    let out = response.metadata_mut();
                    metadata::forward(&md, out);
                    metadata::put(out, trailers::LB_GOT_REQUEST_TIMESTAMP, got_request_at.0);
                    metadata::put(out, trailers::LB_FORWARDED_CALL_TIMESTAMP, forwarded_at.0);
                    metadata::put_if_absent(out, metadata::LEAF_ADDRESS, &child.address);
                    return Ok(response);
                }
                Err(status) if crate::deadline::is_expired(&status) => {
                    return Err(LeafError::DeadlineExceeded(deadline.unwrap_or_default()));
                }
                Err(status) if is_transport_failure(&status) => {
                    child.mark_down(&format!("call failed: {}", status.message()));
                    excluded.insert(child.index);
                }
                Err(status) if is_connection_lost(&status) => {
                    child.mark_down(&format!("connection lost mid-call: {}", status.message()));
                    return Err(LeafError::ConnectionLost { node: child.address.clone(), status });
                }
                Err(status) => return Err(LeafError::Downstream(status)),
            }
        }
    }

    /// Creates at one child, then registers the id at all others, within
    /// `deadline` or the node's create timeout, whichever is shorter.
    pub async fn create(
        &self,
        request: CreateFunctionRequest,
        deadline: Option<Duration>,
    ) -> Result<FunctionId, LeafError> {
        let budget = deadline.map_or(self.limits.create_timeout, |d| d.min(self.limits.create_timeout));
        let expires = Instant::now() + budget;
        if let Some(id) = proto::convert::function_id(request.function_id.as_ref()) {
            return self.register_everywhere(&id, None, expires).await.map(|()| id);
        }
        // Refuse malformed requests here, with the same messages a leaf gives.
        proto::convert::image_tag(request.image_tag.as_ref())?;
        proto::convert::function_config(request.config.as_ref())?;
        let mut order: Vec<_> = self.children.iter().collect();
        order.sort_by_key(|c| (!c.in_rotation(), c.index));
        let mut last = None;
        for child in order {
            match create_at(child, request.clone(), expires).await {
                Ok(response) => {
                    let id = proto::convert::function_id(response.get_ref().function_id.as_ref())
                        .ok_or_else(|| {
                            LeafError::Downstream(Status::internal("child returned no function id"))
                        })?;
                    self.register_everywhere(&id, Some(child.index), expires).await?;
                    return Ok(id);
                }
                // The child may have stored the function: trying another
                // would create a second one, so the caller hears it.
                Err(status) if crate::deadline::is_expired(&status) => {
                    return Err(LeafError::Downstream(Status::deadline_exceeded(format!(
                        "CreateFunction at child {} did not answer within {budget:?}",
                        child.address
                    ))));
                }
                Err(status) if is_transport_failure(&status) || status.code() == Code::Unavailable => {
                    child.mark_down(&format!("CreateFunction failed: {}", status.message()));
                    last = Some(status);
                }
                Err(status) => return Err(LeafError::Downstream(status)),
            }
        }
        Err(last.map_or(LeafError::NoChild, LeafError::Downstream))
    }

    async fn register_everywhere(
        &self,
        id: &FunctionId,
        skip: Option<usize>,
        expires: Instant,
    ) -> Result<(), LeafError> {
        let request = CreateFunctionRequest { function_id: Some(id.into()), ..Default::default() };
        let results =
            futures::future::join_all(self.children.iter().filter(|c| Some(c.index) != skip).map(|c| {
                let request = request.clone();
                async move { (c, create_at(c, request, expires).await) }
            }))
            .await;
        let mut registered = usize::from(skip.is_some());
        for (child, result) in results {
            match result {
                Ok(_) => registered += 1,
                // NOT_FOUND means the function does not exist: the caller must hear it.
                Err(status) if status.code() == Code::NotFound => return Err(LeafError::Downstream(status)),
                Err(status) => {
                    tracing::warn!(child = %child.address, function = %id, "registering failed (it will look the function up on its first call): {}", status.message());
                }
            }
        }
        if registered == 0 { Err(LeafError::NoChild) } else { Ok(()) }
    }

    /// The children's loads, summed by function.
    pub async fn state(&self) -> LeafStateResponse {
        self.refresh().await;
        let mut sum: HashMap<FunctionId, FunctionLoad> = HashMap::new();
        for child in &self.children {
            for (id, l) in child.loads.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                let entry = sum
                    .entry(id.clone())
                    .or_insert_with(|| FunctionLoad { function_id: Some(id.into()), ..Default::default() });
                entry.ready_instances += l.ready_instances;
                entry.starting_instances += l.starting_instances;
                entry.in_flight_calls += l.in_flight_calls;
                entry.capacity += l.capacity;
            }
        }
        LeafStateResponse {
            functions: sum.into_values().collect(),
            nodes_in_rotation: u32::try_from(self.children.iter().filter(|c| c.in_rotation()).count())
                .unwrap_or(u32::MAX),
        }
    }
}

/// `CreateFunction` at `child`, ending with DEADLINE_EXCEEDED at `expires`
/// (the child is told how long it has).
async fn create_at(
    child: &Child,
    request: CreateFunctionRequest,
    expires: Instant,
) -> Result<Response<CreateFunctionResponse>, Status> {
    let remaining = expires.saturating_duration_since(Instant::now());
    crate::deadline::call_within(remaining, Request::new(request), |r| {
        let mut client = child.client.clone();
        async move { client.create_function(r).await }
    })
    .await
}

/// `leaf.Leaf` over a [`Balancer`].
#[derive(Debug, Clone)]
pub struct BalancerService {
    balancer: Arc<Balancer>,
}

impl BalancerService {
    pub fn new(balancer: Arc<Balancer>) -> Self {
        BalancerService { balancer }
    }
}

#[tonic::async_trait]
impl Leaf for BalancerService {
    async fn schedule_call(
        &self,
        request: Request<ScheduleCallRequest>,
    ) -> Result<Response<ScheduleCallResponse>, Status> {
        let deadline = proto::deadline::from_metadata(request.metadata());
        let request_id = request.metadata().get(trailers::REQUEST_ID).cloned();
        let ScheduleCallRequest { function_id, data } = request.into_inner();
        let function = proto::convert::function_id(function_id.as_ref())
            .ok_or_else(|| LeafError::InvalidArgument("function_id: missing".into()))?;
        Ok(self.balancer.call(&function, data, deadline, request_id).await?)
    }

    async fn create_function(
        &self,
        request: Request<CreateFunctionRequest>,
    ) -> Result<Response<CreateFunctionResponse>, Status> {
        let deadline = proto::deadline::from_metadata(request.metadata());
        let id = self.balancer.create(request.into_inner(), deadline).await?;
        Ok(Response::new(CreateFunctionResponse { function_id: Some((&id).into()) }))
    }

    async fn state(&self, _: Request<LeafStateRequest>) -> Result<Response<LeafStateResponse>, Status> {
        Ok(Response::new(self.balancer.state().await))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balancer(n: usize) -> Arc<Balancer> {
        let addresses: Vec<_> = (0..n).map(|i| format!("127.0.0.1:{}", 1000 + i)).collect();
        let limits = BalancerLimits { max_pending_calls: 2, ..BalancerLimits::default() };
        let b = Balancer::new(&addresses, PoolSettings::default(), limits, &BearerToken::default()).unwrap();
        for c in b.children() {
            c.healthy.store(true, Ordering::Release);
        }
        b
    }

    fn warm(child: &Child, function: &FunctionId, ready: u32, capacity: u32, in_flight: u32) {
        child.loads.lock().unwrap().insert(
            function.clone(),
            FunctionLoad {
                function_id: Some(function.into()),
                ready_instances: ready,
                capacity,
                in_flight_calls: in_flight,
                ..Default::default()
            },
        );
    }

    #[tokio::test]
    async fn cold_functions_go_where_the_stable_hash_says() {
        let b = balancer(3);
        let none = HashSet::new();
        let f = FunctionId::from("f");
        let first = b.route(&f, &none).unwrap().index;
        for _ in 0..10 {
            assert_eq!(b.route(&f, &none).unwrap().index, first);
        }
        // Different functions spread over the children.
        let spread: HashSet<_> =
            (0..50).map(|i| b.route(&FunctionId::new(format!("f{i}")), &none).unwrap().index).collect();
        assert_eq!(spread.len(), 3);
        // Excluding the chosen child picks another, deterministically.
        let second = b.route(&f, &HashSet::from([first])).unwrap().index;
        assert_ne!(second, first);
    }

    #[tokio::test]
    async fn warm_capacity_wins_over_the_hash_until_it_is_used_up() {
        let b = balancer(3);
        let none = HashSet::new();
        let f = FunctionId::from("f");
        let hashed = b.route(&f, &none).unwrap().index;
        let other = (hashed + 1) % 3;
        warm(&b.children()[other], &f, 1, 2, 0);
        assert_eq!(b.route(&f, &none).unwrap().index, other);
        b.children()[other].begin(&f);
        b.children()[other].begin(&f);
        assert_eq!(b.route(&f, &none).unwrap().index, hashed, "no spare capacity left");
        b.children()[other].end(&f);
        assert_eq!(b.route(&f, &none).unwrap().index, other);
        b.children()[other].mark_down("test");
        assert_eq!(b.route(&f, &none).unwrap().index, hashed, "never a child out of rotation");
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
