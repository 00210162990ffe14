//! A test context that owns everything it starts: a database service on a
//! SQLite file in a TempDir, a worker on 127.0.0.1:0 whose containers carry a
//! per-test label, and clients for both. Dropping it removes every container
//! with that label, even when the test failed.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use database::DatabaseClient;
use hyperfake_core::defaults::LABEL_TEST;
use hyperfake_core::{Bytes, CpuQuota, FunctionConfig, FunctionId, ImageTag};
use proto::common::{CallRequest, CallResponse};
use proto::controller::controller_client::ControllerClient;
use proto::controller::{StatusRequest, StatusUpdate};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::Streaming;
use tonic::transport::Channel;
use worker::{DockerRuntime, DockerSettings, FunctionCatalog, Worker, WorkerSettings};

pub const ECHO: &str = "hyperfaas-echo:latest";
pub const HELLO: &str = "hyperfaas-hello:latest";
pub const SLEEP: &str = "hyperfaas-sleep:latest";
pub const SIMUL: &str = "hyperfaas-simul:latest";
pub const CRASH: &str = "hyperfaas-crash:latest";
pub const BFS: &str = "hyperfaas-bfs:latest";
pub const THUMBNAILER: &str = "hyperfaas-thumbnailer:latest";

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

pub fn config(
    memory_mib: u64,
    cpu: Option<(u64, u64)>,
    timeout_s: u64,
    max_concurrency: u32,
) -> FunctionConfig {
    FunctionConfig {
        memory: Bytes::mib(memory_mib),
        cpu: cpu.map(|(period_us, quota_us)| CpuQuota { period_us, quota_us }),
        idle_timeout: (timeout_s > 0).then(|| Duration::from_secs(timeout_s)),
        max_concurrency: (max_concurrency > 0).then_some(max_concurrency),
    }
}

/// Fails loudly when the function images have not been built.
pub fn require_image(image: &str) {
    let out =
        std::process::Command::new("docker").args(["image", "inspect", "--format", "ok", image]).output();
    match out {
        Ok(o) if o.status.success() => {}
        _ => panic!("image {image} is missing: run scripts/build-function-images.sh first"),
    }
}

/// Names of this test's containers (running or not).
pub fn containers_labelled(label: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label={label}")])
        .output()
        .expect("docker CLI");
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

pub struct TestContext {
    pub test_id: String,
    pub worker_id: String,
    _dir: tempfile::TempDir,
    pub db_path: std::path::PathBuf,
    pub database: DatabaseClient,
    database_task: JoinHandle<()>,
    pub worker: Arc<Worker>,
    worker_task: Option<JoinHandle<()>>,
    pub worker_address: String,
    pub client: ControllerClient<Channel>,
}

impl TestContext {
    pub async fn new() -> Self {
        Self::with_settings(|_| {}).await
    }

    /// A context whose worker settings `tweak` may change.
    pub async fn with_settings(tweak: impl FnOnce(&mut WorkerSettings)) -> Self {
        let test_id = unique("t");
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("functions.db");
        let (database, database_task) = start_database(&db_path).await;
        let worker_id = format!("worker-{test_id}");
        let mut settings = WorkerSettings::new(&worker_id);
        tweak(&mut settings);
        let (worker, worker_task, worker_address) = start_worker(&test_id, settings, database.clone()).await;
        let client = connect(&worker_address).await;
        TestContext {
            test_id,
            worker_id,
            _dir: dir,
            db_path,
            database,
            database_task,
            worker,
            worker_task: Some(worker_task),
            worker_address,
            client,
        }
    }

    pub fn label(&self) -> String {
        format!("{LABEL_TEST}={}", self.test_id)
    }

    pub async fn function(&self, image: &str, config: FunctionConfig) -> FunctionId {
        require_image(image);
        self.database.create(&ImageTag::from(image), &config).await.expect("create function").id
    }

    pub async fn start(&self, function: &FunctionId) -> String {
        let r = self.client.clone().start(proto::common::FunctionId::from(function)).await;
        r.unwrap_or_else(|s| panic!("start {function}: {s:?}\n{}", self.debug_dump()))
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
            self.worker.stop_all().await;
        }
        if let Some(task) = self.worker_task.take() {
            task.abort();
            let _ = task.await;
        }
        let settings = WorkerSettings::new(&self.worker_id);
        let (worker, task, address) = start_worker(&self.test_id, settings, self.database.clone()).await;
        self.worker = worker;
        self.worker_task = Some(task);
        self.worker_address = address;
        self.client = connect(&self.worker_address).await;
    }

    /// Container logs and state, printed when a test fails.
    pub fn debug_dump(&self) -> String {
        let mut out = String::new();
        for id in containers_labelled(&self.label()) {
            let logs = std::process::Command::new("docker").args(["logs", "--tail", "30", &id]).output();
            if let Ok(l) = logs {
                out.push_str(&format!(
                    "--- container {id}\n{}{}\n",
                    String::from_utf8_lossy(&l.stdout),
                    String::from_utf8_lossy(&l.stderr)
                ));
            }
        }
        out
    }
}

