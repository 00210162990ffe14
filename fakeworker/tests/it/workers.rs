//! `fakeworker --workers N`: one process, N workers, each on its own port
//! with its own id, instances and events, announced as JSON lines and in the
//! addresses file a leaf reads; a leaf over them serves calls; SIGTERM stops
//! the process cleanly.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use hyperfake_core::ImageTag;
use hyperfake_testkit::{TestDatabase, TestLeaf, connect_controller, leaf_settings};
use proto::controller::{Event, StateRequest, StatusRequest};
use proto::leaf::{CreateFunctionRequest, ScheduleCallRequest};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::common::*;

/// The fake worker binary over the models in `models`, with `args`.
fn fakeworker(models: &Path, database: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fakeworker"));
    command
        .args(["--database", database, "--address", "127.0.0.1:0", "--models"])
        .arg(models)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// The first `n` announcements on the child's stdout: (worker id, address).
async fn announcements(child: &mut Child, n: usize) -> Vec<(String, String)> {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut announced = Vec::new();
    while announced.len() < n {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("announced within 30 s")
            .unwrap()
            .unwrap_or_else(|| panic!("fakeworker ended after {} announcements", announced.len()));
        let json: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line: {line:?}: {e}"));
        announced
            .push((json["worker_id"].as_str().unwrap().into(), json["address"].as_str().unwrap().into()));
    }
    announced
}

/// SIGTERM, then the exit status, within 15 s.
async fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().expect("still running").to_string();
    let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success(), "kill -TERM {pid}");
    tokio::time::timeout(Duration::from_secs(15), child.wait()).await.expect("exits after SIGTERM").unwrap()
}

#[tokio::test]
async fn three_workers_in_one_process_have_their_own_ports_ids_and_instances_and_serve_a_leaf() {
    let models = tempfile::tempdir().unwrap();
    write_json(models.path(), "m.json", IMAGE, constant(2e6), constant(0.1), constant(1e6), Some("ns"));
    let database = TestDatabase::start().await;
    let file = models.path().join("workers.json");
    let file_arg = file.to_str().unwrap();
    let mut child = fakeworker(
        models.path(),
        &database.address,
        &["--workers", "3", "--addresses-file", file_arg, "--cold-start", "10ms"],
    )
    .spawn()
    .unwrap();
    let announced = announcements(&mut child, 3).await;
    let addresses: Vec<String> = announced.iter().map(|(_, a)| a.clone()).collect();
    let mut ports: Vec<&str> = addresses.iter().map(|a| a.rsplit_once(':').unwrap().1).collect();
    for ((id, _), port) in announced.iter().zip(&ports) {
        assert_eq!(id, &format!("fakeworker-{port}"), "default worker id");
    }
    ports.dedup();
    assert_eq!(ports.len(), 3, "three distinct ports: {addresses:?}");
    // The file a leaf reads as --config: written before the announcements.
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(written, serde_json::json!({ "workers": addresses }));

    // Each worker has its own instances and events.
    let f = database.client.create(&ImageTag::from(IMAGE), &config(64, None, 0, 0)).await.unwrap().id;
    let mut first = connect_controller(&addresses[0]).await;
    let mut second = connect_controller(&addresses[1]).await;
    let mut events = second.status(StatusRequest { node_id: "t".into() }).await.unwrap().into_inner();
    let instance = first.start(proto::common::FunctionId::from(&f)).await.unwrap().into_inner().instance_id;
    let listed =
        |s: proto::controller::StateResponse| s.functions.iter().map(|f| f.idle.len()).sum::<usize>();
    assert_eq!(listed(first.state(StateRequest::default()).await.unwrap().into_inner()), 1);
    assert_eq!(listed(second.state(StateRequest::default()).await.unwrap().into_inner()), 0);
    second.start(proto::common::FunctionId::from(&f)).await.unwrap();
    let start = next_event(&mut events, Duration::from_secs(5), |e| e.event() == Event::Start).await;
    assert_ne!(start.instance_id, instance, "worker 1's stream carried worker 0's instance");

    // A leaf over the addresses file serves calls.
    let workers: Vec<String> =
        written["workers"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    let leaf = TestLeaf::start(leaf_settings(&database.address, workers)).await;
    let mut client = leaf.client().await;
    let function = client
        .create_function(CreateFunctionRequest {
            image_tag: Some((&ImageTag::from(IMAGE)).into()),
            config: Some((&config(64, None, 0, 0)).into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .function_id;
    for _ in 0..10 {
        let call = ScheduleCallRequest { function_id: function.clone(), data: b"x".to_vec() };
        client.schedule_call(call).await.expect("a call through the leaf");
    }
    drop(leaf);

    let status = terminate(&mut child).await;
    assert!(status.success(), "fakeworker --workers 3 exited with {status} after SIGTERM");
}

#[tokio::test]
async fn a_given_worker_id_is_suffixed_per_worker_and_bad_counts_are_refused() {
    let models = tempfile::tempdir().unwrap();
    write_json(models.path(), "m.json", IMAGE, constant(1e6), constant(0.1), constant(1e6), Some("ns"));
    let mut child =
        fakeworker(models.path(), "127.0.0.1:9", &["--workers", "2", "--worker-id", "sim"]).spawn().unwrap();
    let ids: Vec<String> = announcements(&mut child, 2).await.into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["sim-0", "sim-1"]);
    assert!(terminate(&mut child).await.success());

    let zero = fakeworker(models.path(), "127.0.0.1:9", &["--workers", "0"]).output().await.unwrap();
    assert!(!zero.status.success());
    let stderr = String::from_utf8_lossy(&zero.stderr);
    assert!(stderr.contains("--workers"), "the error does not name --workers: {stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_fakeworker"))
        .args(["--database", "127.0.0.1:9", "--workers", "2", "--address", "no-port-here", "--models"])
        .arg(models.path())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--address") && stderr.contains("no-port-here"), "{stderr}");
}
