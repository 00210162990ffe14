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
        // (this function's instances, all instances, calls in flight) per
        // worker, in one pass over every instance: the cost is the number of
        // instances, not functions × workers × instances as when each worker
        // was counted separately (measured: two leaves over 2 000 functions
        // and 200 workers spent their warm-up in this loop).
        let mut load = vec![(0usize, 0usize, 0u32); n];
        for other in self.slots() {
            let st = other.lock();
            let same = std::ptr::eq(Arc::as_ptr(&other), slot);
            let placed = st.instances.iter().map(|(_, p)| (p.worker, p.in_flight));
            let starting = st.starting_on.iter().map(|w| (*w, 0));
            for (w, calls) in placed.chain(starting) {
                let Some(entry) = load.get_mut(w) else { continue };
                entry.1 += 1;
                entry.2 += calls;
                if same {
                    entry.0 += 1;
                }
            }
        }
        (0..n).filter(|w| self.pool.in_rotation(*w) && !tried.contains(w)).min_by_key(|w| (load[*w], *w))
    }
}
