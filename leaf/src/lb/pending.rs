//! The bound on calls a load-balancer node has pending per function.

use std::collections::HashMap;
use std::sync::Mutex;

use hyperfake_core::FunctionId;

use crate::error::LeafError;

/// Calls this node has in flight, by function. A count per function rather
/// than a semaphore per function (as a leaf has): a node does not know which
/// function ids exist, so entries must go when their last call ends.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) limit: u32,
    pub(super) calls: Mutex<HashMap<FunctionId, u32>>,
}

/// One call counted in [`Pending`]; uncounted when dropped (the call ended,
/// or its caller went away).
pub(super) struct PendingCall<'a> {
    pending: &'a Pending,
    function: FunctionId,
}

impl Pending {
    pub(super) fn begin(&self, function: &FunctionId) -> Result<PendingCall<'_>, LeafError> {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let n = calls.entry(function.clone()).or_default();
        if *n >= self.limit {
            if *n == 0 {
                calls.remove(function);
            }
            return Err(LeafError::Overloaded { function: function.clone(), limit: self.limit });
        }
        *n += 1;
        Ok(PendingCall { pending: self, function: function.clone() })
    }

    pub(super) fn count(&self, function: &FunctionId) -> u32 {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).get(function).copied().unwrap_or(0)
    }
}

impl Drop for PendingCall<'_> {
    fn drop(&mut self) {
        let mut calls = self.pending.calls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = calls.get_mut(&self.function) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                calls.remove(&self.function);
            }
        }
    }
}
