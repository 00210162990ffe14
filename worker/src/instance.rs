//! A running instance and the table of them. Lifecycle:
//!
//! ```text
//!   (Runtime::start ok) --> Ready --(Stop | idle timeout | exit | vanished)--> Draining
//!   Draining --(calls in flight finish, or the drain limit passes)--> stopped --> removed
//! ```
//!
//! A draining instance takes no new calls; the calls already routed to it
//! finish before its container is stopped (a Stop; an exited instance has
//! nothing left to wait for). Instances that are starting are not in the
//! table: the start path owns them until they are ready (and removes the
//! container if they never are).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use hyperfake_core::{FunctionConfig, FunctionId, ImageTag, InstanceId};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::runtime::InstanceConn;

/// Why an instance leaves service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// A `Stop` RPC.
    Requested,
    /// No calls for `Config.timeout`.
    IdleTimeout,
    /// The instance exited on its own (reported by the runtime, or found
    /// gone when the worker reconciled with the runtime).
    Down { exit_code: Option<i64>, oom_killed: bool },
}

impl StopReason {
    /// Whether calls in flight are waited for before the container stops. An
    /// instance that went down has none left to finish.
    pub fn drains(&self) -> bool {
        !matches!(self, StopReason::Down { .. })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// Serving calls.
    Ready,
    /// Leaving: no new calls are routed here.
    Draining(StopReason),
}

impl Lifecycle {
    pub fn can_call(&self) -> bool {
        matches!(self, Lifecycle::Ready)
    }

    pub fn can_stop(&self) -> bool {
        matches!(self, Lifecycle::Ready)
    }
}

/// The instance is not in a state that permits the operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("instance is {0:?}")]
pub struct IncorrectState(pub Lifecycle);

#[derive(Debug)]
struct Activity {
    lifecycle: Lifecycle,
    /// Calls routed here and not yet finished (queued for a slot or running).
    in_flight: u32,
    last_activity: Instant,
}

#[derive(Debug)]
pub struct Instance {
    pub id: InstanceId,
    pub function_id: FunctionId,
    pub image_tag: ImageTag,
    pub config: FunctionConfig,
    pub name: String,
    pub address: String,
    /// Runtime handle (container id).
    pub handle: String,
    pub conn: Arc<dyn InstanceConn>,
    pub started_at: Instant,
    /// `Config.max_concurrency` slots; `None` when unlimited.
    slots: Option<Arc<Semaphore>>,
    activity: Mutex<Activity>,
    /// Calls currently holding a slot (running inside the function).
    running: AtomicU32,
    /// Notified whenever the last call in flight finishes.
    drained: Notify,
}

impl Instance {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: InstanceId,
        function_id: FunctionId,
        image_tag: ImageTag,
        config: FunctionConfig,
        name: String,
        address: String,
        handle: String,
        conn: Arc<dyn InstanceConn>,
    ) -> Self {
        let slots = config.max_concurrency.map(|n| Arc::new(Semaphore::new(n as usize)));
        let now = Instant::now();
        Instance {
            id,
            function_id,
            image_tag,
            config,
            name,
            address,
            handle,
            conn,
            started_at: now,
            slots,
            activity: Mutex::new(Activity { lifecycle: Lifecycle::Ready, in_flight: 0, last_activity: now }),
            running: AtomicU32::new(0),
            drained: Notify::new(),
        }
    }

    fn activity(&self) -> std::sync::MutexGuard<'_, Activity> {
        // A poisoned lock only means another thread panicked mid-update of plain
        // counters; the data is still usable.
        self.activity.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn lifecycle(&self) -> Lifecycle {
        self.activity().lifecycle.clone()
    }

    pub fn in_flight(&self) -> u32 {
        self.activity().in_flight
    }

    pub fn running(&self) -> u32 {
        self.running.load(Ordering::Relaxed)
    }

    pub fn idle_for(&self) -> Duration {
        let a = self.activity();
        if a.in_flight > 0 { Duration::ZERO } else { a.last_activity.elapsed() }
    }

