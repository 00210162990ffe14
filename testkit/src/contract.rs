//! The worker's contract: what a leaf, a load generator or a collector may
//! rely on from any `controller.Controller`, whatever runs its instances. The
//! fake worker exists on the promise that a leaf cannot tell it from a real
//! one, so this one suite runs against both ([`Subject`]: the real worker over
//! Docker, [`DockerSubject`]; the fake worker over a committed model, in the
//! fakeworker crate's tests).
//!
//! [`run`] runs every case of [`CASES`] against a subject, each on a fresh
//! worker and database, and returns the names of the cases it ran; it panics
//! naming the subject and the case at the first failure, with the subject's
//! diagnostics (container logs), and when it ran nothing.
//!
//! What the subject must provide: a function image that answers at once
//! ([`Behaviour::Quick`]) and one whose calls take 100 ms or more
//! ([`Behaviour::Slow`]; the real `simul` sleeps 100–199 ms).

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use database::DatabaseClient;
use hyperfake_core::{FunctionConfig, FunctionId, ImageTag, trailers};
use proto::common::{CallRequest, CallResponse, InstanceId};
use proto::controller::controller_client::ControllerClient;
use proto::controller::{Event, StateRequest, Status, StatusRequest, StatusUpdate};
use tonic::transport::Channel;
use tonic::{Code, Streaming};
use worker::WorkerSettings;

use crate::{ContainerSweeper, TestDatabase, TestWorker, config, metadata_u64, next_event, unique};

/// What a function of the contract's cases must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Answers at once (the real `echo`).
    Quick,
    /// Each call takes at least 100 ms (the real `simul`: 100–199 ms).
    Slow,
}

/// A worker implementation the contract is checked against.
pub trait Subject: Sync {
    /// Names the subject in failures: `worker (Docker)`, `fakeworker`.
    fn name(&self) -> &str;

    /// The image of a function that behaves as `behaviour` says.
    fn image(&self, behaviour: Behaviour) -> &str;

    /// Serves a fresh worker called `settings.worker_id` whose functions
    /// come from `database`.
    fn worker(
        &self,
        settings: WorkerSettings,
        database: DatabaseClient,
    ) -> impl Future<Output = TestWorker> + Send;

    /// What to print when a case fails (container logs). Nothing by default.
    fn diagnostics(&self) -> String {
        String::new()
    }
}

/// One case's context: a fresh database and worker, and a client of it.
#[derive(Debug)]
pub struct Case {
    pub database: TestDatabase,
    pub worker: TestWorker,
    pub client: ControllerClient<Channel>,
    quick: ImageTag,
    slow: ImageTag,
}

type CaseFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Every case, by name.
pub const CASES: &[(&str, for<'a> fn(&'a Case) -> CaseFuture<'a>)] = &[
    ("events carry instance and function ids", |c| Box::pin(events_carry_ids(c))),
    ("an idle instance times out", |c| Box::pin(idle_instance_times_out(c))),
    ("max_concurrency serialises calls", |c| Box::pin(max_concurrency_serialises_calls(c))),
    ("trailers are complete and ordered", |c| Box::pin(trailers_are_complete_and_ordered(c))),
    ("the caller's deadline is kept", |c| Box::pin(deadline_is_kept(c))),
    ("a named instance gets the call", |c| Box::pin(named_instance_gets_the_call(c))),
    ("State lists the ready instances", |c| Box::pin(state_lists_ready_instances(c))),
    ("bad requests get clear codes", |c| Box::pin(bad_requests_get_clear_codes(c))),
    ("a start that cannot run fails with FAILED_PRECONDITION", |c| Box::pin(unrunnable_start(c))),
];

/// Runs every case against `subject`; returns the names of the cases run.
/// Panics, naming the subject and the case, at the first failure, and when
/// no case ran at all.
pub async fn run<S: Subject>(subject: &S) -> Vec<&'static str> {
    let mut ran = Vec::new();
    for (name, case) in CASES {
        let database = TestDatabase::start().await;
        let settings = WorkerSettings::new(unique("contract"));
        let worker = subject.worker(settings, database.client.clone()).await;
        let client = worker.client().await;
        let context = Case {
            database,
            worker,
            client,
            quick: subject.image(Behaviour::Quick).into(),
            slow: subject.image(Behaviour::Slow).into(),
        };
        let started = Instant::now();
        // A failing case panics; the panic is caught here to name the case.
        let outcome = catch_panic(case(&context)).await;
        if let Err(message) = outcome {
            panic!(
                "contract case {name:?} failed on {} after {:?}: {message}\n{}",
                subject.name(),
                started.elapsed(),
                subject.diagnostics()
            );
        }
        // Instances left running are stopped (containers removed) before the next case.
        context.worker.worker.stop_all().await;
        ran.push(*name);
    }
    assert!(!ran.is_empty(), "the contract ran no case against {}: nothing was tested", subject.name());
    ran
}

