//! The bfs function's handler: the request JSON (`BfsRequest`, as the
//! function's `handle` reads it) and `bfs::run`. The response must visit
//! every node exactly once, starting at node 0 (the graph is connected).
//!
//! Bound: `run` is called only for `Size ≤ MAX_FUZZ_SIZE` (the function
//! accepts up to `bfs::MAX_SIZE` = 1 000 000, a graph of ~160 MB that takes
//! seconds); larger sizes are checked only for being refused above MAX_SIZE.
#![no_main]

use functions::workload::bfs::{self, BfsError, BfsRequest};
use libfuzzer_sys::fuzz_target;

const MAX_FUZZ_SIZE: i64 = 2_000;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = serde_json::from_slice::<BfsRequest>(data) else { return };
    if request.size > MAX_FUZZ_SIZE && request.size <= bfs::MAX_SIZE {
        return;
    }
    match bfs::run(&request) {
        Ok(response) => {
            let n = usize::try_from(request.size).expect("an accepted size is positive");
            assert_eq!(response.result.len(), n, "every node is visited");
            assert_eq!(response.result.first(), Some(&0), "the search starts at node 0");
            let mut seen = vec![false; n];
            for &v in &response.result {
                let v = v as usize;
                assert!(v < n && !seen[v], "node {v} visited once");
                seen[v] = true;
            }
        }
        Err(BfsError::Size(size)) => assert!(!(1..=bfs::MAX_SIZE).contains(&size)),
        Err(e) => panic!("bfs::run failed on a parsed request: {e}"),
    }
});
