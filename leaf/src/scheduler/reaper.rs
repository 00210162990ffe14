//! Scale to zero: instances idle for their function's `Config.timeout` are
//! removed and stopped.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::Scheduler;
use crate::failure::Failure;

/// Stops instances idle for their function's `Config.timeout`, every `interval`.
pub(super) async fn reap_idle(scheduler: Weak<Scheduler>, interval: Duration) {
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
                    let Err(s) = handle.client().stop(proto::common::InstanceId::from(&instance)).await
                    else {
                        tracing::info!(%function, %instance, "stopped idle instance");
                        return;
                    };
                    match Failure::of(&s) {
                        // The worker's own idle timeout got there first.
                        Failure::Gone | Failure::NotFound => {}
                        _ => {
                            tracing::warn!(%function, %instance, worker = %handle.address, "stopping idle instance: {}", s.message())
                        }
                    }
                });
            }
        }
    }
}
