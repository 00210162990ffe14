//! Where calls go: the leaf's functions, their instances, and the decisions
//! about them, one file per decision.
//!
//! - [`forward`](self::forward): **forwarding** a call to an instance, and
//!   retrying it on another when it failed before reaching a function.
//! - [`acquire`](self::acquire): **choosing** the instance for a call, and
//!   **holding** the call at the leaf while every instance is at the
//!   function's `max_concurrency`. **Cold start is single-flight**: the first call that finds no usable instance
//!   spawns one start and stores it as a [`Shared`](futures::future::Shared)
//!   future; every other caller awaits the same future (up to the cold-start
//!   timeout or its own deadline). The start runs in its own task, so a caller
//!   that gives up does not cancel it for the others.
//! - [`start`](self::start): **scale up** when the calls in flight (held ones
//!   included) exceed
//!   `per-instance target x (ready + starting)`, up to `max_instances`. The
//!   target is the function's `max_concurrency`, or the leaf's
//!   `target_concurrency` when that is 0.
//! - [`placement`](self::placement): the worker for a new instance: the one in
//!   rotation with the fewest instances of the function, then fewest
//!   instances, then least in flight.
//! - [`reconcile`](self::reconcile): keeping the view true from the workers'
//!   lifecycle events and `State` lists; a worker's list is checked against
//!   the functions with instances on it only
//!   ([`WorkerFunctions`](crate::worker_functions::WorkerFunctions)).
//! - [`reaper`](self::reaper): **scale to zero**: an instance without calls for
//!   `Config.timeout` is removed and stopped with `Stop`. The worker's own idle
//!   timeout may win the race; its TIMEOUT event (or NOT_FOUND from `Stop`) is
//!   then expected.
//! - **Bounded load**: each function has a semaphore of `max_pending_calls`
//!   permits, taken without waiting; a call that finds none is refused with
//!   RESOURCE_EXHAUSTED. An explicit semaphore, not tower's `ConcurrencyLimit`
//!   and `LoadShed`, because the bound is per function (a key in the request),
//!   while tower's limit is per service: one hot function must not shed calls
//!   of the others.

mod acquire;
mod forward;
mod functions;
mod placement;
mod reaper;
mod reconcile;
mod slot;
mod start;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use database::DatabaseClient;
use hyperfake_core::{FunctionConfig, FunctionId, InstanceId, Nanos};
use proto::common::CallResponse;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::metadata::MetadataMap;

use crate::config::SchedulerSettings;
use crate::worker_functions::WorkerFunctions;
use crate::workers::WorkerPool;

pub use slot::FunctionSlot;

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
    /// Calls held at the leaf because every instance was at `max_concurrency`.
    pub calls_held: AtomicU64,
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
    /// Which functions have instances on each worker (kept by the slots'
    /// instance sets), so reconciling a worker visits only its functions.
    worker_functions: Arc<WorkerFunctions>,
    pub stats: Stats,
}

impl Scheduler {
    pub fn new(settings: SchedulerSettings, pool: WorkerPool, database: DatabaseClient) -> Arc<Self> {
        Arc::new(Scheduler {
            settings,
            pool,
            database,
            functions: Mutex::default(),
            worker_functions: Arc::default(),
            stats: Stats::default(),
        })
    }

    /// Which functions have instances on each worker.
    pub fn worker_functions(&self) -> &WorkerFunctions {
        &self.worker_functions
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
        tasks.push(tokio::spawn(reaper::reap_idle(Arc::downgrade(self), self.settings.scale_down_interval)));
        tasks
    }

    /// Calls one instance of `config`'s function takes before the leaf
    /// scales up: its `max_concurrency`, else the leaf's `target_concurrency`.
    fn per_instance(&self, config: &FunctionConfig) -> u32 {
        config.max_concurrency.unwrap_or(self.settings.target_concurrency)
    }
}