    /// Ready ---- call ----> Ready (in_flight + 1). Refused unless Ready, so a
    /// call can never be routed to an instance that is being stopped.
    pub fn begin_call(self: &Arc<Self>) -> Result<CallGuard, IncorrectState> {
        let mut a = self.activity();
        if !a.lifecycle.can_call() {
            return Err(IncorrectState(a.lifecycle.clone()));
        }
        a.in_flight += 1;
        a.last_activity = Instant::now();
        Ok(CallGuard { instance: Arc::clone(self), permit: None, running: false })
    }

    /// Ready ---- stop ----> Draining(reason). Refused unless Ready.
    pub fn begin_stop(&self, reason: StopReason) -> Result<(), IncorrectState> {
        let mut a = self.activity();
        if !a.lifecycle.can_stop() {
            return Err(IncorrectState(a.lifecycle.clone()));
        }
        a.lifecycle = Lifecycle::Draining(reason);
        Ok(())
    }

    /// Draining ---- last call in flight finishes ----> drained. Waits until no
    /// call is in flight, at most `limit`; `false` if calls were still in
    /// flight when `limit` passed. Draining admits no new call, so once
    /// drained the instance stays drained.
    pub async fn drain(&self, limit: Duration) -> bool {
        let drained = async {
            loop {
                let finished = self.drained.notified();
                tokio::pin!(finished);
                // Registered before checking, so a call finishing in between
                // is not missed.
                finished.as_mut().enable();
                if self.in_flight() == 0 {
                    return;
                }
                finished.await;
            }
        };
        tokio::time::timeout(limit, drained).await.is_ok()
    }

    /// Ready ---- idle timeout ----> Draining(IdleTimeout), only if no call is
    /// in flight and the instance has been idle for at least `timeout`. Checked
    /// and switched under one lock so a call arriving now cannot be lost.
    pub fn expire_if_idle(&self, timeout: Duration) -> bool {
        let mut a = self.activity();
        if a.lifecycle.can_stop() && a.in_flight == 0 && a.last_activity.elapsed() >= timeout {
            a.lifecycle = Lifecycle::Draining(StopReason::IdleTimeout);
            true
        } else {
            false
        }
    }
}

/// A call in flight on an instance; finishing (dropping) it records activity.
#[derive(Debug)]
pub struct CallGuard {
    instance: Arc<Instance>,
    permit: Option<OwnedSemaphorePermit>,
    running: bool,
}

impl CallGuard {
    pub fn instance(&self) -> &Arc<Instance> {
        &self.instance
    }

    /// Waits for a concurrency slot (`Config.max_concurrency`). Waiting callers
    /// queue in FIFO order; they are serialised, not failed.
    pub async fn acquire_slot(&mut self) {
        if let Some(slots) = &self.instance.slots {
            // The semaphore is never closed, so acquiring cannot fail.
            self.permit = Arc::clone(slots).acquire_owned().await.ok();
        }
        self.instance.running.fetch_add(1, Ordering::Relaxed);
        self.running = true;
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if self.running {
            self.instance.running.fetch_sub(1, Ordering::Relaxed);
        }
        let mut a = self.instance.activity();
        a.in_flight -= 1;
        a.last_activity = Instant::now();
        let last = a.in_flight == 0;
        drop(a);
        if last {
            self.instance.drained.notify_waiters();
        }
    }
}

/// All ready or draining instances of this worker.
#[derive(Debug, Default)]
pub struct InstanceTable {
    instances: RwLock<HashMap<InstanceId, Arc<Instance>>>,
}

impl InstanceTable {
    pub fn insert(&self, instance: Arc<Instance>) {
        self.write().insert(instance.id.clone(), instance);
    }

    pub fn get(&self, id: &InstanceId) -> Option<Arc<Instance>> {
        self.read().get(id).cloned()
    }

    pub fn remove(&self, id: &InstanceId) -> Option<Arc<Instance>> {
        self.write().remove(id)
    }

