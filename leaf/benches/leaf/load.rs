//! Driving a chain: closed-loop throughput and open-loop latency, with where
//! the time of calls through a leaf went and how long the process waited for
//! a CPU.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyperfake_core::time::now_unix;
use hyperfake_core::{FunctionId, trailers};
use proto::common::{CallRequest, InstanceId};
use proto::controller::controller_client::ControllerClient;
use proto::leaf::ScheduleCallRequest;
use proto::leaf::leaf_client::LeafClient;
use tonic::transport::Channel;
use tonic::{Response, Status};

use crate::Args;
use crate::backends::channel;

// === Load ===

/// How a caller makes one call.
#[derive(Clone)]
pub(crate) enum Entry {
    Worker(ControllerClient<Channel>, String),
    Leaf(LeafClient<Channel>),
}

/// The leaf's timing trailers of one answer: when its handler got the call
/// and when it had chosen the instance (Unix ns).
pub(crate) fn leaf_times<T>(r: &Response<T>) -> Option<(u64, u64)> {
    let get = |key: &str| r.metadata().get(key)?.to_str().ok()?.parse::<u64>().ok();
    Some((get(trailers::LEAF_GOT_REQUEST_TIMESTAMP)?, get(trailers::LEAF_SCHEDULED_CALL_TIMESTAMP)?))
}

impl Entry {
    /// Makes one call; for a chain through a leaf, returns the leaf's timing trailers.
    async fn call(&self, function: &FunctionId, data: Vec<u8>) -> Result<Option<(u64, u64)>, Status> {
        match self {
            Entry::Worker(c, instance) => c
                .clone()
                .call(CallRequest {
                    request_id: String::new(),
                    instance_id: Some(InstanceId { id: instance.clone() }),
                    data,
                    function_id: Some(function.into()),
                })
                .await
                .map(|_| None),
            Entry::Leaf(c) => c
                .clone()
                .schedule_call(ScheduleCallRequest { function_id: Some(function.into()), data })
                .await
                .map(|r| leaf_times(&r)),
        }
    }
}

/// `--connections` entries to the chain at `address`.
pub(crate) async fn entries(address: &str, worker_instance: Option<&str>, n: usize) -> Vec<Entry> {
    let mut out = Vec::new();
    for _ in 0..n {
        let ch = channel(address).await;
        out.push(match worker_instance {
            Some(i) => Entry::Worker(ControllerClient::new(ch), i.to_string()),
            None => Entry::Leaf(LeafClient::new(ch)),
        });
    }
    out
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub(crate) struct Latency {
    pub(crate) p50_us: f64,
    pub(crate) p90_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) p999_us: f64,
    pub(crate) max_us: f64,
    pub(crate) calls: usize,
}

pub(crate) fn latency(mut samples: Vec<Duration>) -> Latency {
    samples.sort();
    let at = |q: f64| {
        if samples.is_empty() {
            return f64::NAN;
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i].as_secs_f64() * 1e6
    };
    Latency {
        p50_us: at(0.5),
        p90_us: at(0.9),
        p99_us: at(0.99),
        p999_us: at(0.999),
        max_us: at(1.0),
        calls: samples.len(),
    }
}

