//! What the fake worker does beyond the contract (`contract.rs`: idle
//! timeout, stop, max_concurrency and a missing model are checked there,
//! against both runtimes).

use crate::common::*;

async fn ctx_with_runtime(ms: f64) -> FakeContext {
    FakeContext::new(move |dir| {
        write_json(dir, "m.json", IMAGE, constant(ms * 1e6), constant(0.2), constant(8e6), Some("ns"));
    })
    .await
}

#[tokio::test]
async fn a_busy_instance_does_not_expire() {
    let ctx = ctx_with_runtime(1500.0).await;
    let f = ctx.function(IMAGE, config(64, None, 1, 0)).await;
    ctx.start(&f).await;
    // The call outlasts the 1 s idle timeout; the instance must survive it.
    let r = ctx.call(&f, b"x").await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(ctx.worker.worker.instances.len(), 1);
}
