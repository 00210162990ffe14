//! Forwarding one call: an instance from [`acquire`](super::acquire), the
//! call to its worker within the caller's deadline, and a retry on another
//! instance when it failed before reaching a function.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hyperfake_core::FunctionId;
use hyperfake_core::time::now_unix;
use proto::common::CallRequest;

use super::slot::InFlight;
use super::{Forwarded, Scheduler};
use crate::error::LeafError;
use crate::failure::Failure;

impl Scheduler {
    /// Forwards one call to an instance of `function_id`, starting or choosing
    /// one. `deadline` is the caller's remaining time.
    pub async fn call(
        self: &Arc<Self>,
        function_id: &FunctionId,
        data: Vec<u8>,
        request_id: String,
        deadline: Option<Duration>,
    ) -> Result<Forwarded, LeafError> {
        let got_request_at = now_unix();
        let expires = deadline.map(|d| Instant::now() + d);
        let slot = self.slot(function_id).await?;
        let _permit = Arc::clone(&slot.pending).try_acquire_owned().map_err(|_| LeafError::Overloaded {
            function: function_id.clone(),
            limit: self.settings.max_pending_calls,
        })?;
        let mut data = data;
        let mut excluded = HashSet::new();
        let mut attempt = 0;
        loop {
            let (instance, worker) = self.acquire(&slot, &excluded, expires, deadline).await?;
            let in_flight = InFlight::new(&slot, instance.clone());
            let scheduled_at = now_unix();
            let handle = Arc::clone(self.pool.get(worker));
            // Only the last attempt may take the payload; earlier ones copy it.
            let payload =
                if attempt < self.settings.call_retries { data.clone() } else { std::mem::take(&mut data) };
            let request = tonic::Request::new(CallRequest {
                request_id: request_id.clone(),
                instance_id: Some((&instance).into()),
                data: payload,
                function_id: Some(function_id.into()),
            });
            let result = match expires {
                None => handle.client().call(request).await,
                Some(expires) => {
                    let remaining = expires.saturating_duration_since(Instant::now());
                    crate::deadline::call_within(remaining, request, |r| {
                        let mut client = handle.client();
                        async move { client.call(r).await }
                    })
                    .await
                }
            };
            drop(in_flight);
            let status = match result {
                Ok(response) => {
                    self.stats.calls_forwarded.fetch_add(1, Ordering::Relaxed);
                    let (metadata, response, _) = response.into_parts();
                    return Ok(Forwarded {
                        response,
                        metadata,
                        instance_id: instance,
                        worker_address: handle.address.clone(),
                        got_request_at,
                        scheduled_at,
                    });
                }
                Err(status) => status,
            };
            let failure = Failure::of(&status);
            match failure {
                Failure::Expired => return Err(LeafError::DeadlineExceeded(deadline.unwrap_or_default())),
                // The call may have reached the function: not retried.
                Failure::ConnectionLost => {
                    handle.mark_down(&format!("connection lost mid-call: {}", status.message()));
                    return Err(LeafError::ConnectionLost { node: handle.address.clone(), status });
                }
                Failure::Answered => return Err(LeafError::Downstream(status)),
                // Could not reach the worker or the instance, or the worker no
                // longer has it (or any of the function), or it refused the
                // call at its bound: try another.
                Failure::Unreachable
                | Failure::Unavailable
                | Failure::Gone
                | Failure::NotFound
                | Failure::Refused => {}
            }
            if failure.node_down() {
                handle.mark_down(&format!("call failed: {}", status.message()));
            }
            tracing::debug!(%instance, worker = %handle.address, "call did not reach a function: {}", status.message());
            // A refusal is the worker's answer for now: the instance stays.
            if failure != Failure::Refused {
                let held = {
                    let mut st = slot.lock();
                    st.instances.remove(&instance);
                    st.held > 0
                };
                slot.instances_changed(held);
            }
            excluded.insert(instance);
            attempt += 1;
            if attempt > self.settings.call_retries {
                return Err(LeafError::RetriesExhausted {
                    function: function_id.clone(),
                    attempts: attempt,
                    last: status,
                });
            }
            self.stats.calls_retried.fetch_add(1, Ordering::Relaxed);
        }
    }
}
