//! Instances whose containers vanish without an exit event (a Docker engine
//! restart loses its event log) are found by reconciling with the engine.
//! These workers run without the event stream, so only reconciling can see
//! the deaths.

use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{KillContainerOptions, RemoveContainerOptionsBuilder};
use futures::StreamExt;
use hyperfake_core::defaults::LABEL_TEST;
use hyperfake_core::{FunctionId, ImageTag, InstanceId};
use hyperfake_testkit::{ContainerSweeper, TestDatabase};
use proto::controller::{Event, Status, StatusUpdate};
use tokio::sync::{Notify, mpsc};
use worker::events::EventStream;
use worker::instance::{Instance, Lifecycle};
use worker::reconcile::spawn_reconciler;
use worker::{DockerRuntime, DockerSettings, FunctionCatalog, Runtime, Worker, WorkerSettings};

use crate::common::*;

/// A worker on the real engine whose background tasks (event stream, idle
/// sweeper, reconciler) are not running.
struct Unwatched {
    worker: Arc<Worker>,
    engine: Docker,
    database: TestDatabase,
    // Declared last so it runs after the worker is gone.
    sweeper: ContainerSweeper,
}

impl Unwatched {
    async fn new() -> Self {
        let sweeper = ContainerSweeper::new();
        let database = TestDatabase::start().await;
        let worker_id = format!("worker-{}", sweeper.test_id);
        let mut settings = DockerSettings::new(&worker_id);
        settings.extra_labels.insert(LABEL_TEST.to_string(), sweeper.test_id.clone());
        let runtime = DockerRuntime::connect(settings).await.expect("the Docker engine must be reachable");
        let engine = runtime.docker().clone();
        let catalog = FunctionCatalog::new(database.client.clone());
        let worker = Worker::new(WorkerSettings::new(&worker_id), Arc::new(runtime), catalog);
        Unwatched { worker, engine, database, sweeper }
    }

    async fn echo(&self) -> FunctionId {
        hyperfake_testkit::require_image(ECHO);
        let tag = ImageTag::from(ECHO);
        self.database.client.create(&tag, &config(64, None, 0, 0)).await.expect("create function").id
    }

    async fn start(&self, function: &FunctionId) -> Arc<Instance> {
        self.worker.start(Some(function.clone())).await.expect("start echo")
    }

    /// `docker rm -f`: the container is gone, as after an engine restart.
    async fn remove(&self, instance: &Instance) {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        self.engine.remove_container(&instance.handle, Some(options)).await.unwrap();
    }
}

fn call(function: &FunctionId) -> proto::common::CallRequest {
    call_request(function, b"still here?")
}

/// The next DOWN event.
async fn next_down(events: &mut EventStream) -> StatusUpdate {
    let wait = async {
        while let Some(update) = events.next().await {
            let update = update.expect("status stream failed");
            if update.event() == Event::Down {
                return update;
            }
        }
        panic!("status stream ended");
    };
    tokio::time::timeout(Duration::from_secs(20), wait).await.expect("no DOWN event")
}

/// The next DOWN event, which must be `instance`'s.
async fn down_of(events: &mut EventStream, instance: &InstanceId) -> StatusUpdate {
    let down = next_down(events).await;
    assert_eq!(down.instance_id.as_ref().map(|i| i.id.as_str()), Some(instance.as_str()), "{down:?}");
    down
}

