//! The no-op leaf's own ceiling: how many calls a second it answers when a
//! minimal closed-loop client keeps many calls outstanding on several
//! connections and records nothing. Measured in the same run as the
//! generator, as the baseline its rates are read against.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proto::leaf::ScheduleCallRequest;
use serde::Serialize;

use super::cpu::CpuMeter;

/// Connections the ceiling client opens.
pub const CEILING_CONNECTIONS: usize = 4;
/// Calls it keeps outstanding (spread over the connections).
pub const CEILING_CONCURRENCY: usize = 128;

/// What the ceiling run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Ceiling {
    pub seconds: f64,
    pub calls: u64,
    pub errors: u64,
    pub rps: f64,
    pub connections: usize,
    pub concurrency: usize,
    /// CPU the no-op leaf used, in cores.
    pub leaf_cpu_cores: f64,
    /// CPU the ceiling client (this process) used, in cores.
    pub client_cpu_cores: f64,
}

/// Drives the leaf at `addr` closed-loop for `duration`.
pub async fn ceiling(
    addr: SocketAddr,
    leaf_pid: u32,
    duration: Duration,
    body_bytes: u64,
) -> anyhow::Result<Ceiling> {
    let mut clients = Vec::with_capacity(CEILING_CONNECTIONS);
    for _ in 0..CEILING_CONNECTIONS {
        clients.push(crate::run::connect(&addr.to_string(), Default::default()).await?);
    }
    let calls = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let body = vec![0x5a_u8; usize::try_from(body_bytes).unwrap_or(usize::MAX)];
    let leaf_cpu = CpuMeter::start(leaf_pid);
    let client_cpu = CpuMeter::start(std::process::id());
    let started = Instant::now();
    let end = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CEILING_CONCURRENCY {
        let mut client = clients[i % CEILING_CONNECTIONS].clone();
        let (calls, errors, body) = (calls.clone(), errors.clone(), body.clone());
        tasks.spawn(async move {
            while Instant::now() < end {
                let request = ScheduleCallRequest { function_id: None, data: body.clone() };
                match client.schedule_call(request).await {
                    Ok(_) => calls.fetch_add(1, Ordering::Relaxed),
                    Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let seconds = started.elapsed().as_secs_f64();
    let calls = calls.load(Ordering::Relaxed);
    Ok(Ceiling {
        seconds,
        calls,
        errors: errors.load(Ordering::Relaxed),
        rps: calls as f64 / seconds,
        connections: CEILING_CONNECTIONS,
        concurrency: CEILING_CONCURRENCY,
        leaf_cpu_cores: leaf_cpu.cores(),
        client_cpu_cores: client_cpu.cores(),
    })
}
