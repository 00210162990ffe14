//! The worker's logic, independent of the runtime: start, route calls, stop,
//! and react to instances leaving (stop, idle timeout, crash).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyperfake_core::time::now_unix;
use hyperfake_core::{FunctionId, InstanceId, Nanos};
use proto::common::CallRequest;
use proto::controller::{Event, FunctionState, InstanceState, StateResponse};
use rand::Rng;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::catalog::FunctionCatalog;
use crate::config::WorkerSettings;
use crate::error::WorkerError;
use crate::events::{EventHub, LifecycleEvent};
use crate::instance::{CallGuard, Instance, InstanceTable, StopReason};
use crate::reconcile::{RECONCILE_INTERVAL, spawn_reconciler};
use crate::runtime::{CallOutput, ExitNotice, Runtime, RuntimeError, StartSpec};

/// How long a stopping instance may take to finish the calls already routed
/// to it before its container is stopped anyway. Several leaves share a
/// worker, so one leaf's Stop (or scale-down) can meet another leaf's calls in
/// flight; a call in a FaaS rarely runs longer than this.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A finished call and when each step happened (worker clock, ns since epoch).
#[derive(Debug)]
pub struct CallResult {
    pub output: CallOutput,
    pub instance_id: InstanceId,
    pub queued_at: Nanos,
    pub started_at: Nanos,
    pub got_response_at: Nanos,
}

#[derive(Debug)]
pub struct Worker {
    pub settings: WorkerSettings,
    pub runtime: Arc<dyn Runtime>,
    pub catalog: FunctionCatalog,
    pub instances: InstanceTable,
    pub events: EventHub,
    /// True once serving stops: long-lived streams (Status, Resources) end.
    closing: tokio::sync::watch::Sender<bool>,
}

