//! Which functions have instances on each worker, so that a worker's `State`
//! answer is reconciled against its own functions only.
//!
//! Without it, reconciling one worker visited every function the leaf knows
//! (locking each and walking its instances): with 250 workers per leaf, each
//! asked every 2 s, and 10 000 functions, that was the leaves' top symbol in
//! the full-size scale run, and it held the locks calls need. With it, the
//! cost of one answer is the number of functions on that worker.
//!
//! Kept true by construction: [`InstanceSet`](crate::instances::InstanceSet)
//! is the only owner of instances, and each of its changes (insert, remove,
//! idle reaping, reconciliation, drop) reports here. Lock order: a function's
//! slot, then this index; the index is never held while a slot is locked
//! after it.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use hyperfake_core::FunctionId;

use crate::instances::WorkerIndex;

/// Instances per function on each worker; only counts above zero are kept.
#[derive(Debug, Default)]
pub struct WorkerFunctions {
    by_worker: Mutex<HashMap<WorkerIndex, HashMap<FunctionId, u32>>>,
}

impl WorkerFunctions {
    /// Functions with at least one instance on `worker`.
    pub fn on(&self, worker: WorkerIndex) -> Vec<FunctionId> {
        self.lock().get(&worker).map(|f| f.keys().cloned().collect()).unwrap_or_default()
    }

    /// Every (worker, function) with its number of instances, for tests and
    /// debugging.
    pub fn counts(&self) -> Vec<(WorkerIndex, FunctionId, u32)> {
        let mut all: Vec<_> =
            self.lock().iter().flat_map(|(w, fs)| fs.iter().map(move |(f, n)| (*w, f.clone(), *n))).collect();
        all.sort();
        all
    }

    pub(crate) fn added(&self, worker: WorkerIndex, function: &FunctionId) {
        *self.lock().entry(worker).or_default().entry(function.clone()).or_default() += 1;
    }

    pub(crate) fn removed(&self, worker: WorkerIndex, function: &FunctionId) {
        let mut by_worker = self.lock();
        let Some(functions) = by_worker.get_mut(&worker) else {
            unreachable!("worker {worker} has no instance of {function} to remove: a bug")
        };
        let Some(n) = functions.get_mut(function) else {
            unreachable!("worker {worker} has no instance of {function} to remove: a bug")
        };
        *n -= 1;
        if *n == 0 {
            functions.remove(function);
            if functions.is_empty() {
                by_worker.remove(&worker);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<WorkerIndex, HashMap<FunctionId, u32>>> {
        self.by_worker.lock().unwrap_or_else(|e| e.into_inner())
    }
}
