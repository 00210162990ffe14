//! What a leaf believes about one function's instances: each one by id, the
//! worker it runs on, the calls in flight on it and when it last worked.
//!
//! Tracking instances by id (not a bare counter) is what lets a STOP, TIMEOUT or
//! DOWN event, a `State` reconciliation or a worker's FAILED_PRECONDITION remove
//! exactly the instance that is gone. Every change is reported to the leaf's
//! [`WorkerFunctions`] index, so it cannot drift from the sets.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyperfake_core::{FunctionId, InstanceId};

use crate::worker_functions::WorkerFunctions;

/// Index of a worker in the leaf's pool.
pub type WorkerIndex = usize;

/// One instance as the leaf sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    pub worker: WorkerIndex,
    /// Calls the leaf forwarded to it and that have not been answered.
    pub in_flight: u32,
    /// When a call last ended (or the instance was added).
    pub last_active: Instant,
    /// When the leaf learnt about it: a `State` answer requested before this
    /// cannot prove the instance gone.
    pub added_at: Instant,
}

/// One function's instances, keyed by id (ordered, so ties break stably).
#[derive(Debug)]
pub struct InstanceSet {
    instances: BTreeMap<InstanceId, Placed>,
    function: FunctionId,
    /// The leaf's index of functions by worker, told of every change here.
    index: Arc<WorkerFunctions>,
}

impl InstanceSet {
    /// `function`'s instances, none yet, reported to `index`.
    pub fn new(function: FunctionId, index: Arc<WorkerFunctions>) -> Self {
        InstanceSet { instances: BTreeMap::new(), function, index }
    }

    /// Adds an instance; adding one already known keeps its counters.
    pub fn insert(&mut self, id: InstanceId, worker: WorkerIndex, now: Instant) {
        if let std::collections::btree_map::Entry::Vacant(entry) = self.instances.entry(id) {
            entry.insert(Placed { worker, in_flight: 0, last_active: now, added_at: now });
            self.index.added(worker, &self.function);
        }
    }

    pub fn remove(&mut self, id: &InstanceId) -> Option<Placed> {
        let placed = self.instances.remove(id)?;
        self.index.removed(placed.worker, &self.function);
        Some(placed)
    }

    pub fn contains(&self, id: &InstanceId) -> bool {
        self.instances.contains_key(id)
    }

    pub fn get(&self, id: &InstanceId) -> Option<&Placed> {
        self.instances.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&InstanceId, &Placed)> {
        self.instances.iter()
    }

    /// Instances on workers for which `usable` holds.
    pub fn ready(&self, usable: impl Fn(WorkerIndex) -> bool) -> usize {
        self.instances.values().filter(|p| usable(p.worker)).count()
    }

    pub fn in_flight(&self) -> u32 {
        self.instances.values().map(|p| p.in_flight).sum()
    }

    /// The least-loaded instance on a usable worker, not in `excluded`. Ties go to
    /// the lowest id, so light load concentrates on few instances and the rest
    /// can go idle and be scaled down.
    pub fn pick(
        &self,
        usable: impl Fn(WorkerIndex) -> bool,
        excluded: &HashSet<InstanceId>,
    ) -> Option<(InstanceId, WorkerIndex)> {
        self.instances
            .iter()
            .filter(|(id, p)| usable(p.worker) && !excluded.contains(*id))
            .min_by_key(|(_, p)| p.in_flight)
            .map(|(id, p)| (id.clone(), p.worker))
    }

    /// Counts a call on `id`. Returns false if the instance is gone.
    pub fn begin_call(&mut self, id: &InstanceId) -> bool {
        match self.instances.get_mut(id) {
            Some(p) => {
                p.in_flight += 1;
                true
            }
            None => false,
        }
    }

    pub fn end_call(&mut self, id: &InstanceId, now: Instant) {
        if let Some(p) = self.instances.get_mut(id) {
            p.in_flight = p.in_flight.saturating_sub(1);
            p.last_active = now;
        }
    }

    /// Removes and returns instances without calls for `timeout`.
    pub fn take_idle(&mut self, timeout: Duration, now: Instant) -> Vec<(InstanceId, WorkerIndex)> {
        let idle: Vec<_> = self
            .instances
            .iter()
            .filter(|(_, p)| p.in_flight == 0 && now.saturating_duration_since(p.last_active) >= timeout)
            .map(|(id, p)| (id.clone(), p.worker))
            .collect();
        for (id, _) in &idle {
            self.remove(id);
        }
        idle
    }

    /// Reconciliation: drops instances on `worker` that the worker's `State`,
    /// requested at `asked_at`, did not list. Instances learnt after the request
    /// are kept (the answer may predate them). Returns the ids dropped.
    pub fn retain_listed(
        &mut self,
        worker: WorkerIndex,
        listed: &HashSet<InstanceId>,
        asked_at: Instant,
    ) -> Vec<InstanceId> {
        let gone: Vec<_> = self
            .instances
            .iter()
            .filter(|(id, p)| p.worker == worker && p.added_at < asked_at && !listed.contains(*id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            self.remove(id);
        }
        gone
    }

    pub fn len(&self) -> usize {
        self.instances.len()
    }

    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }
}

