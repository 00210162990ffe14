//! `worker`: runs functions as Docker containers behind `controller.Controller`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use worker::docker::AddressMode;
use worker::{DockerRuntime, DockerSettings, Runtime, RuntimeSource, ServeArgs};

/// Runs function instances as Docker containers and serves the HyperFaaS
/// `controller.Controller` API (Start, Call, Stop, Status, Metrics, State, Resources).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    serve: ServeArgs,
    /// Docker network the function containers join (default: Docker's bridge).
    #[arg(long)]
    network: Option<String>,
    /// How the worker reaches a function's port.
    #[arg(long, value_enum, default_value_t = Mode::Published)]
    address_mode: Mode,
    /// Extra label for every container, as key=value (repeatable).
    #[arg(long = "label", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// How long Start waits for a function to report ready.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    ready_timeout: Duration,
    /// How long a stopping container gets after SIGTERM before SIGKILL.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    stop_grace: Duration,
    /// Where the host's cgroup file system is mounted, for sampling the
    /// containers' CPU and memory from their cgroup files. A worker in a
    /// container needs the host's mounted read-only (compose.yaml mounts it at
    /// /host/sys/fs/cgroup); without it each container is sampled through the
    /// engine's stats API, about a second each.
    #[arg(long, env = "HYPERFAKE_CGROUP_ROOT", default_value = worker::docker::DEFAULT_CGROUP_ROOT)]
    cgroup_root: std::path::PathBuf,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    /// Publish each function's port on 127.0.0.1 (worker on the host).
    Published,
    /// Reach functions by container name on `--network` (worker in a container).
    Network,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("label {s:?} is not key=value"))
}

#[tokio::main]
async fn main() -> ExitCode {
    hyperfake_cli::init_tracing("info");
    let Args { serve, network, address_mode, labels, ready_timeout, stop_grace, cgroup_root } = Args::parse();
    let docker = Docker { network, address_mode, labels, ready_timeout, stop_grace, cgroup_root };
    hyperfake_cli::exit_code("worker", worker::cli::run(serve, 1, docker).await)
}

/// The Docker flags, making each worker's [`DockerRuntime`].
#[derive(Debug)]
struct Docker {
    network: Option<String>,
    address_mode: Mode,
    labels: Vec<(String, String)>,
    ready_timeout: Duration,
    stop_grace: Duration,
    cgroup_root: std::path::PathBuf,
}

#[async_trait::async_trait]
impl RuntimeSource for Docker {
    fn kind(&self) -> &'static str {
        "worker"
    }

    async fn runtime(&mut self, _index: usize, worker_id: &str) -> anyhow::Result<Arc<dyn Runtime>> {
        let mut docker = DockerSettings::new(worker_id);
        docker.network = self.network.clone();
        docker.address_mode = match self.address_mode {
            Mode::Published => AddressMode::Published,
            Mode::Network => AddressMode::Network,
        };
        docker.extra_labels = self.labels.iter().cloned().collect::<HashMap<_, _>>();
        docker.ready_timeout = self.ready_timeout;
        docker.stop_grace = self.stop_grace;
        docker.cgroup_root = self.cgroup_root.clone();
        let runtime = DockerRuntime::connect(docker).await.context("connecting to Docker")?;
        let removed = runtime.remove_leftovers().await.context("removing leftover containers")?;
        if removed > 0 {
            tracing::info!(removed, "removed containers left by an earlier run of {worker_id}");
        }
        Ok(Arc::new(runtime))
    }
}
