use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use fakeworker::{ModelRegistry, SimRuntime, SimSettings};
use hyperfake_core::FunctionId;
use hyperfake_testkit::{TestDatabase, TestWorker, connect_leaf};
use leaf::{Node, NodeSettings};
use proto::leaf::CreateFunctionRequest;
use proto::leaf::leaf_client::LeafClient;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use worker::WorkerSettings;

use crate::common::*;

/// A node served on 127.0.0.1:0 that a test can shut down (gracefully: its
/// listener closes, so a node above finds it unreachable).
struct ServedNode {
    node: Arc<Node>,
    address: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl ServedNode {
    async fn start(settings: NodeSettings) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let node = Arc::new(Node::start(&settings).await.expect("starting the node"));
        let (stop, stopped) = oneshot::channel();
        let served = Arc::clone(&node);
        let task = tokio::spawn(async move {
            served
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        ServedNode { node, address, stop: Some(stop), task }
    }

    async fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
        self.task.abort();
    }

    fn started(&self) -> u64 {
        self.node.scheduler().unwrap().stats.instances_started.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for ServedNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Three leaves with two fake workers each (echo: 2 ms unless told, 20 ms
/// cold start), and a load-balancer node over them.
struct Tree {
    _models: tempfile::TempDir,
    _database: TestDatabase,
    _workers: Vec<TestWorker>,
    leaves: Vec<ServedNode>,
    lb: ServedNode,
    client: LeafClient<Channel>,
}

impl Tree {
    async fn start() -> Self {
        Self::with(Duration::from_millis(2), |_| {}).await
    }

    /// Calls that take `runtime`; leaves with the settings `tweak` makes.
    async fn with(runtime: Duration, tweak: impl Fn(&mut NodeSettings)) -> Self {
        let models = tempfile::tempdir().unwrap();
        let constant = |v: f64| [0.0, 0.0, 0.0, 0.0, 0.0, v];
        let entry = serde_json::json!({ ECHO: {
            "image_tag": ECHO, "runtime_coeffs": constant(runtime.as_nanos() as f64), "cpu_coeffs": constant(0.1),
            "ram_coeffs": constant(1e6), "runtime_unit": "ns",
            "sample_count": 100, "runtime_r2": 0.9, "cpu_r2": 0.9, "ram_r2": 0.9,
        }});
        std::fs::write(models.path().join("echo.json"), entry.to_string()).unwrap();
        let (registry, skipped) = ModelRegistry::load(Some(models.path().into()), vec![]).unwrap();
        assert!(skipped.is_empty(), "the test model did not load: {skipped:?}");
        let registry = Arc::new(registry);
        let database = TestDatabase::start().await;
        let mut workers = Vec::new();
        let mut leaves = Vec::new();
        for l in 0..3 {
            let mut addresses = Vec::new();
            for w in 0..2 {
                let runtime = SimRuntime::new(
                    Arc::clone(&registry),
                    SimSettings { cold_start: Duration::from_millis(20), ..Default::default() },
                );
                let settings = WorkerSettings::new(unique(&format!("l{l}w{w}")));
                let worker =
                    TestWorker::with_runtime(settings, Arc::new(runtime), database.client.clone()).await;
                addresses.push(worker.address.clone());
                workers.push(worker);
            }
            let mut settings = leaf_settings(&database.address, addresses);
            tweak(&mut settings);
            leaves.push(ServedNode::start(settings).await);
        }
        let mut settings =
            NodeSettings::balancer(&database.address, leaves.iter().map(|l| l.address.clone()).collect());
        settings.pool.state_interval = Duration::from_millis(100);
        let lb = ServedNode::start(settings).await;
        let client = connect_leaf(&lb.address).await;
        Tree { _models: models, _database: database, _workers: workers, leaves, lb, client }
    }

    /// Calls `f` `n` times, `n` at once, and returns how many each leaf served.
    async fn calls(&self, f: &FunctionId, n: usize) -> HashMap<String, usize> {
        let (served_by, failed) = self.try_calls(f, n).await;
        assert!(failed.is_empty(), "calls of {f} failed: {failed:?}");
        served_by
    }

    /// [`calls`](Self::calls), returning the failures too.
    async fn try_calls(&self, f: &FunctionId, n: usize) -> (HashMap<String, usize>, Vec<tonic::Status>) {
        let results = futures::future::join_all((0..n).map(|_| call(&self.client, f, b"x"))).await;
        let mut served_by = HashMap::new();
        let mut failed = Vec::new();
        for r in results {
            match r {
                Ok(r) => *served_by.entry(metadata_str(&r, leaf::metadata::LEAF_ADDRESS)).or_default() += 1,
                Err(status) => failed.push(status),
            }
        }
        (served_by, failed)
    }

    /// Creates an echo function through the node (no Docker image needed:
    /// the workers are simulated).
    async fn function(&self) -> FunctionId {
        let request = CreateFunctionRequest {
            image_tag: Some(proto::common::ImageTag { tag: ECHO.to_string() }),
            config: Some((&config(64, None, 0, 0)).into()),
            function_id: None,
        };
        let response = self.client.clone().create_function(request).await.expect("CreateFunction");
        FunctionId::new(response.into_inner().function_id.expect("an id").id)
    }

    fn leaf_at(&self, address: &str) -> usize {
        self.leaves.iter().position(|l| l.address == address).unwrap()
    }

    fn instances_per_leaf(&self, f: &FunctionId) -> Vec<usize> {
        self.leaves.iter().map(|l| l.node.scheduler().unwrap().instances_of(f).len()).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_functions_calls_start_instances_on_one_leaf_and_move_only_when_it_leaves() {
    let mut tree = Tree::start().await;
    let f = tree.function().await;
    // Rounds of concurrent calls: every one served by the same leaf, the only
    // one that started instances (it may scale up; the others start none).
    let mut served_by = HashMap::new();
    for _ in 0..5 {
        for (leaf, n) in tree.calls(&f, 40).await {
            *served_by.entry(leaf).or_insert(0) += n;
        }
    }
    assert_eq!(served_by.len(), 1, "one function, one leaf: {served_by:?}");
    let first = tree.leaf_at(served_by.keys().next().unwrap());
    let instances = tree.instances_per_leaf(&f);
    assert!(instances[first] >= 1, "{instances:?}");
    for (i, leaf) in tree.leaves.iter().enumerate() {
        if i != first {
            assert_eq!((instances[i], leaf.started()), (0, 0), "leaf {i} started instances: {instances:?}");
        }
    }

    // The leaf goes away: the calls move to one other leaf, which starts the
    // function there, and the node takes the first out of rotation.
    tree.leaves[first].shut_down().await;
    let mut moved = HashMap::new();
    for _ in 0..3 {
        for (leaf, n) in tree.calls(&f, 20).await {
            *moved.entry(leaf).or_insert(0) += n;
        }
    }
    assert_eq!(moved.len(), 1, "after the move, still one leaf: {moved:?}");
    let second = tree.leaf_at(moved.keys().next().unwrap());
    assert_ne!(second, first);
    assert!(tree.leaves[second].started() >= 1);
    let third = 3 - first - second;
    assert_eq!(tree.leaves[third].started(), 0, "the third leaf was not involved");
    let balancer = tree.lb.node.balancer().unwrap();
    assert!(!balancer.children()[first].in_rotation());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_functions_spread_over_the_leaves_one_leaf_each() {
    let tree = Tree::start().await;
    let mut leaves_used = HashSet::new();
    for _ in 0..15 {
        let f = tree.function().await;
        let served_by = tree.calls(&f, 5).await;
        assert_eq!(served_by.len(), 1, "{f}: {served_by:?}");
        leaves_used.extend(served_by.into_keys());
        let instances = tree.instances_per_leaf(&f);
        assert_eq!(instances.iter().filter(|n| **n > 0).count(), 1, "{f}: instances on {instances:?}");
    }
    // 15 functions all on one of three leaves would be a 1-in-1.6-million
    // chance; an even spread over 1 000 ids is checked in the unit tests.
    assert!(leaves_used.len() >= 2, "{leaves_used:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_refused_by_the_functions_leaf_at_its_bound_spills_to_the_next_ranked_leaf() {
    // Calls take 1 s; a leaf takes at most 2 calls of a function at once.
    let tree = Tree::with(Duration::from_secs(1), |s| s.scheduler.max_pending_calls = 2).await;
    let f = tree.function().await;
    let served_by = tree.calls(&f, 4).await;
    assert_eq!(served_by.values().copied().collect::<Vec<_>>(), [2, 2], "{served_by:?}");
    // Every leaf full: the last refusal, still marked so a node above could spill it.
    let (served_by, failed) = tree.try_calls(&f, 7).await;
    assert_eq!(served_by.values().sum::<usize>(), 6, "{served_by:?}");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].code(), tonic::Code::ResourceExhausted, "{:?}", failed[0]);
    assert_eq!(leaf::failure::Failure::of(&failed[0]), leaf::failure::Failure::Refused, "{:?}", failed[0]);
    // Refusals do not take a leaf out of rotation.
    assert!(tree.lb.node.balancer().unwrap().children().iter().all(|c| c.in_rotation()));
}
