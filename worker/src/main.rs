//! `worker`: runs functions as Docker containers behind `controller.Controller`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use hyperfake_core::defaults;
use worker::docker::AddressMode;
use worker::{DockerRuntime, DockerSettings, FunctionCatalog, Worker, WorkerSettings};

/// Runs function instances as Docker containers and serves the HyperFaaS
/// `controller.Controller` API (Start, Call, Stop, Status, Metrics, State, Resources).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to serve on (use port 0 for any free port; the bound address is printed).
    #[arg(long, env = defaults::env::WORKER_ADDRESS, default_value = defaults::WORKER_ADDRESS)]
    address: String,
    /// The function database.
    #[arg(long, env = defaults::env::DATABASE_ADDRESS, default_value = defaults::DATABASE_ADDRESS)]
    database: String,
    /// Names this worker: labels its containers; containers left by an earlier
    /// run with the same id are removed at start. Default: `worker-<port>`.
    #[arg(long)]
    worker_id: Option<String>,
    /// Only images whose tag starts with one of these prefixes may be started.
    #[arg(long = "allow-image-prefix", default_value = defaults::IMAGE_PREFIX)]
    allowed_image_prefixes: Vec<String>,
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
    /// Require this shared token (`authorization: Bearer <token>`) on every
    /// request; clients without it are refused with UNAUTHENTICATED. Also sent
    /// to the database. Shows in `ps`: prefer --token-file.
    #[arg(long, env = defaults::env::TOKEN, hide_env_values = true)]
    token: Option<String>,
    /// Read the shared token from this file (one line; readable by its owner
    /// only, e.g. mode 0600). Conflicts with --token / HYPERFAKE_TOKEN.
    #[arg(long, value_name = "PATH", env = proto::auth::TOKEN_FILE_ENV, conflicts_with = "token")]
    token_file: Option<std::path::PathBuf>,
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
    hyperfake_cli::exit_code("worker", run(Args::parse()).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let token = proto::auth::Token::from_flags(args.token.as_deref(), args.token_file.as_deref())
        .context("invalid --token / --token-file")?;
    let token = token.as_ref().map(proto::auth::Token::as_str);
    let listener = tokio::net::TcpListener::bind(&args.address)
        .await
        .with_context(|| format!("binding {}", args.address))?;
    let bound = listener.local_addr()?;
    let worker_id = args.worker_id.unwrap_or_else(|| format!("worker-{}", bound.port()));

    let mut docker = DockerSettings::new(&worker_id);
    docker.network = args.network;
    docker.address_mode = match args.address_mode {
        Mode::Published => AddressMode::Published,
        Mode::Network => AddressMode::Network,
    };
    docker.extra_labels = args.labels.into_iter().collect::<HashMap<_, _>>();
    docker.ready_timeout = args.ready_timeout;
    docker.stop_grace = args.stop_grace;
    docker.cgroup_root = args.cgroup_root;
    let runtime = DockerRuntime::connect(docker).await.context("connecting to Docker")?;
    let removed = runtime.remove_leftovers().await.context("removing leftover containers")?;
    if removed > 0 {
        tracing::info!(removed, "removed containers left by an earlier run of {worker_id}");
    }

    let database = database::DatabaseClient::connect(&args.database)
        .with_context(|| format!("database at {}", args.database))?
        .with_token(token)
        .context("invalid --token")?;
    let mut settings = WorkerSettings::new(&worker_id);
    settings.allowed_image_prefixes = args.allowed_image_prefixes;
    let worker = Worker::new(settings, Arc::new(runtime), FunctionCatalog::new(database));

    println!("worker {worker_id} listening on {bound}");
    tracing::info!(%bound, %worker_id, "serving controller.Controller");
    let options = worker::ServeOptions { token: token.map(str::to_string) };
    if options.token.is_some() {
        tracing::info!("requiring the shared token on every request");
    }
    let shutdown = hyperfake_cli::shutdown_signal().context("cannot listen for signals")?;
    worker::serve_with(Arc::clone(&worker), listener, shutdown, options).await?;
    let stopped = worker.stop_all().await;
    tracing::info!(stopped, "worker stopped; its containers are removed");
    Ok(())
}
