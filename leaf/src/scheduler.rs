//! Where calls go: the leaf's functions, their instances, and the decisions
//! about them.
//!
//! - **Cold start is single-flight.** The first call that finds no usable
//!   instance spawns one start and stores it as a [`Shared`] future; every other
//!   caller awaits the same future (up to the cold-start timeout or its own
//!   deadline). The start runs in its own task, so a caller that gives up does
//!   not cancel it for the others.
//! - **Scale up** when the calls in flight exceed `per-instance target x
//!   (ready + starting)`, up to `max_instances`. The target is the function's
//!   `max_concurrency`, or the leaf's `target_concurrency` when that is 0.
//! - **Scale to zero**: an instance without calls for `Config.timeout` is
//!   removed and stopped with `Stop`. The worker's own idle timeout may win the
//!   race; its TIMEOUT event (or NOT_FOUND from `Stop`) is then expected.
//! - **Placement** of a new instance: the worker in rotation with the fewest
//!   instances of the function, then fewest instances, then least in flight.
//! - **Bounded load**: each function has a semaphore of `max_pending_calls`
//!   permits, taken without waiting; a call that finds none is refused with
//!   RESOURCE_EXHAUSTED. An explicit semaphore, not tower's `ConcurrencyLimit`
//!   + `LoadShed`, because the bound is per function (a key in the request),
//!   while tower's limit is per service: one hot function must not shed calls
//!   of the others.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use database::{DatabaseClient, Function};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use hyperfake_core::time::now_unix;
use hyperfake_core::{FunctionConfig, FunctionId, ImageTag, InstanceId, Nanos};
use proto::common::{CallRequest, CallResponse};
use proto::controller::Event;
use proto::leaf::FunctionLoad;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::metadata::MetadataMap;

use crate::config::SchedulerSettings;
use crate::error::{LeafError, StartError};
use crate::instances::{InstanceSet, WorkerIndex};
use crate::workers::{
    PoolEvent, WorkerPool, is_connection_lost, is_transport_failure, listed_ids, listed_instances,
};

type ColdStart = Shared<BoxFuture<'static, Result<(), StartError>>>;

/// Counters for tests and logs.
#[derive(Debug, Default)]
pub struct Stats {
    /// Instances this leaf started (cold starts and scale-ups).
    pub instances_started: AtomicU64,
    /// Cold starts: starts made because a call found no usable instance.
    pub cold_starts: AtomicU64,
    /// Instances this leaf stopped for being idle.
    pub instances_stopped: AtomicU64,
    /// Calls answered by a worker (with the function's response or error).
    pub calls_forwarded: AtomicU64,
    /// Attempts repeated on another instance after failing before a function.
    pub calls_retried: AtomicU64,
}

/// One function and what the leaf knows about its instances.
#[derive(Debug)]
pub struct FunctionSlot {
    pub function: Function,
    pending: Arc<Semaphore>,
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    instances: InstanceSet,
    /// Starts in progress (cold and scale-up).
    starting: u32,
    /// Workers a start is in progress on (one entry per start).
    starting_on: Vec<WorkerIndex>,
    /// The cold start callers are waiting for, if any.
    cold: Option<ColdStart>,
}

impl std::fmt::Debug for SlotState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotState")
            .field("instances", &self.instances)
            .field("starting", &self.starting)
            .field("cold", &self.cold.is_some())
            .finish()
    }
}

