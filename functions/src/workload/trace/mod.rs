//! `trace`: replays one invocation of a production trace: holds the memory
//! and takes the wall time the trace gives for it, busy at the instance's CPU
//! quota. Trace workloads in loadgen call it with each invocation's draw.
//!
//! Request (JSON): `{"duration_us": D, "memory_mib": M}`. `duration_us` is
//! the handler's wall time in microseconds (the Azure traces' `duration`),
//! 0..=[`MAX_DURATION_US`]; `memory_mib` (optional, default 0) is MiB the
//! instance holds, resident, while the call runs: the instance's arena
//! grows to the largest request, is shared by the calls in flight, and a
//! call writes (faults in) the pages of it the instance does not hold yet
//! ([`memory`]: the traces' memory is what an app holds, not what each call
//! allocates or rewrites), 0..=[`MAX_MEMORY_MIB`] and at most the instance's
//! memory limit less [`MEMORY_RESERVE_MIB`]. A request outside
//! these bounds is refused before any work, with an error that starts
//! `invalid argument:` and names the field, the value and the bound.
//!
//! Response (JSON), small:
//! ```json
//! {"duration_us": 200000, "elapsed_us": 200113, "busy_us": 47420,
//!  "memory_mib": 64, "cpu_share": 0.25}
//! ```
//! `elapsed_us` is the wall time the work took (from the handler's start),
//! `busy_us` the CPU time the call's thread used (spinning and writing memory), `cpu_share` the CFS
//! quota in cores (`null` when unlimited). An optional `"pace": false` turns
//! the pacing off (see [`work`]; for the benchmark's baseline).
//!
//! How the duration is met at a CPU quota, and the calibration done once per
//! instance: see [`work`].

pub mod cgroup;
pub mod memory;
pub mod work;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tracing::info;

pub use cgroup::Limits;
pub use memory::{Arena, Pages};
pub use work::{Calibration, Outcome};

/// Longest accepted duration: 10 minutes, longer than any call timeout the
/// platform is run with (the Azure 2019 trace's maxima reach hours, which no
/// replay can wait for).
pub const MAX_DURATION_US: u64 = 600_000_000;
/// Largest accepted memory, whatever the limit: 16 GiB.
pub const MAX_MEMORY_MIB: u64 = 16 * 1024;
/// Memory left to the function's own process (runtime, gRPC buffers) under
/// its limit: its resident size at rest is about 5 MiB.
pub const MEMORY_RESERVE_MIB: u64 = 16;
const MIB: u64 = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceRequest {
    pub duration_us: u64,
    #[serde(default)]
    pub memory_mib: u64,
    /// Pace the busy loop to the quota (the default). `false` spins flat out
    /// and leaves the throttling to the kernel: the naive loop, kept as the
    /// benchmark's baseline (`bench-results/trace-function.md`).
    #[serde(default = "pace_by_default")]
    pub pace: bool,
}

fn pace_by_default() -> bool {
    true
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceResponse {
    pub duration_us: u64,
    pub elapsed_us: u64,
    pub busy_us: u64,
    pub memory_mib: u64,
    pub cpu_share: Option<f64>,
}

/// Why a trace call was refused or failed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TraceError {
    #[error(
        "invalid argument: expected {{\"duration_us\": D, \"memory_mib\": M}} with non-negative integers: {0}"
    )]
    Json(String),
    #[error("invalid argument: duration_us: {0} is above the limit of {MAX_DURATION_US} µs (10 min)")]
    Duration(u64),
    #[error("invalid argument: memory_mib: {0} is above the limit of {MAX_MEMORY_MIB} MiB")]
    Memory(u64),
    #[error(
        "invalid argument: memory_mib: {requested} MiB does not fit this instance's memory limit of \
         {limit_mib} MiB less {MEMORY_RESERVE_MIB} MiB for the process"
    )]
    MemoryLimit { requested: u64, limit_mib: u64 },
    #[error("trace worker thread failed: {0}")]
    Worker(String),
}

