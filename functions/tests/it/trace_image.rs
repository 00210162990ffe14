//! The `trace` image on the real Docker engine at a CPU quota: the wall time
//! it takes against the duration asked for, its memory bound, and what it
//! reports about its quota. The exact error figures are measured by the
//! benchmark (`bench-results/trace-function.md`); the test's tolerance is
//! generous, as the machine may be busy.

use std::net::SocketAddr;
use std::process::Command;

use functions::image_tag;
use functions::workload::trace::TraceResponse;
use hyperfake_core::defaults::{FUNCTION_PORT, LABEL_MANAGED, LABEL_TEST};

use crate::common::{DEADLINE, call, client, wait_serving};

/// A `trace` container at `cpus` cores and `memory` of RAM, removed on drop.
struct TraceContainer {
    id: String,
}

impl TraceContainer {
    fn run(cpus: &str, memory: &str) -> TraceContainer {
        let image = image_tag("trace");
        hyperfake_testkit::require_image(image.as_str());
        let label = format!("{LABEL_TEST}={}", hyperfake_testkit::unique("functions-trace"));
        let managed = format!("{LABEL_MANAGED}=true");
        let port = format!("127.0.0.1::{FUNCTION_PORT}");
        let args =
            ["run", "-d", "--label", &label, "--label", &managed, "--cpus", cpus, "-m", memory, "-p", &port];
        let output = Command::new("docker").args(args).arg(image.as_str()).output().expect("docker CLI");
        assert!(output.status.success(), "docker run: {}", String::from_utf8_lossy(&output.stderr));
        TraceContainer { id: String::from_utf8(output.stdout).unwrap().trim().to_string() }
    }

    fn addr(&self) -> SocketAddr {
        let output =
            Command::new("docker").args(["port", &self.id, &FUNCTION_PORT.to_string()]).output().unwrap();
        let text = String::from_utf8(output.stdout).unwrap();
        let line = text.lines().find(|l| l.starts_with("127.0.0.1:")).expect("no published port");
        line.trim().parse().unwrap()
    }

    fn logs(&self) -> String {
        let output = Command::new("docker").args(["logs", &self.id]).output().unwrap();
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
    }
}

impl Drop for TraceContainer {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.id]).output();
    }
}

#[tokio::test]
async fn trace_image_meets_the_requested_duration_at_half_a_core() {
    let container = TraceContainer::run("0.5", "256m");
    let addr = container.addr();
    wait_serving(addr, DEADLINE).await;
    let mut client = client(addr).await;

    for (i, duration_ms) in [300_u64, 1000].into_iter().enumerate() {
        let body = format!(r#"{{"duration_us": {}, "memory_mib": 64}}"#, duration_ms * 1000);
        let (response, handler_ns) = call(&mut client, &format!("trace-{i}"), body).await.unwrap();
        assert!(response.error.is_none(), "{:?}; logs:\n{}", response.error, container.logs());
        let answer: TraceResponse = serde_json::from_slice(&response.data).unwrap();
        assert_eq!(answer.cpu_share, Some(0.5), "the function reads its quota; logs:\n{}", container.logs());
        assert_eq!(answer.memory_mib, 64);
        // Never early; late by at most a quarter (the benchmark measures the
        // real error, well under 5 % on an idle machine).
        let requested_ns = duration_ms * 1_000_000;
        assert!(answer.elapsed_us >= duration_ms * 1000, "{answer:?}");
        assert!(
            handler_ns >= requested_ns && handler_ns < requested_ns + requested_ns / 4,
            "asked for {duration_ms} ms, the handler took {:.1} ms; {answer:?}",
            handler_ns as f64 / 1e6
        );
        // Paced to the quota: busy for about half the time, not all of it.
        assert!(answer.busy_us < answer.elapsed_us * 3 / 4, "{answer:?}");
    }

    // More memory than the container has is refused, and the instance lives on.
    let (response, _) =
        call(&mut client, "too-big", r#"{"duration_us": 1000, "memory_mib": 300}"#).await.unwrap();
    let message = response.error.expect("a request over the memory limit must be refused").message;
    assert!(
        message.starts_with(
            "invalid argument: memory_mib: 300 MiB does not fit this instance's memory limit of 256 MiB"
        ),
        "{message}"
    );
    let (response, _) = call(&mut client, "after", r#"{"duration_us": 1000}"#).await.unwrap();
    assert!(response.error.is_none(), "{:?}", response.error);
}
