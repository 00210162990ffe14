//! What `worker` and `fakeworker` share on the command line and at run time:
//! [`ServeArgs`] (flattened into both binaries' flags) and [`run`], the one
//! start-up and shutdown sequence, over whatever runtime a binary makes
//! ([`RuntimeSource`]).
//!
//! `run` serves one worker, or several in one process (`fakeworker --workers
//! N`): each has its own listener, worker id, instance table, events and
//! runtime, on one tokio runtime (no thread per worker). Each bound address
//! is announced on stdout as one JSON line, `{"worker_id":…,"address":…}`, and
//! with `--addresses-file` all of them are written as `{"workers": [...]}`,
//! which a leaf reads as its `--config` file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use hyperfake_core::defaults;
use tokio::net::TcpListener;

use crate::{FunctionCatalog, Runtime, ServeOptions, Worker, WorkerSettings};

/// Flags every worker binary takes.
#[derive(Clone, Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to serve on. Port 0 picks a free port (per worker); the bound
    /// address is printed as a JSON line. With several workers, port P gives
    /// them P, P+1, ….
    #[arg(long, env = defaults::env::WORKER_ADDRESS, default_value = defaults::WORKER_ADDRESS)]
    pub address: String,
    /// The function database.
    #[arg(long, env = defaults::env::DATABASE_ADDRESS, default_value = defaults::DATABASE_ADDRESS)]
    pub database: String,
    /// Names this worker in logs and events (and, on a real worker, labels
    /// its containers: those left by an earlier run with the same id are
    /// removed at start). Default: `<binary>-<port>`. With several workers,
    /// worker i is `<id>-<i>`.
    #[arg(long)]
    pub worker_id: Option<String>,
    /// Only images whose tag starts with one of these prefixes may be started.
    #[arg(long = "allow-image-prefix", default_value = defaults::IMAGE_PREFIX)]
    pub allowed_image_prefixes: Vec<String>,
    /// Also write the bound addresses to this file, as `{"workers": [...]}`
    /// (JSON, which a leaf reads with `--config`), once every worker listens and
    /// before the addresses are printed.
    #[arg(long, value_name = "PATH")]
    pub addresses_file: Option<PathBuf>,
    /// Require this shared token (`authorization: Bearer <token>`) on every
    /// request; clients without it are refused with UNAUTHENTICATED. Also sent
    /// to the database. Shows in `ps`: prefer --token-file.
    #[arg(long, env = defaults::env::TOKEN, hide_env_values = true)]
    pub token: Option<String>,
    /// Read the shared token from this file (one line; readable by its owner
    /// only, e.g. mode 0600). Conflicts with --token / HYPERFAKE_TOKEN.
    #[arg(long, value_name = "PATH", env = proto::auth::TOKEN_FILE_ENV, conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
}

/// Makes the runtime of each worker a binary serves.
#[async_trait]
pub trait RuntimeSource: Send {
    /// Names the binary: default worker ids are `<kind>-<port>`.
    fn kind(&self) -> &'static str;

    /// The runtime of worker `index` (0-based), called `worker_id`. An error
    /// stops the start-up, naming the worker.
    async fn runtime(&mut self, index: usize, worker_id: &str) -> anyhow::Result<Arc<dyn Runtime>>;
}

/// One worker announced on stdout.
#[derive(Debug, serde::Serialize)]
struct Announcement<'a> {
    worker_id: &'a str,
    address: String,
}

