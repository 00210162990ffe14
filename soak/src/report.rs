//! The soak report: the run database, the process samples and the probe,
//! brought together as [`Report`] (`soak.json`) and rendered by
//! [`crate::report::markdown`] (`soak.md`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::calls::{self, CallSummary};
use crate::fit::Line;
use crate::instances::{self, InstanceSummary};
use crate::probe::Probe;
use crate::samples::Samples;

mod machine;
mod markdown;

pub use machine::{Load, MinuteMachine, ProcessTrend};
pub use markdown::markdown;

/// Latency may move at most this much (relative) between the first and the
/// last minute (issue 14).
pub const MAX_DRIFT: f64 = 0.10;

/// Where the report's inputs came from and what ran.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Header {
    /// Build profile of the binaries (hyperfake_core::build::profile).
    pub profile: String,
    pub machine: String,
    /// UTC, when the report was written.
    pub written_at: String,
    pub db: PathBuf,
    /// The workload file as given (`runs.config_path`).
    pub workload: Option<String>,
    /// Free text from the script: topology, models, cycle shape.
    pub setup: Option<String>,
}

/// How the latency moved over the run: the trend of the per-minute
/// quantiles (what the drift checks use) and, for reference, the first and
/// last minute's values.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Drift {
    pub first_minute: u32,
    pub last_minute: u32,
    pub p50_first_ms: Option<f64>,
    pub p50_last_ms: Option<f64>,
    /// (last − first) / first.
    pub p50_drift: Option<f64>,
    pub p99_first_ms: Option<f64>,
    pub p99_last_ms: Option<f64>,
    pub p99_drift: Option<f64>,
    /// The drift of the least-squares line through every minute's p50
    /// (minutes with calls): (line at the last minute − line at the first)
    /// / line at the first. One minute's p99 rests on its ten slowest
    /// calls (here: whether a cold start is among them), so two single
    /// minutes differ by ±15 % with no trend at all; the line uses them all.
    pub p50_trend: Option<f64>,
    /// The same for the p99.
    pub p99_trend: Option<f64>,
    /// The same for the handler's p50 and the overhead's p50 and p99 (see
    /// [`crate::calls::MinuteLatency`]): which part moved.
    pub handler_p50_drift: Option<f64>,
    pub overhead_p50_drift: Option<f64>,
    pub overhead_p99_drift: Option<f64>,
    /// Mean 1-minute load average in the first and the last minute.
    pub load_first: Option<f64>,
    pub load_last: Option<f64>,
    /// Pearson correlation, over the minutes, of the p50 latency with the
    /// load average: near 1 when the latency follows the machine's load.
    pub p50_load_correlation: Option<f64>,
    /// CPU the soak's own processes used per call due, milliseconds, in the
    /// first and the last minute: the platform's work per call. Flat while
    /// the latency grows means the calls waited for a CPU, not that the
    /// platform did more.
    pub soak_cpu_ms_per_call_first: Option<f64>,
    pub soak_cpu_ms_per_call_last: Option<f64>,
}

/// One view of the instances at the end, against what really exists.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct InstanceView {
    pub view: String,
    pub instances: u64,
    /// Instances this view holds beyond what the runtimes hold.
    pub phantoms: u64,
    /// What the same view held when probed during calls (shows the probe
    /// sees instances that exist); `None` without such a probe.
    pub during_calls: Option<u64>,
}

/// Phantom instances once every idle timeout had passed.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Phantoms {
    /// Seconds between the last call's end and the probe.
    pub quiet_before_probe_s: f64,
    /// Longest idle timeout of the run's functions, seconds.
    pub longest_idle_timeout_s: u64,
    /// Instances the workers' runtimes hold.
    pub real: u64,
    pub views: Vec<InstanceView>,
    pub total: u64,
    /// Seconds after the run's start of the probe during calls, if any.
    pub during_calls_at_s: Option<f64>,
}

/// A pass/fail line of the summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    pub check: String,
    pub passed: bool,
    pub detail: String,
}

/// Everything `soak.json` holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    pub header: Header,
    pub load: Load,
    pub calls: CallSummary,
    pub drift: Drift,
    pub instances: InstanceSummary,
    pub processes: Vec<ProcessTrend>,
    pub phantoms: Phantoms,
    pub checks: Vec<Check>,
}

/// What [`build`] reads.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub db: &'a Path,
    pub run_id: Option<&'a str>,
    pub samples: &'a Samples,
    pub probe: &'a Probe,
    /// The same probe taken while calls were running, if any.
    pub busy_probe: Option<&'a Probe>,
    pub profile: String,
    pub setup: Option<String>,
}

