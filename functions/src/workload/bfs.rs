//! `bfs`: breadth-first search over a Barabási–Albert graph, after SeBS's
//! `503.graph-bfs` as HyperFaaS runs it.
//!
//! Request (JSON): `{"Size": N, "Seed": S}`. `Size` is the node count,
//! 1..=[`MAX_SIZE`]; `Seed` (optional, any 64-bit integer) fixes the graph, a
//! missing seed draws one at random. Field names also match in lower case, as
//! Go's decoder does.
//!
//! Response (JSON):
//! ```json
//! {"result": [0, 3, 7, ...],
//!  "measurement": {"graph_generating_time_ns": 1234, "compute_time_ns": 567}}
//! ```
//! `result` is the BFS visit order from node 0 (every node, as the graph is
//! connected); the times are nanoseconds spent building the graph and
//! searching it.
//!
//! The graph: a complete graph on the first [`EDGES_PER_NODE`] (m) nodes, then
//! each further node links to m distinct earlier nodes chosen with probability
//! proportional to their degree. Edges: m·(m−1)/2 + m·(n−m).

use std::time::Instant;

use bytes::Bytes;
use hyperfake_core::Nanos;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// m: edges each new node adds (HyperFaaS uses 10).
pub const EDGES_PER_NODE: u32 = 10;
/// Largest accepted `Size`: about 160 MB of graph and a 7 MB response, which
/// fits the message limit and a modest container.
pub const MAX_SIZE: i64 = 1_000_000;

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BfsRequest {
    #[serde(rename = "Size", alias = "size")]
    pub size: i64,
    #[serde(rename = "Seed", alias = "seed", default)]
    pub seed: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BfsResponse {
    pub result: Vec<u32>,
    pub measurement: Measurement,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measurement {
    pub graph_generating_time_ns: u64,
    pub compute_time_ns: u64,
}

/// Why a bfs request was refused.
#[derive(Debug, thiserror::Error)]
pub enum BfsError {
    #[error("invalid bfs request (expected {{\"Size\": N, \"Seed\": S}}): {0}")]
    Json(#[from] serde_json::Error),
    #[error("Size: {0} is out of range 1..={MAX_SIZE}")]
    Size(i64),
    #[error("bfs worker thread failed: {0}")]
    Worker(String),
}

pub async fn handle(input: Bytes) -> Result<Vec<u8>, BfsError> {
    let request: BfsRequest = serde_json::from_slice(&input)?;
    // Seconds of CPU work: keep it off the threads that serve gRPC.
    let response = tokio::task::spawn_blocking(move || run(&request))
        .await
        .map_err(|e| BfsError::Worker(e.to_string()))??;
    Ok(serde_json::to_vec(&response)?)
}

/// Builds the graph for `request` and searches it from node 0.
pub fn run(request: &BfsRequest) -> Result<BfsResponse, BfsError> {
    let size = u32::try_from(request.size).ok().filter(|n| (1..=MAX_SIZE).contains(&i64::from(*n)));
    let size = size.ok_or(BfsError::Size(request.size))?;
    let seed = request.seed.map_or_else(|| rand::rng().random(), i64::cast_unsigned);

    let start = Instant::now();
    let graph = Graph::barabasi_albert(size, EDGES_PER_NODE, &mut ChaCha8Rng::seed_from_u64(seed));
    let graph_generating_time = Nanos::from_duration(start.elapsed());

    let start = Instant::now();
    let result = graph.bfs(0);
    let compute_time = Nanos::from_duration(start.elapsed());

    Ok(BfsResponse {
        result,
        measurement: Measurement {
            graph_generating_time_ns: graph_generating_time.0,
            compute_time_ns: compute_time.0,
        },
    })
}

/// An undirected graph in compressed sparse row form: the neighbours of `v`
/// are `neighbors[offsets[v]..offsets[v + 1]]`, in the order the edges were added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Graph {
    offsets: Vec<usize>,
    neighbors: Vec<u32>,
}

impl Graph {
    /// A Barabási–Albert graph on `n` nodes where each node after the first
    /// `m` attaches to `m` distinct earlier nodes by preferential attachment.
    ///
    /// `endpoints` lists both ends of every edge so far; a node appears in it
    /// once per unit of degree, so a uniform draw from it is a degree-weighted
    /// draw of a node, and it doubles as the edge list for the CSR build.
    pub fn barabasi_albert(n: u32, m: u32, rng: &mut impl Rng) -> Graph {
        assert!(m >= 1, "m must be at least 1");
        let core = m.min(n);
        let edges = core as usize * (core as usize).saturating_sub(1) / 2 + m as usize * (n - core) as usize;
        let mut endpoints: Vec<u32> = Vec::with_capacity(2 * edges);
        for i in 0..core {
            for j in 0..i {
                endpoints.extend([i, j]);
            }
        }
        let mut targets: Vec<u32> = Vec::with_capacity(m as usize);
        for node in core..n {
            targets.clear();
            if endpoints.is_empty() {
                // Only for m == 1: the core is one node without edges.
                targets.extend(0..node);
            } else {
                // At least m distinct nodes are in `endpoints` (the whole core),
                // so this ends; m is small, so a linear `contains` is cheapest.
                while targets.len() < m as usize {
                    let candidate = endpoints[rng.random_range(0..endpoints.len())];
                    if !targets.contains(&candidate) {
                        targets.push(candidate);
                    }
                }
            }
            for &target in &targets {
                endpoints.extend([node, target]);
            }
        }
        Graph::from_edges(n, &endpoints)
    }

    /// Builds the CSR form from `endpoints`, read as pairs `(a, b)`.
    fn from_edges(n: u32, endpoints: &[u32]) -> Graph {
        let mut offsets = vec![0usize; n as usize + 1];
        for &v in endpoints {
            offsets[v as usize + 1] += 1;
        }
        for v in 0..n as usize {
            offsets[v + 1] += offsets[v];
        }
        let mut next = offsets[..n as usize].to_vec();
        let mut neighbors = vec![0u32; endpoints.len()];
        for edge in endpoints.chunks_exact(2) {
            let (a, b) = (edge[0], edge[1]);
            neighbors[next[a as usize]] = b;
            next[a as usize] += 1;
            neighbors[next[b as usize]] = a;
            next[b as usize] += 1;
        }
        Graph { offsets, neighbors }
    }

    pub fn node_count(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn edge_count(&self) -> usize {
        self.neighbors.len() / 2
    }

    pub fn neighbors(&self, node: u32) -> &[u32] {
        &self.neighbors[self.offsets[node as usize]..self.offsets[node as usize + 1]]
    }

    /// Nodes reachable from `start`, in breadth-first order.
    pub fn bfs(&self, start: u32) -> Vec<u32> {
        let mut visited = vec![false; self.node_count()];
        visited[start as usize] = true;
        // The visit order is also the queue: `order[head..]` is still to expand.
        let mut order = Vec::with_capacity(self.node_count());
        order.push(start);
        let mut head = 0;
        while let Some(&node) = order.get(head) {
            head += 1;
            for &next in self.neighbors(node) {
                if !std::mem::replace(&mut visited[next as usize], true) {
                    order.push(next);
                }
            }
        }
        order
    }
}

#[cfg(test)]
mod tests;
