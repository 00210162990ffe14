//! One child of a load-balancer node: its client, health and last `State`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use hyperfake_core::FunctionId;
use proto::auth::AuthChannel;
use proto::leaf::leaf_client::LeafClient;
use proto::leaf::{FunctionLoad, LeafStateRequest};
use tonic::Request;

use crate::failure::Failure;
use crate::health::{Health, HealthCell, HealthEvent, LATE_IN_A_ROW};

/// One child of a load-balancer node.
#[derive(Debug)]
pub struct Child {
    pub index: usize,
    pub address: String,
    pub(super) client: LeafClient<AuthChannel>,
    pub(super) health: HealthCell,
    /// The child's last `State`, by function (summed into the node's own).
    pub(super) loads: Mutex<HashMap<FunctionId, FunctionLoad>>,
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

    /// Asks the child's `State` (with its functions' loads if `loads`, kept
    /// for [`super::Balancer::state`]); its answer, late answer or failure
    /// moves the child's health.
    pub(super) async fn refresh(&self, within: Duration, loads: bool) {
        let mut request = Request::new(LeafStateRequest { omit_functions: !loads });
        request.set_timeout(within);
        match tokio::time::timeout(within, self.client.clone().state(request)).await {
            Ok(Ok(state)) => {
                if loads {
                    let loads = state
                        .into_inner()
                        .functions
                        .into_iter()
                        .filter_map(|l| Some((proto::convert::function_id(l.function_id.as_ref())?, l)))
                        .collect();
                    *self.loads.lock().unwrap_or_else(|e| e.into_inner()) = loads;
                }
                if !self.health.apply(HealthEvent::Up).0.in_rotation() {
                    tracing::info!(child = %self.address, "child in rotation");
                }
            }
            Ok(Err(status)) if Failure::of(&status) != Failure::Expired => {
                self.mark_down(&format!("State failed: {}", status.message()))
            }
            // Late, not failed: see `crate::health`.
            Ok(Err(_)) | Err(_) => match self.health.apply(HealthEvent::Late) {
                (before, after) if before.in_rotation() && !after.in_rotation() => {
                    tracing::warn!(child = %self.address, "child out of rotation: {LATE_IN_A_ROW} State answers in a row were late");
                }
                (before, after @ (Health::Late1 | Health::Late2)) if before != after => {
                    tracing::debug!(child = %self.address, health = ?after, "State answered late; still in rotation");
                }
                _ => {}
            },
        }
    }
}
