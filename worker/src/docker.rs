//! The Docker runtime: one container per instance, limits from the function's
//! config, readiness via the function's grpc.health.v1 service, and one event
//! stream for all of this worker's containers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, EventsOptionsBuilder, InspectContainerOptions,
    ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder, StatsOptionsBuilder,
    StopContainerOptionsBuilder,
};
use futures::StreamExt;
use hyperfake_core::defaults::{self, FUNCTION_HEALTH_SERVICE, FUNCTION_PORT, MAX_MESSAGE_SIZE};
use hyperfake_core::{Bytes, InstanceId, Nanos, trailers};
use proto::common::CallRequest;
use proto::function::function_service_client::FunctionServiceClient;
use tokio::sync::{Notify, mpsc};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::host::HostMonitor;
use crate::runtime::{
    CallError, CallOutput, ExitNotice, HostUsage, InstanceConn, ResourceCounters, Runtime, RuntimeError,
    StartSpec, Started,
};

/// Label naming the instance a container runs.
pub const LABEL_INSTANCE: &str = "hyperfake.instance";
/// How long `docker stop` waits after SIGTERM before SIGKILL. The SDK exits on
/// SIGTERM within milliseconds; this only bounds a misbehaving function.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(2);
/// Pause between readiness probes: short, since a scratch image starts in ms.
const READY_POLL: Duration = Duration::from_millis(10);

/// The user function containers run as: `nobody`/`nogroup` by number (the
/// images are FROM scratch, with no /etc/passwd). The SDK writes no file and
/// listens on an unprivileged port, so it needs neither root nor a writable
/// path.
pub const FUNCTION_USER: &str = "65534:65534";
/// Processes and threads a function container may have. The SDK runs one
/// process with a tokio thread per core plus blocking threads (at most a few
/// dozen); this stops a fork bomb, not a function.
pub const FUNCTION_PIDS_LIMIT: i64 = 256;
/// Function logs: Docker's json-file driver, at most this much per file...
pub const LOG_MAX_SIZE: &str = "10m";
/// ...and this many files, so a chatty function cannot fill the disk.
pub const LOG_MAX_FILES: &str = "2";

/// How the worker reaches a function's port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressMode {
    /// Publish the port on 127.0.0.1 (worker runs on the host).
    Published,
    /// Reach the container by name on a shared Docker network (worker runs in a container).
    Network,
}

#[derive(Clone, Debug)]
pub struct DockerSettings {
    pub worker_id: String,
    /// Network the containers join; `None` is Docker's default bridge.
    pub network: Option<String>,
    pub address_mode: AddressMode,
    /// Labels added to every container (tests use them to clean up).
    pub extra_labels: HashMap<String, String>,
    pub ready_timeout: Duration,
    pub stop_grace: Duration,
    /// Where the host's cgroup file system is visible to this process
    /// (`/sys/fs/cgroup` on the host; a read-only bind mount of it when the
    /// worker itself runs in a container, whose own `/sys/fs/cgroup` shows
    /// only its own cgroup). Containers whose files are not found there are
    /// sampled through the engine's stats API, which takes about a second
    /// per container.
    pub cgroup_root: PathBuf,
}

impl DockerSettings {
    pub fn new(worker_id: impl Into<String>) -> Self {
        DockerSettings {
            worker_id: worker_id.into(),
            network: None,
            address_mode: AddressMode::Published,
            extra_labels: HashMap::new(),
            ready_timeout: defaults::READY_TIMEOUT,
            stop_grace: DEFAULT_STOP_GRACE,
            cgroup_root: PathBuf::from(DEFAULT_CGROUP_ROOT),
        }
    }
}

#[derive(Debug)]
pub struct DockerRuntime {
    docker: Docker,
    settings: DockerSettings,
    host: HostMonitor,
    /// cgroup files per container id, found once.
    cgroups: Mutex<HashMap<String, Option<CgroupFiles>>>,
}

fn engine(e: bollard::errors::Error) -> RuntimeError {
    RuntimeError::Engine(e.to_string())
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}

