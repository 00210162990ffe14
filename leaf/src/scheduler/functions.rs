//! The leaf's functions: loaded from the database at start, created or
//! registered through the API, looked up on a call; and what each can serve.

use std::sync::Arc;

use database::Function;
use hyperfake_core::{FunctionConfig, FunctionId, ImageTag, InstanceId};
use proto::leaf::FunctionLoad;

use super::{FunctionSlot, Scheduler};
use crate::error::LeafError;

impl Scheduler {
    /// Loads every function from the database (at start: a restart forgets
    /// nothing). Stored functions that no longer validate are left out and
    /// logged, so that they cannot keep the leaf from starting.
    pub async fn load_functions(&self) -> Result<usize, LeafError> {
        let listing = self.database.listing().await.map_err(LeafError::Database)?;
        if listing.skipped > 0 {
            tracing::warn!(skipped = listing.skipped, "left out stored functions that do not validate");
        }
        let n = listing.functions.len();
        for f in listing.functions {
            self.insert(f);
        }
        Ok(n)
    }

    /// Stores a new function in the database and registers it.
    pub async fn create(&self, image: &ImageTag, config: &FunctionConfig) -> Result<FunctionId, LeafError> {
        let function = self.database.create(image, config).await.map_err(LeafError::Database)?;
        let id = function.id.clone();
        self.insert(function);
        Ok(id)
    }

    /// Registers a function that already exists in the database.
    pub async fn register(&self, id: &FunctionId) -> Result<FunctionId, LeafError> {
        self.slot(id).await.map(|s| s.function.id.clone())
    }

    pub(super) fn insert(&self, function: Function) -> Arc<FunctionSlot> {
        let mut functions = self.functions.lock().unwrap_or_else(|e| e.into_inner());
        let slot = functions.entry(function.id.clone()).or_insert_with(|| {
            Arc::new(FunctionSlot::new(function, self.settings.max_pending_calls, &self.worker_functions))
        });
        Arc::clone(slot)
    }

    pub(super) fn slots(&self) -> Vec<Arc<FunctionSlot>> {
        self.functions.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    pub(super) fn known(&self, id: &FunctionId) -> Option<Arc<FunctionSlot>> {
        self.functions.lock().unwrap_or_else(|e| e.into_inner()).get(id).cloned()
    }

    /// The function's slot; a function unknown here (created through another
    /// leaf) is looked up in the database.
    pub(super) async fn slot(&self, id: &FunctionId) -> Result<Arc<FunctionSlot>, LeafError> {
        if let Some(slot) = self.known(id) {
            return Ok(slot);
        }
        match self.database.get(id).await {
            Ok(function) => Ok(self.insert(function)),
            Err(e) if e.is_not_found() => Err(LeafError::UnknownFunction(id.clone())),
            Err(e) => Err(LeafError::Database(e)),
        }
    }

    /// Instances of `id` this leaf believes in (any worker).
    pub fn instances_of(&self, id: &FunctionId) -> Vec<(InstanceId, String)> {
        self.known(id)
            .map(|slot| {
                slot.lock()
                    .instances
                    .iter()
                    .map(|(i, p)| (i.clone(), self.pool.get(p.worker).address.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What each function can serve now (the leaf's `State`).
    pub fn load(&self) -> Vec<FunctionLoad> {
        self.slots()
            .into_iter()
            .map(|slot| {
                let st = slot.lock();
                let ready =
                    u32::try_from(st.instances.ready(|w| self.pool.in_rotation(w))).unwrap_or(u32::MAX);
                FunctionLoad {
                    function_id: Some((&slot.function.id).into()),
                    ready_instances: ready,
                    starting_instances: st.starting,
                    // Held calls count: a load-balancer node sees no spare capacity.
                    in_flight_calls: st.instances.in_flight() + st.held,
                    capacity: ready.saturating_mul(self.per_instance(slot.config())),
                }
            })
            .collect()
    }
}