/// Awaits `f`, turning a panic into its message.
async fn catch_panic(f: CaseFuture<'_>) -> Result<(), String> {
    struct CatchUnwind<'a>(CaseFuture<'a>);
    impl Future for CatchUnwind<'_> {
        type Output = Result<(), String>;
        fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
            let inner = &mut self.0;
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
                Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
                Ok(std::task::Poll::Ready(())) => std::task::Poll::Ready(Ok(())),
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "(a panic without a message)".to_string());
                    std::task::Poll::Ready(Err(message))
                }
            }
        }
    }
    CatchUnwind(f).await
}

// === Helpers ===

const EVENT_WAIT: Duration = Duration::from_secs(15);

impl Case {
    async fn function(&self, behaviour: Behaviour, config: FunctionConfig) -> FunctionId {
        let image = match behaviour {
            Behaviour::Quick => &self.quick,
            Behaviour::Slow => &self.slow,
        };
        self.database.client.create(image, &config).await.expect("creating a function").id
    }

    async fn start(&self, function: &FunctionId) -> String {
        let r = self.client.clone().start(proto::common::FunctionId::from(function)).await;
        let r = r.unwrap_or_else(|s| panic!("Start {function}: {s:?}"));
        r.into_inner().instance_id.expect("StartResponse.instance_id").id
    }

    async fn call(&self, request: CallRequest) -> Result<tonic::Response<CallResponse>, tonic::Status> {
        self.client.clone().call(request).await
    }

    async fn subscribe(&self) -> Streaming<StatusUpdate> {
        let request = StatusRequest { node_id: unique("observer") };
        self.client.clone().status(request).await.expect("Status").into_inner()
    }

    async fn stop(&self, instance: &str) -> Result<(), tonic::Status> {
        self.client.clone().stop(InstanceId { id: instance.to_string() }).await.map(drop)
    }

    async fn state_instances(&self, function: &FunctionId) -> Vec<String> {
        let state = self.client.clone().state(StateRequest::default()).await.expect("State").into_inner();
        let mut ids: Vec<String> = state
            .functions
            .iter()
            .filter(|f| f.function_id == function.to_string())
            .flat_map(|f| f.running.iter().chain(&f.idle))
            .map(|i| i.instance_id.clone())
            .collect();
        ids.sort();
        ids
    }
}

fn request(function: &FunctionId, data: &[u8]) -> CallRequest {
    CallRequest {
        request_id: unique("req"),
        instance_id: None,
        data: data.to_vec(),
        function_id: Some(function.into()),
    }
}

fn is(event: Event, instance: &str) -> impl Fn(&StatusUpdate) -> bool + '_ {
    move |e| e.event() == event && e.instance_id.as_ref().is_some_and(|i| i.id == instance)
}

fn function_of(e: &StatusUpdate) -> String {
    e.function_id.as_ref().map(|f| f.id.clone()).unwrap_or_default()
}

// === Cases ===

/// START (with its duration), CALL, RESPONSE and STOP name the instance and
/// its function; a stopped instance is gone for calls and for a second Stop.
async fn events_carry_ids(c: &Case) {
    let mut events = c.subscribe().await;
    let f = c.function(Behaviour::Quick, config(64, None, 0, 0)).await;
    let instance = c.start(&f).await;
    let start = next_event(&mut events, EVENT_WAIT, is(Event::Start, &instance)).await;
    assert_eq!((function_of(&start), start.status()), (f.to_string(), Status::Success));
    assert!(start.timestamp.is_some(), "START without a timestamp");
    let took = start.start_duration_ns.expect("a successful START carries its duration");
    assert!(took > 0, "START took {took} ns");
    c.call(request(&f, b"x")).await.expect("a call on a ready instance");
    let call = next_event(&mut events, EVENT_WAIT, is(Event::Call, &instance)).await;
    assert_eq!(function_of(&call), f.to_string());
    let response = next_event(&mut events, EVENT_WAIT, is(Event::Response, &instance)).await;
    assert_eq!((function_of(&response), response.status()), (f.to_string(), Status::Success));
    c.stop(&instance).await.expect("Stop");
    let stop = next_event(&mut events, EVENT_WAIT, is(Event::Stop, &instance)).await;
    assert_eq!(function_of(&stop), f.to_string());
    let again = c.stop(&instance).await.expect_err("a second Stop");
    assert_eq!(again.code(), Code::NotFound, "{again:?}");
    let after = c.call(request(&f, b"x")).await.expect_err("a call after the stop");
    assert_eq!(after.code(), Code::FailedPrecondition, "{after:?}");
}