impl DockerRuntime {
    /// Connects to the local engine (`DOCKER_HOST` or the default socket) and
    /// negotiates the API version, so older engines work too.
    pub async fn connect(settings: DockerSettings) -> Result<Self, RuntimeError> {
        let docker =
            Docker::connect_with_defaults().map_err(engine)?.negotiate_version().await.map_err(|e| {
                RuntimeError::Engine(format!("cannot reach the Docker engine ({e}); is it running?"))
            })?;
        docker.ping().await.map_err(engine)?;
        Ok(DockerRuntime {
            docker,
            settings,
            host: HostMonitor::spawn(defaults::RESOURCE_SAMPLE_INTERVAL),
            cgroups: Mutex::new(HashMap::new()),
        })
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    fn worker_filter(&self) -> HashMap<String, Vec<String>> {
        HashMap::from([(
            "label".to_string(),
            vec![format!("{}={}", defaults::LABEL_WORKER, self.settings.worker_id)],
        )])
    }

    /// Removes containers left by an earlier run of this worker id. They are
    /// removed rather than adopted: their calls and timers died with the old
    /// process, so the leaf has to treat them as gone anyway.
    pub async fn remove_leftovers(&self) -> Result<usize, RuntimeError> {
        let options =
            ListContainersOptionsBuilder::default().all(true).filters(&self.worker_filter()).build();
        let leftovers = self.docker.list_containers(Some(options)).await.map_err(engine)?;
        for c in &leftovers {
            if let Some(id) = &c.id {
                self.remove(id).await?;
            }
        }
        Ok(leftovers.len())
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // Already being removed by an earlier stop.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
            Err(e) => Err(engine(e)),
        }
    }

    fn create_body(&self, spec: &StartSpec) -> ContainerCreateBody {
        let mut labels = self.settings.extra_labels.clone();
        labels.insert(defaults::LABEL_MANAGED.into(), "true".into());
        labels.insert(defaults::LABEL_WORKER.into(), self.settings.worker_id.clone());
        labels.insert(defaults::LABEL_FUNCTION.into(), spec.function_id.to_string());
        labels.insert(LABEL_INSTANCE.into(), spec.instance_id.to_string());
        let port = format!("{FUNCTION_PORT}/tcp");
        let port_bindings = (self.settings.address_mode == AddressMode::Published).then(|| {
            HashMap::from([(
                port.clone(),
                Some(vec![PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(String::new()) }]),
            )])
        });
        let memory = spec.config.memory.as_i64();
        let host_config = HostConfig {
            memory: Some(memory),
            // No swap: the memory limit is the limit, as on a FaaS platform.
            memory_swap: Some(memory),
            cpu_period: spec.config.cpu.map(|c| i64::try_from(c.period_us).unwrap_or(i64::MAX)),
            cpu_quota: spec.config.cpu.map(|c| i64::try_from(c.quota_us).unwrap_or(i64::MAX)),
            port_bindings,
            network_mode: self.settings.network.clone(),
            // Hardening: no capabilities, no privilege gain through setuid
            // binaries, an immutable image, bounded processes and logs.
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            readonly_rootfs: Some(true),
            pids_limit: Some(FUNCTION_PIDS_LIMIT),
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(HashMap::from([
                    ("max-size".to_string(), LOG_MAX_SIZE.to_string()),
                    ("max-file".to_string(), LOG_MAX_FILES.to_string()),
                ])),
            }),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(spec.image_tag.to_string()),
            user: Some(FUNCTION_USER.into()),
            env: Some(vec![
                format!("{}={}", defaults::env::INSTANCE_ID, spec.instance_id),
                format!("{}={}", defaults::env::FUNCTION_ID, spec.function_id),
            ]),
            labels: Some(labels),
            exposed_ports: Some(vec![port]),
            host_config: Some(host_config),
            ..Default::default()
        }
    }

    async fn address(&self, id: &str, name: &str) -> Result<String, RuntimeError> {
        if self.settings.address_mode == AddressMode::Network {
            return Ok(format!("{name}:{FUNCTION_PORT}"));
        }
        let info =
            self.docker.inspect_container(id, None::<InspectContainerOptions>).await.map_err(engine)?;
        let host_port = info
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|mut p| p.remove(&format!("{FUNCTION_PORT}/tcp")))
            .flatten()
            .and_then(|b| b.into_iter().find_map(|b| b.host_port))
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                RuntimeError::Engine(format!("container {name} has no published port {FUNCTION_PORT}"))
            })?;
        Ok(format!("127.0.0.1:{host_port}"))
    }

    /// Exit code and last log lines of a container that stopped during startup.
    async fn exit_report(&self, id: &str) -> Option<(Option<i64>, String)> {
        let info = self.docker.inspect_container(id, None::<InspectContainerOptions>).await.ok()?;
        let state = info.state?;
        if state.running == Some(true) {
            return None;
        }
        let options = LogsOptionsBuilder::default().stdout(true).stderr(true).tail("20").build();
        let mut lines = String::new();
        let mut logs = self.docker.logs(id, Some(options));
        while let Some(Ok(chunk)) = logs.next().await {
            lines.push_str(&chunk.to_string());
        }
        let logs = if lines.trim().is_empty() {
            String::new()
        } else {
            format!("; last log lines:\n{}", lines.trim_end())
        };
        Some((state.exit_code, logs))
    }

    /// Polls the function's health service until it reports SERVING.
    async fn wait_ready(&self, spec: &StartSpec, id: &str, channel: Channel) -> Result<(), RuntimeError> {
        let deadline = Instant::now() + self.settings.ready_timeout;
        let mut health = HealthClient::new(channel);
        let request = || HealthCheckRequest { service: FUNCTION_HEALTH_SERVICE.to_string() };
        for attempt in 0u64.. {
            let probe = tokio::time::timeout(Duration::from_millis(500), health.check(request())).await;
            if let Ok(Ok(r)) = probe {
                if r.get_ref().status() == ServingStatus::Serving {
                    return Ok(());
                }
            }
            // A container that died will never answer: check now and then
            // instead of waiting out the whole timeout.
            if attempt % 10 == 9 {
                if let Some((exit_code, logs)) = self.exit_report(id).await {
                    return Err(RuntimeError::ExitedDuringStartup {
                        instance: spec.instance_id.clone(),
                        exit_code,
                        logs,
                    });
                }
            }
            if Instant::now() >= deadline {
                return Err(RuntimeError::NotReady {
                    instance: spec.instance_id.clone(),
                    after: self.settings.ready_timeout,
                });
            }
            tokio::time::sleep(READY_POLL).await;
        }
        unreachable!("the probe loop only ends by returning")
    }

    async fn start_created(&self, spec: &StartSpec, id: &str, name: &str) -> Result<Started, RuntimeError> {
        self.docker.start_container(id, None).await.map_err(engine)?;
        let address = self.address(id, name).await?;
        let channel = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| RuntimeError::Engine(format!("bad instance address {address}: {e}")))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(1))
            .connect_lazy();
        self.wait_ready(spec, id, channel.clone()).await?;
        let client = FunctionServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
        Ok(Started {
            handle: id.to_string(),
            name: name.to_string(),
            address,
            conn: Arc::new(GrpcInstance { client }),
        })
    }
}

