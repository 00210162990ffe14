use hyperfake_core::FunctionId;
use proto::common::InstanceId;

use crate::common::*;

fn inspect(name_or_id: &str, format: &str) -> String {
    let out = std::process::Command::new("docker")
        .args(["inspect", "--format", format, name_or_id])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn memory_and_cpu_limits_are_applied() {
    let ctx = TestContext::new().await;
    let f = ctx.function(ECHO, config(96, Some((100_000, 50_000)), 0, 0)).await;
    let instance = ctx.start(&f).await;
    let name = format!("hyperfake-{instance}");
    assert_eq!(inspect(&name, "{{.HostConfig.Memory}}"), (96 * 1024 * 1024).to_string());
    assert_eq!(inspect(&name, "{{.HostConfig.CpuPeriod}}"), "100000");
    assert_eq!(inspect(&name, "{{.HostConfig.CpuQuota}}"), "50000");
    assert_eq!(inspect(&name, "{{index .Config.Labels \"hyperfake.worker\"}}"), ctx.worker_id);
    assert_eq!(inspect(&name, "{{index .Config.Labels \"hyperfake.function\"}}"), f.to_string());
}

#[tokio::test]
async fn restarting_the_worker_leaves_no_orphans() {
    let mut ctx = TestContext::new().await;
    let f = ctx.function(ECHO, config(64, None, 0, 0)).await;
    ctx.start(&f).await;
    ctx.start(&f).await;
    assert_eq!(containers_labelled(&ctx.label()).len(), 2);
    // Killed without cleanup: the next worker with the same id removes leftovers.
    ctx.restart_worker(false).await;
    assert!(containers_labelled(&ctx.label()).is_empty(), "leftovers after an abrupt restart");
    ctx.start(&f).await;
    // Graceful shutdown stops everything it started.
    ctx.restart_worker(true).await;
    assert!(containers_labelled(&ctx.label()).is_empty(), "leftovers after a graceful restart");
}

#[tokio::test]
async fn bad_requests_get_clear_codes() {
    let ctx = TestContext::with_settings(|s| s.allowed_image_prefixes = vec!["hyperfaas-e".into()]).await;
    let mut client = ctx.client.clone();
    let err = client.start(proto::common::FunctionId::default()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let err = client.start(proto::common::FunctionId::from(&FunctionId::from("nope"))).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    let hello = ctx.function(HELLO, config(64, None, 0, 0)).await;
    let err = client.start(proto::common::FunctionId::from(&hello)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("hyperfaas-hello"), "{}", err.message());
    let err = client.stop(InstanceId { id: "nope".into() }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = client.stop(InstanceId::default()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(containers_labelled(&ctx.label()).is_empty());
}