/// Builds the report.
pub fn build(inputs: &Inputs<'_>) -> anyhow::Result<Report> {
    let conn = rundb::open_untrusted(inputs.db)
        .with_context(|| format!("cannot open the run database {}", inputs.db.display()))?;
    let run_id = calls::run_id(&conn, inputs.run_id)?;
    let calls = calls::summarize(&conn, &run_id)?;
    let started = calls.accounting.started_at_ns;
    let instances = instances::summarize(&conn, &run_id, started)?;
    let config_path: Option<String> = conn
        .query_row("SELECT config_path FROM runs WHERE run_id = ?1", [&run_id], |r| r.get(0))
        .context("cannot read the run's config path")?;
    let last_call_end: Option<i64> = conn
        .query_row(
            "SELECT MAX(COALESCE(sent_ns + latency_ns, scheduled_ns)) FROM calls WHERE run_id = ?1",
            [&run_id],
            |r| r.get(0),
        )
        .context("cannot read the calls' end")?;
    let longest_idle_timeout_s = longest_idle_timeout(&conn, &run_id)?;

    let header = Header {
        profile: inputs.profile.clone(),
        machine: hyperfake_core::build::machine(),
        written_at: hyperfake_core::time::UtcTime::now().rfc3339(),
        db: inputs.db.to_path_buf(),
        workload: config_path,
        setup: inputs.setup.clone(),
    };
    let load = machine::load(inputs.samples, started);
    let ticks = inputs.samples.ticks_per_s as f64;
    let processes = inputs.samples.processes.iter().map(|(name, s)| machine::trend(name, s, ticks)).collect();
    let mut drift = drift(&calls);
    let load_in = |minute: u32| load.per_minute.get(minute as usize).and_then(|m| m.load_1min);
    drift.load_first = load_in(drift.first_minute);
    drift.load_last = load_in(drift.last_minute);
    let cpu_per_call = |minute: u32| {
        let cores = load.per_minute.get(minute as usize)?.soak_cores?;
        let due = calls.minutes.iter().find(|m| m.minute == minute)?.due;
        (due > 0).then(|| cores * 60_000.0 / due as f64)
    };
    drift.soak_cpu_ms_per_call_first = cpu_per_call(drift.first_minute);
    drift.soak_cpu_ms_per_call_last = cpu_per_call(drift.last_minute);
    let pairs: Vec<(f64, f64)> =
        calls.minutes.iter().filter_map(|m| Some((load_in(m.minute)?, m.p50_ms?))).collect();
    drift.p50_load_correlation = Line::fit(&pairs).map(|l| l.r2.sqrt() * l.slope.signum());
    let mut phantoms = phantoms(inputs.probe, &instances, last_call_end, longest_idle_timeout_s);
    if let Some(busy) = inputs.busy_probe {
        add_busy(&mut phantoms, inputs.probe, busy, started);
    }
    let mut report =
        Report { header, load, calls, drift, instances, processes, phantoms, checks: Vec::new() };
    report.checks = checks(&report);
    Ok(report)
}

/// The longest idle timeout among the run's functions (`functions.config_json`).
fn longest_idle_timeout(conn: &rusqlite::Connection, run_id: &str) -> anyhow::Result<u64> {
    let configs: Vec<String> = conn
        .prepare("SELECT config_json FROM functions WHERE run_id = ?1")?
        .query_map([run_id], |r| r.get(0))?
        .collect::<Result<_, _>>()
        .context("cannot read the run's functions")?;
    let mut longest = 0;
    for text in configs {
        let config: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("functions.config_json {text:?}"))?;
        let timeout = ["idle_timeout", "timeout", "timeout_s"]
            .iter()
            .find_map(|k| config.get(*k))
            .and_then(idle_seconds)
            .unwrap_or(0);
        longest = longest.max(timeout);
    }
    Ok(longest)
}

/// Seconds of an idle timeout as config_json stores it: a number of seconds
/// or `{secs, nanos}`.
fn idle_seconds(value: &serde_json::Value) -> Option<u64> {
    value.as_u64().or_else(|| value.get("secs").and_then(serde_json::Value::as_u64))
}

