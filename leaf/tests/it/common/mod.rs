//! The leaf's test context: a database, Docker workers and a leaf over them,
//! built from `hyperfake-testkit`; everything is removed on drop.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hyperfake_core::defaults::LABEL_TEST;
use hyperfake_core::{FunctionConfig, FunctionId};
use hyperfake_testkit::{ContainerSweeper, TestDatabase, TestLeaf, TestWorker};
use leaf::NodeSettings;
use proto::leaf::leaf_client::LeafClient;
use proto::leaf::{CreateFunctionRequest, ScheduleCallRequest, ScheduleCallResponse};
use tonic::transport::Channel;
use worker::WorkerSettings;

pub use hyperfake_testkit::{
    ECHO, HELLO, SIMUL, config, container_logs, eventually, leaf_settings, metadata_str, metadata_u64, unique,
};

pub struct TestContext {
    pub leaf: TestLeaf,
    pub client: LeafClient<Channel>,
    pub workers: Vec<TestWorker>,
    pub database: TestDatabase,
    // Declared last so it runs after the workers have stopped.
    pub sweeper: ContainerSweeper,
}

impl TestContext {
    /// One worker and a leaf with default (test) settings.
    pub async fn new() -> Self {
        Self::with(1, |_| {}).await
    }

    /// `workers` Docker workers and a leaf whose settings `tweak` may change.
    pub async fn with(workers: usize, tweak: impl FnOnce(&mut NodeSettings)) -> Self {
        let sweeper = ContainerSweeper::new();
        let database = TestDatabase::start().await;
        let mut started = Vec::new();
        for i in 0..workers {
            let settings = WorkerSettings::new(format!("w{i}-{}", sweeper.test_id));
            started.push(TestWorker::docker(&sweeper, settings, database.client.clone()).await);
        }
        let mut settings =
            leaf_settings(&database.address, started.iter().map(|w| w.address.clone()).collect());
        tweak(&mut settings);
        let leaf = TestLeaf::start(settings).await;
        let client = leaf.client().await;
        TestContext { leaf, client, workers: started, database, sweeper }
    }

    pub fn label(&self) -> String {
        self.sweeper.label()
    }

    /// Creates a function through the leaf.
    pub async fn function(&self, image: &str, config: FunctionConfig) -> FunctionId {
        create(&self.client, image, config).await
    }

    pub async fn call(
        &self,
        function: &FunctionId,
        data: &[u8],
    ) -> Result<tonic::Response<ScheduleCallResponse>, tonic::Status> {
        call(&self.client, function, data).await
    }

    /// Live instances of `function` on worker `i`, as the worker itself lists them.
    pub fn worker_instances(&self, i: usize, function: &FunctionId) -> Vec<String> {
        self.workers[i]
            .worker
            .instances
            .all()
            .into_iter()
            .filter(|inst| &inst.function_id == function)
            .map(|inst| inst.id.to_string())
            .collect()
    }

    pub fn all_worker_instances(&self, function: &FunctionId) -> usize {
        (0..self.workers.len()).map(|i| self.worker_instances(i, function).len()).sum()
    }

    /// What to print when a test fails.
    pub fn debug(&self) -> String {
        container_logs(&self.label())
    }
}

pub async fn create(client: &LeafClient<Channel>, image: &str, config: FunctionConfig) -> FunctionId {
    hyperfake_testkit::require_image(image);
    let request = CreateFunctionRequest {
        image_tag: Some(proto::common::ImageTag { tag: image.to_string() }),
        config: Some((&config).into()),
        function_id: None,
    };
    let response = client.clone().create_function(request).await.expect("CreateFunction");
    FunctionId::new(response.into_inner().function_id.expect("an id").id)
}

pub async fn call(
    client: &LeafClient<Channel>,
    function: &FunctionId,
    data: &[u8],
) -> Result<tonic::Response<ScheduleCallResponse>, tonic::Status> {
    client
        .clone()
        .schedule_call(ScheduleCallRequest { function_id: Some(function.into()), data: data.to_vec() })
        .await
}

/// A worker run as its own process (the `worker` binary), so a test can
/// SIGKILL it: connections reset, nothing is cleaned up, like a crashed host.
pub struct WorkerProcess {
    pub address: String,
    child: Child,
}

impl WorkerProcess {
    pub fn start(sweeper: &ContainerSweeper, database: &str) -> Self {
        let binary = worker_binary();
        let mut child = Command::new(&binary)
            .args(["--address", "127.0.0.1:0", "--database", database])
            .args(["--worker-id", &unique("wp")])
            .args(["--label", &format!("{LABEL_TEST}={}", sweeper.test_id)])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", binary.display()));
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        // Either a JSON announcement ({"worker_id":..,"address":..}) or a
        // line ending in the address.
        let address = serde_json::from_str::<serde_json::Value>(line.trim())
            .ok()
            .and_then(|v| v.get("address").and_then(|a| a.as_str()).map(str::to_string))
            .or_else(|| line.trim().rsplit(' ').next().filter(|a| a.contains(':')).map(str::to_string))
            .unwrap_or_else(|| panic!("worker printed {line:?} instead of its address"));
        WorkerProcess { address, child }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `worker` binary next to this test binary (built by `cargo build -p worker`).
fn worker_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let binary = dir.join("worker");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build -p worker` first (the kill test runs workers as processes)",
        binary.display()
    );
    binary
}

pub const SECOND: Duration = Duration::from_secs(1);
