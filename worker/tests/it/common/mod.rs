//! The worker's test context: a database, one Docker worker and a client,
//! built from `hyperfake-testkit`; everything is removed on drop.

#![allow(dead_code)]

use hyperfake_core::{FunctionConfig, FunctionId, ImageTag};
use hyperfake_testkit::{ContainerSweeper, TestDatabase, TestWorker};
use proto::common::{CallRequest, CallResponse};
use proto::controller::controller_client::ControllerClient;
use proto::controller::{StatusRequest, StatusUpdate};
use tonic::Streaming;
use tonic::transport::Channel;
use worker::WorkerSettings;

pub use hyperfake_testkit::{
    BFS, CRASH, ECHO, HELLO, SIMUL, SLEEP, THUMBNAILER, config, containers_labelled, eventually,
    metadata_u64, next_event, unique,
};

pub struct TestContext {
    pub worker_id: String,
    pub database: TestDatabase,
    pub worker: TestWorker,
    pub client: ControllerClient<Channel>,
    // Declared last so it runs after the worker has stopped.
    pub sweeper: ContainerSweeper,
}

impl TestContext {
    pub async fn new() -> Self {
        Self::with_settings(|_| {}).await
    }

    /// A context whose worker settings `tweak` may change.
    pub async fn with_settings(tweak: impl FnOnce(&mut WorkerSettings)) -> Self {
        let sweeper = ContainerSweeper::new();
        let database = TestDatabase::start().await;
        let worker_id = format!("worker-{}", sweeper.test_id);
        let mut settings = WorkerSettings::new(&worker_id);
        tweak(&mut settings);
        let worker = TestWorker::docker(&sweeper, settings, database.client.clone()).await;
        let client = worker.client().await;
        TestContext { worker_id, database, worker, client, sweeper }
    }

    pub fn label(&self) -> String {
        self.sweeper.label()
    }

    pub async fn function(&self, image: &str, config: FunctionConfig) -> FunctionId {
        hyperfake_testkit::require_image(image);
        self.database.client.create(&ImageTag::from(image), &config).await.expect("create function").id
    }

    pub async fn start(&self, function: &FunctionId) -> String {
        let r = self.client.clone().start(proto::common::FunctionId::from(function)).await;
        r.unwrap_or_else(|s| {
            panic!("start {function}: {s:?}\n{}", hyperfake_testkit::container_logs(&self.label()))
        })
        .into_inner()
        .instance_id
        .unwrap()
        .id
    }

    pub async fn call(
        &self,
        function: &FunctionId,
        data: &[u8],
    ) -> Result<tonic::Response<CallResponse>, tonic::Status> {
        self.client.clone().call(call_request(function, data)).await
    }

    pub async fn subscribe(&self, node: &str) -> Streaming<StatusUpdate> {
        self.client.clone().status(StatusRequest { node_id: node.to_string() }).await.unwrap().into_inner()
    }

    /// Replaces the worker with a new one of the same id, like a process restart.
    /// With `graceful`, the old worker stops its instances first.
    pub async fn restart_worker(&mut self, graceful: bool) {
        if graceful {
            self.worker.worker.stop_all().await;
        }
        self.worker.kill().await;
        let settings = WorkerSettings::new(&self.worker_id);
        self.worker = TestWorker::docker(&self.sweeper, settings, self.database.client.clone()).await;
        self.client = self.worker.client().await;
    }
}

pub fn call_request(function: &FunctionId, data: &[u8]) -> CallRequest {
    CallRequest {
        request_id: unique("req"),
        instance_id: None,
        data: data.to_vec(),
        function_id: Some(function.into()),
    }
}
