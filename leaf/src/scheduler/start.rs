//! Starting instances: the single-flight cold start and scale-up, each in a
//! task of its own, trying another worker when one is unavailable.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures::FutureExt;

use super::slot::{ColdStart, SlotState};
use super::{FunctionSlot, Scheduler};
use crate::error::StartError;
use crate::failure::Failure;

impl Scheduler {
    /// Ready --- calls in flight + held > target x (ready + starting) ---> one more starting.
    pub(super) fn maybe_scale_up(self: &Arc<Self>, slot: &Arc<FunctionSlot>, st: &mut SlotState) {
        let per = self.per_instance(slot.config());
        let ready = u32::try_from(st.instances.ready(|w| self.pool.in_rotation(w))).unwrap_or(u32::MAX);
        let planned = ready + st.starting;
        let demand = st.instances.in_flight() + st.held;
        if planned < self.settings.max_instances && demand > per.saturating_mul(planned) {
            tracing::debug!(function = %slot.function.id, ready, starting = st.starting, in_flight = st.instances.in_flight(), held = st.held, "scaling up");
            drop(self.spawn_start(slot, st, false));
        }
    }

    /// Starts one instance in its own task. A cold start is stored in the slot
    /// (under the same lock) so later callers join it instead of starting more.
    pub(super) fn spawn_start(
        self: &Arc<Self>,
        slot: &Arc<FunctionSlot>,
        st: &mut SlotState,
        cold: bool,
    ) -> ColdStart {
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
            let held = {
                let mut st = slot.lock();
                if let Some(i) = st.starting_on.iter().position(|w| *w == worker) {
                    st.starting_on.swap_remove(i);
                }
                if let Ok(started) = &result
                    && let Some(id) = proto::convert::instance_id(started.get_ref().instance_id.as_ref())
                {
                    tracing::info!(%function, instance = %id, worker = %handle.address, "instance started");
                    st.instances.insert(id, worker, Instant::now());
                }
                st.held > 0
            };
            // Held calls take the new instance.
            slot.instances_changed(held);
            let status = match result {
                Ok(_) => {
                    self.stats.instances_started.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Err(status) => status,
            };
            let failure = Failure::of(&status);
            if !matches!(failure, Failure::Unreachable | Failure::Unavailable) {
                return Err(StartError::Worker {
                    worker: handle.address.clone(),
                    function: function.clone(),
                    status,
                });
            }
            if failure.node_down() {
                handle.mark_down(&format!("start failed: {}", status.message()));
            }
            tracing::warn!(%function, worker = %handle.address, "start failed, trying another worker: {}", status.message());
            tried.insert(worker);
        }
    }
}
