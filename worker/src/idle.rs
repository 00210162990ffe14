//! Idle timeouts are the worker's decision, not the container's: an instance
//! with no call in flight for `Config.timeout` is stopped and TIMEOUT emitted.

use std::sync::{Arc, Weak};

use tokio::task::JoinHandle;

use crate::instance::StopReason;
use crate::worker::Worker;

pub(crate) fn spawn_sweeper(worker: Weak<Worker>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let interval = match worker.upgrade() {
            Some(w) => w.settings.idle_check_interval,
            None => return,
        };
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(worker) = worker.upgrade() else { return };
            for instance in worker.instances.all() {
                let Some(timeout) = instance.config.idle_timeout else { continue };
                if instance.expire_if_idle(timeout) {
                    let worker = Arc::clone(&worker);
                    tokio::spawn(async move {
                        if let Err(e) = worker.retire(&instance, StopReason::IdleTimeout).await {
                            tracing::warn!("stopping an idle instance: {e:#}");
                        }
                    });
                }
            }
        }
    })
}
