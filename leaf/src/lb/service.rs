//! `leaf.Leaf` over a [`Balancer`].

use std::sync::Arc;

use hyperfake_core::trailers;
use proto::leaf::leaf_server::Leaf;
use proto::leaf::{
    CreateFunctionRequest, CreateFunctionResponse, LeafStateRequest, LeafStateResponse, ScheduleCallRequest,
    ScheduleCallResponse,
};
use tonic::{Request, Response, Status};

use super::Balancer;
use crate::error::LeafError;

/// `leaf.Leaf` over a [`Balancer`].
#[derive(Debug, Clone)]
pub struct BalancerService {
    balancer: Arc<Balancer>,
}

impl BalancerService {
    pub fn new(balancer: Arc<Balancer>) -> Self {
        BalancerService { balancer }
    }
}

#[tonic::async_trait]
impl Leaf for BalancerService {
    async fn schedule_call(
        &self,
        request: Request<ScheduleCallRequest>,
    ) -> Result<Response<ScheduleCallResponse>, Status> {
        let deadline = proto::deadline::from_metadata(request.metadata());
        let request_id = request.metadata().get(trailers::REQUEST_ID).cloned();
        let ScheduleCallRequest { function_id, data } = request.into_inner();
        let function = proto::convert::function_id(function_id.as_ref())
            .ok_or_else(|| LeafError::InvalidArgument("function_id: missing".into()))?;
        Ok(self.balancer.call(&function, data, deadline, request_id).await?)
    }

    async fn create_function(
        &self,
        request: Request<CreateFunctionRequest>,
    ) -> Result<Response<CreateFunctionResponse>, Status> {
        let deadline = proto::deadline::from_metadata(request.metadata());
        let id = self.balancer.create(request.into_inner(), deadline).await?;
        Ok(Response::new(CreateFunctionResponse { function_id: Some((&id).into()) }))
    }

    async fn state(&self, request: Request<LeafStateRequest>) -> Result<Response<LeafStateResponse>, Status> {
        Ok(Response::new(self.balancer.state(!request.get_ref().omit_functions).await))
    }
}
