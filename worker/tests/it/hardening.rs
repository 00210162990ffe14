//! Function containers run unprivileged: no capabilities, no privilege gain,
//! a read-only root file system, a pids limit, bounded logs, user nobody.

use bollard::Docker;
use bollard::query_parameters::InspectContainerOptions;
use worker::docker::{FUNCTION_PIDS_LIMIT, FUNCTION_USER, LOG_MAX_FILES, LOG_MAX_SIZE};

use crate::common::*;

/// One field of `/proc/<pid>/status`, e.g. `Uid`.
fn proc_status(pid: i64, field: &str) -> String {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let prefix = format!("{field}:");
    let line =
        text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("{path} has no {field}"));
    line[prefix.len()..].split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn function_containers_are_hardened_and_still_answer() {
    let ctx = TestContext::new().await;
    let f = ctx.function(ECHO, config(64, None, 0, 0)).await;
    let instance = ctx.start(&f).await;
    let docker = Docker::connect_with_defaults().unwrap();
    let info = docker
        .inspect_container(&format!("hyperfake-{instance}"), None::<InspectContainerOptions>)
        .await
        .unwrap();

    let host = info.host_config.unwrap();
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
    assert_eq!(host.cap_add, None);
    assert_eq!(host.security_opt, Some(vec!["no-new-privileges:true".to_string()]));
    assert_eq!(host.readonly_rootfs, Some(true));
    assert_eq!(host.pids_limit, Some(FUNCTION_PIDS_LIMIT));
    assert_eq!(host.privileged, Some(false));
    let log = host.log_config.unwrap();
    assert_eq!(log.typ.as_deref(), Some("json-file"));
    let log = log.config.unwrap();
    assert_eq!(log.get("max-size").map(String::as_str), Some(LOG_MAX_SIZE));
    assert_eq!(log.get("max-file").map(String::as_str), Some(LOG_MAX_FILES));
    assert_eq!(info.config.unwrap().user.as_deref(), Some(FUNCTION_USER));

    // As the kernel sees the function's process.
    let pid = info.state.unwrap().pid.expect("a running container has a pid");
    assert_eq!(proc_status(pid, "Uid"), "65534 65534 65534 65534");
    assert_eq!(proc_status(pid, "Gid"), "65534 65534 65534 65534");
    assert_eq!(proc_status(pid, "CapEff"), "0000000000000000");
    assert_eq!(proc_status(pid, "CapBnd"), "0000000000000000");
    assert_eq!(proc_status(pid, "NoNewPrivs"), "1");

    let answer = ctx.call(&f, b"hardened").await.expect("echo still answers");
    assert_eq!(answer.get_ref().data, b"hardened");
}
