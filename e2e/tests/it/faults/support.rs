//! What the fault cases are built from: the platform's own binaries run as
//! processes (so a case can SIGKILL, SIGSTOP or firewall one), their logs in
//! files printed when a case fails, calls through the leaf with a deadline,
//! and guards that undo a fault (a firewall rule, a mount) even when a case
//! panics.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use hyperfake_core::defaults::LABEL_TEST;
use hyperfake_core::{FunctionConfig, FunctionId};
use hyperfake_testkit::{ContainerSweeper, unique};
use proto::leaf::leaf_client::LeafClient;
use proto::leaf::{CreateFunctionRequest, LeafStateRequest, LeafStateResponse, ScheduleCallRequest};

/// A workspace binary (`database`, `worker`, `leaf`, …) next to this test
/// binary: `cargo test --workspace` builds them before the tests.
pub(crate) fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let binary = dir.join(name);
    assert!(
        binary.exists(),
        "{} is missing: build the workspace first (`cargo test --workspace` builds every binary)",
        binary.display()
    );
    binary
}

/// One platform process, killed when dropped. Its stderr (the logs) goes to a
/// file; the first line it prints on stdout names the address it serves on.
#[derive(Debug)]
pub(crate) struct Proc {
    pub(crate) name: String,
    pub(crate) address: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Runs `binary` with `args` (and `env`), logging into `logs`, and waits
    /// for the address it prints.
    pub(crate) fn spawn(binary_name: &str, args: &[String], env: &[(&str, String)], logs: &Path) -> Proc {
        let mut command = Command::new(binary(binary_name));
        command.args(args);
        for (key, value) in env {
            command.env(key, value);
        }
        Proc::start(binary_name, command, logs)
    }

    /// Runs `command` (e.g. a binary under `nsenter`) as process `binary_name`.
    pub(crate) fn start(binary_name: &str, mut command: Command, logs: &Path) -> Proc {
        let name = unique(binary_name);
        let log = logs.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        command.env("NO_COLOR", "1").stdout(Stdio::piped()).stderr(file);
        let mut child = command.spawn().unwrap_or_else(|e| panic!("running {binary_name}: {e}"));
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let read = stdout.read_line(&mut line).unwrap_or(0);
        // `{"address": …}` (the worker) or a line ending with the address.
        let address = match serde_json::from_str::<serde_json::Value>(line.trim()) {
            Ok(json) => json["address"].as_str().map(str::to_string),
            Err(_) => line.trim().rsplit(' ').next().filter(|a| a.contains(':')).map(str::to_string),
        };
        let Some(address) = address.filter(|_| read > 0) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{binary_name} printed {line:?} instead of its address; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        // Keep reading, so a chatty child never blocks on a full pipe.
        std::thread::spawn(move || for _ in stdout.lines() {});
        Proc { name, address, child, log }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`STOP`, `CONT`, `KILL`, …) to the process.
    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill").args(["-s", signal, &self.pid().to_string()]).status().unwrap();
        assert!(status.success(), "kill -s {signal} {} ({})", self.pid(), self.name);
    }

    /// SIGKILL, and wait for it to be gone.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The whole log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of the log, under a header naming the process.
    pub(crate) fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "--- {} ({})\n{}\n",
            self.name,
            self.address,
            lines[lines.len().saturating_sub(n)..].join("\n")
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A stopped process must be continued to die promptly on SIGKILL's
        // delivery in every kernel; harmless otherwise.
        let pid = self.pid().to_string();
        let _ = Command::new("kill").args(["-s", "CONT", &pid]).stderr(Stdio::null()).status();
        self.kill();
    }
}

/// The database binary on a SQLite file at `db`, on `address` (port 0: any).
pub(crate) fn database(db: &Path, address: &str, logs: &Path) -> Proc {
    let args = vec!["--address".into(), address.into(), "--db".into(), db.display().to_string()];
    Proc::spawn("database", &args, &[], logs)
}

/// The worker binary, its containers labelled with `sweeper`'s test id;
/// `docker_host` points it at another engine than the machine's.
pub(crate) fn worker(
    sweeper: &ContainerSweeper,
    database: &str,
    docker_host: Option<&str>,
    logs: &Path,
) -> Proc {
    let args = vec![
        "--address".into(),
        "127.0.0.1:0".into(),
        "--database".into(),
        database.into(),
        "--worker-id".into(),
        unique(&format!("fw-{}", sweeper.test_id)),
        "--label".into(),
        format!("{LABEL_TEST}={}", sweeper.test_id),
    ];
    let env: Vec<(&str, String)> = docker_host.map(|h| ("DOCKER_HOST", h.to_string())).into_iter().collect();
    Proc::spawn("worker", &args, &env, logs)
}

