//! `leaf`: a HyperFaaS leaf (`--worker ...`) or load-balancer node (`--child ...`).

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use leaf::config::{self, Args};
use leaf::{Node, Role};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("leaf: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let settings = config::from_args(args)?;
    let listener = tokio::net::TcpListener::bind(&settings.address)
        .await
        .with_context(|| format!("binding {}", settings.address))?;
    let bound = listener.local_addr()?;
    let node = Node::start(&settings).await?;
    let what = match &settings.role {
        Role::Leaf { workers } => format!("leaf over {} worker(s)", workers.len()),
        Role::Balancer { children } => format!("load-balancer node over {} child(ren)", children.len()),
    };
    println!("{what} listening on {bound}");
    tracing::info!(%bound, "serving leaf.Leaf as {what}");
    node.serve(listener, shutdown_signal()).await.context("serving")?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler cannot fail on Unix");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
