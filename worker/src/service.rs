//! `controller.Controller` over a [`Worker`].

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use hyperfake_core::{defaults, trailers};
use proto::common::{CallRequest, CallResponse, FunctionId, InstanceId};
use proto::controller::controller_server::Controller;
use proto::controller::{
    ContainerSample, MetricsRequest, MetricsUpdate, ResourceSample, ResourcesRequest, StartResponse,
    StateRequest, StateResponse, StatusRequest,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::AsciiMetadataValue;
use tonic::{Request, Response, Status};

use crate::events::EventStream;
use crate::worker::Worker;

#[derive(Debug, Clone)]
pub struct ControllerService {
    worker: Arc<Worker>,
}

impl ControllerService {
    pub fn new(worker: Arc<Worker>) -> Self {
        ControllerService { worker }
    }
}

pub type ResourceStream = Pin<Box<dyn Stream<Item = Result<ResourceSample, Status>> + Send>>;

#[tonic::async_trait]
impl Controller for ControllerService {
    async fn start(&self, request: Request<FunctionId>) -> Result<Response<StartResponse>, Status> {
        let function_id = proto::convert::function_id(Some(request.get_ref()));
        let instance = self.worker.start(function_id).await?;
        Ok(Response::new(StartResponse {
            instance_id: Some((&instance.id).into()),
            instance_ip: instance.address.clone(),
            instance_name: instance.name.clone(),
        }))
    }

    async fn call(&self, request: Request<CallRequest>) -> Result<Response<CallResponse>, Status> {
        let deadline = proto::deadline::from_metadata(request.metadata());
        let request = request.into_inner();
        proto::server::check_payload(request.data.len())?;
        let request_id = request.request_id.clone();
        let result = self.worker.call(request, deadline).await?;
        let mut body = result.output.response;
        body.request_id = request_id;
        body.instance_id = Some((&result.instance_id).into());
        let mut response = Response::new(body);
        let md = response.metadata_mut();
        proto::convert::put_nanos(md, trailers::CALL_QUEUED_TIMESTAMP, result.queued_at);
        proto::convert::put_nanos(md, trailers::CALL_STARTED_TIMESTAMP, result.started_at);
        proto::convert::put_nanos(md, trailers::GOT_RESPONSE_TIMESTAMP, result.got_response_at);
        proto::convert::put_nanos(
            md,
            trailers::FUNCTION_PROCESSING_TIME,
            result.got_response_at.saturating_sub(result.started_at),
        );
        if let Some(handler) = result.output.handler_time {
            proto::convert::put_nanos(md, trailers::FUNCTION_HANDLER_TIME, handler);
        }
        if let Ok(id) = AsciiMetadataValue::try_from(result.instance_id.as_str()) {
            md.insert(trailers::INSTANCE_ID, id);
        }
        Ok(response)
    }

    async fn stop(&self, request: Request<InstanceId>) -> Result<Response<InstanceId>, Status> {
        let id = proto::convert::instance_id(Some(request.get_ref()));
        let stopped = self.worker.stop(id).await?;
        Ok(Response::new((&stopped).into()))
    }

    type StatusStream = EventStream;

    async fn status(&self, request: Request<StatusRequest>) -> Result<Response<Self::StatusStream>, Status> {
        let node = request.into_inner().node_id;
        if node.is_empty() {
            return Err(Status::invalid_argument("nodeID: missing (each subscriber needs a unique id)"));
        }
        Ok(Response::new(self.worker.events.subscribe(&node)))
    }

    async fn metrics(&self, _: Request<MetricsRequest>) -> Result<Response<MetricsUpdate>, Status> {
        let usage = self.worker.runtime.usage();
        let used_ram_percent = if usage.ram_total.0 == 0 {
            0.0
        } else {
            100.0 * usage.ram_used.0 as f64 / usage.ram_total.0 as f64
        };
        Ok(Response::new(MetricsUpdate {
            used_ram_percent,
            cpu_percent_percpu: usage.cpu_percent_per_core,
            cpu_cores_used: usage.cpu.0,
            ram_used_bytes: usage.ram_used.0,
            ram_total_bytes: usage.ram_total.0,
        }))
    }

    async fn state(&self, _: Request<StateRequest>) -> Result<Response<StateResponse>, Status> {
        Ok(Response::new(self.worker.state()))
    }

    type ResourcesStream = ResourceStream;

    async fn resources(
        &self,
        request: Request<ResourcesRequest>,
    ) -> Result<Response<ResourceStream>, Status> {
        let interval = match request.get_ref().interval_ms {
            0 => defaults::RESOURCE_SAMPLE_INTERVAL,
            ms => Duration::from_millis(u64::from(ms).max(10)),
        };
        let (tx, rx) = mpsc::channel(64);
        let mut closing = self.worker.closing();
        let worker = Arc::downgrade(&self.worker);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    // The worker is shutting down: end the stream.
                    _ = closing.wait_for(|closed| *closed) => return,
                }
                let Some(worker) = worker.upgrade() else { return };
                let sample = sample_resources(&worker).await;
                if tx.send(Ok(sample)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

async fn sample_resources(worker: &Worker) -> ResourceSample {
    let timestamp = hyperfake_core::time::now_unix();
    let mut containers = Vec::new();
    for instance in worker.instances.all() {
        if let Some(c) = worker.runtime.sample(&instance.handle).await {
            containers.push(ContainerSample {
                instance_id: Some((&instance.id).into()),
                function_id: Some((&instance.function_id).into()),
                cpu_usage_ns: c.cpu_usage.0,
                memory_bytes: c.memory.0,
            });
        }
    }
    let usage = worker.runtime.usage();
    // A host monitor without its first reading knows no total yet.
    let known = usage.ram_total.0 > 0;
    ResourceSample {
        timestamp_ns: timestamp.as_i64(),
        containers,
        worker_cpu_cores: known.then_some(usage.cpu.0),
        worker_ram_bytes: known.then_some(usage.ram_used.0),
    }
}
