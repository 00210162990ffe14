//! Helpers shared by the test modules.

use std::path::PathBuf;

/// The repository's `configs/` directory.
pub fn configs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

/// A minimal valid workload with one echo phase, to derive error cases from.
pub const BASE: &str = "\
leaf_address: 127.0.0.1:50050
max_duration: 1m
timeout: 30s
seed: 7
workload:
  phases:
    - name: warmup
      type: constant
      start_time: 0s
      duration: 10s
      start_rps: 2
      image_tag: hyperfaas-echo:latest
    - name: ramp
      type: variable
      start_time: 10s
      duration: 20s
      start_rps: 1
      end_rps: 5
      step: 1
      image_tag: hyperfaas-echo:latest
function_config:
  hyperfaas-echo:latest:
    memory: 256MB
    cpu:
      period: 100000
      quota: 50000
data_providers:
  hyperfaas-echo:latest:
    type: echo
    min_body_size: 16
    max_body_size: 1KB
";

// === test leaf ===
//
// A small real tonic `leaf.Leaf` server: a stand-in target until the real leaf
// exists (another crate is writing it). It answers by image, so one workload
// can exercise every outcome:
// - `*echo*`: returns the body, after `echo_delay`;
// - `*slow*`: returns nothing after `slow_delay` (for calls in flight at the end
//   and for deadlines);
// - `*fail*`: UNAVAILABLE with a message.
// Every answer carries the leaf and worker timing metadata the real leaf sets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyperfake_core::trailers as keys;
use proto::leaf::leaf_server::{Leaf, LeafServer};
use proto::leaf::{
    CreateFunctionRequest, CreateFunctionResponse, LeafStateRequest, LeafStateResponse, ScheduleCallRequest,
    ScheduleCallResponse,
};
use tokio::sync::oneshot;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status};

/// What the test leaf saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Calls received (counted on arrival).
    pub calls: AtomicU64,
    /// `requestid` metadata of every call received.
    pub request_ids: Mutex<Vec<String>>,
    /// CreateFunction requests, by image tag.
    pub created: Mutex<HashMap<String, proto::common::Config>>,
    /// Function ids handed out, in order.
    pub function_ids: Mutex<Vec<String>>,
    /// Calls received, by function id.
    pub calls_by_function: Mutex<HashMap<String, u64>>,
    /// With a database: the `fn-<tag>` name behind each id it handed out.
    pub names: Mutex<HashMap<String, String>>,
}

#[derive(Debug, Clone)]
pub struct TestLeaf {
    pub seen: Arc<Seen>,
    pub echo_delay: Duration,
    pub slow_delay: Duration,
    /// When set, CreateFunction registers the function in this real function
    /// store, as the real leaf does, and hands out the store's id.
    pub database: Option<database::DatabaseClient>,
}

impl TestLeaf {
    pub fn new() -> Self {
        TestLeaf {
            seen: Arc::default(),
            echo_delay: Duration::ZERO,
            slow_delay: Duration::from_millis(1500),
            database: None,
        }
    }

    pub fn with_database(mut self, client: database::DatabaseClient) -> Self {
        self.database = Some(client);
        self
    }

    pub fn with_echo_delay(mut self, d: Duration) -> Self {
        self.echo_delay = d;
        self
    }

    pub fn with_slow_delay(mut self, d: Duration) -> Self {
        self.slow_delay = d;
        self
    }
}

/// The fixed values the test leaf puts in its metadata, so tests can check
/// each lands in its column.
pub const FUNCTION_PROCESSING_TIME_NS: i64 = 1_234_567;
pub const FUNCTION_HANDLER_TIME_NS: i64 = 1_000_001;
pub const INSTANCE: &str = "instance-7";

fn now_ns() -> i64 {
    hyperfake_core::time::now_unix().as_i64()
}

fn timing(md: &mut MetadataMap, got: i64) {
    let mut put = |k: &'static str, v: String| {
        md.insert(k, MetadataValue::try_from(v.as_str()).unwrap());
    };
    put(keys::LEAF_GOT_REQUEST_TIMESTAMP, got.to_string());
    put(keys::LEAF_SCHEDULED_CALL_TIMESTAMP, (got + 10).to_string());
    put(keys::CALL_QUEUED_TIMESTAMP, (got + 20).to_string());
    put(keys::CALL_STARTED_TIMESTAMP, (got + 30).to_string());
    put(keys::GOT_RESPONSE_TIMESTAMP, now_ns().to_string());
    put(keys::FUNCTION_PROCESSING_TIME, FUNCTION_PROCESSING_TIME_NS.to_string());
    put(keys::FUNCTION_HANDLER_TIME, FUNCTION_HANDLER_TIME_NS.to_string());
    put(keys::INSTANCE_ID, INSTANCE.to_string());
    put(keys::WORKER_ADDRESS, "127.0.0.1:50051".to_string());
    put("x-extra-key", "kept-in-json".to_string());
}