/// One instance's state: its limits and calibration (measured once, at
/// start) and what the calls in flight use.
#[derive(Debug)]
pub struct TraceFunction {
    limits: Limits,
    calibration: Calibration,
    in_flight: AtomicUsize,
    /// The memory the instance holds, shared by the calls (`memory`).
    memory: Arena,
    /// The calibration is logged at the first call: at start, before the
    /// SDK set up logging, it would be lost.
    logged: Once,
}

impl TraceFunction {
    /// Reads the cgroup limits at `cgroup_root` and calibrates the busy loop.
    pub fn start(cgroup_root: &Path) -> Arc<TraceFunction> {
        TraceFunction::with(Limits::read(cgroup_root), Calibration::measure())
    }

    /// An instance with the given limits and calibration (tests).
    pub fn with(limits: Limits, calibration: Calibration) -> Arc<TraceFunction> {
        Arc::new(TraceFunction {
            limits,
            calibration,
            in_flight: AtomicUsize::new(0),
            memory: Arena::default(),
            logged: Once::new(),
        })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The handler: parse, check the bounds, then work on a blocking thread
    /// (the busy loop must not hold a runtime thread serving gRPC).
    pub async fn handle(self: Arc<Self>, input: Bytes) -> Result<Vec<u8>, TraceError> {
        let start = Instant::now();
        self.logged.call_once(|| {
            info!(
                cpu_share = ?self.limits.cpu.map(|c| c.0),
                memory_limit_bytes = ?self.limits.memory.map(|b| b.0),
                iterations_per_check = self.calibration.iterations_per_check,
                "trace function calibrated at start"
            );
        });
        let request: TraceRequest =
            serde_json::from_slice(&input).map_err(|e| TraceError::Json(e.to_string()))?;
        let pages = self.hold(&request)?;
        let function = Arc::clone(&self);
        let outcome = tokio::task::spawn_blocking(move || function.work(start, &request, &pages))
            .await
            .map_err(|e| TraceError::Worker(e.to_string()))?;
        let response = TraceResponse {
            duration_us: request.duration_us,
            elapsed_us: micros(outcome.elapsed),
            busy_us: micros(outcome.busy),
            memory_mib: request.memory_mib,
            cpu_share: self.limits.cpu.map(|c| c.0),
        };
        serde_json::to_vec(&response).map_err(|e| TraceError::Worker(e.to_string()))
    }

    /// Checks the bounds and gives the call its pages of the arena (grown
    /// to them first).
    pub fn hold(&self, request: &TraceRequest) -> Result<Pages, TraceError> {
        if request.duration_us > MAX_DURATION_US {
            return Err(TraceError::Duration(request.duration_us));
        }
        if request.memory_mib > MAX_MEMORY_MIB {
            return Err(TraceError::Memory(request.memory_mib));
        }
        if let Some(limit) = self.limits.memory {
            let usable_mib = (limit.0 / MIB).saturating_sub(MEMORY_RESERVE_MIB);
            if request.memory_mib > usable_mib {
                return Err(TraceError::MemoryLimit {
                    requested: request.memory_mib,
                    limit_mib: limit.0 / MIB,
                });
            }
        }
        Ok(self.memory.take(request.memory_mib))
    }

    /// The busy loop for one call, paced by the calls in flight.
    fn work(&self, start: Instant, request: &TraceRequest, pages: &Pages) -> Outcome {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let share = self.limits.cpu.map(|c| c.0).filter(|_| request.pace);
        let outcome =
            work::run(start, Duration::from_micros(request.duration_us), pages, self.calibration, || {
                work::duty(share, self.in_flight.load(Ordering::SeqCst))
            });
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        outcome
    }

    /// Bytes the instance's arena holds.
    pub fn memory_bytes(&self) -> u64 {
        self.memory.bytes()
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
