//! The test context: a database server over a SQLite file in its own TempDir.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use database::{DatabaseClient, Store};
use hyperfake_core::{Bytes, CpuQuota, FunctionConfig};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server on 127.0.0.1:0 over `functions.db` in a fresh TempDir. Stopped on drop.
pub(crate) struct TestDb {
    dir: TempDir,
    server: Server,
}

struct Server {
    address: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl TestDb {
    pub(crate) async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(dir.path().join("functions.db")).await;
        TestDb { dir, server }
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.dir.path().join("functions.db")
    }

    pub(crate) fn address(&self) -> SocketAddr {
        self.server.address
    }

    /// A client of the current server (its address changes on restart).
    pub(crate) fn client(&self) -> DatabaseClient {
        DatabaseClient::connect(&self.address().to_string()).unwrap()
    }

    /// Kills the server without a graceful shutdown, as a crash would, and
    /// starts a new one over the same file.
    pub(crate) async fn restart(&mut self) {
        self.server.task.abort();
        let _ = (&mut self.server.task).await;
        self.server = Server::start(self.path()).await;
    }

    /// Signals a graceful shutdown and waits (bounded) for the server to return.
    pub(crate) async fn shut_down(&mut self) -> Result<(), tonic::transport::Error> {
        let _ = self.server.shutdown.take().expect("shut down twice").send(());
        tokio::time::timeout(Duration::from_secs(10), &mut self.server.task)
            .await
            .expect("server did not stop within 10 s of the shutdown signal")
            .expect("server task panicked")
    }
}

impl Server {
    async fn start(path: PathBuf) -> Self {
        let store = Store::open(path).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(database::serve(listener, store, async {
            let _ = signal.await;
        }));
        Server { address, shutdown: Some(shutdown), task }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.server.task.abort();
    }
}

/// A valid configuration: 256 MiB, half a core, 30 s idle timeout, 4 calls at once.
pub(crate) fn config() -> FunctionConfig {
    FunctionConfig {
        memory: Bytes::mib(256),
        cpu: Some(CpuQuota { period_us: 100_000, quota_us: 50_000 }),
        idle_timeout: Some(Duration::from_secs(30)),
        max_concurrency: Some(4),
    }
}