/// An instance without calls for `Config.timeout` (1 s) is stopped with a
/// TIMEOUT naming it, no earlier than a second after its last call, and
/// takes no call afterwards.
async fn idle_instance_times_out(c: &Case) {
    let mut events = c.subscribe().await;
    let f = c.function(Behaviour::Quick, config(64, None, 1, 0)).await;
    let instance = c.start(&f).await;
    c.call(request(&f, b"x")).await.expect("a call");
    let last_call = Instant::now();
    let timeout = next_event(&mut events, EVENT_WAIT, is(Event::Timeout, &instance)).await;
    let idle = last_call.elapsed();
    assert_eq!(function_of(&timeout), f.to_string());
    assert!(idle >= Duration::from_secs(1), "timed out after {idle:?} idle, before Config.timeout (1 s)");
    assert!(c.state_instances(&f).await.is_empty(), "a timed-out instance is still listed by State");
    let after = c.call(request(&f, b"x")).await.expect_err("a call after the timeout");
    assert_eq!(after.code(), Code::FailedPrecondition, "{after:?}");
}

/// Five concurrent calls on an instance with `max_concurrency: 1` all
/// succeed, one after the other (by the worker's own timestamps).
async fn max_concurrency_serialises_calls(c: &Case) {
    let f = c.function(Behaviour::Slow, config(64, None, 0, 1)).await;
    c.start(&f).await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let (mut client, request) = (c.client.clone(), request(&f, b""));
        calls.spawn(async move { client.call(request).await });
    }
    let mut intervals = Vec::new();
    while let Some(joined) = calls.join_next().await {
        let r = joined.expect("call task").expect("queued for the slot, not failed");
        intervals.push((
            metadata_u64(&r, trailers::CALL_STARTED_TIMESTAMP),
            metadata_u64(&r, trailers::GOT_RESPONSE_TIMESTAMP),
        ));
    }
    intervals.sort();
    assert_eq!(intervals.len(), 5);
    for pair in intervals.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "calls overlapped on a max_concurrency=1 instance: {pair:?}");
    }
}

/// Every worker trailer is set; queued ≤ started ≤ got response; processing
/// time is got − started and covers the handler time; the instance id agrees
/// in trailer and body; the request id comes back.
async fn trailers_are_complete_and_ordered(c: &Case) {
    let f = c.function(Behaviour::Quick, config(64, None, 0, 0)).await;
    let instance = c.start(&f).await;
    let sent = request(&f, b"hello contract");
    let request_id = sent.request_id.clone();
    let r = c.call(sent).await.expect("a call");
    for key in trailers::WORKER_KEYS {
        assert!(r.metadata().get(key).is_some(), "metadata {key} missing");
    }
    let queued = metadata_u64(&r, trailers::CALL_QUEUED_TIMESTAMP);
    let started = metadata_u64(&r, trailers::CALL_STARTED_TIMESTAMP);
    let got = metadata_u64(&r, trailers::GOT_RESPONSE_TIMESTAMP);
    let processing = metadata_u64(&r, trailers::FUNCTION_PROCESSING_TIME);
    let handler = metadata_u64(&r, trailers::FUNCTION_HANDLER_TIME);
    assert!(queued <= started && started <= got, "timestamps out of order: {queued} {started} {got}");
    assert_eq!(processing, got - started, "processing time is not got − started");
    assert!(handler <= processing, "handler time {handler} exceeds processing time {processing}");
    let trailer_instance = r.metadata().get(trailers::INSTANCE_ID).and_then(|v| v.to_str().ok());
    assert_eq!(trailer_instance, Some(instance.as_str()));
    let body = r.into_inner();
    assert_eq!(body.instance_id.map(|i| i.id), Some(instance));
    assert_eq!(body.request_id, request_id);
    assert!(body.error.is_none(), "{:?}", body.error);
}

/// A call whose deadline (20 ms) is shorter than the function fails with
/// DEADLINE_EXCEEDED well before the function would end; the instance then
/// still serves.
async fn deadline_is_kept(c: &Case) {
    let f = c.function(Behaviour::Slow, config(64, None, 0, 0)).await;
    c.start(&f).await;
    let mut short = tonic::Request::new(request(&f, b""));
    short.set_timeout(Duration::from_millis(20));
    let err = c.client.clone().call(short).await.expect_err("a call past its deadline");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    c.call(request(&f, b"")).await.expect("the instance serves after a call ran out of time");
}

/// A call naming a live instance of the function goes to it; naming one
/// that does not exist falls back to a live one.
async fn named_instance_gets_the_call(c: &Case) {
    let f = c.function(Behaviour::Quick, config(64, None, 0, 0)).await;
    let a = c.start(&f).await;
    let b = c.start(&f).await;
    for target in [&a, &b] {
        let mut named = request(&f, b"x");
        named.instance_id = Some(InstanceId { id: target.clone() });
        let r = c.call(named).await.expect("a call naming an instance");
        assert_eq!(r.get_ref().instance_id.as_ref().map(|i| &i.id), Some(target));
    }
    let mut gone = request(&f, b"x");
    gone.instance_id = Some(InstanceId { id: "gone".into() });
    let r = c.call(gone).await.expect("a call naming a gone instance");
    let served = r.get_ref().instance_id.as_ref().map(|i| i.id.clone()).unwrap_or_default();
    assert!(served == a || served == b, "served by {served:?}, neither {a} nor {b}");
}

