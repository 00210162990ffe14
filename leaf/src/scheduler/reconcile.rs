//! Keeping the view true: instances leave on STOP, TIMEOUT and DOWN events,
//! and a worker's `State` list drops the ones it no longer has and adopts
//! the ones the leaf did not know.

use std::time::Instant;

use proto::controller::Event;

use super::Scheduler;
use crate::workers::{PoolEvent, listed_ids, listed_instances};

impl Scheduler {
    pub(super) fn on_pool_event(&self, event: PoolEvent) {
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
                        let held = st.held > 0;
                        drop(st);
                        slot.instances_changed(held);
                    }
                }
            }
            PoolEvent::Reconciled { worker, state, asked_at } => {
                let listed = listed_ids(&state);
                // Only functions with instances on this worker can lose one
                // here: the cost is this worker's functions, not all of them.
                let on_worker = self.worker_functions.on(worker);
                for slot in on_worker.iter().filter_map(|f| self.known(f)) {
                    let (gone, held) = {
                        let mut st = slot.lock();
                        (st.instances.retain_listed(worker, &listed, asked_at), st.held > 0)
                    };
                    if !gone.is_empty() {
                        slot.instances_changed(held);
                    }
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
                        let held = st.held > 0;
                        drop(st);
                        slot.instances_changed(held);
                    }
                }
            }
        }
    }
}
