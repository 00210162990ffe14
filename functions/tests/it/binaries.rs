use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use functions::sdk::LISTEN_ADDRESS_ENV;
use functions::workload::{crash, hello};
use hyperfake_core::defaults::env;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::common::{DEADLINE, call, client, wait_serving};

/// A function binary running on 127.0.0.1:0, killed on drop. Its stderr is
/// kept so a failing test can show it.
struct FunctionProcess {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl FunctionProcess {
    async fn start(binary: &str, instance_id: &str, log_level: &str) -> FunctionProcess {
        let mut child = Command::new(binary)
            .env(LISTEN_ADDRESS_ENV, "127.0.0.1:0")
            .env(env::INSTANCE_ID, instance_id)
            .env("RUST_LOG", log_level)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        // The server logs its bound address; read until then, then keep draining.
        let addr = tokio::time::timeout(DEADLINE, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                log.lock().unwrap().push(line.clone());
                if let Some(rest) = line.split_once("listening address=").map(|(_, rest)| rest) {
                    return rest.split_whitespace().next().unwrap().parse::<SocketAddr>().unwrap();
                }
            }
            panic!("{binary} exited before listening: {:#?}", log.lock().unwrap());
        })
        .await
        .unwrap_or_else(|_| panic!("{binary} did not log its address: {:#?}", log.lock().unwrap()));
        let drain = Arc::clone(&log);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                drain.lock().unwrap().push(line);
            }
        });
        FunctionProcess { child, addr, log }
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().expect("process already reaped").to_string();
        let status = std::process::Command::new("kill").args(["-s", name, &pid]).status().unwrap();
        assert!(status.success(), "kill -s {name} {pid} failed");
    }

    async fn wait(&mut self) -> ExitStatus {
        match tokio::time::timeout(DEADLINE, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!("process did not exit in {DEADLINE:?}; stderr: {:#?}", self.log.lock().unwrap()),
        }
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn echo_binary_serves_and_exits_zero_on_sigterm() {
    let mut process = FunctionProcess::start(env!("CARGO_BIN_EXE_echo"), "bin-echo", "info").await;
    wait_serving(process.addr, DEADLINE).await;
    let mut client = client(process.addr).await;
    let (response, _) = call(&mut client, "r1", b"ping".to_vec()).await.unwrap();
    assert_eq!(response.data, b"ping");
    assert_eq!(response.instance_id.unwrap().id, "bin-echo");

    process.signal("TERM");
    let status = process.wait().await;
    assert!(status.success(), "exit status {status}; stderr: {:#?}", process.log());
}

#[tokio::test]
async fn hello_binary_exits_zero_on_sigint() {
    let mut process = FunctionProcess::start(env!("CARGO_BIN_EXE_hello"), "bin-hello", "info").await;
    let mut client = client(process.addr).await;
    let (response, _) = call(&mut client, "r", Vec::new()).await.unwrap();
    assert_eq!(response.data, hello::GREETING);
    process.signal("INT");
    let status = process.wait().await;
    assert!(status.success(), "exit status {status}; stderr: {:#?}", process.log());
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_call_finish() {
    let mut process = FunctionProcess::start(env!("CARGO_BIN_EXE_simul"), "bin-simul", "debug").await;
    let addr = process.addr;
    let in_flight = tokio::spawn(async move {
        let mut client = client(addr).await;
        call(&mut client, "slow", Vec::new()).await
    });
    // Signal once the call is inside the handler (simul waits ≥ 100 ms there).
    let deadline = Instant::now() + DEADLINE;
    while !process.log().iter().any(|l| l.contains("call started")) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    process.signal("TERM");
    let (response, handler_time) = in_flight.await.unwrap().expect("in-flight call must complete");
    assert!(response.error.is_none());
    assert!(handler_time >= 100_000_000, "simul handler took only {handler_time} ns");
    let status = process.wait().await;
    assert!(status.success(), "exit status {status}; stderr: {:#?}", process.log());
}

#[tokio::test]
async fn crash_exits_nonzero_after_its_delay() {
    let mut process = FunctionProcess::start(env!("CARGO_BIN_EXE_crash"), "bin-crash", "info").await;
    let mut client = client(process.addr).await;
    let start = Instant::now();
    let outcome = call(&mut client, "boom", Vec::new()).await;
    assert!(outcome.is_err(), "a crashing function cannot answer: {outcome:?}");
    let status = process.wait().await;
    assert!(start.elapsed() >= crash::DELAY, "crashed after {:?}", start.elapsed());
    assert_eq!(status.code(), Some(crash::EXIT_CODE), "stderr: {:#?}", process.log());
}