/// State lists the ready instances of each function, and a stopped one no more.
async fn state_lists_ready_instances(c: &Case) {
    let f = c.function(Behaviour::Quick, config(64, None, 0, 0)).await;
    let mut started = vec![c.start(&f).await, c.start(&f).await];
    started.sort();
    assert_eq!(c.state_instances(&f).await, started);
    c.stop(&started[0]).await.expect("Stop");
    assert_eq!(c.state_instances(&f).await, started[1..]);
}

/// Missing ids are INVALID_ARGUMENT naming the field; unknown ids NOT_FOUND;
/// a call with no instance started FAILED_PRECONDITION; an oversized payload
/// is refused; the worker keeps answering. (An image outside the allowed
/// prefixes never reaches a worker here: the database refuses to store it.)
async fn bad_requests_get_clear_codes(c: &Case) {
    let mut client = c.client.clone();
    let no_function = CallRequest { request_id: "r".into(), ..Default::default() };
    let err = client.call(no_function).await.expect_err("a call without a function id");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("function_id"), "{}", err.message());
    let err = client.start(proto::common::FunctionId::default()).await.expect_err("Start without an id");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let unknown = proto::common::FunctionId { id: "no-such-function".into() };
    let err = client.start(unknown).await.expect_err("Start of an unknown function");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = client.stop(InstanceId::default()).await.expect_err("Stop without an id");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let err = c.stop("no-such-instance").await.expect_err("Stop of an unknown instance");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = client.status(StatusRequest::default()).await.expect_err("Status without a node id");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let f = c.function(Behaviour::Quick, config(64, None, 0, 0)).await;
    let err = c.call(request(&f, b"x")).await.expect_err("a call with no instance started");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let oversized = vec![0u8; hyperfake_core::defaults::MAX_MESSAGE_SIZE + 1];
    let err = c.call(request(&f, &oversized)).await.expect_err("an oversized payload");
    assert!(matches!(err.code(), Code::ResourceExhausted | Code::OutOfRange), "oversized payload: {err:?}");
    tokio::time::timeout(Duration::from_secs(5), client.state(StateRequest::default()))
        .await
        .expect("the worker still answers")
        .expect("State");
}

/// Starting an image the worker cannot run (no such image; for the fake
/// worker, no model for it) is FAILED_PRECONDITION naming the image, with a
/// failed START event, and leaves no instance behind.
async fn unrunnable_start(c: &Case) {
    let mut events = c.subscribe().await;
    let image = format!("{}:latest", unique("hyperfaas-missing"));
    let f = c.database.client.create(&ImageTag::from(image.as_str()), &config(64, None, 0, 0)).await;
    let f = f.expect("creating a function").id;
    let err = c.client.clone().start(proto::common::FunctionId::from(&f)).await.expect_err("Start");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains(&image), "the error does not name {image}: {}", err.message());
    let failed =
        next_event(&mut events, EVENT_WAIT, |e| e.event() == Event::Start && function_of(e) == f.to_string())
            .await;
    assert_eq!(failed.status(), Status::Failed);
    assert!(c.state_instances(&f).await.is_empty());
}

// === The real worker ===

/// The real worker over the Docker engine, with the function images of
/// `scripts/build-function-images.sh`; its containers carry the sweeper's
/// label and are removed when it is dropped.
#[derive(Debug)]
pub struct DockerSubject {
    sweeper: ContainerSweeper,
}

impl DockerSubject {
    /// Fails at once, naming the image, when a function image is missing.
    pub fn new() -> Self {
        crate::require_image(crate::ECHO);
        crate::require_image(crate::SIMUL);
        DockerSubject { sweeper: ContainerSweeper::new() }
    }
}

impl Default for DockerSubject {
    fn default() -> Self {
        Self::new()
    }
}

impl Subject for DockerSubject {
    fn name(&self) -> &str {
        "worker (Docker)"
    }

    fn image(&self, behaviour: Behaviour) -> &str {
        match behaviour {
            Behaviour::Quick => crate::ECHO,
            Behaviour::Slow => crate::SIMUL,
        }
    }

    fn worker(
        &self,
        settings: WorkerSettings,
        database: DatabaseClient,
    ) -> impl Future<Output = TestWorker> + Send {
        TestWorker::docker(&self.sweeper, settings, database)
    }

    fn diagnostics(&self) -> String {
        crate::container_logs(&self.sweeper.label())
    }
}