impl Drop for InstanceSet {
    fn drop(&mut self) {
        for placed in self.instances.values() {
            self.index.removed(placed.worker, &self.function);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> InstanceId {
        InstanceId::from(s)
    }

    fn set() -> InstanceSet {
        InstanceSet::new(FunctionId::from("f"), Arc::default())
    }

    #[test]
    fn picks_the_least_loaded_usable_instance_and_breaks_ties_stably() {
        let now = Instant::now();
        let mut set = set();
        set.insert(id("b"), 1, now);
        set.insert(id("a"), 0, now);
        let none = HashSet::new();
        assert_eq!(set.pick(|_| true, &none), Some((id("a"), 0)));
        assert!(set.begin_call(&id("a")));
        assert_eq!(set.pick(|_| true, &none), Some((id("b"), 1)));
        assert_eq!(set.pick(|w| w == 0, &none), Some((id("a"), 0)), "never a worker out of rotation");
        assert_eq!(set.pick(|_| true, &HashSet::from([id("b")])), Some((id("a"), 0)));
        assert_eq!(set.pick(|w| w == 2, &none), None);
        assert_eq!(set.in_flight(), 1);
        assert!(!set.begin_call(&id("gone")));
    }

    #[test]
    fn only_instances_idle_for_the_timeout_are_taken() {
        let start = Instant::now();
        let mut set = set();
        set.insert(id("busy"), 0, start);
        set.insert(id("idle"), 0, start);
        set.insert(id("fresh"), 0, start + Duration::from_secs(5));
        set.begin_call(&id("busy"));
        let taken = set.take_idle(Duration::from_secs(10), start + Duration::from_secs(10));
        assert_eq!(taken, vec![(id("idle"), 0)]);
        set.end_call(&id("busy"), start + Duration::from_secs(10));
        assert!(set.take_idle(Duration::from_secs(10), start + Duration::from_secs(14)).is_empty());
        assert_eq!(set.take_idle(Duration::from_secs(10), start + Duration::from_secs(20)).len(), 2);
        assert!(set.is_empty());
    }

    #[test]
    fn reconciliation_drops_only_unlisted_instances_known_before_the_request() {
        let t0 = Instant::now();
        let mut set = set();
        set.insert(id("listed"), 0, t0);
        set.insert(id("phantom"), 0, t0);
        set.insert(id("other-worker"), 1, t0);
        set.insert(id("newer"), 0, t0 + Duration::from_secs(2));
        let gone = set.retain_listed(0, &HashSet::from([id("listed")]), t0 + Duration::from_secs(1));
        assert_eq!(gone, vec![id("phantom")]);
        assert_eq!(set.len(), 3);
        assert_eq!(set.iter().filter(|(_, p)| p.worker == 0).count(), 2);
    }

    /// What the index should hold: the sets' instances counted by worker and function.
    fn expected(sets: &[&InstanceSet]) -> Vec<(WorkerIndex, FunctionId, u32)> {
        let mut counts = BTreeMap::new();
        for set in sets {
            for (_, p) in set.iter() {
                *counts.entry((p.worker, set.function.clone())).or_insert(0) += 1;
            }
        }
        counts.into_iter().map(|((w, f), n)| (w, f, n)).collect()
    }

    #[test]
    fn every_change_to_a_set_is_reflected_in_the_index() {
        let index = Arc::new(WorkerFunctions::default());
        let t0 = Instant::now();
        let mut f = InstanceSet::new(FunctionId::from("f"), Arc::clone(&index));
        let mut g = InstanceSet::new(FunctionId::from("g"), Arc::clone(&index));
        let id = InstanceId::from;
        f.insert(id("f1"), 0, t0);
        f.insert(id("f2"), 0, t0);
        f.insert(id("f2"), 1, t0); // already known: unchanged
        f.insert(id("f3"), 1, t0);
        g.insert(id("g1"), 1, t0);
        g.insert(id("g2"), 2, t0 + Duration::from_secs(5));
        assert_eq!(index.counts(), expected(&[&f, &g]));
        assert_eq!(index.on(0), vec![FunctionId::from("f")]);
        let mut on_1 = index.on(1);
        on_1.sort();
        assert_eq!(on_1, vec![FunctionId::from("f"), FunctionId::from("g")]);

        assert!(f.remove(&id("f1")).is_some());
        assert!(f.remove(&id("f1")).is_none());
        assert_eq!(index.counts(), expected(&[&f, &g]));
        // Reaping idle instances (g2 is not idle yet).
        assert_eq!(g.take_idle(Duration::from_secs(1), t0 + Duration::from_secs(2)).len(), 1);
        assert_eq!(index.counts(), expected(&[&f, &g]));
        // Reconciliation dropping unlisted instances of worker 0.
        assert_eq!(f.retain_listed(0, &HashSet::new(), t0 + Duration::from_secs(1)), vec![id("f2")]);
        assert_eq!(index.counts(), expected(&[&f, &g]));
        assert!(index.on(0).is_empty(), "a worker without instances leaves the index");
        drop(g);
        assert_eq!(index.counts(), expected(&[&f]));
        drop(f);
        assert!(index.counts().is_empty());
    }
}