/// The leaf binary over `workers`, reconciling and reconnecting quickly
/// (as `hyperfake_testkit::leaf_settings` does for in-process leaves).
pub(crate) fn leaf(database: &str, workers: &[&Proc], logs: &Path) -> Proc {
    let workers: Vec<&str> = workers.iter().map(|w| w.address.as_str()).collect();
    let args: Vec<String> = [
        "--address",
        "127.0.0.1:0",
        "--database",
        database,
        "--worker",
        &workers.join(","),
        "--reconcile-interval",
        "500ms",
        "--reconnect-min",
        "50ms",
        "--reconnect-max",
        "500ms",
        "--database-wait",
        "10s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Proc::spawn("leaf", &args, &[], logs)
}

/// The harness's HTTP/2 transport: hyper's client, not tonic's `Channel`.
/// A `Channel` arms a timer of its own from any `grpc-timeout` header a
/// request carries (tonic 0.14, `transport/service/grpc_timeout.rs`, layered
/// on every connection) and ends the call CANCELLED "Timeout expired" at the
/// deadline itself; on a starved machine that raced the platform's
/// DEADLINE_EXCEEDED (sent about 6 ms before the deadline) and failed the
/// fault cases' "answers by its deadline + 1 s" check with the client's own
/// answer. With this transport every answer the checks see is the platform's.
pub(crate) type Transport = Client<HttpConnector, tonic::body::Body>;

/// A leaf client that may send and receive 4 × 16 MiB, so the platform (not
/// this client) is what refuses an oversized call.
pub(crate) fn leaf_client(address: &str) -> LeafClient<Transport> {
    LeafClient::with_origin(transport(), origin(address))
        .max_encoding_message_size(64 << 20)
        .max_decoding_message_size(64 << 20)
}

/// A [`Transport`] (connects on the first call).
pub(crate) fn transport() -> Transport {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).http2_only(true).build(connector)
}

/// `http://address`.
pub(crate) fn origin(address: &str) -> http::Uri {
    format!("http://{address}").parse().expect("a host:port address")
}

pub(crate) async fn create(
    client: &LeafClient<Transport>,
    image: &str,
    config: &FunctionConfig,
) -> FunctionId {
    hyperfake_testkit::require_image(image);
    let request = CreateFunctionRequest {
        image_tag: Some(proto::common::ImageTag { tag: image.to_string() }),
        config: Some(config.into()),
        function_id: None,
    };
    let response = client.clone().create_function(request).await.expect("CreateFunction");
    FunctionId::new(response.into_inner().function_id.expect("an id").id)
}

/// What one call through the leaf came to, and how long it took.
#[derive(Clone, Debug)]
pub(crate) struct Outcome {
    pub(crate) result: Result<(Vec<u8>, String), tonic::Status>,
    pub(crate) took: Duration,
    pub(crate) started: Instant,
}

impl Outcome {
    pub(crate) fn ok(&self) -> bool {
        self.result.is_ok()
    }

    pub(crate) fn code(&self) -> tonic::Code {
        self.result.as_ref().err().map_or(tonic::Code::Ok, tonic::Status::code)
    }

    /// The instance that answered.
    pub(crate) fn instance(&self) -> Option<&str> {
        self.result.as_ref().ok().map(|(_, i)| i.as_str())
    }
}

/// How long past its deadline a call may go unanswered before the test
/// gives up on it (the platform must answer by the deadline itself).
const HANG_GUARD: Duration = Duration::from_secs(10);

/// One `ScheduleCall` with `deadline`, sent as the `grpc-timeout` header
/// over [`Transport`], which arms no timer from it, so the platform's own
/// DEADLINE_EXCEEDED is what is measured. A call with no answer by
/// `deadline` + 10 s ends as UNKNOWN "no answer", which no check accepts.
pub(crate) async fn call(
    client: &LeafClient<Transport>,
    function: &FunctionId,
    data: Vec<u8>,
    deadline: Duration,
) -> Outcome {
    let mut request = tonic::Request::new(ScheduleCallRequest { function_id: Some(function.into()), data });
    let timeout = format!("{}m", deadline.as_millis()).parse().expect("a grpc-timeout value");
    request.metadata_mut().insert("grpc-timeout", timeout);
    let started = Instant::now();
    let answer = tokio::time::timeout(deadline + HANG_GUARD, client.clone().schedule_call(request)).await;
    let result = answer
        .unwrap_or_else(|_| {
            Err(tonic::Status::unknown("no answer by the deadline + 10 s (the test's guard)"))
        })
        .map(|r| {
            let r = r.into_inner();
            (r.data, r.instance_id.map(|i| i.id).unwrap_or_default())
        });
    Outcome { result, took: started.elapsed(), started }
}

pub(crate) async fn leaf_state(client: &LeafClient<Transport>) -> Result<LeafStateResponse, tonic::Status> {
    let mut request = tonic::Request::new(LeafStateRequest::default());
    request.set_timeout(Duration::from_secs(2));
    client.clone().state(request).await.map(tonic::Response::into_inner)
}

/// Polls `check` every 20 ms until it holds; `None` after `within`.
pub(crate) async fn wait_until<F, Fut>(within: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return Some(started.elapsed());
        }
        if started.elapsed() > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Calls per status code, e.g. `OK 120, DeadlineExceeded 4`.
pub(crate) fn codes(outcomes: &[Outcome]) -> std::collections::BTreeMap<String, usize> {
    let mut codes = std::collections::BTreeMap::new();
    for o in outcomes {
        *codes.entry(format!("{:?}", o.code())).or_insert(0) += 1;
    }
    codes
}

