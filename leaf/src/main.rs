//! `leaf`: a HyperFaaS leaf (`--worker ...`) or load-balancer node (`--child ...`).

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use leaf::config::{self, Args};
use leaf::{Node, Role};

#[tokio::main]
async fn main() -> ExitCode {
    hyperfake_cli::init_tracing("info");
    hyperfake_cli::exit_code("leaf", run(Args::parse()).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let shutdown = hyperfake_cli::shutdown_signal().context("cannot listen for signals")?;
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
    node.serve(listener, shutdown).await.context("serving")?;
    tracing::info!("stopped");
    Ok(())
}
