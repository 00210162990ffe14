//! Where a new instance goes.

use std::collections::HashSet;
use std::sync::Arc;

use super::{FunctionSlot, Scheduler};
use crate::instances::WorkerIndex;

impl Scheduler {
    /// The worker for a new instance of `slot`'s function: in rotation, not yet
    /// tried, with the fewest instances of this function (starting included),
    /// then the fewest instances, then the fewest calls in flight.
    pub(super) fn place(&self, slot: &FunctionSlot, tried: &HashSet<WorkerIndex>) -> Option<WorkerIndex> {
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
}