#[async_trait]
impl Runtime for DockerRuntime {
    async fn start(&self, spec: &StartSpec) -> Result<Started, RuntimeError> {
        let name = format!("hyperfake-{}", spec.instance_id);
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = match self.docker.create_container(Some(options), self.create_body(spec)).await {
            Ok(c) => c,
            Err(e) if is_not_found(&e) => {
                return Err(RuntimeError::ImageMissing { image: spec.image_tag.clone() });
            }
            Err(e) => return Err(engine(e)),
        };
        // Created ---- start fails ----> removed: nothing is left behind.
        match self.start_created(spec, &created.id, &name).await {
            Ok(started) => Ok(started),
            Err(e) => {
                if let Err(cleanup) = self.remove(&created.id).await {
                    tracing::warn!(container = %name, "removing a container that failed to start: {cleanup}");
                }
                Err(e)
            }
        }
    }

    async fn stop(&self, handle: &str) -> Result<(), RuntimeError> {
        let grace = i32::try_from(self.settings.stop_grace.as_secs()).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::default().t(grace).build();
        match self.docker.stop_container(handle, Some(options)).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => return Ok(()),
            // 304: already stopped (it crashed, or exited on its own).
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => {}
            Err(e) => return Err(engine(e)),
        }
        self.cgroups.lock().unwrap_or_else(|e| e.into_inner()).remove(handle);
        self.remove(handle).await
    }

    async fn sample(&self, handle: &str) -> Option<ResourceCounters> {
        let files = {
            let mut cache = self.cgroups.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .entry(handle.to_string())
                .or_insert_with(|| CgroupFiles::find(&self.settings.cgroup_root, handle))
                .clone()
        };
        match files {
            Some(files) => files.read(),
            None => self.sample_via_api(handle).await,
        }
    }

    fn watch(&self, exits: mpsc::Sender<ExitNotice>, resync: Arc<Notify>) {
        tokio::spawn(watch_events(self.docker.clone(), self.worker_filter(), exits, resync));
    }

    /// Lists this worker's running containers once; any handle not among them
    /// is inspected (a paused container is not listed as running but runs).
    /// A container that is gone or not running has vanished.
    async fn vanished(&self, instances: &[(InstanceId, String)]) -> Result<Vec<ExitNotice>, RuntimeError> {
        if instances.is_empty() {
            return Ok(Vec::new());
        }
        let mut filters = self.worker_filter();
        filters.insert("status".into(), vec!["running".into()]);
        let options = ListContainersOptionsBuilder::default().filters(&filters).build();
        let running: std::collections::HashSet<String> = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(engine)?
            .into_iter()
            .filter_map(|c| c.id)
            .collect();
        let mut vanished = Vec::new();
        for (instance, handle) in instances.iter().filter(|(_, h)| !running.contains(h)) {
            let notice =
                |exit_code, oom_killed| ExitNotice { instance_id: instance.clone(), exit_code, oom_killed };
            match self.docker.inspect_container(handle, None::<InspectContainerOptions>).await {
                Ok(info) => {
                    let state = info.state.unwrap_or_default();
                    if state.running != Some(true) {
                        vanished.push(notice(state.exit_code, state.oom_killed.unwrap_or(false)));
                    }
                }
                Err(e) if is_not_found(&e) => vanished.push(notice(None, false)),
                Err(e) => return Err(engine(e)),
            }
        }
        Ok(vanished)
    }

    fn usage(&self) -> HostUsage {
        self.host.usage()
    }
}

