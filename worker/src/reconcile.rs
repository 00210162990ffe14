//! Exits the runtime never reported. The worker learns of deaths from the
//! runtime's exit watch (Docker's event stream); when that stream is
//! interrupted (the engine restarted and lost its event log) a death can go
//! unreported, and the instance would stay Ready here, for leaves to adopt
//! again. So the worker asks the runtime which of its ready instances still
//! run, after every resync the runtime signals and every
//! [`RECONCILE_INTERVAL`], and takes the ones gone down as if their exit had
//! been reported: the same transition and the same DOWN event.

use std::sync::{Arc, Weak};
use std::time::Duration;

use hyperfake_core::InstanceId;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::runtime::RuntimeError;
use crate::worker::Worker;

/// How often the instance table is checked against what really runs, besides
/// after each resync. Bounds how long a missed exit goes unnoticed; each
/// check is one container listing.
pub const RECONCILE_INTERVAL: Duration = Duration::from_secs(10);

impl Worker {
    /// Ready ---- found not running ----> Draining(Down) --> removed, for every
    /// ready instance the runtime says no longer runs. Returns how many went
    /// down.
    pub async fn reconcile(&self) -> Result<usize, RuntimeError> {
        let ready: Vec<(InstanceId, String)> = self
            .instances
            .all()
            .into_iter()
            .filter(|i| i.lifecycle().can_call())
            .map(|i| (i.id.clone(), i.handle.clone()))
            .collect();
        if ready.is_empty() {
            return Ok(0);
        }
        let vanished = self.runtime.vanished(&ready).await?;
        let count = vanished.len();
        for notice in vanished {
            tracing::warn!(instance = %notice.instance_id, "instance no longer runs, and its exit was never reported");
            // An exit reported meanwhile has already taken it down; then this does nothing.
            self.on_exit(notice).await;
        }
        Ok(count)
    }
}

/// Reconciles at once, then on every `resync` and every `every`, until the
/// worker is dropped.
pub fn spawn_reconciler(worker: Weak<Worker>, resync: Arc<Notify>, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = resync.notified() => tick.reset(),
            }
            let Some(worker) = worker.upgrade() else { return };
            if let Err(e) = worker.reconcile().await {
                tracing::warn!("reconciling instances with the runtime: {e}");
            }
        }
    })
}