/// Serves `count` workers (at least one) over the runtimes `source` makes,
/// until SIGTERM or Ctrl-C; then stops every instance of every worker.
pub async fn run(args: ServeArgs, count: usize, mut source: impl RuntimeSource) -> anyhow::Result<()> {
    anyhow::ensure!(count > 0, "--workers must be at least 1");
    // Installed first, so a signal during start-up is not lost.
    let shutdown = hyperfake_cli::shutdown_signal().context("cannot listen for signals")?;
    let token = proto::auth::Token::from_flags(args.token.as_deref(), args.token_file.as_deref())
        .context("invalid --token / --token-file")?;
    let token = token.as_ref().map(proto::auth::Token::as_str);
    crate::limits::raise_open_files(count);
    let listeners = bind(&args.address, count).await?;
    let database = database::DatabaseClient::connect(&args.database)
        .with_context(|| format!("database at {}", args.database))?
        .with_token(token)
        .context("invalid --token")?;

    let mut served = Vec::with_capacity(count);
    for (index, listener) in listeners.into_iter().enumerate() {
        let bound = listener.local_addr()?;
        let worker_id = match (&args.worker_id, count) {
            (Some(id), 1) => id.clone(),
            (Some(id), _) => format!("{id}-{index}"),
            (None, _) => format!("{}-{}", source.kind(), bound.port()),
        };
        let runtime =
            source.runtime(index, &worker_id).await.with_context(|| format!("worker {worker_id}"))?;
        let mut settings = WorkerSettings::new(&worker_id);
        settings.allowed_image_prefixes = args.allowed_image_prefixes.clone();
        let worker = Worker::new(settings, runtime, FunctionCatalog::new(database.clone()));
        served.push((worker, listener, bound));
    }

    let addresses: Vec<String> = served.iter().map(|(_, _, bound)| bound.to_string()).collect();
    // The file first: whoever reads the announcements may then read it.
    if let Some(path) = &args.addresses_file {
        write_addresses(path, &addresses)?;
    }
    for ((worker, _, _), address) in served.iter().zip(&addresses) {
        let line = serde_json::to_string(&Announcement {
            worker_id: &worker.settings.worker_id,
            address: address.clone(),
        })?;
        println!("{line}");
    }
    tracing::info!(workers = count, first = %addresses[0], "serving controller.Controller");
    if token.is_some() {
        tracing::info!("requiring the shared token on every request");
    }

    // One shutdown signal for every server.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let options = ServeOptions { token: token.map(str::to_string) };
    let workers: Vec<Arc<Worker>> = served.iter().map(|(w, _, _)| Arc::clone(w)).collect();
    let servers = served.into_iter().map(|(worker, listener, bound)| {
        let mut stop = stop_rx.clone();
        let options = options.clone();
        async move {
            let shutdown = async move {
                let _ = stop.wait_for(|stopping| *stopping).await;
            };
            crate::serve_with(worker, listener, shutdown, options)
                .await
                .with_context(|| format!("serving on {bound}"))
        }
    });
    let served = futures::future::try_join_all(servers).await;
    let stopped: usize =
        futures::future::join_all(workers.iter().map(|w| w.stop_all())).await.into_iter().sum();
    tracing::info!(stopped, "stopped; every instance is removed");
    served.map(drop)
}

/// Binds `count` listeners: all on port 0 (each a free port), or on
/// consecutive ports from the one given.
async fn bind(address: &str, count: usize) -> anyhow::Result<Vec<TcpListener>> {
    if count == 1 {
        let listener =
            TcpListener::bind(address).await.with_context(|| format!("binding --address {address}"))?;
        return Ok(vec![listener]);
    }
    let (host, port) = address
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
        .with_context(|| format!("--address {address:?} is not host:port"))?;
    let mut listeners = Vec::with_capacity(count);
    for i in 0..count {
        let port = match port {
            0 => 0,
            p => u16::try_from(usize::from(p) + i)
                .ok()
                .with_context(|| format!("--address {address} with {count} workers runs past port 65535"))?,
        };
        let at = format!("{host}:{port}");
        let listener = TcpListener::bind(&at)
            .await
            .with_context(|| format!("binding worker {i} of {count} on {at} (from --address {address})"))?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Writes `{"workers": [...]}` to `path` through a temporary file renamed
/// into place, so a reader never sees half of it.
fn write_addresses(path: &Path, addresses: &[String]) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(&serde_json::json!({ "workers": addresses }))?;
    let name =
        path.file_name().with_context(|| format!("--addresses-file {}: not a file", path.display()))?;
    let tmp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    std::fs::write(&tmp, text + "\n").with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing --addresses-file {}", path.display()))?;
    Ok(())
}
