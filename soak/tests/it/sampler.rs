use std::time::Duration;

use soak::samples::{Sampler, Target};

/// Longest a test waits for something that must happen.
const HANG_GUARD: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_process_is_sampled_while_it_runs_and_marked_gone_when_it_exits() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("samples.jsonl");
    let mut child = std::process::Command::new("sleep").arg("600").spawn().unwrap();
    let target = Target { name: "sleeper".into(), pid: child.id() };
    let sampler = Sampler::create(&out, vec![target], Duration::from_millis(20)).unwrap();
    // Never stopped by the future: the sampler ends when its only process has exited.
    let task = tokio::spawn(sampler.run(std::future::pending()));
    let deadline = std::time::Instant::now() + HANG_GUARD;
    while soak::samples::read(&out).unwrap().processes.get("sleeper").map_or(0, |s| s.readings.len()) < 3 {
        assert!(std::time::Instant::now() < deadline, "no 3 readings");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let rounds = tokio::time::timeout(HANG_GUARD, task).await.unwrap().unwrap().unwrap();
    let samples = soak::samples::read(&out).unwrap();
    let series = &samples.processes["sleeper"];
    assert!(series.gone_at_ns.is_some(), "{series:?}");
    assert!(series.readings.iter().all(|r| r.rss_bytes > 0 && r.open_fds >= 3), "{series:?}");
    assert!(series.readings.iter().all(|r| r.cpu_ticks.is_some()), "{series:?}");
    assert_eq!(samples.machine.len() as u64, rounds, "one machine reading a round");
    assert!(
        samples.machine.iter().all(|m| m.cpu.is_some_and(|c| c.busy + c.idle > 0)),
        "{:?}",
        samples.machine
    );
    assert!(samples.ticks_per_s > 0);
}

#[test]
fn a_bad_sample_file_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.jsonl");
    std::fs::write(&path, "{\"at_ns\":1,\"load\":[1,2,3]}\nnot json\n").unwrap();
    let e = soak::samples::read(&path).unwrap_err();
    assert!(format!("{e:#}").contains("line 2"), "{e:#}");
    assert!(Sampler::create(&path, vec![], Duration::from_secs(1)).is_err());
}