impl Worker {
    pub fn new(settings: WorkerSettings, runtime: Arc<dyn Runtime>, catalog: FunctionCatalog) -> Arc<Self> {
        Arc::new(Worker {
            settings,
            runtime,
            catalog,
            instances: InstanceTable::default(),
            events: EventHub::default(),
            closing: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Ends the `Status` and `Resources` streams, and any opened later. The
    /// server calls it at shutdown: it waits for open streams to finish, and
    /// these never finish on their own.
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
        self.events.close();
    }

    /// Becomes true when [`close_streams`](Self::close_streams) is called.
    pub fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Starts the tasks that watch for crashed, vanished and idle instances.
    /// They stop when the returned handles are aborted or the worker is dropped.
    pub fn spawn_background(self: &Arc<Self>) -> Vec<JoinHandle<()>> {
        let (exits_tx, mut exits) = mpsc::channel(1024);
        let resync = Arc::new(Notify::new());
        self.runtime.watch(exits_tx, Arc::clone(&resync));
        let weak = Arc::downgrade(self);
        let exit_task = tokio::spawn(async move {
            while let Some(notice) = exits.recv().await {
                let Some(worker) = weak.upgrade() else { break };
                worker.on_exit(notice).await;
            }
        });
        vec![
            exit_task,
            crate::idle::spawn_sweeper(Arc::downgrade(self)),
            spawn_reconciler(Arc::downgrade(self), resync, RECONCILE_INTERVAL),
        ]
    }

    // === Start ===

    pub async fn start(&self, function_id: Option<FunctionId>) -> Result<Arc<Instance>, WorkerError> {
        // The cold start reported on START runs from here to the instance being ready.
        let accepted = std::time::Instant::now();
        let function_id =
            function_id.ok_or_else(|| WorkerError::InvalidArgument("function_id: missing".into()))?;
        let function = self.catalog.get(&function_id).await.map_err(|e| {
            if e.is_not_found() {
                WorkerError::UnknownFunction(function_id.clone())
            } else {
                WorkerError::Database(e)
            }
        })?;
        if !self.settings.image_allowed(function.image_tag.as_str()) {
            return Err(WorkerError::ImageNotAllowed {
                image: function.image_tag,
                allowed: self.settings.allowed_image_prefixes.clone(),
            });
        }
        let spec = StartSpec {
            instance_id: new_instance_id(),
            function_id: function_id.clone(),
            image_tag: function.image_tag,
            config: function.config,
        };
        let started = match self.runtime.start(&spec).await {
            Ok(s) => s,
            Err(source) => {
                let event = LifecycleEvent::new(Event::Start, &spec.instance_id, &function_id)
                    .failed(source.to_string());
                self.events.publish(event);
                return Err(WorkerError::Start { function: function_id, source });
            }
        };
        let instance = Arc::new(Instance::new(
            spec.instance_id,
            function_id,
            spec.image_tag,
            spec.config,
            started.name,
            started.address,
            started.handle,
            started.conn,
        ));
        self.instances.insert(Arc::clone(&instance));
        self.events.publish(
            LifecycleEvent::new(Event::Start, &instance.id, &instance.function_id)
                .detail(&instance.address)
                .start_duration(accepted.elapsed()),
        );
        tracing::info!(instance = %instance.id, function = %instance.function_id, image = %instance.image_tag, "instance ready");
        Ok(instance)
    }

    // === Call ===

    /// Routes a call to an instance and runs it. `deadline` is the caller's
    /// remaining time; it covers waiting for a slot and the call itself.
    pub async fn call(
        &self,
        request: CallRequest,
        deadline: Option<Duration>,
    ) -> Result<CallResult, WorkerError> {
        let queued_at = now_unix();
        let function_id = proto::convert::function_id(request.function_id.as_ref());
        let wanted = proto::convert::instance_id(request.instance_id.as_ref());
        let mut guard = self.route(function_id.as_ref(), wanted.as_ref())?;
        let expires = deadline.map(|d| Instant::now() + d);
        let work = async move {
            guard.acquire_slot().await;
            let started_at = now_unix();
            let instance = Arc::clone(guard.instance());
            self.events.publish(LifecycleEvent::new(Event::Call, &instance.id, &instance.function_id));
            let mut request = request;
            request.instance_id = Some((&instance.id).into());
            request.function_id = Some((&instance.function_id).into());
            let remaining = expires.map(|e| e.saturating_duration_since(Instant::now()));
            let result = instance.conn.call(request, remaining).await;
            let got_response_at = now_unix();
            drop(guard);
            let response_event = LifecycleEvent::new(Event::Response, &instance.id, &instance.function_id);
            match result {
                Ok(output) => {
                    self.events.publish(response_event);
                    Ok(CallResult {
                        output,
                        instance_id: instance.id.clone(),
                        queued_at,
                        started_at,
                        got_response_at,
                    })
                }
                Err(source) => {
                    self.events.publish(response_event.failed(source.to_string()));
                    Err(WorkerError::Call { instance: instance.id.clone(), source })
                }
            }
        };
        match deadline {
            Some(d) => tokio::time::timeout(d, work).await.map_err(|_| WorkerError::DeadlineExceeded(d))?,
            None => work.await,
        }
    }

    /// Picks the instance for a call: the one named, if it is live and runs the
    /// function; otherwise the least-loaded ready instance of the function.
    fn route(
        &self,
        function: Option<&FunctionId>,
        wanted: Option<&InstanceId>,
    ) -> Result<CallGuard, WorkerError> {
        if let Some(instance) = wanted.and_then(|id| self.instances.get(id)) {
            if function.is_none_or(|f| f == &instance.function_id) {
                if let Ok(guard) = instance.begin_call() {
                    return Ok(guard);
                }
            }
        }
        let function = match (function, wanted) {
            (Some(f), _) => f,
            (None, Some(id)) => return Err(WorkerError::UnknownInstance(id.clone())),
            (None, None) => return Err(WorkerError::InvalidArgument("function_id: missing".into())),
        };
        // An instance can leave between being picked and being entered; try the
        // next one rather than failing the call.
        for _ in 0..8 {
            let Some(instance) = self.instances.least_loaded(function) else { break };
            if let Ok(guard) = instance.begin_call() {
                return Ok(guard);
            }
        }
        Err(WorkerError::NoReadyInstance(function.clone()))
    }

    // === Stop ===

    /// A requested stop: the instance takes no new call at once, finishes the
    /// calls in flight (at most [`DRAIN_TIMEOUT`]), then stops. Returns when
    /// it has stopped.
    pub async fn stop(self: &Arc<Self>, id: Option<InstanceId>) -> Result<InstanceId, WorkerError> {
        let id = id.ok_or_else(|| WorkerError::InvalidArgument("instance_id: missing".into()))?;
        let instance = self.instances.get(&id).ok_or_else(|| WorkerError::UnknownInstance(id.clone()))?;
        instance
            .begin_stop(StopReason::Requested)
            .map_err(|e| WorkerError::AlreadyStopping { instance: id.clone(), state: e.0 })?;
        // Its own task, so the stop is carried through even if the caller
        // stops waiting (a Stop RPC whose deadline passes during the drain):
        // a half-stopped instance would stay in the table for good.
        let worker = Arc::clone(self);
        let retiring = tokio::spawn(async move { worker.retire(&instance, StopReason::Requested).await });
        match retiring.await {
            Ok(stopped) => stopped?,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => {
                return Err(WorkerError::Stop {
                    instance: id,
                    source: RuntimeError::Engine("the worker shut down during the stop".into()),
                });
            }
        }
        Ok(id)
    }

    /// Draining ----> (drained) ----> removed. Unless the instance went down,
    /// waits for its calls in flight (at most [`DRAIN_TIMEOUT`]); then stops it
    /// in the runtime, drops it from the table and emits the event that says why.
    pub(crate) async fn retire(
        &self,
        instance: &Arc<Instance>,
        reason: StopReason,
    ) -> Result<(), WorkerError> {
        if reason.drains() && !instance.drain(DRAIN_TIMEOUT).await {
            tracing::warn!(
                instance = %instance.id,
                in_flight = instance.in_flight(),
                "calls still in flight after {DRAIN_TIMEOUT:?}; stopping the instance anyway"
            );
        }
        let stopped = self.runtime.stop(&instance.handle).await;
        self.instances.remove(&instance.id);
        let mut event = match &reason {
            StopReason::Requested => LifecycleEvent::new(Event::Stop, &instance.id, &instance.function_id),
            StopReason::IdleTimeout => {
                LifecycleEvent::new(Event::Timeout, &instance.id, &instance.function_id)
                    .detail(format!("idle for {:?}", instance.config.idle_timeout.unwrap_or_default()))
            }
            StopReason::Down { exit_code, oom_killed } => {
                let detail = match (exit_code, oom_killed) {
                    (_, true) => {
                        format!("killed by the OOM killer (limit {} bytes)", instance.config.memory.0)
                    }
                    (Some(code), false) => format!("exited with code {code}"),
                    (None, false) => "exited".to_string(),
                };
                let mut e =
                    LifecycleEvent::new(Event::Down, &instance.id, &instance.function_id).failed(detail);
                e.exit_code = *exit_code;
                e.oom_killed = *oom_killed;
                e
            }
        };
        tracing::info!(instance = %instance.id, function = %instance.function_id, ?reason, "instance retired");
        match stopped {
            Ok(()) => {
                self.events.publish(event);
                Ok(())
            }
            Err(source) => {
                event = event.failed(source.to_string());
                self.events.publish(event);
                Err(WorkerError::Stop { instance: instance.id.clone(), source })
            }
        }
    }

    pub(crate) async fn on_exit(&self, notice: ExitNotice) {
        let Some(instance) = self.instances.get(&notice.instance_id) else {
            // Not ours, or still starting (the start path reports it).
            return;
        };
        let reason = StopReason::Down { exit_code: notice.exit_code, oom_killed: notice.oom_killed };
        if instance.begin_stop(reason.clone()).is_ok() {
            tracing::warn!(instance = %instance.id, exit_code = ?notice.exit_code, oom = notice.oom_killed, "instance went down");
            if let Err(e) = self.retire(&instance, reason).await {
                tracing::warn!("cleaning up after a crashed instance: {e:#}");
            }
        }
        // Otherwise it was already being stopped: the exit is the one we asked for.
    }

    /// Stops every instance (at shutdown), concurrently. Returns how many.
    pub async fn stop_all(&self) -> usize {
        let stops = self.instances.all().into_iter().filter_map(|instance| {
            instance.begin_stop(StopReason::Requested).ok()?;
            Some(async move {
                if let Err(e) = self.retire(&instance, StopReason::Requested).await {
                    tracing::warn!("{e:#}");
                }
            })
        });
        futures::future::join_all(stops).await.len()
    }

    // === State ===

    /// Every instance that takes calls, grouped by function (HyperFaaS's
    /// `State`). A draining instance is left out: it takes no new call, and a
    /// leaf reconciling with this list must not adopt it again.
    pub fn state(&self) -> StateResponse {
        let mut functions: std::collections::BTreeMap<String, FunctionState> = Default::default();
        for instance in self.instances.all().into_iter().filter(|i| i.lifecycle().can_call()) {
            let in_flight = instance.in_flight();
            let state = InstanceState {
                instance_id: instance.id.to_string(),
                is_active: in_flight > 0,
                time_since_last_work: millis(instance.idle_for()),
                uptime: millis(instance.started_at.elapsed()),
                in_flight_calls: in_flight,
            };
            let entry = functions.entry(instance.function_id.to_string()).or_insert_with(|| FunctionState {
                function_id: instance.function_id.to_string(),
                ..Default::default()
            });
            if in_flight > 0 { entry.running.push(state) } else { entry.idle.push(state) }
        }
        StateResponse { functions: functions.into_values().collect() }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// 12 hex digits, like a short Docker container id.
fn new_instance_id() -> InstanceId {
    InstanceId::new(format!("{:012x}", rand::rng().random::<u64>() & 0xffff_ffff_ffff))
}
