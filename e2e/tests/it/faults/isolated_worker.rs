//! The scenario shared by d (a stopped worker process) and g (silent packet
//! loss to a worker): two workers with warm instances of one function, calls
//! at a steady rate through the leaf, then one worker cut off without a word
//! (no connection reset, no error: it just stops answering) and restored.
//!
//! Promised: the leaf takes the worker out of rotation; calls caught on it end
//! at their deadline with a clean code; calls sent once the other worker has
//! taken over its share (2 s after it left rotation) all work; after the
//! fault ends the worker is back in rotation and every call works.

use std::time::{Duration, Instant};

use hyperfake_testkit::{SIMUL, config};
use tokio::sync::watch;

use super::report::Report;
use super::support::*;

/// Calls per second through the leaf, and each one's deadline: long enough
/// for a cold start on the remaining worker of a busy 2-core machine, so a
/// call that fails did so because of the fault.
const RATE: u32 = 20;
const DEADLINE: Duration = Duration::from_secs(4);
/// What a deadline may be late by on a loaded 2-core machine.
const SLACK: Duration = Duration::from_secs(1);
/// How long the other worker gets to take over the cut-off worker's share.
const SCALE_UP: Duration = Duration::from_secs(2);
/// How long the fault lasts.
const FAULT: Duration = Duration::from_secs(12);

/// A fault on one worker: applied with the worker's process, undone by `undo`.
pub(super) trait Fault {
    fn apply(&mut self, worker: &Proc);
    fn undo(&mut self, worker: &Proc);
}

pub(super) async fn cut_off_one_worker(case: &'static str, title: &'static str, mut fault: impl Fault) {
    let p = Platform::start(2).await;
    let mut report = Report::new(case, title);
    // One call per instance at a time, so a burst spreads instances over both workers.
    let f = create(&p.client, SIMUL, &config(64, None, 0, 1)).await;
    let (pr, fr) = (&p, &f);
    let spread = wait_until(Duration::from_secs(90), || async move {
        let burst: Vec<_> = (0..6)
            .map(|_| {
                let (client, f) = (pr.client.clone(), fr.clone());
                tokio::spawn(async move { call(&client, &f, Vec::new(), Duration::from_secs(30)).await })
            })
            .collect();
        for b in burst {
            let _ = b.await;
        }
        let mut on_both = true;
        for w in &pr.workers {
            on_both &= worker_instances(&w.address).await.is_ok_and(|i| !i.is_empty());
        }
        on_both
    })
    .await;
    assert!(spread.is_some(), "no instances on both workers\n{}", p.debug());
    let in_rotation = p.in_rotation().await;
    assert_eq!(in_rotation, Some(2), "{}", p.debug());

    let (stop_tx, stop) = watch::channel(false);
    let load = load(p.client.clone(), f.clone(), RATE, DEADLINE, stop);
    tokio::time::sleep(Duration::from_secs(3)).await;

    let cut = &p.workers[1];
    let applied = Instant::now();
    fault.apply(cut);
    let out = wait_until(FAULT, || async move { pr.in_rotation().await == Some(1) }).await;
    let left_rotation = out.map(|d| applied + d);
    tokio::time::sleep(FAULT.saturating_sub(applied.elapsed())).await;
    let undone = Instant::now();
    fault.undo(cut);
    let back = wait_until(Duration::from_secs(60), || async move { pr.in_rotation().await == Some(2) }).await;
    let recovered = back.map_or_else(Instant::now, |d| undone + d);
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_tx.send(true).unwrap();
    let outcomes = load.await.unwrap();

    let before: Vec<_> = outcomes.iter().filter(|o| o.started < applied).cloned().collect();
    let during: Vec<_> =
        outcomes.iter().filter(|o| o.started >= applied && o.started < undone).cloned().collect();
    let caught: Vec<_> =
        during.iter().filter(|o| left_rotation.is_none_or(|t| o.started < t)).cloned().collect();
    let after_out: Vec<_> =
        during.iter().filter(|o| left_rotation.is_some_and(|t| o.started >= t)).cloned().collect();
    let after: Vec<_> = outcomes.iter().filter(|o| o.started >= recovered).cloned().collect();
    let clean = |o: &Outcome| {
        matches!(o.code(), tonic::Code::Ok | tonic::Code::DeadlineExceeded | tonic::Code::Unavailable)
            && o.took <= DEADLINE + SLACK
    };
    let ok = |v: &[Outcome]| v.iter().filter(|o| o.ok()).count();
    let slowest = during.iter().map(|o| o.took).max().unwrap_or_default();

    report.figure("load", format!("{RATE} calls/s of simul, deadline {} s", DEADLINE.as_secs()), "");
    report.figure("fault lasted", secs(undone - applied), "s");
    report.figure("fault → worker out of the leaf's rotation", out.map(secs), "s");
    report.figure("fault ended → worker back in rotation", back.map(secs), "s");
    // Before the fault the leaf still scales up (cold starts under a 2 s
    // deadline on a busy machine): a baseline, not a promise of this case.
    report.figure("calls before the fault: ok / sent", format!("{} / {}", ok(&before), before.len()), "");
    report.figure("calls before the fault: codes", format!("{:?}", codes(&before)), "");
    report.figure("calls sent before it left rotation: codes", format!("{:?}", codes(&caught)), "");
    report.figure(
        "calls sent while out of rotation: ok / sent",
        format!("{} / {}", ok(&after_out), after_out.len()),
        "",
    );
    report.figure("calls sent while out of rotation: codes", format!("{:?}", codes(&after_out)), "");
    report.figure("slowest answer during the fault", secs(slowest), "s");
    report.figure("calls after recovery: ok / sent", format!("{} / {}", ok(&after), after.len()), "");
    report.check("the leaf takes the worker out of rotation", out.is_some());
    report.check(
        "every call during the fault answers by its deadline + 1 s, OK or DEADLINE_EXCEEDED/UNAVAILABLE",
        during.iter().all(clean),
    );
    // Once out of rotation, its share moves to the other worker, which scales
    // up (cold starts of ~1–2 s on a busy machine): calls sent meanwhile may
    // wait past their deadline, cleanly (checked above); later ones must work.
    let settled: Vec<_> = after_out
        .iter()
        .filter(|o| left_rotation.is_some_and(|t| o.started >= t + SCALE_UP))
        .cloned()
        .collect();
    let failed_at: Vec<f64> = after_out
        .iter()
        .filter(|o| !o.ok())
        .filter_map(|o| left_rotation.map(|t| secs(o.started.saturating_duration_since(t))))
        .collect();
    report.figure(
        "calls that failed while out of rotation: sent this long after it left",
        format!("{failed_at:?}"),
        "s",
    );
    report.check(
        "calls sent from 2 s after it left rotation go to the other worker and all work",
        !settled.is_empty() && ok(&settled) == settled.len(),
    );
    report.check("the worker comes back into rotation", back.is_some());
    report.check("every call after recovery works", !after.is_empty() && ok(&after) == after.len());
    report.finish(|| p.debug());
}