#[tonic::async_trait]
impl Leaf for TestLeaf {
    async fn schedule_call(
        &self,
        request: Request<ScheduleCallRequest>,
    ) -> Result<Response<ScheduleCallResponse>, Status> {
        let got = now_ns();
        self.seen.calls.fetch_add(1, Ordering::SeqCst);
        let request_id = request
            .metadata()
            .get(keys::REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        self.seen.request_ids.lock().unwrap().push(request_id.clone());
        let request = request.into_inner();
        let function = request.function_id.map(|f| f.id).unwrap_or_default();
        let function = self.seen.names.lock().unwrap().get(&function).cloned().unwrap_or(function);
        *self.seen.calls_by_function.lock().unwrap().entry(function.clone()).or_default() += 1;
        let data = if function.contains("echo") {
            tokio::time::sleep(self.echo_delay).await;
            request.data
        } else if function.contains("slow") {
            tokio::time::sleep(self.slow_delay).await;
            Vec::new()
        } else {
            let mut status = Status::unavailable("no worker has capacity");
            timing(status.metadata_mut(), got);
            return Err(status);
        };
        let mut response = Response::new(ScheduleCallResponse {
            data,
            error: None,
            request_id,
            instance_id: Some(proto::common::InstanceId { id: INSTANCE.into() }),
        });
        timing(response.metadata_mut(), got);
        Ok(response)
    }

    async fn create_function(
        &self,
        request: Request<CreateFunctionRequest>,
    ) -> Result<Response<CreateFunctionResponse>, Status> {
        let request = request.into_inner();
        let stored = match &self.database {
            Some(db) => {
                let image = proto::convert::image_tag(request.image_tag.as_ref())
                    .map_err(|e| Status::invalid_argument(e.to_string()))?;
                let config = proto::convert::function_config(request.config.as_ref())
                    .map_err(|e| Status::invalid_argument(e.to_string()))?;
                let function =
                    db.create(&image, &config).await.map_err(|e| Status::unavailable(e.to_string()))?;
                Some(function.id.to_string())
            }
            None => None,
        };
        let tag = request.image_tag.map(|t| t.tag).unwrap_or_default();
        self.seen.created.lock().unwrap().insert(tag.clone(), request.config.unwrap_or_default());
        // `fn-<tag>` for the first function of an image, `fn-<tag>-<k>` for
        // later copies: distinct ids that still name the image.
        let mut ids = self.seen.function_ids.lock().unwrap();
        let earlier = ids.iter().filter(|id| id.starts_with(&format!("fn-{tag}"))).count();
        let name = if earlier == 0 { format!("fn-{tag}") } else { format!("fn-{tag}-{earlier}") };
        ids.push(name.clone());
        // With a database, the store's id stands for the name.
        let id = match stored {
            Some(id) => {
                self.seen.names.lock().unwrap().insert(id.clone(), name);
                id
            }
            None => name,
        };
        Ok(Response::new(CreateFunctionResponse { function_id: Some(proto::common::FunctionId { id }) }))
    }

    async fn state(
        &self,
        _request: Request<LeafStateRequest>,
    ) -> Result<Response<LeafStateResponse>, Status> {
        Ok(Response::new(LeafStateResponse::default()))
    }
}

/// A test leaf served on 127.0.0.1:0; stops when dropped.
pub struct Served {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    _shutdown: oneshot::Sender<()>,
}

pub async fn serve(leaf: TestLeaf) -> Served {
    serve_with_token(leaf, None).await
}

/// [`serve`], requiring the shared `token` on every request.
pub async fn serve_with_token(leaf: TestLeaf, token: Option<&str>) -> Served {
    let auth = proto::auth::RequireToken::new(token).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = leaf.seen.clone();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(auth.layer())
            .add_service(
                LeafServer::new(leaf)
                    .max_decoding_message_size(hyperfake_core::defaults::MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(hyperfake_core::defaults::MAX_MESSAGE_SIZE),
            )
            .serve_with_incoming_shutdown(proto::net::incoming(listener), async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    Served { addr, seen, _shutdown: tx }
}

/// A workload over the test leaf: `phases` are YAML flow mappings; every image
/// named in them gets a function config and an echo data provider of `body`.
pub fn workload_yaml(
    addr: SocketAddr,
    timeout: &str,
    max_duration: &str,
    body: &str,
    phases: &[&str],
) -> String {
    let mut images: Vec<String> = phases
        .iter()
        .map(|p| p.split("image_tag: ").nth(1).unwrap().trim_end_matches('}').trim().to_string())
        .collect();
    images.sort();
    images.dedup();
    let mut yaml = format!(
        "leaf_address: \"{addr}\"\nmax_duration: {max_duration}\ntimeout: {timeout}\nseed: 5\nworkload:\n  phases:\n"
    );
    for p in phases {
        yaml.push_str(&format!("    - {p}\n"));
    }
    yaml.push_str("function_config:\n");
    for i in &images {
        yaml.push_str(&format!("  {i}: {{memory: 128MB, cpu: {{period: 100000, quota: 50000}}, timeout: 45, max_concurrency: 3}}\n"));
    }
    yaml.push_str("data_providers:\n");
    for i in &images {
        yaml.push_str(&format!("  {i}: {{type: echo, min_body_size: {body}, max_body_size: {body}}}\n"));
    }
    yaml
}

/// `loadgen::run` options for `yaml` (panicking, naming the text, if it does
/// not parse) writing run `run_id` to `db`, with no leaf address override and
/// the default writer.
pub fn run_options(yaml: &str, db: &std::path::Path, run_id: &str) -> loadgen::run::RunOptions {
    loadgen::run::RunOptions {
        workload: loadgen::Workload::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}")),
        config_yaml: yaml.to_string(),
        config_path: None,
        out: Some(db.to_path_buf()),
        leaf_address: None,
        run_id: Some(run_id.into()),
        max_in_flight: None,
        token: Default::default(),
        progress: false,
        writer: Default::default(),
    }
}
