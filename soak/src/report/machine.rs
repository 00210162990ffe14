//! The machine and the soak's processes over the run, from the samples:
//! load average, CPU (all of it, the soak's share, steal) minute by minute,
//! and each process's memory, open files and CPU with their slopes.

use serde::Serialize;

use crate::fit::Line;
use crate::samples::{Reading, Samples, Series};

const MINUTE_NS: i64 = 60_000_000_000;

/// The machine's load average over the run (from the samples).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Load {
    pub samples: usize,
    pub first: Option<[f64; 3]>,
    pub last: Option<[f64; 3]>,
    pub mean_1min: Option<f64>,
    pub max_1min: Option<f64>,
    /// The machine minute by minute (minutes of the run, from 0).
    pub per_minute: Vec<MinuteMachine>,
}

/// The machine in one minute of the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MinuteMachine {
    pub minute: u32,
    /// Mean 1-minute load average.
    pub load_1min: Option<f64>,
    /// Cores busy, all processes of the machine (`/proc/stat`).
    pub busy_cores: Option<f64>,
    /// Cores the soak's own processes used (their utime + stime).
    pub soak_cores: Option<f64>,
    /// Share of CPU time the hypervisor gave to others (steal).
    pub steal_pct: Option<f64>,
}

/// One process's memory and open files over the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ProcessTrend {
    pub process: String,
    pub pid: u32,
    pub samples: usize,
    pub minutes_sampled: f64,
    /// Exited before sampling stopped (loadgen does, by design).
    pub exited: bool,
    pub rss_first_mib: f64,
    pub rss_last_mib: f64,
    pub rss_max_mib: f64,
    /// Least-squares slope of RSS, KiB per minute, over every sample.
    pub rss_slope_kib_per_min: Option<f64>,
    /// The same over the second half of the samples: near 0 when memory
    /// levelled off (caches and pools filled early), as large as the whole
    /// run's when it keeps growing (a leak).
    pub rss_slope_second_half_kib_per_min: Option<f64>,
    pub rss_r2_second_half: Option<f64>,
    pub fds_first: u64,
    pub fds_last: u64,
    pub fds_max: u64,
    pub fds_slope_per_min: Option<f64>,
    pub fds_slope_second_half_per_min: Option<f64>,
    /// Mean cores used over the samples (utime + stime).
    pub cpu_cores_mean: Option<f64>,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn minute_of(at_ns: i64, started: i64) -> Option<usize> {
    usize::try_from((at_ns - started) / MINUTE_NS).ok()
}