fn drift(calls: &CallSummary) -> Drift {
    let with_calls: Vec<_> = calls.minutes.iter().filter(|m| m.ok > 0).collect();
    let (Some(first), Some(last)) = (with_calls.first(), with_calls.last()) else {
        return Drift::default();
    };
    let relative = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if a > 0.0 => Some((b - a) / a),
        _ => None,
    };
    let trend = |value: fn(&crate::calls::MinuteLatency) -> Option<f64>| {
        let points: Vec<(f64, f64)> =
            with_calls.iter().filter_map(|m| Some((f64::from(m.minute), value(m)?))).collect();
        let line = Line::fit(&points)?;
        let at = |minute: u32| line.intercept + line.slope * f64::from(minute);
        relative(Some(at(first.minute)), Some(at(last.minute)))
    };
    Drift {
        p50_trend: trend(|m| m.p50_ms),
        p99_trend: trend(|m| m.p99_ms),
        first_minute: first.minute,
        last_minute: last.minute,
        p50_first_ms: first.p50_ms,
        p50_last_ms: last.p50_ms,
        p50_drift: relative(first.p50_ms, last.p50_ms),
        p99_first_ms: first.p99_ms,
        p99_last_ms: last.p99_ms,
        p99_drift: relative(first.p99_ms, last.p99_ms),
        handler_p50_drift: relative(first.handler_p50_ms, last.handler_p50_ms),
        overhead_p50_drift: relative(first.overhead_p50_ms, last.overhead_p50_ms),
        overhead_p99_drift: relative(first.overhead_p99_ms, last.overhead_p99_ms),
        load_first: None,
        load_last: None,
        p50_load_correlation: None,
        soak_cpu_ms_per_call_first: None,
        soak_cpu_ms_per_call_last: None,
    }
}

fn phantoms(probe: &Probe, instances: &InstanceSummary, last_call_end: Option<i64>, idle_s: u64) -> Phantoms {
    let real = probe.real();
    let mut views: Vec<InstanceView> = probe
        .nodes
        .iter()
        .map(|n| InstanceView {
            view: format!("{} {} (ready + starting)", n.role, n.address),
            instances: n.instances,
            phantoms: n.instances.saturating_sub(real),
            during_calls: None,
        })
        .collect();
    for w in &probe.workers {
        views.push(InstanceView {
            view: format!("worker {} table (running + idle)", w.address),
            instances: w.table_instances,
            phantoms: w.table_instances.saturating_sub(w.runtime_instances),
            during_calls: None,
        });
    }
    views.push(InstanceView {
        view: "collector's lifecycle events (started − ended)".into(),
        instances: instances.alive_at_end,
        phantoms: instances.alive_at_end.saturating_sub(real),
        during_calls: None,
    });
    views.push(InstanceView {
        view: "workers' runtimes (real)".into(),
        instances: real,
        phantoms: 0,
        during_calls: None,
    });
    let total = views.iter().map(|v| v.phantoms).sum();
    Phantoms {
        quiet_before_probe_s: last_call_end.map_or(0.0, |end| (probe.at_ns - end) as f64 / 1e9),
        longest_idle_timeout_s: idle_s,
        real,
        views,
        total,
        during_calls_at_s: None,
    }
}

/// Fills `during_calls` from a probe taken while calls ran; `end` is the
/// probe the views were built from (same nodes and workers, same order).
fn add_busy(phantoms: &mut Phantoms, end: &Probe, busy: &Probe, started: i64) {
    let nodes =
        end.nodes.iter().map(|n| busy.nodes.iter().find(|b| b.address == n.address).map(|b| b.instances));
    let workers = end
        .workers
        .iter()
        .map(|w| busy.workers.iter().find(|b| b.address == w.address).map(|b| b.table_instances));
    for (view, during) in phantoms.views.iter_mut().zip(nodes.chain(workers)) {
        view.during_calls = during;
    }
    if let Some(real) = phantoms.views.last_mut() {
        real.during_calls = Some(busy.real());
    }
    phantoms.during_calls_at_s = Some((busy.at_ns - started) as f64 / 1e9);
}

