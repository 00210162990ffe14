//! The worker host's load besides the calls, measured on a training run, so
//! the fake worker can feed its models host usage on the scale they were
//! trained on (see `hyperfake_model::HostBaseline`).
//!
//! For each call, the recorded `worker_cpu_usage` / `worker_ram_usage` is the
//! whole host's usage near the call's start. Subtracting the usage of the
//! other calls in flight at that moment (their measured `function_cpu_usage`
//! and `function_ram_usage`, over `[start, start + handler time)`) leaves
//! what the host spent on everything else: exactly what a fake worker must
//! add to the load of its simulated calls, which it computes the same way.

use hyperfake_model::{HostBaseline, SPREAD_QUANTILES};
use rundb::training::{INPUTS, TARGETS};

use crate::data::Sample;
use crate::metrics;

/// What one call contributes: when it ran, what it used, and the host usage
/// recorded at its start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CallLoad {
    pub started_ns: i64,
    pub runtime_ns: f64,
    pub cpu_cores: f64,
    pub ram_bytes: f64,
    pub host_cpu_cores: f64,
    pub host_ram_bytes: f64,
}

impl CallLoad {
    /// From a row in a schema that starts with the five fixed inputs and the
    /// three fixed targets (every [`crate::data::Schema`] does); `None`
    /// without a start time (HyperFake's averaged table).
    pub fn of(sample: &Sample) -> Option<CallLoad> {
        let input =
            |name: &str| INPUTS.iter().position(|c| *c == name).and_then(|i| sample.x.get(i)).copied();
        let target =
            |name: &str| TARGETS.iter().position(|c| *c == name).and_then(|i| sample.y.get(i)).copied();
        Some(CallLoad {
            started_ns: sample.started_ns?,
            runtime_ns: target("function_processing_time_ns")?,
            cpu_cores: target("function_cpu_usage")?,
            ram_bytes: target("function_ram_usage")?,
            host_cpu_cores: input("worker_cpu_usage")?,
            host_ram_bytes: input("worker_ram_usage")?,
        })
    }
}

/// Each call's host usage minus the other calls in flight at its start
/// (never below 0). `calls` are the calls of one run on one host.
pub fn base_loads(calls: &mut [CallLoad]) -> Vec<(f64, f64)> {
    calls.sort_by_key(|c| c.started_ns);
    // Calls that started earlier, by end time; swept as starts advance.
    let mut running: Vec<(f64, f64, f64)> = Vec::new();
    let mut out = Vec::with_capacity(calls.len());
    for c in calls.iter() {
        let now = c.started_ns as f64;
        running.retain(|(end, _, _)| *end > now);
        let (cpu, ram) = running.iter().fold((0.0, 0.0), |(a, b), (_, cpu, ram)| (a + cpu, b + ram));
        out.push(((c.host_cpu_cores - cpu).max(0.0), (c.host_ram_bytes - ram).max(0.0)));
        running.push((now + c.runtime_ns.max(0.0), c.cpu_cores, c.ram_bytes));
    }
    out
}

/// [`SPREAD_QUANTILES`] quantiles of the base loads; `None` without any.
pub fn host_baseline(bases: &[(f64, f64)]) -> Option<HostBaseline> {
    let finite: Vec<&(f64, f64)> = bases.iter().filter(|(c, r)| c.is_finite() && r.is_finite()).collect();
    if finite.is_empty() {
        return None;
    }
    let cpu: Vec<f64> = finite.iter().map(|(c, _)| *c).collect();
    let ram: Vec<f64> = finite.iter().map(|(_, r)| *r).collect();
    Some(HostBaseline {
        cpu_cores: metrics::quantiles(&cpu, SPREAD_QUANTILES),
        ram_bytes: metrics::quantiles(&ram, SPREAD_QUANTILES),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(started_ns: i64, runtime_ns: f64, cpu: f64, host_cpu: f64) -> CallLoad {
        CallLoad {
            started_ns,
            runtime_ns,
            cpu_cores: cpu,
            ram_bytes: 1e6 * cpu,
            host_cpu_cores: host_cpu,
            host_ram_bytes: 5e8 + 1e6 * host_cpu,
        }
    }

    #[test]
    fn subtracts_only_the_calls_in_flight_at_each_start() {
        // A runs 0..100 using 0.5 cores; B starts at 50 (A in flight); C at
        // 100, when A has just ended; D at 120 while B (50..150) runs.
        let mut calls = vec![
            call(120, 10.0, 0.1, 0.9),
            call(0, 100.0, 0.5, 0.3),
            call(50, 100.0, 0.25, 0.8),
            call(100, 10.0, 0.1, 0.45),
        ];
        let bases = base_loads(&mut calls);
        let cpu: Vec<f64> = bases.iter().map(|(c, _)| (c * 100.0).round() / 100.0).collect();
        assert_eq!(cpu, [0.3, 0.3, 0.2, 0.65]);
        // RAM: host 5e8 + 1e6·host_cpu minus 1e6·cpu of the calls in flight.
        assert_eq!(bases[1].1, 5e8 + 0.8e6 - 0.5e6);
    }

    #[test]
    fn never_negative_and_none_without_calls() {
        let mut calls = vec![call(0, 100.0, 2.0, 0.1), call(10, 100.0, 0.1, 0.1)];
        assert_eq!(base_loads(&mut calls)[1].0, 0.0);
        assert_eq!(host_baseline(&[]), None);
        let b = host_baseline(&[(0.1, 1.0), (0.3, 3.0)]).unwrap();
        assert_eq!((b.cpu_cores.len(), b.median().cpu_cores), (SPREAD_QUANTILES, 0.2));
    }
}
