//! Choosing the instance for one call: the least-loaded usable one with room,
//! else hold the call at the leaf while every instance is full, else the
//! function's single-flight cold start.
//!
//! **Holding.** A function with `max_concurrency` takes at most that many
//! calls per instance. When every usable instance is at it, the call waits
//! here, not inside a worker: it is counted as demand (so the leaf scales
//! up) and takes the first slot that frees or the first new instance that
//! comes up. Forwarding it to the least-loaded instance instead would queue it
//! in that worker, and instances started by the scale-up would only serve
//! later calls. Held calls stay within the function's `max_pending_calls`
//! (beyond it, RESOURCE_EXHAUSTED) and their caller's deadline. A function
//! without `max_concurrency` has no hard limit per instance: its calls go to
//! the least-loaded instance as before.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hyperfake_core::InstanceId;
use tokio::sync::futures::Notified;

use super::slot::{ColdStart, Held};
use super::{FunctionSlot, Scheduler};
use crate::error::LeafError;
use crate::instances::WorkerIndex;

/// How often a held call looks again without being woken: a safety net for
/// room no notification announces (a worker back in rotation), not the way
/// held calls normally move on.
const HOLD_RECHECK: Duration = Duration::from_millis(100);

/// What a call does when it found no instance with room.
enum Next<'a> {
    /// Wait for room (a slot freed, an instance added or removed).
    Hold(Pin<Box<Notified<'a>>>),
    /// Wait for the function's cold start.
    Cold(ColdStart),
}

impl Scheduler {
    /// An instance for one call, counted as in flight; holds the call while
    /// every instance is full, and starts one (single-flight) when none is usable.
    pub(super) async fn acquire(
        self: &Arc<Self>,
        slot: &Arc<FunctionSlot>,
        excluded: &HashSet<InstanceId>,
        expires: Option<Instant>,
        deadline: Option<Duration>,
    ) -> Result<(InstanceId, WorkerIndex), LeafError> {
        let limit = slot.config().max_concurrency;
        let mut held: Option<Held<'_>> = None;
        loop {
            let next = {
                let mut st = slot.lock();
                if let Some((id, worker)) = st.instances.pick(|w| self.pool.in_rotation(w), excluded) {
                    let full =
                        limit.is_some_and(|max| st.instances.get(&id).is_some_and(|p| p.in_flight >= max));
                    if !full {
                        // Held ---- room ----> in flight
                        if let Some(h) = held.take() {
                            h.release(&mut st);
                        }
                        st.instances.begin_call(&id);
                        self.maybe_scale_up(slot, &mut st);
                        return Ok((id, worker));
                    }
                    // Every usable instance is at max_concurrency: hold here.
                    if expires.is_some_and(|e| Instant::now() >= e) {
                        return Err(LeafError::DeadlineExceeded(deadline.unwrap_or_default()));
                    }
                    let mut room = Box::pin(slot.room.notified());
                    // Registered under the lock: room freed once it is unlocked wakes this call.
                    room.as_mut().enable();
                    if held.is_none() {
                        held = Some(Held::new(slot, &mut st));
                        self.stats.calls_held.fetch_add(1, Ordering::Relaxed);
                        tracing::trace!(function = %slot.function.id, held = st.held, "every instance is full: holding the call");
                    }
                    self.maybe_scale_up(slot, &mut st);
                    Next::Hold(room)
                } else {
                    Next::Cold(match &st.cold {
                        Some(cold) => cold.clone(),
                        None => {
                            self.stats.cold_starts.fetch_add(1, Ordering::Relaxed);
                            self.spawn_start(slot, &mut st, true)
                        }
                    })
                }
            };
            let cold = match next {
                Next::Hold(room) => {
                    let wait = expires.map_or(HOLD_RECHECK, |e| {
                        e.saturating_duration_since(Instant::now()).min(HOLD_RECHECK)
                    });
                    let _ = tokio::time::timeout(wait, room).await;
                    continue;
                }
                Next::Cold(cold) => cold,
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
}
