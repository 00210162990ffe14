use std::collections::BTreeMap;
use std::time::Duration;

use hyperfake_core::{Bytes, FunctionConfig};
use rundb::CallStatus;
use rundb::calls::{CallRow, RunRow};
use rundb::fixtures::{Event, RawDb};
use soak::probe::{NodeView, Probe, WorkerView};
use soak::procfs::CpuTimes;
use soak::samples::{MachineReading, Reading, Samples, Series};

const S: i64 = 1_000_000_000;
const MS: i64 = 1_000_000;
/// The run's time 0 on the client clock.
const T0: i64 = 1_700_000_000 * S;

fn ok(i: i64, at: i64, latency: i64) -> CallRow {
    CallRow {
        call_index: i,
        image_tag: "hyperfaas-echo:latest".into(),
        scheduled_ns: at,
        sent_ns: Some(at),
        latency_ns: Some(latency),
        status: CallStatus::Ok,
        ..CallRow::default()
    }
}

fn event(instance: &str, event: &str, at: i64) -> Event {
    Event {
        worker: "w0".into(),
        instance_id: instance.into(),
        event: event.into(),
        timestamp_ns: at,
        start_duration_ns: (event == "START").then_some(400 * MS),
        ..Event::default()
    }
}

/// Two minutes: 100 calls each at 1..100 ms, the second minute 5 % slower,
/// plus one UNAVAILABLE call; an instance per minute that times out in the
/// quiet gap. `phantom` puts one instance in the worker's table that its
/// runtime does not hold.
fn run_db(dir: &std::path::Path, lost: i64, phantom: bool) -> (std::path::PathBuf, Probe) {
    let path = dir.join("run.db");
    let run = RunRow {
        run_id: "soak-test".into(),
        started_at_ns: T0,
        seed: 14,
        leaf_address: "127.0.0.1:1".into(),
        config_path: Some("configs/soak.yaml".into()),
        config_yaml: String::new(),
        resolved_schedule_json: "{}".into(),
        calls_scheduled: 201,
        loadgen_version: "test".into(),
    };
    let mut db = RawDb::create_run(&path, &run, T0 + 130 * S).unwrap();
    let config = FunctionConfig {
        memory: Bytes(64 << 20),
        cpu: None,
        idle_timeout: Some(Duration::from_secs(5)),
        max_concurrency: None,
    };
    db.function("hyperfaas-echo:latest", &config).unwrap();
    let mut rows: Vec<CallRow> = (0..100).map(|i| ok(i, T0 + i * 100 * MS, (i + 1) * MS)).collect();
    rows.extend((0..100).map(|i| ok(100 + i, T0 + 60 * S + i * 100 * MS, (i + 1) * MS * 105 / 100)));
    rows.push(CallRow {
        call_index: 200,
        image_tag: "hyperfaas-echo:latest".into(),
        scheduled_ns: T0 + 70 * S,
        sent_ns: Some(T0 + 70 * S),
        latency_ns: Some(MS),
        status: CallStatus::Unavailable,
        error: Some("no worker".into()),
        ..CallRow::default()
    });
    db.calls(&rows).unwrap();
    db.connection()
        .execute("UPDATE runs SET calls_due = ?1, calls_recorded = ?2", [201 + lost, 201])
        .unwrap();
    db.events(&[
        event("i1", "START", T0 + S),
        event("i1", "TIMEOUT", T0 + 50 * S),
        event("i2", "START", T0 + 61 * S),
        event("i2", "TIMEOUT", T0 + 110 * S),
    ])
    .unwrap();
    let probe = Probe {
        at_ns: T0 + 140 * S,
        nodes: vec![NodeView { role: "lb".into(), address: "127.0.0.1:2".into(), ..NodeView::default() }],
        workers: vec![WorkerView {
            address: "w0".into(),
            table_instances: u64::from(phantom),
            idle: u64::from(phantom),
            table_only: if phantom { vec!["i3".into()] } else { vec![] },
            ..WorkerView::default()
        }],
    };
    (path, probe)
}

/// A process whose RSS grows by 1 MiB a minute, whose fds stay at 10 and
/// that uses half a core, on a machine whose 2 cores are 1.5 busy with 1 %
/// steal; sampled every 5 s for 3 minutes (100 ticks a second).
fn samples() -> Samples {
    let readings = (0..=36u64)
        .map(|k| Reading {
            at_ns: T0 + i64::try_from(k).unwrap() * 5 * S,
            rss_bytes: (100 << 20) + k * (1 << 20) / 12,
            open_fds: 10,
            cpu_ticks: Some(k * 250),
        })
        .collect();
    let machine = (0..=36u64)
        .map(|k| MachineReading {
            at_ns: T0 + i64::try_from(k).unwrap() * 5 * S,
            load: [2.0, 1.5, 1.0],
            // Per 5 s on 2 cores: 1 000 ticks, 750 busy, 240 idle, 10 stolen.
            cpu: Some(CpuTimes { busy: k * 750, idle: k * 240, iowait: 0, steal: k * 10 }),
        })
        .collect();
    Samples {
        processes: BTreeMap::from([("leaf".into(), Series { pid: 7, readings, gone_at_ns: None })]),
        machine,
        ticks_per_s: 100,
    }
}