fn checks(report: &Report) -> Vec<Check> {
    let a = &report.calls.accounting;
    let mut checks = vec![Check {
        check: "no call lost (rows = calls due)".into(),
        passed: a.lost == 0 && a.recorded_by_loadgen == a.recorded,
        detail: format!(
            "{} due, {} sent, {} not sent, {} recorded (loadgen counted {}), lost {}",
            a.due, a.sent, a.not_sent, a.recorded, a.recorded_by_loadgen, a.lost
        ),
    }];
    checks.push(Check {
        check: "the run completed".into(),
        passed: a.status == "completed",
        detail: format!(
            "status {}{}",
            a.status,
            a.run_error.as_ref().map_or(String::new(), |e| format!(": {e}"))
        ),
    });
    let d = &report.drift;
    for (name, trend, drift, first, last) in [
        ("p50", d.p50_trend, d.p50_drift, d.p50_first_ms, d.p50_last_ms),
        ("p99", d.p99_trend, d.p99_drift, d.p99_first_ms, d.p99_last_ms),
    ] {
        checks.push(Check {
            check: format!(
                "{name} latency drift < {:.0} % (least-squares trend over minutes {} to {})",
                MAX_DRIFT * 100.0,
                d.first_minute,
                d.last_minute
            ),
            passed: trend.is_some_and(|x| x.abs() < MAX_DRIFT),
            detail: match (trend, drift, first, last) {
                (Some(t), Some(x), Some(f), Some(l)) => format!(
                    "trend {:+.1} %; minute {} alone vs minute {} alone: {f:.3} ms → {l:.3} ms ({:+.1} %)",
                    t * 100.0,
                    d.first_minute,
                    d.last_minute,
                    x * 100.0
                ),
                _ => "fewer than two minutes with successful calls".into(),
            },
        });
    }
    let p = &report.phantoms;
    // A probe that saw nothing during calls could not see a phantom either.
    let blind =
        p.views.iter().filter(|v| v.during_calls == Some(0)).map(|v| v.view.clone()).collect::<Vec<_>>();
    let seen_during = match p.during_calls_at_s {
        None => "; no probe during calls".to_string(),
        Some(_) if !blind.is_empty() => format!("; saw no instance during calls: {}", blind.join(", ")),
        Some(at) => format!(
            "; the same probe {at:.0} s into the run saw {} real",
            p.views.last().and_then(|v| v.during_calls).unwrap_or(0)
        ),
    };
    checks.push(Check {
        check: "no phantom instance after every idle timeout".into(),
        passed: p.total == 0 && p.quiet_before_probe_s > p.longest_idle_timeout_s as f64 && blind.is_empty(),
        detail: format!(
            "{} phantom(s), {} real; probed {:.0} s after the last call (longest idle timeout {} s){seen_during}",
            p.total, p.real, p.quiet_before_probe_s, p.longest_idle_timeout_s
        ),
    });
    let i = &report.instances;
    let cycles = report.calls.minutes.iter().filter(|m| m.due > 0).count() as u64;
    checks.push(Check {
        check: "the platform scaled to zero in every cycle".into(),
        passed: i.scale_to_zero >= cycles && cycles > 0,
        detail: format!(
            "{} times to zero over {} minutes with calls; {} cold starts, {} idle stops",
            i.scale_to_zero, cycles, i.starts, i.idle_stops
        ),
    });
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::MinuteLatency;

    fn minutes(p99: &[f64]) -> CallSummary {
        let minutes = p99
            .iter()
            .zip(0u32..)
            .map(|(&p99, minute)| MinuteLatency {
                minute,
                ok: 100,
                p50_ms: Some(5.0 + f64::from(minute) * 0.05),
                p99_ms: Some(p99),
                ..Default::default()
            })
            .collect();
        CallSummary { minutes, ..Default::default() }
    }

    #[test]
    fn a_noisy_but_flat_p99_has_no_trend_though_its_end_minutes_differ() {
        // Minute 0 low and minute 9 high by chance, no trend in between.
        let d = drift(&minutes(&[220.0, 250.0, 218.0, 256.0, 236.0, 255.0, 224.0, 226.0, 249.0, 258.0]));
        let endpoints = d.p99_drift.unwrap();
        assert!((endpoints - 38.0 / 220.0).abs() < 1e-9, "{endpoints}");
        let trend = d.p99_trend.unwrap();
        assert!(trend.abs() < 0.10, "trend {trend}");
        // The p50 rises 0.05 ms a minute: 0.45 ms over 9 minutes from 5 ms.
        assert!((d.p50_trend.unwrap() - 0.09).abs() < 1e-9, "{:?}", d.p50_trend);
    }

    #[test]
    fn a_steady_rise_is_a_trend() {
        let rising: Vec<f64> = (0..10).map(|m| 200.0 + 5.0 * f64::from(m)).collect();
        let d = drift(&minutes(&rising));
        assert!((d.p99_trend.unwrap() - 0.225).abs() < 1e-9, "{:?}", d.p99_trend);
    }
}
