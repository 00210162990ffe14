use std::time::Duration;

use loadgen::{Schedule, Workload};

const TEMPLATE: &str = include_str!("../../../configs/soak.yaml");

#[test]
fn three_cycles_are_the_one_cycle_shifted_by_a_minute() {
    let one = Schedule::resolve(&Workload::from_yaml(TEMPLATE).unwrap());
    let text = soak::workload::repeat(TEMPLATE, "configs/soak.yaml", 3).unwrap();
    let workload = Workload::from_yaml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(workload.max_duration, Duration::from_secs(180));
    let three = Schedule::resolve(&workload);
    assert_eq!(three.phases.len(), 3 * one.phases.len());
    assert!(three.phases.iter().any(|p| p.name == "echo-c2"), "{:?}", three.phases);
    // Each cycle has calls only in its first 40 s: the quiet gap stays quiet.
    for call in &three.calls {
        let in_cycle = call.offset_ns % 60_000_000_000;
        assert!(in_cycle < 40_000_000_000, "a call {in_cycle} ns into its cycle");
    }
    for k in 0..3u64 {
        let n = three.calls.iter().filter(|c| c.offset_ns / 60_000_000_000 == k).count();
        // Poisson arrivals: each cycle draws its own counts, about the same.
        let expected = one.calls.len() as f64;
        assert!((n as f64 - expected).abs() < 0.15 * expected, "cycle {k}: {n} calls vs {expected}");
    }
    assert_eq!(soak::workload::cycle_length(TEMPLATE, "t").unwrap(), Duration::from_secs(60));
}

#[test]
fn bad_templates_are_refused_saying_why() {
    let zero = soak::workload::repeat(TEMPLATE, "configs/soak.yaml", 0).unwrap_err();
    assert!(format!("{zero:#}").contains("at least 1"), "{zero:#}");
    let broken = TEMPLATE.replace("duration: 40s", "duration: 40 seconds");
    let e = soak::workload::repeat(&broken, "x.yaml", 2).unwrap_err();
    assert!(format!("{e:#}").contains("x.yaml") && format!("{e:#}").contains("duration"), "{e:#}");
}