#[tokio::test]
async fn reconcile_takes_down_instances_whose_containers_vanished_unreported() {
    let w = Unwatched::new().await;
    let f = w.echo().await;
    let removed = w.start(&f).await;
    let killed = w.start(&f).await;
    let mut events = w.worker.events.subscribe("observer");
    w.remove(&removed).await;
    w.engine.kill_container(&killed.handle, None::<KillContainerOptions>).await.unwrap();

    // Both look ready until the worker reconciles.
    assert_eq!(w.worker.instances.len(), 2);
    assert_eq!(w.worker.reconcile().await.unwrap(), 1 + 1);

    let mut downs = vec![next_down(&mut events).await, next_down(&mut events).await];
    downs.sort_by_key(|d| d.instance_id.as_ref().unwrap().id != removed.id.as_str());
    let [gone, dead] = <[StatusUpdate; 2]>::try_from(downs).unwrap();
    assert_eq!(gone.instance_id.as_ref().unwrap().id, removed.id.as_str());
    assert_eq!(
        (gone.status(), gone.exit_code),
        (Status::Failed, None),
        "a removed container left no exit code"
    );
    assert_eq!(gone.function_id.as_ref().unwrap().id, f.to_string());
    assert_eq!(dead.instance_id.as_ref().unwrap().id, killed.id.as_str());
    assert_eq!((dead.status(), dead.exit_code), (Status::Failed, Some(137)), "killed by SIGKILL");
    assert_eq!(
        removed.lifecycle(),
        Lifecycle::Draining(worker::instance::StopReason::Down { exit_code: None, oom_killed: false })
    );
    assert!(w.worker.instances.is_empty(), "both left the table");
    assert!(w.worker.state().functions.is_empty(), "State lists neither");
    assert!(containers_labelled(&w.sweeper.label()).is_empty(), "the exited container is removed");
    let err = w.worker.call(call(&f), None).await.unwrap_err();
    assert_eq!(tonic::Status::from(err).code(), tonic::Code::FailedPrecondition, "nothing left to route to");
}

#[tokio::test]
async fn reconcile_leaves_running_and_paused_instances_alone() {
    let w = Unwatched::new().await;
    let f = w.echo().await;
    let running = w.start(&f).await;
    let paused = w.start(&f).await;
    w.engine.pause_container(&paused.handle).await.unwrap();
    let mut events = w.worker.events.subscribe("observer");
    assert_eq!(w.worker.reconcile().await.unwrap(), 0, "a paused container still runs");
    w.engine.unpause_container(&paused.handle).await.unwrap();
    for instance in [&running, &paused] {
        assert_eq!(instance.lifecycle(), Lifecycle::Ready);
        let mut request = call(&f);
        request.instance_id = Some((&instance.id).into());
        let answer = w.worker.call(request, None).await.expect("the instance still answers");
        assert_eq!(answer.output.response.data, b"still here?");
    }
    assert_eq!(w.worker.instances.len(), 2);
    // Nothing but the two calls' CALL and RESPONSE events was published.
    let mut seen = Vec::new();
    while let Ok(Some(update)) = tokio::time::timeout(Duration::from_millis(200), events.next()).await {
        seen.push(update.unwrap().event());
    }
    assert_eq!(seen, [Event::Call, Event::Response, Event::Call, Event::Response]);
}

#[tokio::test]
async fn a_resync_reconciles_at_once() {
    let w = Unwatched::new().await;
    let resync = Arc::new(Notify::new());
    // A period no test waits out: only the resync can find the death.
    let task = spawn_reconciler(Arc::downgrade(&w.worker), Arc::clone(&resync), Duration::from_secs(3600));
    let f = w.echo().await;
    let instance = w.start(&f).await;
    let mut events = w.worker.events.subscribe("observer");
    w.remove(&instance).await;
    resync.notify_one();
    down_of(&mut events, &instance.id).await;
    assert!(w.worker.instances.is_empty());
    task.abort();
}

#[tokio::test]
async fn reconciling_periodically_finds_a_vanished_instance() {
    let w = Unwatched::new().await;
    let f = w.echo().await;
    let instance = w.start(&f).await;
    let mut events = w.worker.events.subscribe("observer");
    w.remove(&instance).await;
    let never = Arc::new(Notify::new());
    let task = spawn_reconciler(Arc::downgrade(&w.worker), never, Duration::from_millis(200));
    down_of(&mut events, &instance.id).await;
    assert!(w.worker.instances.is_empty());
    task.abort();
}

#[tokio::test]
async fn the_docker_event_watch_asks_for_a_resync_once_connected() {
    let sweeper = ContainerSweeper::new();
    let runtime = DockerRuntime::connect(DockerSettings::new(format!("worker-{}", sweeper.test_id)))
        .await
        .expect("the Docker engine must be reachable");
    let resync = Arc::new(Notify::new());
    let (exits, _exits) = mpsc::channel(1);
    runtime.watch(exits, Arc::clone(&resync));
    tokio::time::timeout(Duration::from_secs(20), resync.notified())
        .await
        .expect("connecting the event stream signals a resync");
}
