//! Calls beyond the contract (fakeworker's `contract.rs` checks routing,
//! deadlines, trailers and bad requests against both runtimes).

use hyperfake_core::trailers;

use crate::common::*;

#[tokio::test]
async fn fifty_concurrent_calls_on_max_concurrency_one_are_serialised_not_failed() {
    let ctx = TestContext::new().await;
    let f = ctx.function(SIMUL, config(64, None, 0, 1)).await;
    ctx.start(&f).await;
    let calls = (0..50).map(|_| ctx.call(&f, b""));
    let responses = futures::future::join_all(calls).await;
    let mut intervals: Vec<(u64, u64)> = responses
        .into_iter()
        .map(|r| {
            let r = r.expect("no call may fail");
            assert!(r.get_ref().error.is_none());
            (
                metadata_u64(&r, trailers::CALL_STARTED_TIMESTAMP),
                metadata_u64(&r, trailers::GOT_RESPONSE_TIMESTAMP),
            )
        })
        .collect();
    intervals.sort();
    for pair in intervals.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "calls overlapped on one instance: {pair:?}");
    }
}