/// Sends calls to `function` at `rate` per second (each with `deadline`)
/// until `stop` is set; returns every outcome in send order.
pub(crate) fn load(
    client: LeafClient<Transport>,
    function: FunctionId,
    rate: u32,
    deadline: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Vec<Outcome>> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut calls = Vec::new();
        while !*stop.borrow() {
            tick.tick().await;
            let (client, function) = (client.clone(), function.clone());
            calls.push(tokio::spawn(
                async move { call(&client, &function, b"fault".to_vec(), deadline).await },
            ));
        }
        let mut outcomes = Vec::new();
        for c in calls {
            outcomes.push(c.await.unwrap());
        }
        outcomes
    })
}

/// Runs a shell command, panicking with its output when it fails.
pub(crate) fn sh(command: &str) -> String {
    let out = Command::new("sh").args(["-c", command]).output().unwrap();
    assert!(
        out.status.success(),
        "`{command}` failed: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command to undo a fault when dropped (a firewall rule, a mount),
/// even when the case panics first.
#[derive(Debug)]
pub(crate) struct Undo {
    command: Option<String>,
}

impl Undo {
    /// Applies `apply` now and runs `undo` on drop (or [`Undo::now`]).
    pub(crate) fn apply(apply: &str, undo: &str) -> Undo {
        sh(apply);
        Undo { command: Some(undo.to_string()) }
    }

    /// Undoes the fault now.
    pub(crate) fn now(&mut self) {
        if let Some(command) = self.command.take() {
            sh(&command);
        }
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(command) = self.command.take() {
            let _ = Command::new("sh").args(["-c", &command]).status();
        }
    }
}

/// Seconds with millisecond precision, for figures.
pub(crate) fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// A whole platform as processes: a database, `n` workers and a leaf over
/// them, their containers labelled for `sweeper`. Dropped in field order:
/// the leaf, the workers (their containers are left for the sweeper, as a
/// killed worker leaves them), the database, the sweeper, the directory.
#[derive(Debug)]
pub(crate) struct Platform {
    pub(crate) client: LeafClient<Transport>,
    pub(crate) leaf: Proc,
    pub(crate) workers: Vec<Proc>,
    pub(crate) database: Proc,
    pub(crate) sweeper: ContainerSweeper,
    pub(crate) dir: tempfile::TempDir,
}

impl Platform {
    pub(crate) async fn start(workers: usize) -> Platform {
        Platform::start_on(workers, None).await
    }

    /// [`Platform::start`] with workers on the engine at `docker_host`.
    pub(crate) async fn start_on(workers: usize, docker_host: Option<&str>) -> Platform {
        let sweeper = ContainerSweeper::new();
        let dir = tempfile::tempdir().unwrap();
        let database = database(&dir.path().join("functions.db"), "127.0.0.1:0", dir.path());
        let workers: Vec<Proc> =
            (0..workers).map(|_| worker(&sweeper, &database.address, docker_host, dir.path())).collect();
        let leaf = leaf(&database.address, &workers.iter().collect::<Vec<_>>(), dir.path());
        let client = leaf_client(&leaf.address);
        Platform { client, leaf, workers, database, sweeper, dir }
    }

    /// Every process's last log lines and the test containers' logs.
    pub(crate) fn debug(&self) -> String {
        let mut out = String::new();
        out.push_str(&self.leaf.log_tail(40));
        for w in &self.workers {
            out.push_str(&w.log_tail(40));
        }
        out.push_str(&self.database.log_tail(20));
        out.push_str(&hyperfake_testkit::container_logs(&self.sweeper.label()));
        out
    }

    /// The leaf's view of `function`: (ready, starting, in flight).
    pub(crate) async fn load(&self, function: &FunctionId) -> Option<(u32, u32, u32)> {
        let state = leaf_state(&self.client).await.ok()?;
        let f = state
            .functions
            .iter()
            .find(|f| f.function_id.as_ref().is_some_and(|id| id.id == function.as_str()))?;
        Some((f.ready_instances, f.starting_instances, f.in_flight_calls))
    }

    /// Workers in the leaf's rotation.
    pub(crate) async fn in_rotation(&self) -> Option<u32> {
        leaf_state(&self.client).await.ok().map(|s| s.nodes_in_rotation)
    }
}

/// Instances a worker lists in its `State`.
pub(crate) async fn worker_instances(address: &str) -> Result<Vec<String>, tonic::Status> {
    let channel = proto::endpoint(address)
        .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy();
    let mut client = proto::controller::controller_client::ControllerClient::new(channel);
    let mut request = tonic::Request::new(proto::controller::StateRequest::default());
    request.set_timeout(Duration::from_secs(2));
    let state = client.state(request).await?.into_inner();
    Ok(state
        .functions
        .iter()
        .flat_map(|f| f.running.iter().chain(&f.idle).map(|i| i.instance_id.clone()))
        .collect())
}

/// The container of instance `id` (workers name it `hyperfake-<id>`).
pub(crate) fn container_of(instance: &str) -> String {
    format!("hyperfake-{instance}")
}