/// The machine minute by minute, from the samples.
pub(super) fn load(samples: &Samples, started: i64) -> Load {
    #[derive(Clone, Default)]
    struct Acc {
        load_sum: f64,
        loads: usize,
        seconds: f64,
        busy: u64,
        total: u64,
        steal: u64,
        soak_ticks: u64,
    }
    fn at(acc: &mut Vec<Acc>, minute: usize) -> &mut Acc {
        if acc.len() <= minute {
            acc.resize(minute + 1, Acc::default());
        }
        &mut acc[minute]
    }
    let mut acc: Vec<Acc> = Vec::new();
    let m = &samples.machine;
    for r in m {
        let Some(minute) = minute_of(r.at_ns, started) else { continue };
        let a = at(&mut acc, minute);
        a.load_sum += r.load[0];
        a.loads += 1;
    }
    // CPU: each interval's share goes to the minute it ends in.
    for pair in m.windows(2) {
        let (Some(a), Some(b)) = (pair[0].cpu, pair[1].cpu) else { continue };
        let Some(minute) = minute_of(pair[1].at_ns, started) else { continue };
        let busy = b.busy.saturating_sub(a.busy);
        let total = busy
            + b.idle.saturating_sub(a.idle)
            + b.iowait.saturating_sub(a.iowait)
            + b.steal.saturating_sub(a.steal);
        let slot = at(&mut acc, minute);
        slot.seconds += (pair[1].at_ns - pair[0].at_ns) as f64 / 1e9;
        slot.busy += busy;
        slot.total += total;
        slot.steal += b.steal.saturating_sub(a.steal);
    }
    for series in samples.processes.values() {
        for pair in series.readings.windows(2) {
            let (Some(a), Some(b)) = (pair[0].cpu_ticks, pair[1].cpu_ticks) else { continue };
            let Some(minute) = minute_of(pair[1].at_ns, started) else { continue };
            at(&mut acc, minute).soak_ticks += b.saturating_sub(a);
        }
    }
    let ticks = samples.ticks_per_s as f64;
    let ones: Vec<f64> = m.iter().map(|r| r.load[0]).collect();
    Load {
        samples: m.len(),
        first: m.first().map(|r| r.load),
        last: m.last().map(|r| r.load),
        mean_1min: (!ones.is_empty()).then(|| ones.iter().sum::<f64>() / ones.len() as f64),
        max_1min: ones.iter().copied().reduce(f64::max),
        per_minute: acc
            .into_iter()
            .enumerate()
            .map(|(minute, a)| {
                let cpu = a.seconds > 0.0 && a.total > 0;
                MinuteMachine {
                    minute: u32::try_from(minute).unwrap_or(u32::MAX),
                    load_1min: (a.loads > 0).then(|| a.load_sum / a.loads as f64),
                    busy_cores: cpu.then(|| a.busy as f64 / ticks / a.seconds),
                    soak_cores: cpu.then(|| a.soak_ticks as f64 / ticks / a.seconds),
                    steal_pct: cpu.then(|| 100.0 * a.steal as f64 / a.total as f64),
                }
            })
            .collect(),
    }
}

/// One process's memory, open files and CPU over the samples.
pub(super) fn trend(name: &str, series: &Series, ticks_per_s: f64) -> ProcessTrend {
    let r = &series.readings;
    let t0 = r.first().map_or(0, |x| x.at_ns);
    let t_end = r.last().map_or(0, |x| x.at_ns);
    let minutes = |at: i64| (at - t0) as f64 / 60e9;
    let fit = |after: i64, value: &dyn Fn(&Reading) -> f64| {
        let points: Vec<(f64, f64)> =
            r.iter().filter(|x| x.at_ns >= after).map(|x| (minutes(x.at_ns), value(x))).collect();
        Line::fit(&points)
    };
    let rss_kib = |x: &Reading| x.rss_bytes as f64 / 1024.0;
    let fds = |x: &Reading| x.open_fds as f64;
    let half = t0 + (t_end - t0) / 2;
    let rss_half = fit(half, &rss_kib);
    let cpu_cores_mean = match (r.first().and_then(|x| x.cpu_ticks), r.last().and_then(|x| x.cpu_ticks)) {
        (Some(a), Some(b)) if t_end > t0 => {
            Some(b.saturating_sub(a) as f64 / ticks_per_s / ((t_end - t0) as f64 / 1e9))
        }
        _ => None,
    };
    ProcessTrend {
        process: name.to_string(),
        pid: series.pid,
        samples: r.len(),
        minutes_sampled: minutes(t_end),
        exited: series.gone_at_ns.is_some(),
        rss_first_mib: r.first().map_or(0.0, |x| mib(x.rss_bytes)),
        rss_last_mib: r.last().map_or(0.0, |x| mib(x.rss_bytes)),
        rss_max_mib: r.iter().map(|x| mib(x.rss_bytes)).fold(0.0, f64::max),
        rss_slope_kib_per_min: fit(t0, &rss_kib).map(|l| l.slope),
        rss_slope_second_half_kib_per_min: rss_half.map(|l| l.slope),
        rss_r2_second_half: rss_half.map(|l| l.r2),
        fds_first: r.first().map_or(0, |x| x.open_fds),
        fds_last: r.last().map_or(0, |x| x.open_fds),
        fds_max: r.iter().map(|x| x.open_fds).max().unwrap_or(0),
        fds_slope_per_min: fit(t0, &fds).map(|l| l.slope),
        fds_slope_second_half_per_min: fit(half, &fds).map(|l| l.slope),
        cpu_cores_mean,
    }
}
