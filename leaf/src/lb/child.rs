//! One child of a load-balancer node: its client, health, last `State` and
//! the calls this node has in flight on it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use hyperfake_core::FunctionId;
use proto::auth::AuthChannel;
use proto::leaf::leaf_client::LeafClient;
use proto::leaf::{FunctionLoad, LeafStateRequest};
use tonic::Request;

use crate::health::{HealthCell, HealthEvent};

/// One child of a load-balancer node.
#[derive(Debug)]
pub struct Child {
    pub index: usize,
    pub address: String,
    pub(super) client: LeafClient<AuthChannel>,
    pub(super) health: HealthCell,
    /// The child's last `State`, by function.
    pub(super) loads: Mutex<HashMap<FunctionId, FunctionLoad>>,
    /// Calls this node has in flight on the child, by function.
    pub(super) in_flight: Mutex<HashMap<FunctionId, u32>>,
}

impl Child {
    pub fn in_rotation(&self) -> bool {
        self.health.get().in_rotation()
    }

    pub(super) fn mark_down(&self, why: &str) {
        if self.health.apply(HealthEvent::Failed).0.in_rotation() {
            tracing::warn!(child = %self.address, "child out of rotation: {why}");
        }
    }

    /// Calls the child can take for `function` before it has to scale up.
    pub(super) fn spare(&self, function: &FunctionId) -> u32 {
        let loads = self.loads.lock().unwrap_or_else(|e| e.into_inner());
        let Some(load) = loads.get(function).filter(|l| l.ready_instances > 0) else { return 0 };
        let ours =
            self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).get(function).copied().unwrap_or(0);
        load.capacity.saturating_sub(load.in_flight_calls.max(ours))
    }

    /// Counts a call of `function` on this child until the guard is dropped
    /// (answered, or its caller went away mid-call).
    pub(super) fn begin<'a>(&'a self, function: &'a FunctionId) -> ChildCall<'a> {
        *self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).entry(function.clone()).or_default() += 1;
        ChildCall { child: self, function }
    }

    fn end(&self, function: &FunctionId) {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(function) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(function);
            }
        }
    }

    pub(super) async fn refresh(&self, within: Duration) {
        let mut request = Request::new(LeafStateRequest {});
        request.set_timeout(within);
        match tokio::time::timeout(within, self.client.clone().state(request)).await {
            Ok(Ok(state)) => {
                let loads = state
                    .into_inner()
                    .functions
                    .into_iter()
                    .filter_map(|l| Some((proto::convert::function_id(l.function_id.as_ref())?, l)))
                    .collect();
                *self.loads.lock().unwrap_or_else(|e| e.into_inner()) = loads;
                if !self.health.apply(HealthEvent::Up).0.in_rotation() {
                    tracing::info!(child = %self.address, "child in rotation");
                }
            }
            Ok(Err(status)) => self.mark_down(&format!("State failed: {}", status.message())),
            Err(_) => self.mark_down("State timed out"),
        }
    }
}

/// One call counted on a [`Child`]; uncounted when dropped.
pub(super) struct ChildCall<'a> {
    child: &'a Child,
    function: &'a FunctionId,
}

impl Drop for ChildCall<'_> {
    fn drop(&mut self) {
        self.child.end(self.function);
    }
}
