//! `leaf.Leaf` over a [`Scheduler`].

use std::sync::Arc;

use hyperfake_core::trailers;
use proto::common::CallResponse;
use proto::leaf::leaf_server::Leaf;
use proto::leaf::{
    CreateFunctionRequest, CreateFunctionResponse, LeafStateRequest, LeafStateResponse, ScheduleCallRequest,
    ScheduleCallResponse,
};
use tonic::{Request, Response, Status};

use crate::error::LeafError;
use crate::metadata;
use crate::scheduler::Scheduler;

#[derive(Debug, Clone)]
pub struct LeafService {
    scheduler: Arc<Scheduler>,
}

impl LeafService {
    pub fn new(scheduler: Arc<Scheduler>) -> Self {
        LeafService { scheduler }
    }
}

/// A fresh request id (the wire's ScheduleCallRequest carries none).
pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[tonic::async_trait]
impl Leaf for LeafService {
    async fn schedule_call(
        &self,
        request: Request<ScheduleCallRequest>,
    ) -> Result<Response<ScheduleCallResponse>, Status> {
        let deadline = proto::deadline::from_metadata(request.metadata());
        // The caller's id for the call, if it sent one, so records can be joined on it.
        let request_id = request
            .metadata()
            .get(trailers::REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|id| !id.is_empty())
            .map_or_else(new_request_id, str::to_string);
        let ScheduleCallRequest { function_id, data } = request.into_inner();
        proto::server::check_payload(data.len())?;
        let function = proto::convert::function_id(function_id.as_ref())
            .ok_or_else(|| LeafError::InvalidArgument("function_id: missing".into()))?;
        let forwarded = self.scheduler.call(&function, data, request_id.clone(), deadline).await?;
        let CallResponse { data, error, request_id: _, instance_id: _ } = forwarded.response;
        let mut response = Response::new(ScheduleCallResponse {
            data,
            error,
            request_id,
            instance_id: Some((&forwarded.instance_id).into()),
        });
        let md = response.metadata_mut();
        metadata::forward(&forwarded.metadata, md);
        proto::convert::put_nanos(md, trailers::LEAF_GOT_REQUEST_TIMESTAMP, forwarded.got_request_at);
        proto::convert::put_nanos(md, trailers::LEAF_SCHEDULED_CALL_TIMESTAMP, forwarded.scheduled_at);
        metadata::put(md, trailers::INSTANCE_ID, &forwarded.instance_id);
        metadata::put(md, trailers::WORKER_ADDRESS, &forwarded.worker_address);
        Ok(response)
    }

    async fn create_function(
        &self,
        request: Request<CreateFunctionRequest>,
    ) -> Result<Response<CreateFunctionResponse>, Status> {
        let CreateFunctionRequest { image_tag, config, function_id } = request.into_inner();
        let id = match proto::convert::function_id(function_id.as_ref()) {
            Some(existing) => self.scheduler.register(&existing).await?,
            None => {
                let image = proto::convert::image_tag(image_tag.as_ref()).map_err(LeafError::from)?;
                let config = proto::convert::function_config(config.as_ref()).map_err(LeafError::from)?;
                let id = self.scheduler.create(&image, &config).await?;
                tracing::info!(function = %id, %image, "function created");
                id
            }
        };
        Ok(Response::new(CreateFunctionResponse { function_id: Some((&id).into()) }))
    }

    async fn state(&self, request: Request<LeafStateRequest>) -> Result<Response<LeafStateResponse>, Status> {
        let functions = if request.get_ref().omit_functions { Vec::new() } else { self.scheduler.load() };
        Ok(Response::new(LeafStateResponse {
            functions,
            nodes_in_rotation: u32::try_from(self.scheduler.pool().in_rotation_count()).unwrap_or(u32::MAX),
        }))
    }
}