    pub fn all(&self) -> Vec<Arc<Instance>> {
        self.read().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// The ready instance of `function` with the fewest calls in flight.
    pub fn least_loaded(&self, function: &FunctionId) -> Option<Arc<Instance>> {
        self.read()
            .values()
            .filter(|i| &i.function_id == function && i.lifecycle().can_call())
            .min_by_key(|i| i.in_flight())
            .cloned()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<InstanceId, Arc<Instance>>> {
        self.instances.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<InstanceId, Arc<Instance>>> {
        self.instances.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{CallError, CallOutput};
    use hyperfake_core::Bytes;
    use proto::common::CallRequest;

    #[derive(Debug)]
    struct NoConn;

    #[async_trait::async_trait]
    impl InstanceConn for NoConn {
        async fn call(&self, _: CallRequest, _: Option<Duration>) -> Result<CallOutput, CallError> {
            Err(CallError::Unreachable("test".into()))
        }
    }

    fn instance(max_concurrency: Option<u32>) -> Arc<Instance> {
        let config =
            FunctionConfig { memory: Bytes::mib(64), cpu: None, idle_timeout: None, max_concurrency };
        Arc::new(Instance::new(
            "i".into(),
            "f".into(),
            "hyperfaas-echo:latest".into(),
            config,
            "n".into(),
            "a".into(),
            "h".into(),
            Arc::new(NoConn),
        ))
    }

    #[test]
    fn ready_permits_calls_and_stop() {
        let i = instance(None);
        assert!(i.lifecycle().can_call());
        let guard = i.begin_call().unwrap();
        assert_eq!(i.in_flight(), 1);
        drop(guard);
        assert_eq!(i.in_flight(), 0);
        i.begin_stop(StopReason::Requested).unwrap();
    }

    #[test]
    fn draining_refuses_calls_and_a_second_stop() {
        let i = instance(None);
        i.begin_stop(StopReason::IdleTimeout).unwrap();
        assert_eq!(i.begin_call().unwrap_err(), IncorrectState(Lifecycle::Draining(StopReason::IdleTimeout)));
        assert!(i.begin_stop(StopReason::Requested).is_err());
        assert!(!i.expire_if_idle(Duration::ZERO));
    }

    #[test]
    fn busy_instances_never_expire() {
        let i = instance(None);
        let guard = i.begin_call().unwrap();
        assert!(!i.expire_if_idle(Duration::ZERO));
        drop(guard);
        assert!(i.expire_if_idle(Duration::ZERO));
        assert_eq!(i.lifecycle(), Lifecycle::Draining(StopReason::IdleTimeout));
    }

    #[tokio::test]
    async fn slots_serialise_calls() {
        let i = instance(Some(1));
        let mut a = i.begin_call().unwrap();
        a.acquire_slot().await;
        let mut b = i.begin_call().unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(20), b.acquire_slot()).await;
        assert!(waiting.is_err(), "second call must wait for the slot");
        drop(a);
        b.acquire_slot().await;
        assert_eq!(i.running(), 1);
    }

    #[tokio::test]
    async fn drain_waits_for_calls_in_flight_and_no_longer() {
        let i = instance(None);
        let call = i.begin_call().unwrap();
        i.begin_stop(StopReason::Requested).unwrap();
        assert!(!i.drain(Duration::from_millis(20)).await, "a call is still in flight");
        let waiter = tokio::spawn({
            let i = Arc::clone(&i);
            async move { i.drain(Duration::from_secs(60)).await }
        });
        tokio::task::yield_now().await;
        drop(call);
        assert!(waiter.await.unwrap(), "the last call finishing ends the drain");
        assert!(i.drain(Duration::ZERO).await, "an instance without calls is drained at once");
    }

    #[test]
    fn only_an_instance_that_went_down_skips_the_drain() {
        assert!(StopReason::Requested.drains());
        assert!(StopReason::IdleTimeout.drains());
        assert!(!StopReason::Down { exit_code: None, oom_killed: false }.drains());
    }

    #[test]
    fn least_loaded_matches_function_and_skips_draining() {
        let table = InstanceTable::default();
        let busy = instance(None);
        let _g = busy.begin_call().unwrap();
        table.insert(Arc::clone(&busy));
        assert_eq!(table.least_loaded(&"f".into()).map(|i| i.in_flight()), Some(1));
        assert!(table.least_loaded(&"other".into()).is_none());
        busy.begin_stop(StopReason::Requested).unwrap();
        assert!(table.least_loaded(&"f".into()).is_none());
    }
}
