//! The pieces integration tests are built from. Each owns what it starts and
//! cleans up on drop, even when the test fails:
//!
//! - [`TestDatabase`]: the database service on a SQLite file in a TempDir, on 127.0.0.1:0;
//! - [`TestWorker`]: a real worker (Docker runtime) on 127.0.0.1:0, its containers
//!   labelled with the test id;
//! - [`ContainerSweeper`]: removes every container carrying a test's label;
//! - [`TestLeaf`]: a leaf or load-balancer node on 127.0.0.1:0;
//! - [`contract`]: the worker's contract, one suite run against the real and
//!   the fake worker;
//! - [`bench`]: the build profile, machine and load a benchmark ran with;
//! - [`sockets`]: this process's TCP sockets and their options (TCP_NODELAY).

pub mod bench;
pub mod contract;
pub mod sockets;

use std::sync::Arc;
use std::time::Duration;

use database::DatabaseClient;
use hyperfake_core::defaults::{LABEL_TEST, MAX_MESSAGE_SIZE};
use hyperfake_core::{Bytes, CpuQuota, FunctionConfig};
use proto::controller::StatusUpdate;
use proto::controller::controller_client::ControllerClient;
use proto::leaf::leaf_client::LeafClient;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::Streaming;
use tonic::transport::Channel;
use worker::{DockerRuntime, DockerSettings, FunctionCatalog, Runtime, ServeOptions, Worker, WorkerSettings};

pub const ECHO: &str = "hyperfaas-echo:latest";
pub const HELLO: &str = "hyperfaas-hello:latest";
pub const SLEEP: &str = "hyperfaas-sleep:latest";
pub const SIMUL: &str = "hyperfaas-simul:latest";
pub const CRASH: &str = "hyperfaas-crash:latest";
pub const BFS: &str = "hyperfaas-bfs:latest";
pub const THUMBNAILER: &str = "hyperfaas-thumbnailer:latest";

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

/// A function config from plain numbers (0 = unlimited / never).
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

/// Fails loudly when a function image has not been built.
pub fn require_image(image: &str) {
    let out =
        std::process::Command::new("docker").args(["image", "inspect", "--format", "ok", image]).output();
    match out {
        Ok(o) if o.status.success() => {}
        _ => panic!("image {image} is missing: run scripts/build-function-images.sh first"),
    }
}