/// The probe of `end`'s nodes and workers 20 s into the run, each holding
/// `instances` (the runtime as many).
fn busy(end: &Probe, instances: u64) -> Probe {
    let mut busy = end.clone();
    busy.at_ns = T0 + 20 * S;
    for n in &mut busy.nodes {
        (n.instances, n.ready) = (instances, instances);
    }
    for w in &mut busy.workers {
        (w.table_instances, w.running, w.runtime_instances, w.table_only) =
            (instances, instances, instances, vec![]);
    }
    busy
}

fn build(path: &std::path::Path, samples: &Samples, probe: &Probe, busy: &Probe) -> soak::report::Report {
    soak::report::build(&soak::report::Inputs {
        db: path,
        run_id: None,
        samples,
        probe,
        busy_probe: Some(busy),
        profile: "test".into(),
        setup: None,
    })
    .unwrap()
}

fn check<'a>(report: &'a soak::report::Report, starts_with: &str) -> &'a soak::report::Check {
    report
        .checks
        .iter()
        .find(|c| c.check.starts_with(starts_with))
        .unwrap_or_else(|| panic!("{:?}", report.checks))
}

#[test]
fn a_clean_run_passes_every_check_with_the_figures_it_was_given() {
    let dir = tempfile::tempdir().unwrap();
    let (path, probe) = run_db(dir.path(), 0, false);
    let samples = samples();
    let report = build(&path, &samples, &probe, &busy(&probe, 2));
    assert!(report.checks.iter().all(|c| c.passed), "{:#?}", report.checks);

    let a = &report.calls.accounting;
    assert_eq!((a.scheduled, a.due, a.sent, a.recorded, a.lost), (201, 201, 201, 201, 0));
    assert_eq!(report.calls.errors.len(), 1);
    assert_eq!((report.calls.errors[0].status.as_str(), report.calls.errors[0].calls), ("UNAVAILABLE", 1));
    let m = &report.calls.minutes;
    assert_eq!((m.len(), m[0].ok, m[1].ok, m[1].errors), (2, 100, 100, 1));
    assert_eq!((m[0].p50_ms, m[0].p99_ms), (Some(50.0), Some(99.0)));
    let drift = report.drift.p50_drift.unwrap();
    assert!((drift - 0.05).abs() < 0.01, "{drift}");
    // Two minutes: the line through them is the line between them.
    let trend = report.drift.p50_trend.unwrap();
    assert!((trend - drift).abs() < 1e-9, "{trend} vs {drift}");

    let i = &report.instances;
    assert_eq!((i.starts, i.idle_stops, i.scale_to_zero, i.alive_at_end), (2, 2, 2, 0));
    assert_eq!(i.cold_start_p50_ms, Some(400.0));
    assert_eq!((i.minutes[0].max_alive, i.minutes[0].min_alive), (1, 0));

    let leaf = &report.processes[0];
    let slope = leaf.rss_slope_kib_per_min.unwrap();
    assert!((slope - 1024.0).abs() < 1.0, "{slope}");
    assert_eq!((leaf.fds_first, leaf.fds_last, leaf.fds_slope_per_min), (10, 10, Some(0.0)));
    assert_eq!(report.phantoms.longest_idle_timeout_s, 5);
    // The last call to end is the UNAVAILABLE one at 70 s; the probe came at 140 s.
    assert!((report.phantoms.quiet_before_probe_s - 70.0).abs() < 0.1, "{:?}", report.phantoms);
    assert_eq!(report.load.mean_1min, Some(2.0));
    let machine = &report.load.per_minute[1];
    assert!((machine.busy_cores.unwrap() - 1.5).abs() < 1e-9, "{machine:?}");
    assert!((machine.soak_cores.unwrap() - 0.5).abs() < 1e-9, "{machine:?}");
    assert!((machine.steal_pct.unwrap() - 1.0).abs() < 1e-9, "{machine:?}");
    assert!((leaf.cpu_cores_mean.unwrap() - 0.5).abs() < 1e-9);
    assert!(leaf.rss_slope_second_half_kib_per_min.is_some_and(|s| (s - 1024.0).abs() < 1.0));
    let during: Vec<Option<u64>> = report.phantoms.views.iter().map(|v| v.during_calls).collect();
    // lb, worker table, events (not probed), the runtimes.
    assert_eq!(during, [Some(2), Some(2), None, Some(2)]);
    assert_eq!(report.phantoms.during_calls_at_s, Some(20.0));

    let md = soak::report::markdown(&report);
    for needle in ["| no call lost", "UNAVAILABLE", "| 1 | 101 | 100 | 1 |", "| leaf | 37 |"] {
        assert!(md.contains(needle), "{needle:?} not in\n{md}");
    }
}

#[test]
fn a_lost_row_and_a_phantom_instance_fail_their_checks() {
    let dir = tempfile::tempdir().unwrap();
    let (path, probe) = run_db(dir.path(), 3, true);
    let report = build(&path, &samples(), &probe, &busy(&probe, 1));
    assert_eq!(report.calls.accounting.lost, 3);
    assert!(!check(&report, "no call lost").passed);
    assert_eq!(report.phantoms.total, 1, "{:?}", report.phantoms);
    assert!(!check(&report, "no phantom").passed);
    assert!(check(&report, "p50 latency drift").passed);
}

#[test]
fn a_probe_that_saw_nothing_during_calls_cannot_clear_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (path, probe) = run_db(dir.path(), 0, false);
    let report = build(&path, &samples(), &probe, &busy(&probe, 0));
    assert_eq!(report.phantoms.total, 0);
    let phantom = check(&report, "no phantom");
    assert!(!phantom.passed && phantom.detail.contains("saw no instance during calls"), "{phantom:?}");
}
