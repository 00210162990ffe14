//! The no-op leaf: a `leaf.Leaf` that answers every call at once with an
//! empty body, the cheapest possible target, so that what a benchmark
//! measures is the generator. It runs as a process of its own
//! (`loadgen noop-leaf`), so that its CPU time is counted apart from the
//! generator's.

use std::io::{BufRead, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use proto::leaf::leaf_server::{Leaf, LeafServer};
use proto::leaf::{
    CreateFunctionRequest, CreateFunctionResponse, LeafStateRequest, LeafStateResponse, ScheduleCallRequest,
    ScheduleCallResponse,
};
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

/// A leaf that answers every call at once with an empty body.
#[derive(Debug, Default)]
pub struct NoopLeaf;

#[tonic::async_trait]
impl Leaf for NoopLeaf {
    async fn schedule_call(
        &self,
        _request: Request<ScheduleCallRequest>,
    ) -> Result<Response<ScheduleCallResponse>, Status> {
        Ok(Response::new(ScheduleCallResponse::default()))
    }

    async fn create_function(
        &self,
        request: Request<CreateFunctionRequest>,
    ) -> Result<Response<CreateFunctionResponse>, Status> {
        let tag = request.into_inner().image_tag.map(|t| t.tag).unwrap_or_default();
        Ok(Response::new(CreateFunctionResponse {
            function_id: Some(proto::common::FunctionId { id: format!("noop-{tag}") }),
        }))
    }

    async fn state(
        &self,
        _request: Request<LeafStateRequest>,
    ) -> Result<Response<LeafStateResponse>, Status> {
        Ok(Response::new(LeafStateResponse::default()))
    }
}

/// Serves [`NoopLeaf`] on 127.0.0.1:0 in this process until the returned
/// sender is dropped or fired.
pub async fn serve_noop() -> anyhow::Result<(SocketAddr, oneshot::Sender<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("cannot bind 127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let result = tonic::transport::Server::builder()
            .add_service(LeafServer::new(NoopLeaf))
            .serve_with_incoming_shutdown(proto::net::incoming(listener), async {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!("no-op leaf failed: {e}");
        }
    });
    Ok((addr, tx))
}

/// `loadgen noop-leaf`: serves [`NoopLeaf`] on 127.0.0.1:0, prints the
/// address on the first line of stdout, and serves until stdin is closed
/// (so it ends with the benchmark that started it, however that ends).
pub async fn run_noop_leaf() -> anyhow::Result<()> {
    let (addr, shutdown) = serve_noop().await?;
    println!("{addr}");
    // Blocking: stdin is read on a thread of its own.
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        std::io::stdin().read_to_end(&mut sink)
    })
    .await;
    let _ = shutdown.send(());
    Ok(())
}

/// A `loadgen noop-leaf` child process; killed when dropped.
#[derive(Debug)]
pub struct NoopLeafProcess {
    child: std::process::Child,
    pub addr: SocketAddr,
}

impl NoopLeafProcess {
    /// Starts `exe` (the `loadgen` executable) as `loadgen noop-leaf` and
    /// reads its address.
    pub async fn start(exe: &Path) -> anyhow::Result<NoopLeafProcess> {
        let mut child = std::process::Command::new(exe)
            .arg("noop-leaf")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {} noop-leaf", exe.display()))?;
        let stdout = child.stdout.take().context("the no-op leaf has no stdout")?;
        let read = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout).read_line(&mut line).map(|_| line)
        });
        // Owned from here, so that every early return below ends the process.
        let mut process = NoopLeafProcess { child, addr: SocketAddr::from(([127, 0, 0, 1], 0)) };
        let line = match tokio::time::timeout(Duration::from_secs(10), read).await {
            Ok(Ok(Ok(line))) => line,
            Ok(Ok(Err(e))) => return Err(e).context("cannot read the no-op leaf's address"),
            Ok(Err(e)) => anyhow::bail!("reading the no-op leaf's address failed: {e}"),
            Err(_) => anyhow::bail!("the no-op leaf did not print its address within 10 s"),
        };
        let addr = line.trim().parse::<SocketAddr>().with_context(|| {
            format!("the no-op leaf printed {:?} where its address was expected", line.trim())
        })?;
        process.addr = addr;
        Ok(process)
    }

    /// Its process id, for reading its CPU time.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for NoopLeafProcess {
    fn drop(&mut self) {
        // Closing stdin ends it; kill in case it does not.
        drop(self.child.stdin.take());
        if let Err(e) = self.child.kill() {
            tracing::debug!("the no-op leaf had already ended: {e}");
        }
        let _ = self.child.wait();
    }
}
