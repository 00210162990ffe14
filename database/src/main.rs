//! `database`: serves hyperfake's function store over gRPC.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use database::Store;
use hyperfake_core::defaults;
use tracing::info;

/// hyperfake's function metadata store: serves `database.FunctionStore` (and
/// `grpc.health.v1`) over a SQLite file. Log verbosity follows RUST_LOG.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on. With port 0 a free port is chosen; the address
    /// actually used is printed on stdout.
    #[arg(long, env = defaults::env::DATABASE_ADDRESS, default_value = defaults::DATABASE_ADDRESS)]
    address: SocketAddr,
    /// SQLite file holding the functions; created if missing.
    #[arg(long, default_value = "hyperfake-functions.db")]
    db: PathBuf,
    /// Require this shared token (`authorization: Bearer <token>`) on every
    /// call; health checks stay open. Shows in `ps`: prefer --token-file.
    #[arg(long, env = defaults::env::TOKEN, hide_env_values = true)]
    token: Option<String>,
    /// Read the shared token from this file (one line; readable by its owner
    /// only, e.g. mode 0600). Conflicts with --token / HYPERFAKE_TOKEN.
    #[arg(long, value_name = "PATH", env = proto::auth::TOKEN_FILE_ENV, conflicts_with = "token")]
    token_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    hyperfake_cli::init_tracing("info");
    hyperfake_cli::exit_code("database", run(args))
}

#[tokio::main]
async fn run(args: Args) -> anyhow::Result<()> {
    let token = proto::auth::Token::from_flags(args.token.as_deref(), args.token_file.as_deref())
        .context("invalid --token / --token-file")?;
    let auth = proto::auth::RequireToken::from_token(token.as_ref());
    let store = Store::open(&args.db)?;
    let listener = tokio::net::TcpListener::bind(args.address)
        .await
        .with_context(|| format!("cannot listen on {}", args.address))?;
    let address = listener.local_addr()?;
    let shutdown = hyperfake_cli::shutdown_signal().context("cannot listen for signals")?;
    info!(%address, db = %args.db.display(), "serving the function store");
    println!("{address}");
    if auth.is_required() {
        info!("requiring the shared token on every call");
    }
    database::serve_with(listener, store, shutdown, auth).await.context("server failed")?;
    info!("stopped");
    Ok(())
}
