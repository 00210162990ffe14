use super::*;

fn request(size: i64, seed: i64) -> BfsRequest {
    BfsRequest { size, seed: Some(seed) }
}

fn graph(n: u32, seed: u64) -> Graph {
    Graph::barabasi_albert(n, EDGES_PER_NODE, &mut ChaCha8Rng::seed_from_u64(seed))
}

#[test]
fn same_seed_same_graph_and_order() {
    assert_eq!(graph(2_000, 42), graph(2_000, 42));
    let a = run(&request(2_000, 42)).unwrap();
    let b = run(&request(2_000, 42)).unwrap();
    assert_eq!(a.result, b.result);
}

#[test]
fn different_seed_different_graph() {
    assert_ne!(graph(2_000, 1), graph(2_000, 2));
}

#[test]
fn edge_count_is_core_plus_m_per_node() {
    let m = EDGES_PER_NODE as usize;
    for n in [1u32, 2, 10, 11, 500, 5_000] {
        let g = graph(n, 7);
        let core = m.min(n as usize);
        let expected = core * core.saturating_sub(1) / 2 + m * (n as usize - core);
        assert_eq!(g.node_count(), n as usize);
        assert_eq!(g.edge_count(), expected, "n = {n}");
    }
}

#[test]
fn no_self_loops_or_repeated_edges_and_degrees_at_least_m() {
    let g = graph(3_000, 9);
    for v in 0..3_000u32 {
        let mut neighbors = g.neighbors(v).to_vec();
        assert!(!neighbors.contains(&v), "self loop at {v}");
        assert!(neighbors.len() >= EDGES_PER_NODE as usize - 1, "node {v} has degree {}", neighbors.len());
        neighbors.sort_unstable();
        neighbors.dedup();
        assert_eq!(neighbors.len(), g.neighbors(v).len(), "repeated edge at {v}");
        for &u in g.neighbors(v) {
            assert!(g.neighbors(u).contains(&v), "edge {v}-{u} is not symmetric");
        }
    }
}

#[test]
fn preferential_attachment_makes_hubs() {
    // Uniform attachment would keep the largest degree near m·ln(n); degree-
    // weighted attachment grows hubs of order m·sqrt(n).
    let g = graph(20_000, 3);
    let max_degree = (0..20_000u32).map(|v| g.neighbors(v).len()).max().unwrap();
    assert!(max_degree > 400, "largest degree {max_degree}");
}

#[test]
fn bfs_visits_every_node_once_in_level_order() {
    let g = graph(5_000, 11);
    let order = g.bfs(0);
    assert_eq!(order[0], 0);
    let mut seen = order.clone();
    seen.sort_unstable();
    assert_eq!(seen, (0..5_000).collect::<Vec<u32>>(), "BFS must reach every node exactly once");
    // Distances along the visit order never decrease.
    let mut dist = vec![u32::MAX; 5_000];
    dist[0] = 0;
    for &v in &order {
        for &u in g.neighbors(v) {
            if dist[u as usize] == u32::MAX {
                dist[u as usize] = dist[v as usize] + 1;
            }
        }
    }
    assert!(order.windows(2).all(|w| dist[w[0] as usize] <= dist[w[1] as usize]));
}

#[test]
fn rejects_bad_sizes_and_json() {
    assert!(matches!(run(&request(0, 1)), Err(BfsError::Size(0))));
    assert!(matches!(run(&request(-3, 1)), Err(BfsError::Size(-3))));
    assert!(matches!(run(&request(MAX_SIZE + 1, 1)), Err(BfsError::Size(_))));
    assert!(BfsError::Size(0).to_string().starts_with("Size: 0 is out of range"));
    for bad in [&b"not json"[..], b"{\"Size\": \"ten\"}", b"{\"Seed\": 1}", b"{\"Size\": 5, \"Extra\": 1}"] {
        assert!(serde_json::from_slice::<BfsRequest>(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn parses_go_style_and_lower_case_names_and_an_optional_seed() {
    let parsed: BfsRequest = serde_json::from_str(r#"{"Size": 10, "Seed": -5}"#).unwrap();
    assert_eq!(parsed, BfsRequest { size: 10, seed: Some(-5) });
    let parsed: BfsRequest = serde_json::from_str(r#"{"size": 10}"#).unwrap();
    assert_eq!(parsed, BfsRequest { size: 10, seed: None });
    assert_eq!(run(&parsed).unwrap().result.len(), 10);
}

#[tokio::test]
async fn handler_answers_the_documented_shape() {
    let output = handle(Bytes::from_static(br#"{"Size": 100, "Seed": 1}"#)).await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&output).unwrap();
    assert_eq!(json["result"].as_array().unwrap().len(), 100);
    assert!(json["measurement"]["graph_generating_time_ns"].as_u64().unwrap() > 0);
    assert!(json["measurement"]["compute_time_ns"].as_u64().unwrap() > 0);
    let error = handle(Bytes::from_static(b"{")).await.unwrap_err();
    assert!(error.to_string().starts_with("invalid bfs request"), "{error}");
}