impl FunctionSlot {
    fn new(function: Function, max_pending: u32) -> Self {
        FunctionSlot {
            function,
            pending: Arc::new(Semaphore::new(max_pending as usize)),
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn config(&self) -> &FunctionConfig {
        &self.function.config
    }
}

/// A call answered by a worker, and where and when it went.
#[derive(Debug)]
pub struct Forwarded {
    pub response: CallResponse,
    /// The worker's response metadata (its timing keys).
    pub metadata: MetadataMap,
    pub instance_id: InstanceId,
    pub worker_address: String,
    pub got_request_at: Nanos,
    pub scheduled_at: Nanos,
}

#[derive(Debug)]
pub struct Scheduler {
    settings: SchedulerSettings,
    pool: WorkerPool,
    database: DatabaseClient,
    functions: Mutex<HashMap<FunctionId, Arc<FunctionSlot>>>,
    pub stats: Stats,
}

impl Scheduler {
    pub fn new(settings: SchedulerSettings, pool: WorkerPool, database: DatabaseClient) -> Arc<Self> {
        Arc::new(Scheduler { settings, pool, database, functions: Mutex::default(), stats: Stats::default() })
    }

    pub fn pool(&self) -> &WorkerPool {
        &self.pool
    }

    /// Starts the worker followers, the event handler and the idle reaper.
    pub fn spawn(self: &Arc<Self>) -> Vec<JoinHandle<()>> {
        let (tx, mut rx) = mpsc::channel(4096);
        let mut tasks = self.pool.spawn(tx);
        let weak = Arc::downgrade(self);
        tasks.push(tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let Some(this) = weak.upgrade() else { return };
                this.on_pool_event(event);
            }
        }));
        tasks.push(tokio::spawn(reap_idle(Arc::downgrade(self), self.settings.scale_down_interval)));
        tasks
    }

    // === Functions ===

    /// Loads every function from the database (at start: a restart forgets
    /// nothing). Stored functions that no longer validate are left out and
    /// logged, so that they cannot keep the leaf from starting.
    pub async fn load_functions(&self) -> Result<usize, LeafError> {
        let listing = self.database.listing().await.map_err(LeafError::Database)?;
        if listing.skipped > 0 {
            tracing::warn!(skipped = listing.skipped, "left out stored functions that do not validate");
        }
        let n = listing.functions.len();
        for f in listing.functions {
            self.insert(f);
        }
        Ok(n)
    }

    /// Stores a new function in the database and registers it.
    pub async fn create(&self, image: &ImageTag, config: &FunctionConfig) -> Result<FunctionId, LeafError> {
        let function = self.database.create(image, config).await.map_err(LeafError::Database)?;
        let id = function.id.clone();
        self.insert(function);
        Ok(id)
    }

    /// Registers a function that already exists in the database.
    pub async fn register(&self, id: &FunctionId) -> Result<FunctionId, LeafError> {
        self.slot(id).await.map(|s| s.function.id.clone())
    }

    fn insert(&self, function: Function) -> Arc<FunctionSlot> {
        let mut functions = self.functions.lock().unwrap_or_else(|e| e.into_inner());
        let slot = functions
            .entry(function.id.clone())
            .or_insert_with(|| Arc::new(FunctionSlot::new(function, self.settings.max_pending_calls)));
        Arc::clone(slot)
    }

    fn slots(&self) -> Vec<Arc<FunctionSlot>> {
        self.functions.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    fn known(&self, id: &FunctionId) -> Option<Arc<FunctionSlot>> {
        self.functions.lock().unwrap_or_else(|e| e.into_inner()).get(id).cloned()
    }

    /// The function's slot; a function unknown here (created through another
    /// leaf) is looked up in the database.
    async fn slot(&self, id: &FunctionId) -> Result<Arc<FunctionSlot>, LeafError> {
        if let Some(slot) = self.known(id) {
            return Ok(slot);
        }
        match self.database.get(id).await {
            Ok(function) => Ok(self.insert(function)),
            Err(e) if e.is_not_found() => Err(LeafError::UnknownFunction(id.clone())),
            Err(e) => Err(LeafError::Database(e)),
        }
    }

    /// Instances of `id` this leaf believes in (any worker).
    pub fn instances_of(&self, id: &FunctionId) -> Vec<(InstanceId, String)> {
        self.known(id)
            .map(|slot| {
                slot.lock()
                    .instances
                    .iter()
                    .map(|(i, p)| (i.clone(), self.pool.get(p.worker).address.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What each function can serve now (the leaf's `State`).
    pub fn load(&self) -> Vec<FunctionLoad> {
        self.slots()
            .into_iter()
            .map(|slot| {
                let st = slot.lock();
                let ready =
                    u32::try_from(st.instances.ready(|w| self.pool.in_rotation(w))).unwrap_or(u32::MAX);
                FunctionLoad {
                    function_id: Some((&slot.function.id).into()),
                    ready_instances: ready,
                    starting_instances: st.starting,
                    in_flight_calls: st.instances.in_flight(),
                    capacity: ready.saturating_mul(self.per_instance(slot.config())),
                }
            })
            .collect()
    }

    fn per_instance(&self, config: &FunctionConfig) -> u32 {
        config.max_concurrency.unwrap_or(self.settings.target_concurrency)
    }

    // === Calls ===

    /// Forwards one call to an instance of `function_id`, starting or choosing
    /// one. `deadline` is the caller's remaining time.
    pub async fn call(
        self: &Arc<Self>,
        function_id: &FunctionId,
        data: Vec<u8>,
        request_id: String,
        deadline: Option<Duration>,
    ) -> Result<Forwarded, LeafError> {
        let got_request_at = now_unix();
        let expires = deadline.map(|d| Instant::now() + d);
        let slot = self.slot(function_id).await?;
        let _permit = Arc::clone(&slot.pending).try_acquire_owned().map_err(|_| LeafError::Overloaded {
            function: function_id.clone(),
            limit: self.settings.max_pending_calls,
        })?;
        let mut data = data;
        let mut excluded = HashSet::new();
        let mut attempt = 0;
        loop {
            let (instance, worker) = self.acquire(&slot, &excluded, expires, deadline).await?;
            let scheduled_at = now_unix();
            let handle = Arc::clone(self.pool.get(worker));
            // Only the last attempt may take the payload; earlier ones copy it.
            let payload =
                if attempt < self.settings.call_retries { data.clone() } else { std::mem::take(&mut data) };
            let request = tonic::Request::new(CallRequest {
                request_id: request_id.clone(),
                instance_id: Some((&instance).into()),
                data: payload,
                function_id: Some(function_id.into()),
            });
            let result = match expires {
                None => handle.client().call(request).await,
                Some(expires) => {
                    let remaining = expires.saturating_duration_since(Instant::now());
                    crate::deadline::call_within(remaining, request, |r| {
                        let mut client = handle.client();
                        async move { client.call(r).await }
                    })
                    .await
                }
            };
            slot.lock().instances.end_call(&instance, Instant::now());
            match result {
                Ok(response) => {
                    self.stats.calls_forwarded.fetch_add(1, Ordering::Relaxed);
                    let (metadata, response, _) = response.into_parts();
                    return Ok(Forwarded {
                        response,
                        metadata,
                        instance_id: instance,
                        worker_address: handle.address.clone(),
                        got_request_at,
                        scheduled_at,
                    });
                }
                Err(status) if crate::deadline::is_expired(&status) => {
                    return Err(LeafError::DeadlineExceeded(deadline.unwrap_or_default()));
                }
                Err(status) if is_connection_lost(&status) => {
                    // The call may have reached the function: not retried.
                    handle.mark_down(&format!("connection lost mid-call: {}", status.message()));
                    return Err(LeafError::ConnectionLost { node: handle.address.clone(), status });
                }
                Err(status) => {
                    let before_function = match status.code() {
                        // Could not reach the worker or the instance.
                        Code::Unavailable => {
                            if is_transport_failure(&status) {
                                handle.mark_down(&format!("call failed: {}", status.message()));
                            }
                            true
                        }
                        // The worker no longer has the instance (or any of the function).
                        Code::FailedPrecondition | Code::NotFound => true,
                        _ => false,
                    };
                    if !before_function {
                        return Err(LeafError::Downstream(status));
                    }
                    tracing::debug!(%instance, worker = %handle.address, "call did not reach a function: {}", status.message());
                    slot.lock().instances.remove(&instance);
                    excluded.insert(instance);
                    attempt += 1;
                    if attempt > self.settings.call_retries {
                        return Err(LeafError::RetriesExhausted {
                            function: function_id.clone(),
                            attempts: attempt,
                            last: status,
                        });
                    }
                    self.stats.calls_retried.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// An instance for one call, counted as in flight; starts one (single-flight)
    /// when none is usable.
    async fn acquire(
        self: &Arc<Self>,
        slot: &Arc<FunctionSlot>,
        excluded: &HashSet<InstanceId>,
        expires: Option<Instant>,
        deadline: Option<Duration>,
    ) -> Result<(InstanceId, WorkerIndex), LeafError> {
        loop {
            let cold = {
                let mut st = slot.lock();
                if let Some((id, worker)) = st.instances.pick(|w| self.pool.in_rotation(w), excluded) {
                    st.instances.begin_call(&id);
                    self.maybe_scale_up(slot, &mut st);
                    return Ok((id, worker));
                }
                match &st.cold {
                    Some(cold) => cold.clone(),
                    None => {
                        self.stats.cold_starts.fetch_add(1, Ordering::Relaxed);
                        self.spawn_start(slot, &mut st, true)
                    }
                }
            };
            let timeout = self.settings.cold_start_timeout;
            let (wait, by_deadline) = match expires {
                Some(e) if e.saturating_duration_since(Instant::now()) < timeout => {
                    (e.saturating_duration_since(Instant::now()), true)
                }
                _ => (timeout, false),
            };
            match tokio::time::timeout(wait, cold).await {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => return Err(e.into()),
                Err(_) if by_deadline => {
                    return Err(LeafError::DeadlineExceeded(deadline.unwrap_or_default()));
                }
                Err(_) => {
                    return Err(LeafError::ColdStartTimeout {
                        function: slot.function.id.clone(),
                        after: timeout,
                    });
                }
            }
        }
    }

    /// Ready --- calls in flight > target x (ready + starting) ---> one more starting.
    fn maybe_scale_up(self: &Arc<Self>, slot: &Arc<FunctionSlot>, st: &mut SlotState) {
        let per = self.per_instance(slot.config());
        let ready = u32::try_from(st.instances.ready(|w| self.pool.in_rotation(w))).unwrap_or(u32::MAX);
        let planned = ready + st.starting;
        if planned < self.settings.max_instances && st.instances.in_flight() > per.saturating_mul(planned) {
            tracing::debug!(function = %slot.function.id, ready, starting = st.starting, in_flight = st.instances.in_flight(), "scaling up");
            drop(self.spawn_start(slot, st, false));
        }
    }

    /// Starts one instance in its own task. A cold start is stored in the slot
    /// (under the same lock) so later callers join it instead of starting more.
    fn spawn_start(self: &Arc<Self>, slot: &Arc<FunctionSlot>, st: &mut SlotState, cold: bool) -> ColdStart {
        st.starting += 1;
        let this = Arc::clone(self);
        let task_slot = Arc::clone(slot);
        let task = tokio::spawn(async move {
            let result = this.start_instance(&task_slot).await;
            let mut st = task_slot.lock();
            st.starting = st.starting.saturating_sub(1);
            if cold {
                st.cold = None;
            }
            drop(st);
            if let Err(e) = &result {
                tracing::warn!("{e}");
            }
            result
        });
        let function = slot.function.id.clone();
        let future = task
            .map(move |joined| joined.unwrap_or_else(|_| Err(StartError::Interrupted(function))))
            .boxed()
            .shared();
        if cold {
            st.cold = Some(future.clone());
        }
        future
    }

    async fn start_instance(&self, slot: &FunctionSlot) -> Result<(), StartError> {
        let function = &slot.function.id;
        let mut tried = HashSet::new();
        loop {
            let Some(worker) = self.place(slot, &tried) else {
                return Err(StartError::NoWorker(function.clone()));
            };
            slot.lock().starting_on.push(worker);
            let handle = Arc::clone(self.pool.get(worker));
            let mut request = tonic::Request::new(proto::common::FunctionId::from(function));
            request.set_timeout(self.settings.cold_start_timeout);
            let result = handle.client().start(request).await;
            {
                let mut st = slot.lock();
                if let Some(i) = st.starting_on.iter().position(|w| *w == worker) {
                    st.starting_on.swap_remove(i);
                }
                if let Ok(started) = &result {
                    if let Some(id) = proto::convert::instance_id(started.get_ref().instance_id.as_ref()) {
                        tracing::info!(%function, instance = %id, worker = %handle.address, "instance started");
                        st.instances.insert(id, worker, Instant::now());
                    }
                }
            }
            match result {
                Ok(_) => {
                    self.stats.instances_started.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Err(status) if status.code() == Code::Unavailable => {
                    if is_transport_failure(&status) {
                        handle.mark_down(&format!("start failed: {}", status.message()));
                    }
                    tracing::warn!(%function, worker = %handle.address, "start failed, trying another worker: {}", status.message());
                    tried.insert(worker);
                }
                Err(status) => {
                    return Err(StartError::Worker {
                        worker: handle.address.clone(),
                        function: function.clone(),
                        status,
                    });
                }
            }
        }
    }

    /// The worker for a new instance of `slot`'s function: in rotation, not yet
    /// tried, with the fewest instances of this function (starting included),
    /// then the fewest instances, then the fewest calls in flight.
    fn place(&self, slot: &FunctionSlot, tried: &HashSet<WorkerIndex>) -> Option<WorkerIndex> {
        let n = self.pool.all().len();
        let mut load = vec![(0usize, 0usize, 0u32); n];
        for other in self.slots() {
            let st = other.lock();
            let same = std::ptr::eq(Arc::as_ptr(&other), slot);
            for (w, entry) in load.iter_mut().enumerate() {
                let (instances, calls) = st.instances.on_worker(w);
                let starting = st.starting_on.iter().filter(|s| **s == w).count();
                entry.1 += instances + starting;
                entry.2 += calls;
                if same {
                    entry.0 += instances + starting;
                }
            }
        }
        (0..n).filter(|w| self.pool.in_rotation(*w) && !tried.contains(w)).min_by_key(|w| (load[*w], *w))
    }

    // === Keeping the view true ===

    fn on_pool_event(&self, event: PoolEvent) {
        match event {
            PoolEvent::Status(worker, update) => {
                let gone = matches!(update.event(), Event::Stop | Event::Timeout | Event::Down);
                if !gone {
                    return;
                }
                let (Some(function), Some(instance)) = (
                    proto::convert::function_id(update.function_id.as_ref()),
                    proto::convert::instance_id(update.instance_id.as_ref()),
                ) else {
                    return;
                };
                if let Some(slot) = self.known(&function) {
                    let mut st = slot.lock();
                    if st.instances.get(&instance).is_some_and(|p| p.worker == worker) {
                        st.instances.remove(&instance);
                        tracing::info!(%function, %instance, event = ?update.event(), "instance left");
                    }
                }
            }
            PoolEvent::Reconciled { worker, state, asked_at } => {
                let listed = listed_ids(&state);
                let slots = self.slots();
                for slot in &slots {
                    let gone = slot.lock().instances.retain_listed(worker, &listed, asked_at);
                    for id in gone {
                        tracing::warn!(function = %slot.function.id, instance = %id, worker = %self.pool.get(worker).address, "reconciliation: instance no longer exists");
                    }
                }
                // Adopt instances the leaf did not know (a restarted leaf, or a
                // START whose answer was lost), so they serve and are scaled down.
                let now = Instant::now();
                for (function, instance, idle) in listed_instances(&state) {
                    let Some(slot) = self.known(&function) else { continue };
                    let mut st = slot.lock();
                    if !st.instances.contains(&instance) {
                        tracing::info!(%function, %instance, worker = %self.pool.get(worker).address, "reconciliation: adopting instance");
                        st.instances.insert(instance.clone(), worker, now);
                        st.instances.end_call(&instance, now.checked_sub(idle).unwrap_or(now));
                    }
                }
            }
        }
    }
}

/// Scale to zero: stops instances idle for their function's `Config.timeout`.
async fn reap_idle(scheduler: Weak<Scheduler>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(this) = scheduler.upgrade() else { return };
        let now = Instant::now();
        for slot in this.slots() {
            let Some(timeout) = slot.config().idle_timeout else { continue };
            let idle = slot.lock().instances.take_idle(timeout, now);
            for (instance, worker) in idle {
                let handle = Arc::clone(this.pool.get(worker));
                let function = slot.function.id.clone();
                this.stats.instances_stopped.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    match handle.client().stop(proto::common::InstanceId::from(&instance)).await {
                        Ok(_) => tracing::info!(%function, %instance, "stopped idle instance"),
                        // The worker's own idle timeout got there first.
                        Err(s) if s.code() == Code::NotFound || s.code() == Code::FailedPrecondition => {}
                        Err(s) => {
                            tracing::warn!(%function, %instance, worker = %handle.address, "stopping idle instance: {}", s.message())
                        }
                    }
                });
            }
        }
    }
}
