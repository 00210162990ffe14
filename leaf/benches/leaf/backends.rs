//! What every chain ends in and the baselines: a bare tonic echo worker and
//! bare tonic pass-through proxies.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::Stream;
use proto::common::{CallRequest, CallResponse, InstanceId};
use proto::controller::controller_client::ControllerClient;
use proto::controller::controller_server::Controller;
use proto::controller::{
    FunctionState, InstanceState, MetricsRequest, MetricsUpdate, ResourceSample, ResourcesRequest,
    StartResponse, StateRequest, StateResponse, StatusRequest, StatusUpdate,
};
use proto::leaf::leaf_client::LeafClient;
use proto::leaf::leaf_server::Leaf;
use proto::leaf::{
    CreateFunctionRequest, CreateFunctionResponse, LeafStateRequest, LeafStateResponse, ScheduleCallRequest,
    ScheduleCallResponse,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::transport::server::Router;
use tonic::{Request, Response, Status};

// === The bare echo worker ===

/// A `controller.Controller` that does no work: `Call` echoes, `Start` names a
/// new instance, `State` lists them, `Status` stays open and silent.
#[derive(Default)]
pub(crate) struct EchoWorker {
    instances: Mutex<Vec<(String, String)>>,
    next: AtomicU64,
}

pub(crate) type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Controller for EchoWorker {
    async fn start(&self, r: Request<proto::common::FunctionId>) -> Result<Response<StartResponse>, Status> {
        let function = r.into_inner().id;
        let id = format!("echo-{}", self.next.fetch_add(1, Ordering::Relaxed));
        self.instances.lock().unwrap().push((function, id.clone()));
        Ok(Response::new(StartResponse {
            instance_id: Some(InstanceId { id }),
            instance_ip: String::new(),
            instance_name: String::new(),
        }))
    }

    async fn call(&self, r: Request<CallRequest>) -> Result<Response<CallResponse>, Status> {
        let CallRequest { request_id, instance_id, data, function_id: _ } = r.into_inner();
        Ok(Response::new(CallResponse { data, error: None, request_id, instance_id }))
    }

    async fn stop(&self, r: Request<InstanceId>) -> Result<Response<InstanceId>, Status> {
        let id = r.into_inner();
        self.instances.lock().unwrap().retain(|(_, i)| *i != id.id);
        Ok(Response::new(id))
    }

    type StatusStream = BoxStream<StatusUpdate>;
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<Self::StatusStream>, Status> {
        Ok(Response::new(Box::pin(futures::stream::pending())))
    }

    async fn metrics(&self, _: Request<MetricsRequest>) -> Result<Response<MetricsUpdate>, Status> {
        Ok(Response::new(MetricsUpdate::default()))
    }

    async fn state(&self, _: Request<StateRequest>) -> Result<Response<StateResponse>, Status> {
        let mut by_function: HashMap<String, Vec<InstanceState>> = HashMap::new();
        for (function, id) in self.instances.lock().unwrap().iter() {
            by_function.entry(function.clone()).or_default().push(InstanceState {
                instance_id: id.clone(),
                is_active: true,
                ..Default::default()
            });
        }
        let functions = by_function
            .into_iter()
            .map(|(function_id, running)| FunctionState { function_id, running, idle: vec![] })
            .collect();
        Ok(Response::new(StateResponse { functions }))
    }

    type ResourcesStream = BoxStream<ResourceSample>;
    async fn resources(
        &self,
        _: Request<ResourcesRequest>,
    ) -> Result<Response<Self::ResourcesStream>, Status> {
        Ok(Response::new(Box::pin(futures::stream::pending())))
    }
}

// === Bare pass-through proxies ===

/// Where a bare proxy forwards `ScheduleCall`.
#[derive(Clone)]
pub(crate) enum Upstream {
    /// A worker's `Call`, naming one instance.
    Worker(ControllerClient<Channel>, String),
    /// A leaf's `ScheduleCall`, as it is.
    Leaf(LeafClient<Channel>),
}

#[derive(Clone)]
pub(crate) struct Proxy(pub(crate) Upstream);

#[tonic::async_trait]
impl Leaf for Proxy {
    async fn schedule_call(
        &self,
        request: Request<ScheduleCallRequest>,
    ) -> Result<Response<ScheduleCallResponse>, Status> {
        match &self.0 {
            Upstream::Worker(client, instance) => {
                let ScheduleCallRequest { function_id, data } = request.into_inner();
                let call = CallRequest {
                    request_id: String::new(),
                    instance_id: Some(InstanceId { id: instance.clone() }),
                    data,
                    function_id,
                };
                let r = client.clone().call(call).await?.into_inner();
                Ok(Response::new(ScheduleCallResponse {
                    data: r.data,
                    error: r.error,
                    request_id: r.request_id,
                    instance_id: r.instance_id,
                }))
            }
            Upstream::Leaf(client) => client.clone().schedule_call(request.into_inner()).await,
        }
    }

    async fn create_function(
        &self,
        _: Request<CreateFunctionRequest>,
    ) -> Result<Response<CreateFunctionResponse>, Status> {
        Err(Status::unimplemented("a bare proxy forwards calls only"))
    }

    async fn state(&self, _: Request<LeafStateRequest>) -> Result<Response<LeafStateResponse>, Status> {
        Err(Status::unimplemented("a bare proxy forwards calls only"))
    }
}

/// Serves `router` (tonic's plain server, `TCP_NODELAY` on accepted sockets).
pub(crate) async fn serve(router: Router) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        router.serve_with_incoming(proto::net::incoming(listener)).await.unwrap();
    });
    (address, task)
}

pub(crate) async fn channel(address: &str) -> Channel {
    proto::endpoint(address).unwrap().tcp_nodelay(true).connect().await.unwrap()
}
