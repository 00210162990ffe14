//! Host CPU and memory from `/proc`, sampled in the background so `Metrics`
//! and the resource stream answer instantly with usage over a real interval.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyperfake_core::{Bytes, Cores};

use crate::runtime::HostUsage;

/// Jiffies of one CPU line of `/proc/stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct CpuJiffies {
    busy: u64,
    total: u64,
}

/// Parses `/proc/stat`: the aggregate line first, then one per core.
fn parse_stat(text: &str) -> Vec<CpuJiffies> {
    text.lines()
        .filter(|l| l.starts_with("cpu"))
        .map(|l| {
            let fields: Vec<u64> = l.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
            // user nice system idle iowait irq softirq steal (guest is included in user).
            let total: u64 = fields.iter().take(8).sum();
            let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
            CpuJiffies { busy: total.saturating_sub(idle), total }
        })
        .collect()
}

/// `(total, available)` from `/proc/meminfo`.
fn parse_meminfo(text: &str) -> (Bytes, Bytes) {
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(Bytes(0), |kib| Bytes(kib * 1024))
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

fn busy_fraction(before: CpuJiffies, after: CpuJiffies) -> f64 {
    let total = after.total.saturating_sub(before.total);
    if total == 0 { 0.0 } else { after.busy.saturating_sub(before.busy) as f64 / total as f64 }
}

/// Usage between two `/proc/stat` readings plus current memory.
fn usage_between(before: &[CpuJiffies], after: &[CpuJiffies], meminfo: &str) -> HostUsage {
    let per_core: Vec<f64> =
        before.iter().zip(after).skip(1).map(|(b, a)| 100.0 * busy_fraction(*b, *a)).collect();
    let cores = per_core.iter().sum::<f64>() / 100.0;
    let (total, available) = parse_meminfo(meminfo);
    HostUsage {
        cpu_percent_per_core: per_core,
        cpu: Cores(cores),
        ram_used: Bytes(total.0.saturating_sub(available.0)),
        ram_total: total,
    }
}

/// Samples the host every `interval`; [`HostMonitor::usage`] returns the last sample.
#[derive(Debug, Clone)]
pub struct HostMonitor {
    latest: Arc<Mutex<HostUsage>>,
}

impl HostMonitor {
    /// Starts sampling; the task ends when the last clone is dropped.
    pub fn spawn(interval: Duration) -> Self {
        let latest = Arc::new(Mutex::new(HostUsage::default()));
        let weak = Arc::downgrade(&latest);
        tokio::spawn(async move {
            let read = || std::fs::read_to_string("/proc/stat").map(|s| parse_stat(&s)).unwrap_or_default();
            let mut before = read();
            let mut tick = tokio::time::interval(interval);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(latest) = weak.upgrade() else { return };
                let after = read();
                let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
                let usage = usage_between(&before, &after, &meminfo);
                *latest.lock().unwrap_or_else(|e| e.into_inner()) = usage;
                before = after;
            }
        });
        HostMonitor { latest }
    }

    pub fn usage(&self) -> HostUsage {
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_usage_is_in_cores_and_percent_per_core() {
        let before = parse_stat("cpu 0 0 0 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0\ncpu1 0 0 0 0 0 0 0 0\n");
        // core 0: 50 busy of 100; core 1: 100 busy of 100.
        let after = parse_stat("cpu 150 0 0 50 0 0 0 0\ncpu0 50 0 0 50 0 0 0 0\ncpu1 100 0 0 0 0 0 0 0\n");
        let u = usage_between(&before, &after, "MemTotal: 1000 kB\nMemAvailable: 250 kB\n");
        assert_eq!(u.cpu_percent_per_core, vec![50.0, 100.0]);
        assert_eq!(u.cpu, Cores(1.5));
        assert_eq!(u.ram_total, Bytes(1_024_000));
        assert_eq!(u.ram_used, Bytes(768_000));
    }

    #[test]
    fn iowait_counts_as_idle() {
        let before = parse_stat("cpu 0 0 0 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0\n");
        let after = parse_stat("cpu 10 0 0 0 90 0 0 0\ncpu0 10 0 0 0 90 0 0 0\n");
        assert_eq!(usage_between(&before, &after, "").cpu_percent_per_core, vec![10.0]);
    }
}
