use std::net::SocketAddr;
use std::process::Command;

use functions::image_tag;
use hyperfake_core::defaults::{FUNCTION_PORT, LABEL_TEST};

use crate::common::{DEADLINE, call, client, wait_serving};

/// A container started for one test, removed on drop.
struct Container {
    id: String,
}

impl Container {
    async fn run(image: &str, test: &str) -> Container {
        let label = format!("{LABEL_TEST}=functions-{test}-{}", std::process::id());
        let port = format!("127.0.0.1::{FUNCTION_PORT}");
        let output = docker(&["run", "-d", "--label", &label, "-p", &port, image]).await;
        Container { id: output.trim().to_string() }
    }

    async fn addr(&self) -> SocketAddr {
        let port = docker(&["port", &self.id, &FUNCTION_PORT.to_string()]).await;
        let first = port.lines().find(|l| l.starts_with("127.0.0.1:")).expect("no published port");
        first.trim().parse().unwrap()
    }

    async fn logs(&self) -> String {
        let output = tokio::process::Command::new("docker").args(["logs", &self.id]).output().await.unwrap();
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.id]).output();
    }
}

/// Runs the docker CLI without blocking the runtime: the client's connection
/// task must keep running (a blocked runtime cannot answer the server's
/// shutdown PING, and `docker stop` would time out).
async fn docker(args: &[&str]) -> String {
    let output =
        tokio::process::Command::new("docker").args(args).output().await.expect("docker CLI not found");
    assert!(
        output.status.success(),
        "docker {args:?} failed (were the images built with scripts/build-function-images.sh?): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
#[ignore = "needs the images from scripts/build-function-images.sh and a Docker engine"]
async fn echo_image_answers_and_stops_cleanly() {
    let container = Container::run(image_tag("echo").as_str(), "echo").await;
    let addr = container.addr().await;
    wait_serving(addr, DEADLINE).await;
    let mut client = client(addr).await;
    let payload: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    let (response, _) = call(&mut client, "image", payload.clone()).await.unwrap();
    assert!(response.data == payload, "echo differs; logs:\n{}", container.logs().await);
    // Without HYPERFAKE_INSTANCE_ID the id is HOSTNAME, which Docker sets to the short container id.
    let instance = response.instance_id.unwrap().id;
    assert!(container.id.starts_with(&instance) && !instance.is_empty(), "instance id {instance}");

    docker(&["stop", "-t", "10", &container.id]).await;
    let exit_code = docker(&["inspect", "-f", "{{.State.ExitCode}}", &container.id]).await;
    assert_eq!(exit_code.trim(), "0", "logs:\n{}", container.logs().await);
}

#[tokio::test]
#[ignore = "needs the images from scripts/build-function-images.sh and a Docker engine"]
async fn bfs_image_answers_a_large_graph() {
    let container = Container::run(image_tag("bfs").as_str(), "bfs").await;
    let addr = container.addr().await;
    wait_serving(addr, DEADLINE).await;
    let mut client = client(addr).await;
    let (response, _) = call(&mut client, "bfs", br#"{"Size": 200000, "Seed": 5}"#.to_vec()).await.unwrap();
    assert!(response.error.is_none(), "{:?}; logs:\n{}", response.error, container.logs().await);
    let parsed: functions::workload::bfs::BfsResponse = serde_json::from_slice(&response.data).unwrap();
    assert_eq!(parsed.result.len(), 200_000);
}

#[tokio::test]
#[ignore = "needs the images from scripts/build-function-images.sh and a Docker engine"]
async fn crash_image_goes_down_with_a_nonzero_exit_code() {
    let container = Container::run(image_tag("crash").as_str(), "crash").await;
    let addr = container.addr().await;
    wait_serving(addr, DEADLINE).await;
    let mut client = client(addr).await;
    assert!(call(&mut client, "boom", Vec::new()).await.is_err());
    let code =
        tokio::time::timeout(DEADLINE, docker(&["wait", &container.id])).await.expect("crash kept running");
    assert_eq!(
        code.trim(),
        functions::workload::crash::EXIT_CODE.to_string(),
        "logs:\n{}",
        container.logs().await
    );
}