/// Ids of the containers (running or not) carrying `label` (`key=value`).
pub fn containers_labelled(label: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label={label}")])
        .output()
        .expect("the docker CLI must be installed for integration tests");
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

/// Last log lines of every container carrying `label`, for failure messages.
pub fn container_logs(label: &str) -> String {
    let mut out = String::new();
    for id in containers_labelled(label) {
        if let Ok(l) = std::process::Command::new("docker").args(["logs", "--tail", "30", &id]).output() {
            out.push_str(&format!(
                "--- container {id}\n{}{}\n",
                String::from_utf8_lossy(&l.stdout),
                String::from_utf8_lossy(&l.stderr)
            ));
        }
    }
    out
}

/// Removes every container labelled `hyperfake.test=<test_id>` when dropped.
#[derive(Debug)]
pub struct ContainerSweeper {
    pub test_id: String,
}

impl ContainerSweeper {
    pub fn new() -> Self {
        ContainerSweeper { test_id: unique("t") }
    }

    pub fn label(&self) -> String {
        format!("{LABEL_TEST}={}", self.test_id)
    }

    pub fn containers(&self) -> Vec<String> {
        containers_labelled(&self.label())
    }
}

impl Default for ContainerSweeper {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ContainerSweeper {
    fn drop(&mut self) {
        let ids = self.containers();
        if !ids.is_empty() {
            let _ = std::process::Command::new("docker").arg("rm").arg("-f").args(&ids).output();
        }
    }
}

/// The database service on a fresh SQLite file.
#[derive(Debug)]
pub struct TestDatabase {
    pub client: DatabaseClient,
    pub address: String,
    pub path: std::path::PathBuf,
    task: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl TestDatabase {
    pub async fn start() -> Self {
        Self::start_with_token(None).await
    }

    /// A database requiring the shared `token`; `client` sends it.
    pub async fn start_with_token(token: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("functions.db");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let store = database::Store::open(&path).unwrap();
        let auth = proto::auth::RequireToken::new(token).unwrap();
        let task = tokio::spawn(async move {
            database::serve_with(listener, store, std::future::pending(), auth).await.unwrap();
        });
        let client = DatabaseClient::connect(&address).unwrap().with_token(token).unwrap();
        TestDatabase { client, address, path, task, _dir: dir }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A worker served on 127.0.0.1:0 until dropped (or [`TestWorker::kill`]ed).
#[derive(Debug)]
pub struct TestWorker {
    pub worker: Arc<Worker>,
    pub address: String,
    task: Option<JoinHandle<()>>,
}

impl TestWorker {
    /// A worker on the real Docker engine whose containers carry `sweeper`'s label.
    pub async fn docker(
        sweeper: &ContainerSweeper,
        settings: WorkerSettings,
        database: DatabaseClient,
    ) -> Self {
        Self::docker_with(sweeper, settings, database, ServeOptions::default()).await
    }

    /// [`docker`](Self::docker), served with `options` (a shared token).
    pub async fn docker_with(
        sweeper: &ContainerSweeper,
        settings: WorkerSettings,
        database: DatabaseClient,
        options: ServeOptions,
    ) -> Self {
        let mut docker = DockerSettings::new(&settings.worker_id);
        docker.extra_labels.insert(LABEL_TEST.to_string(), sweeper.test_id.clone());
        let runtime = DockerRuntime::connect(docker)
            .await
            .expect("the Docker engine must be reachable for these tests");
        runtime.remove_leftovers().await.unwrap();
        Self::serve(settings, Arc::new(runtime), database, options).await
    }

    /// A worker over any runtime (the fake worker passes its simulated one).
    pub async fn with_runtime(
        settings: WorkerSettings,
        runtime: Arc<dyn Runtime>,
        database: DatabaseClient,
    ) -> Self {
        Self::serve(settings, runtime, database, ServeOptions::default()).await
    }

    async fn serve(
        settings: WorkerSettings,
        runtime: Arc<dyn Runtime>,
        database: DatabaseClient,
        options: ServeOptions,
    ) -> Self {
        let worker = Worker::new(settings, runtime, FunctionCatalog::new(database));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let served = Arc::clone(&worker);
        let task = tokio::spawn(async move {
            worker::serve_with(served, listener, std::future::pending(), options).await.unwrap();
        });
        TestWorker { worker, address, task: Some(task) }
    }

    pub async fn client(&self) -> ControllerClient<Channel> {
        connect_controller(&self.address).await
    }

    /// Stops serving abruptly, like a killed process: instances are left behind.
    pub async fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

pub async fn connect_controller(address: &str) -> ControllerClient<Channel> {
    let channel = proto::endpoint(address).unwrap().connect().await.unwrap();
    ControllerClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        // Larger than services accept, so tests can see them refuse.
        .max_encoding_message_size(4 * MAX_MESSAGE_SIZE)
}

/// Waits for the next event matching `pred`; panics after `within`.
pub async fn next_event(
    stream: &mut Streaming<StatusUpdate>,
    within: Duration,
    pred: impl Fn(&StatusUpdate) -> bool,
) -> StatusUpdate {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.message()).await {
            Ok(Ok(Some(e))) if pred(&e) => return e,
            Ok(Ok(Some(_))) => continue,
            Ok(other) => panic!("status stream ended: {other:?}"),
            Err(_) => panic!("no matching event within {within:?}"),
        }
    }
}

/// Polls `check` until it holds; panics naming `what` after `within`.
pub async fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !check() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A response metadata value as text; panics if missing or not ASCII.
pub fn metadata_str<T>(response: &tonic::Response<T>, key: &str) -> String {
    response
        .metadata()
        .get(key)
        .unwrap_or_else(|| panic!("metadata {key} missing"))
        .to_str()
        .unwrap()
        .to_string()
}

/// A numeric response metadata value; panics if missing or not a number.
pub fn metadata_u64<T>(response: &tonic::Response<T>, key: &str) -> u64 {
    let text = metadata_str(response, key);
    text.parse().unwrap_or_else(|e| panic!("metadata {key} = {text:?}: {e}"))
}

/// A leaf or load-balancer node served on 127.0.0.1:0 until dropped (or
/// [`TestLeaf::kill`]ed). `settings.address` is ignored.
#[derive(Debug)]
pub struct TestLeaf {
    pub node: Arc<leaf::Node>,
    pub address: String,
    task: Option<JoinHandle<()>>,
}

/// Leaf settings for tests: the defaults, but reconciling and reconnecting
/// quickly so tests see the effects within a second.
pub fn leaf_settings(database: &str, workers: Vec<String>) -> leaf::NodeSettings {
    let mut settings = leaf::NodeSettings::leaf(database, workers);
    settings.pool.reconcile_interval = Duration::from_millis(500);
    settings.pool.reconnect_min = Duration::from_millis(50);
    settings.pool.reconnect_max = Duration::from_millis(500);
    settings.pool.state_interval = Duration::from_millis(100);
    settings.database_wait = Duration::from_secs(5);
    settings
}

impl TestLeaf {
    pub async fn start(settings: leaf::NodeSettings) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let node = Arc::new(leaf::Node::start(&settings).await.expect("starting the leaf"));
        let served = Arc::clone(&node);
        let task = tokio::spawn(async move {
            served.serve(listener, std::future::pending()).await.unwrap();
        });
        TestLeaf { node, address, task: Some(task) }
    }

    /// The leaf's scheduler; panics for a load-balancer node.
    pub fn scheduler(&self) -> &Arc<leaf::Scheduler> {
        self.node.scheduler().expect("a leaf, not a load-balancer node")
    }

    pub async fn client(&self) -> LeafClient<Channel> {
        connect_leaf(&self.address).await
    }

    /// Stops serving abruptly, like a killed process.
    pub async fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for TestLeaf {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

pub async fn connect_leaf(address: &str) -> LeafClient<Channel> {
    let channel = proto::endpoint(address).unwrap().connect().await.unwrap();
    LeafClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE)
}