impl Drop for TestContext {
    fn drop(&mut self) {
        if let Some(t) = self.worker_task.take() {
            t.abort();
        }
        self.database_task.abort();
        let ids = containers_labelled(&self.label());
        if !ids.is_empty() {
            let _ = std::process::Command::new("docker").arg("rm").arg("-f").args(&ids).output();
        }
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

pub async fn connect(address: &str) -> ControllerClient<Channel> {
    let channel = Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap();
    ControllerClient::new(channel)
        .max_decoding_message_size(hyperfake_core::defaults::MAX_MESSAGE_SIZE)
        // Larger than the worker accepts, so tests can see the worker refuse.
        .max_encoding_message_size(4 * hyperfake_core::defaults::MAX_MESSAGE_SIZE)
}

async fn start_database(path: &std::path::Path) -> (DatabaseClient, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let store = database::Store::open(path).unwrap();
    let task = tokio::spawn(async move {
        database::serve(listener, store, std::future::pending()).await.unwrap();
    });
    (DatabaseClient::connect(&address).unwrap(), task)
}

async fn start_worker(
    test_id: &str,
    settings: WorkerSettings,
    database: DatabaseClient,
) -> (Arc<Worker>, JoinHandle<()>, String) {
    let mut docker = DockerSettings::new(&settings.worker_id);
    docker.extra_labels.insert(LABEL_TEST.to_string(), test_id.to_string());
    let runtime =
        DockerRuntime::connect(docker).await.expect("Docker engine must be reachable for worker tests");
    runtime.remove_leftovers().await.unwrap();
    let worker = Worker::new(settings, Arc::new(runtime), FunctionCatalog::new(database));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let w = Arc::clone(&worker);
    let task = tokio::spawn(async move {
        worker::serve(w, listener, std::future::pending()).await.unwrap();
    });
    (worker, task, address)
}

/// Waits for the next event matching `pred`, failing after `within`.
pub async fn next_event(
    stream: &mut Streaming<StatusUpdate>,
    within: Duration,
    pred: impl Fn(&StatusUpdate) -> bool,
) -> StatusUpdate {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let next = tokio::time::timeout_at(deadline, stream.message()).await;
        match next {
            Ok(Ok(Some(e))) if pred(&e) => return e,
            Ok(Ok(Some(_))) => continue,
            Ok(other) => panic!("status stream ended: {other:?}"),
            Err(_) => panic!("no matching event within {within:?}"),
        }
    }
}

/// Polls `check` until it holds or `within` passes.
pub async fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !check() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn metadata_u64(response: &tonic::Response<CallResponse>, key: &str) -> u64 {
    response
        .metadata()
        .get(key)
        .unwrap_or_else(|| panic!("metadata {key} missing"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}
