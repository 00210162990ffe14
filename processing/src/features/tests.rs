use super::*;

fn events(rows: &[(&str, &str, &str, Option<&str>, i64)]) -> InstanceEvents {
    let mut e = InstanceEvents::default();
    for &(worker, id, event, status, t) in rows {
        e.worker.push(worker.into());
        e.instance_id.push(id.into());
        e.event.push(event.into());
        e.status.push(status.map(Into::into));
        e.timestamp_ns.push(t);
    }
    e
}

#[test]
fn live_instances_are_half_open_and_ignore_failed_starts() {
    let lc = Lifecycle::from_events(&events(&[
        ("w1", "a", "START", Some("OK"), 10),
        ("w1", "b", "START", None, 20),
        ("w1", "c", "START", Some("FAILED"), 15),
        ("w1", "a", "STOP", None, 30),
        ("w2", "d", "START", None, 5),
        ("w1", "b", "DOWN", None, 40),
    ]));
    let w1 = lc.worker_of("a").unwrap();
    assert_eq!(lc.worker_of("c"), None, "a failed START is not an instance");
    assert_eq!(lc.worker_of("b"), Some(w1));
    assert_ne!(lc.worker_of("d"), Some(w1));
    let counts: Vec<i64> = [9, 10, 19, 20, 29, 30, 39, 40].iter().map(|&t| lc.live_at(w1, t)).collect();
    assert_eq!(counts, [0, 1, 1, 2, 2, 1, 1, 0]);
}

#[test]
fn share_of_a_call_is_the_mean_of_one_over_concurrency() {
    // A alone for 90, then B overlaps for the last 10 (and runs on for 10).
    let share = ShareIntegral::new(&[(0, 100), (90, 110)]);
    assert!((share.mean_share(0, 100) - 0.95).abs() < 1e-12);
    assert!((share.mean_share(90, 110) - 0.75).abs() < 1e-12);
    // Identical intervals split evenly.
    let share = ShareIntegral::new(&[(0, 50), (0, 50), (0, 50)]);
    assert!((share.mean_share(0, 50) - 1.0 / 3.0).abs() < 1e-12);
}

fn series(cpu: &[(i64, f64)], mem: &[(i64, i64)]) -> Series {
    Series {
        cpu_ts: cpu.iter().map(|p| p.0).collect(),
        cpu_ns: cpu.iter().map(|p| p.1).collect(),
        mem_ts: mem.iter().map(|p| p.0).collect(),
        mem: mem.iter().map(|p| p.1).collect(),
    }
}

#[test]
fn cpu_is_interpolated_between_bracketing_samples_within_tolerance() {
    let s = series(&[(100, 1000.0), (200, 2000.0), (1000, 3000.0)], &[]);
    assert_eq!(s.cpu_at(150, 500), Some(1500.0));
    assert_eq!(s.cpu_at(200, 500), Some(2000.0));
    assert_eq!(s.cpu_at(99, 500), None, "before the first sample");
    assert_eq!(s.cpu_at(1001, 500), None, "after the last sample");
    assert_eq!(s.cpu_at(600, 300), None, "bracketing samples too far away");
    assert_eq!(s.cpu_at(600, 500), Some(2500.0));
}

#[test]
fn peak_memory_includes_bracketing_samples() {
    let s = series(&[], &[(100, 5), (200, 9), (300, 7), (400, 8)]);
    assert_eq!(s.peak_memory(150, 250, 1000), Some(9));
    assert_eq!(s.peak_memory(210, 290, 1000), Some(9), "brackets only");
    assert_eq!(s.peak_memory(310, 390, 1000), Some(8));
    assert_eq!(s.peak_memory(310, 390, 5), None, "brackets too far, none inside");
    assert_eq!(s.peak_memory(500, 600, 1000), Some(8), "last sample before");
    assert_eq!(series(&[], &[]).peak_memory(0, 10, 1000), None);
}