/// Closed loop: calls/s, errors and the latencies of calls that ended in the window.
pub(crate) async fn closed_loop(
    entries: &[Entry],
    function: &FunctionId,
    args: &Args,
) -> (f64, u64, Latency) {
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let loops: Vec<_> = entries
        .iter()
        .flat_map(|e| std::iter::repeat_n(e, args.callers))
        .map(|entry| {
            let (entry, function, stop, measuring, errors) =
                (entry.clone(), function.clone(), stop.clone(), measuring.clone(), errors.clone());
            let payload = args.payload;
            tokio::spawn(async move {
                let mut samples = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let start = Instant::now();
                    let result = entry.call(&function, vec![7u8; payload]).await;
                    if measuring.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                        match result {
                            Ok(_) => samples.push(start.elapsed()),
                            Err(_) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
                samples
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    let mut samples = Vec::new();
    for l in loops {
        samples.extend(l.await.unwrap());
    }
    (samples.len() as f64 / elapsed.as_secs_f64(), errors.load(Ordering::Relaxed), latency(samples))
}

/// Where the time of calls through a leaf went (µs, means): client → the
/// leaf's handler, in the leaf until the instance was chosen, and from there
/// to the worker and back to the client.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub(crate) struct Split {
    pub(crate) calls: usize,
    pub(crate) to_leaf_us: f64,
    pub(crate) in_leaf_us: f64,
    pub(crate) forward_and_back_us: f64,
}

pub(crate) fn split(calls: &[&Sent]) -> Option<Split> {
    let with: Vec<_> = calls.iter().filter_map(|c| c.leaf.map(|l| (c, l))).collect();
    if with.is_empty() {
        return None;
    }
    let n = with.len() as f64;
    let us = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1e3;
    Some(Split {
        calls: with.len(),
        to_leaf_us: with.iter().map(|(c, (got, _))| us(c.sent_unix, *got)).sum::<f64>() / n,
        in_leaf_us: with.iter().map(|(_, (got, sched))| us(*got, *sched)).sum::<f64>() / n,
        forward_and_back_us: with.iter().map(|(c, (_, sched))| us(*sched, c.answered_unix)).sum::<f64>() / n,
    })
}

/// One open-loop call.
pub(crate) struct Sent {
    /// Seconds since the run began.
    at_s: f64,
    latency: Duration,
    sent_unix: u64,
    answered_unix: u64,
    leaf: Option<(u64, u64)>,
}

/// Time this process's threads spent runnable but waiting for a CPU, summed
/// over threads (`/proc/self/task/*/schedstat`, second field): what other
/// work on the machine (or too many threads) takes from the chain.
pub(crate) fn run_queue_wait() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Duration::ZERO };
    let ns: u64 = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(ns)
}

/// Open loop at `rate` calls/s.
pub(crate) struct OpenLoop {
    pub(crate) latency: Latency,
    pub(crate) errors: u64,
    /// The ten slowest calls: (sent at s, ms).
    pub(crate) slowest: Vec<(f64, f64)>,
    /// Where the time went for the median half and for the slowest 1 %.
    pub(crate) split_median: Option<Split>,
    pub(crate) split_p99: Option<Split>,
    /// Milliseconds per second of the run that the process's threads waited
    /// for a CPU.
    pub(crate) run_queue_wait_ms_per_s: f64,
}

pub(crate) async fn open_loop(entries: &[Entry], function: &FunctionId, rate: u32, args: &Args) -> OpenLoop {
    let period = Duration::from_secs_f64(1.0 / f64::from(rate));
    let n = u64::from(rate) * args.seconds;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let origin = Instant::now();
    let waited_before = run_queue_wait();
    let mut calls = Vec::new();
    for i in 0..n {
        tick.tick().await;
        #[allow(clippy::cast_possible_truncation)]
        let entry = entries[i as usize % entries.len()].clone();
        let (function, data) = (function.clone(), vec![7u8; args.payload]);
        calls.push(tokio::spawn(async move {
            let start = Instant::now();
            let sent_unix = now_unix().0;
            let leaf = entry.call(&function, data).await?;
            Ok::<_, Status>(Sent {
                at_s: start.duration_since(origin).as_secs_f64(),
                latency: start.elapsed(),
                sent_unix,
                answered_unix: now_unix().0,
                leaf,
            })
        }));
    }
    let mut sent = Vec::new();
    let mut errors = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(s) => sent.push(s),
            Err(_) => errors += 1,
        }
    }
    let waited = run_queue_wait().saturating_sub(waited_before);
    let run_queue_wait_ms_per_s = waited.as_secs_f64() * 1e3 / origin.elapsed().as_secs_f64();
    sent.sort_by_key(|s| s.latency);
    let median: Vec<_> = sent.iter().take(sent.len() / 2).collect();
    let tail: Vec<_> = sent.iter().skip(sent.len() * 99 / 100).collect();
    let slowest = sent.iter().rev().take(10).map(|s| (s.at_s, s.latency.as_secs_f64() * 1e3)).collect();
    OpenLoop {
        run_queue_wait_ms_per_s,
        split_median: split(&median),
        split_p99: split(&tail),
        latency: latency(sent.iter().map(|s| s.latency).collect()),
        errors,
        slowest,
    }
}