impl DockerRuntime {
    /// Fallback when cgroup files are not visible (e.g. a worker in a container
    /// without /sys/fs/cgroup mounted): the engine's one-shot stats.
    async fn sample_via_api(&self, handle: &str) -> Option<ResourceCounters> {
        let options = StatsOptionsBuilder::default().stream(false).one_shot(true).build();
        let stats = self.docker.stats(handle, Some(options)).next().await?.ok()?;
        let cpu = stats.cpu_stats?.cpu_usage?.total_usage?;
        let memory = stats.memory_stats?.usage?;
        Some(ResourceCounters { cpu_usage: Nanos(cpu), memory: Bytes(memory) })
    }
}

/// Follows the engine's events for this worker's containers and reports
/// unexpected exits. Reconnects with backoff after the engine restarts, asking
/// for the events it missed (`since`). An engine restart loses its event log,
/// so `since` cannot recover deaths during the restart: every (re)connect
/// notifies `resync`, and the worker reconciles.
async fn watch_events(
    docker: Docker,
    mut filters: HashMap<String, Vec<String>>,
    exits: mpsc::Sender<ExitNotice>,
    resync: Arc<Notify>,
) {
    filters.insert("type".into(), vec!["container".into()]);
    filters.insert("event".into(), vec!["die".into(), "oom".into()]);
    let mut since: Option<i64> = None;
    let mut backoff = Duration::from_millis(100);
    let mut oom_killed: std::collections::HashSet<String> = Default::default();
    loop {
        let mut options = EventsOptionsBuilder::default().filters(&filters);
        let since_text = since.map(|s| s.to_string());
        if let Some(s) = &since_text {
            options = options.since(s);
        }
        let mut stream = docker.events(Some(options.build()));
        match docker.ping().await {
            // Connected: whatever died while the stream was down is found now.
            Ok(_) => resync.notify_one(),
            Err(e) => tracing::debug!("docker engine not answering yet: {e}"),
        }
        while let Some(item) = stream.next().await {
            let event = match item {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!("docker event stream failed: {e}; reconnecting");
                    break;
                }
            };
            backoff = Duration::from_millis(100);
            since = event.time.or(since);
            let attributes = event.actor.and_then(|a| a.attributes).unwrap_or_default();
            let Some(instance) = attributes.get(LABEL_INSTANCE) else { continue };
            match event.action.as_deref() {
                Some("oom") => {
                    oom_killed.insert(instance.clone());
                }
                Some("die") => {
                    let notice = ExitNotice {
                        instance_id: InstanceId::new(instance.clone()),
                        exit_code: attributes.get("exitCode").and_then(|c| c.parse().ok()),
                        oom_killed: oom_killed.remove(instance),
                    };
                    if exits.send(notice).await.is_err() {
                        return;
                    }
                }
                _ => {}
            }
        }
        if exits.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// The cgroup files holding a container's CPU time and memory.
#[derive(Clone, Debug)]
struct CgroupFiles {
    /// cgroup v1 `cpuacct.usage` (ns) or v2 `cpu.stat` (`usage_usec`).
    cpu: PathBuf,
    /// v1 `memory.usage_in_bytes` or v2 `memory.current`.
    memory: PathBuf,
    v2: bool,
}

/// The host's cgroup file system, as a worker on the host sees it.
pub const DEFAULT_CGROUP_ROOT: &str = "/sys/fs/cgroup";

impl CgroupFiles {
    fn find(root: &Path, id: &str) -> Option<Self> {
        for cpu_dir in ["cpuacct", "cpu,cpuacct", "cpu"] {
            let cpu = root.join(cpu_dir).join("docker").join(id).join("cpuacct.usage");
            let memory = root.join("memory").join("docker").join(id).join("memory.usage_in_bytes");
            if cpu.exists() && memory.exists() {
                return Some(CgroupFiles { cpu, memory, v2: false });
            }
        }
        for dir in
            [root.join("system.slice").join(format!("docker-{id}.scope")), root.join("docker").join(id)]
        {
            if dir.join("cpu.stat").exists() && dir.join("memory.current").exists() {
                return Some(CgroupFiles {
                    cpu: dir.join("cpu.stat"),
                    memory: dir.join("memory.current"),
                    v2: true,
                });
            }
        }
        None
    }

    fn read(&self) -> Option<ResourceCounters> {
        let cpu_text = std::fs::read_to_string(&self.cpu).ok()?;
        let cpu = if self.v2 {
            let usec: u64 =
                cpu_text.lines().find_map(|l| l.strip_prefix("usage_usec "))?.trim().parse().ok()?;
            Nanos::from_micros(usec)
        } else {
            Nanos(cpu_text.trim().parse().ok()?)
        };
        let memory = Bytes(std::fs::read_to_string(&self.memory).ok()?.trim().parse().ok()?);
        Some(ResourceCounters { cpu_usage: cpu, memory })
    }
}

/// Calls a function container over gRPC.
#[derive(Debug)]
struct GrpcInstance {
    client: FunctionServiceClient<Channel>,
}

#[async_trait]
impl InstanceConn for GrpcInstance {
    async fn call(&self, request: CallRequest, timeout: Option<Duration>) -> Result<CallOutput, CallError> {
        let mut request = tonic::Request::new(request);
        if let Some(t) = timeout {
            request.set_timeout(t);
        }
        match self.client.clone().call(request).await {
            Ok(response) => {
                let handler_time = response
                    .metadata()
                    .get(trailers::FUNCTION_HANDLER_TIME)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .map(Nanos);
                Ok(CallOutput { response: response.into_inner(), handler_time })
            }
            Err(s) if s.code() == tonic::Code::Unavailable => {
                Err(CallError::Unreachable(s.message().to_string()))
            }
            Err(s) if s.code() == tonic::Code::DeadlineExceeded || s.code() == tonic::Code::Cancelled => {
                Err(CallError::DeadlineExceeded)
            }
            // The connection broke with the call in flight (the container died
            // or was killed): tonic reports UNKNOWN "transport error" made on
            // this side, without response metadata. The call may have run, so
            // it is ABORTED, not UNAVAILABLE, which the leaf would retry
            // (e2e `faults::killed_container`).
            Err(s)
                if matches!(s.code(), tonic::Code::Unknown | tonic::Code::Internal)
                    && s.metadata().is_empty() =>
            {
                Err(CallError::Status(tonic::Status::aborted(format!(
                    "the instance was lost during the call (its container stopped?): {}",
                    s.message()
                ))))
            }
            Err(s) => Err(CallError::Status(s)),
        }
    }
}
