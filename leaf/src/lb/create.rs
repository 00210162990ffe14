//! `CreateFunction` through a load-balancer node: created at one child,
//! registered at every other, within the node's create timeout.

use std::time::{Duration, Instant};

use hyperfake_core::FunctionId;
use proto::leaf::{CreateFunctionRequest, CreateFunctionResponse};
use tonic::{Request, Response, Status};

use super::{Balancer, Child};
use crate::error::LeafError;
use crate::failure::Failure;

impl Balancer {
    /// Creates at one child, then registers the id at all others, within
    /// `deadline` or the node's create timeout, whichever is shorter.
    pub async fn create(
        &self,
        request: CreateFunctionRequest,
        deadline: Option<Duration>,
    ) -> Result<FunctionId, LeafError> {
        let budget = deadline.map_or(self.limits.create_timeout, |d| d.min(self.limits.create_timeout));
        let expires = Instant::now() + budget;
        if let Some(id) = proto::convert::function_id(request.function_id.as_ref()) {
            return self.register_everywhere(&id, None, expires).await.map(|()| id);
        }
        // Refuse malformed requests here, with the same messages a leaf gives.
        proto::convert::image_tag(request.image_tag.as_ref())?;
        proto::convert::function_config(request.config.as_ref())?;
        let mut order: Vec<_> = self.children.iter().collect();
        order.sort_by_key(|c| (!c.in_rotation(), c.index));
        let mut last = None;
        for child in order {
            let status = match create_at(child, request.clone(), expires).await {
                Ok(response) => {
                    let id = proto::convert::function_id(response.get_ref().function_id.as_ref())
                        .ok_or_else(|| {
                            LeafError::Downstream(Status::internal("child returned no function id"))
                        })?;
                    self.register_everywhere(&id, Some(child.index), expires).await?;
                    return Ok(id);
                }
                Err(status) => status,
            };
            match Failure::of(&status) {
                // The child may have stored the function: trying another
                // would create a second one, so the caller hears it.
                Failure::Expired => {
                    return Err(LeafError::Downstream(Status::deadline_exceeded(format!(
                        "CreateFunction at child {} did not answer within {budget:?}",
                        child.address
                    ))));
                }
                Failure::Unreachable | Failure::Unavailable => {
                    child.mark_down(&format!("CreateFunction failed: {}", status.message()));
                    last = Some(status);
                }
                Failure::ConnectionLost
                | Failure::Gone
                | Failure::NotFound
                | Failure::Refused
                | Failure::Answered => {
                    return Err(LeafError::Downstream(status));
                }
            }
        }
        Err(last.map_or(LeafError::NoChild, LeafError::Downstream))
    }

    async fn register_everywhere(
        &self,
        id: &FunctionId,
        skip: Option<usize>,
        expires: Instant,
    ) -> Result<(), LeafError> {
        let request = CreateFunctionRequest { function_id: Some(id.into()), ..Default::default() };
        let results =
            futures::future::join_all(self.children.iter().filter(|c| Some(c.index) != skip).map(|c| {
                let request = request.clone();
                async move { (c, create_at(c, request, expires).await) }
            }))
            .await;
        let mut registered = usize::from(skip.is_some());
        for (child, result) in results {
            match result {
                Ok(_) => registered += 1,
                // NOT_FOUND means the function does not exist: the caller must hear it.
                Err(status) if Failure::of(&status) == Failure::NotFound => {
                    return Err(LeafError::Downstream(status));
                }
                Err(status) => {
                    tracing::warn!(child = %child.address, function = %id, "registering failed (it will look the function up on its first call): {}", status.message());
                }
            }
        }
        if registered == 0 { Err(LeafError::NoChild) } else { Ok(()) }
    }
}

/// `CreateFunction` at `child`, ending with DEADLINE_EXCEEDED at `expires`
/// (the child is told how long it has).
async fn create_at(
    child: &Child,
    request: CreateFunctionRequest,
    expires: Instant,
) -> Result<Response<CreateFunctionResponse>, Status> {
    let remaining = expires.saturating_duration_since(Instant::now());
    crate::deadline::call_within(remaining, Request::new(request), |r| {
        let mut client = child.client.clone();
        async move { client.create_function(r).await }
    })
    .await
}
