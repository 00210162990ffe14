//! One function and what the leaf knows about its instances: the state every
//! decision reads and changes under the slot's lock.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use database::Function;
use futures::future::{BoxFuture, Shared};
use hyperfake_core::{FunctionConfig, InstanceId};
use tokio::sync::{Notify, Semaphore};

use crate::error::StartError;
use crate::instances::{InstanceSet, WorkerIndex};
use crate::worker_functions::WorkerFunctions;

/// A start callers can wait for, shared by all of them.
pub(super) type ColdStart = Shared<BoxFuture<'static, Result<(), StartError>>>;

/// One function and what the leaf knows about its instances.
#[derive(Debug)]
pub struct FunctionSlot {
    pub function: Function,
    pub(super) pending: Arc<Semaphore>,
    state: Mutex<SlotState>,
    /// Wakes calls held at the leaf: one waiter per slot freed, every waiter
    /// when the set of instances changes.
    pub(super) room: Notify,
}

pub(super) struct SlotState {
    pub(super) instances: InstanceSet,
    /// Starts in progress (cold and scale-up).
    pub(super) starting: u32,
    /// Workers a start is in progress on (one entry per start).
    pub(super) starting_on: Vec<WorkerIndex>,
    /// The cold start callers are waiting for, if any.
    pub(super) cold: Option<ColdStart>,
    /// Calls held at the leaf because every usable instance was at the
    /// function's `max_concurrency`.
    pub(super) held: u32,
}

impl std::fmt::Debug for SlotState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotState")
            .field("instances", &self.instances)
            .field("starting", &self.starting)
            .field("cold", &self.cold.is_some())
            .field("held", &self.held)
            .finish()
    }
}

impl FunctionSlot {
    /// A slot for `function`, whose instances are reported to `index`.
    pub(super) fn new(function: Function, max_pending: u32, index: &Arc<WorkerFunctions>) -> Self {
        let state = SlotState {
            instances: InstanceSet::new(function.id.clone(), Arc::clone(index)),
            starting: 0,
            starting_on: Vec::new(),
            cold: None,
            held: 0,
        };
        FunctionSlot {
            function,
            pending: Arc::new(Semaphore::new(max_pending as usize)),
            state: Mutex::new(state),
            room: Notify::new(),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn config(&self) -> &FunctionConfig {
        &self.function.config
    }

    /// After a call ended (`held` read under the same lock): one held call
    /// may take its place.
    pub(super) fn slot_freed(&self, held: bool) {
        if held {
            self.room.notify_one();
        }
    }

    /// After instances came or went (`held` read under the same lock): every
    /// held call looks again (at a new instance, or at a cold start when none
    /// is left).
    pub(super) fn instances_changed(&self, held: bool) {
        if held {
            self.room.notify_waiters();
        }
    }
}

/// One call counted in [`SlotState::held`] while it waits; uncounted when
/// dropped (it got an instance, gave up, or its caller went away).
pub(super) struct Held<'a> {
    slot: &'a FunctionSlot,
}

impl<'a> Held<'a> {
    /// Counts a held call in `st` (the lock of `slot`).
    pub(super) fn new(slot: &'a FunctionSlot, st: &mut SlotState) -> Self {
        st.held += 1;
        Held { slot }
    }

    /// Uncounts the call in `st` (the lock of its slot, already held).
    pub(super) fn release(self, st: &mut SlotState) {
        st.held = st.held.saturating_sub(1);
        std::mem::forget(self);
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut st = self.slot.lock();
        st.held = st.held.saturating_sub(1);
    }
}

/// One call counted in flight on an instance; uncounted when dropped, so a
/// call whose caller went away (its future dropped mid-call) frees its slot
/// as surely as one that was answered.
pub(super) struct InFlight<'a> {
    slot: &'a FunctionSlot,
    instance: InstanceId,
}

impl<'a> InFlight<'a> {
    /// Takes over the count `begin_call` made for `instance`.
    pub(super) fn new(slot: &'a FunctionSlot, instance: InstanceId) -> Self {
        InFlight { slot, instance }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let held = {
            let mut st = self.slot.lock();
            st.instances.end_call(&self.instance, Instant::now());
            st.held > 0
        };
        self.slot.slot_freed(held);
    }
}
