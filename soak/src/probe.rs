//! What the platform thinks exists, asked once every idle timeout has passed:
//! each leaf-level node's `State` (a leaf, or a load-balancer node summing
//! its children), each worker's instance table (`controller.State`), and
//! what each worker's runtime really holds (the instances one `Resources`
//! sample reads counters of: the runtime answers only for those it has).
//! An instance a view holds and the runtimes do not is a phantom.

use std::time::Duration;

use anyhow::Context;
use proto::auth::{AuthChannel, BearerToken};
use proto::controller::controller_client::ControllerClient;
use proto::controller::{ResourcesRequest, StateRequest};
use proto::leaf::LeafStateRequest;
use proto::leaf::leaf_client::LeafClient;
use serde::{Deserialize, Serialize};

/// Deadline of each question.
const DEADLINE: Duration = Duration::from_secs(10);

/// A leaf or load-balancer node's view.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    /// What the node is (`leaf`, `lb`), as given.
    pub role: String,
    pub address: String,
    /// Ready + starting instances over every function.
    pub instances: u64,
    pub ready: u64,
    pub starting: u64,
    pub in_flight_calls: u64,
    /// Functions with at least one instance.
    pub functions_with_instances: u64,
}

/// A worker's table next to its runtime.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerView {
    pub address: String,
    /// Instances in the worker's table (running + idle).
    pub table_instances: u64,
    pub running: u64,
    pub idle: u64,
    /// Instances the runtime holds counters for.
    pub runtime_instances: u64,
    /// Ids in the table the runtime does not hold.
    pub table_only: Vec<String>,
}

/// Everything the probe saw.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// Unix ns at which the probe started.
    pub at_ns: i64,
    pub nodes: Vec<NodeView>,
    pub workers: Vec<WorkerView>,
}

impl Probe {
    /// Instances the workers' runtimes really hold.
    pub fn real(&self) -> u64 {
        self.workers.iter().map(|w| w.runtime_instances).sum()
    }
}

/// Asks `nodes` (role, address) and `workers` (addresses).
pub async fn probe(
    nodes: &[(String, String)],
    workers: &[String],
    token: BearerToken,
) -> anyhow::Result<Probe> {
    let at_ns = hyperfake_core::time::now_unix().as_i64();
    let mut probe = Probe { at_ns, ..Probe::default() };
    for (role, address) in nodes {
        let view = node_view(role, address, token.clone())
            .await
            .with_context(|| format!("asking the {role} at {address} for its state"))?;
        probe.nodes.push(view);
    }
    for address in workers {
        let view = worker_view(address, token.clone())
            .await
            .with_context(|| format!("asking the worker at {address} for its instances"))?;
        probe.workers.push(view);
    }
    Ok(probe)
}

async fn channel(address: &str) -> anyhow::Result<tonic::transport::Channel> {
    let endpoint = proto::endpoint(address).with_context(|| format!("invalid address {address:?}"))?;
    endpoint.connect_timeout(DEADLINE).connect().await.with_context(|| format!("cannot connect to {address}"))
}

async fn node_view(role: &str, address: &str, token: BearerToken) -> anyhow::Result<NodeView> {
    let mut client: LeafClient<AuthChannel> = LeafClient::with_interceptor(channel(address).await?, token);
    let mut request = tonic::Request::new(LeafStateRequest::default());
    request.set_timeout(DEADLINE);
    let state = client.state(request).await?.into_inner();
    let mut view = NodeView { role: role.to_string(), address: address.to_string(), ..NodeView::default() };
    for f in &state.functions {
        let (ready, starting) = (u64::from(f.ready_instances), u64::from(f.starting_instances));
        view.ready += ready;
        view.starting += starting;
        view.in_flight_calls += u64::from(f.in_flight_calls);
        if ready + starting > 0 {
            view.functions_with_instances += 1;
        }
    }
    view.instances = view.ready + view.starting;
    Ok(view)
}

async fn worker_view(address: &str, token: BearerToken) -> anyhow::Result<WorkerView> {
    let mut client: ControllerClient<AuthChannel> =
        ControllerClient::with_interceptor(channel(address).await?, token);
    let mut request = tonic::Request::new(StateRequest { node_id: "soak-probe".into() });
    request.set_timeout(DEADLINE);
    let state = client.state(request).await?.into_inner();
    let mut view = WorkerView { address: address.to_string(), ..WorkerView::default() };
    let mut table = Vec::new();
    for f in &state.functions {
        view.running += f.running.len() as u64;
        view.idle += f.idle.len() as u64;
        table.extend(f.running.iter().chain(&f.idle).map(|i| i.instance_id.clone()));
    }
    view.table_instances = view.running + view.idle;

    // One sample of the Resources stream (taken right away, then every
    // interval): the instances the runtime answers for.
    let request = tonic::Request::new(ResourcesRequest { interval_ms: 1000 });
    let mut stream = client.resources(request).await?.into_inner();
    let sample = tokio::time::timeout(DEADLINE, stream.message())
        .await
        .context("no resource sample within the deadline")??
        .context("the resource stream ended before its first sample")?;
    let held: Vec<String> =
        sample.containers.iter().filter_map(|c| c.instance_id.as_ref().map(|i| i.id.clone())).collect();
    view.runtime_instances = held.len() as u64;
    view.table_only = table.into_iter().filter(|id| !held.contains(id)).collect();
    Ok(view)
}
