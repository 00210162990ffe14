//! b. A container killed (`docker kill`) while a call runs in it: the call
//! fails with ABORTED (lost mid-call; it may have run, so it is not retried)
//! instead of waiting for its deadline, the worker
//! reports the instance DOWN, the leaf forgets it, and the next call works on
//! a new instance.

use std::time::{Duration, Instant};

use hyperfake_testkit::{SLEEP, config};

use super::report::Report;
use super::support::*;

/// The sleep function answers after 20 s; the call's deadline is longer.
const DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_container_killed_mid_call_fails_the_call_and_goes_down() {
    let p = Platform::start(1).await;
    let f = create(&p.client, SLEEP, &config(64, None, 0, 0)).await;
    let mut report = Report::new("b-killed-container", "a container killed mid-call (docker kill)");

    let (client, function) = (p.client.clone(), f.clone());
    let in_flight = tokio::spawn(async move { call(&client, &function, Vec::new(), DEADLINE).await });
    let (pr, fr) = (&p, &f);
    let forwarded =
        wait_until(Duration::from_secs(60), || async move { pr.load(fr).await == Some((1, 0, 1)) }).await;
    assert!(forwarded.is_some(), "the call never reached a ready instance\n{}", p.debug());
    let instances = worker_instances(&p.workers[0].address).await.expect("the worker's State");
    let [instance] = <[String; 1]>::try_from(instances).expect("one instance");

    let killed_at = Instant::now();
    sh(&format!("docker kill {}", container_of(&instance)));
    let outcome = in_flight.await.unwrap();
    let failed_after = (outcome.started + outcome.took).saturating_duration_since(killed_at);
    let (worker, gone) = (&p.workers[0].address, &instance);
    let down = wait_until(Duration::from_secs(30), || async move {
        worker_instances(worker).await.is_ok_and(|i| !i.contains(gone))
    })
    .await;
    let forgotten =
        wait_until(Duration::from_secs(30), || async move { pr.load(fr).await.is_some_and(|l| l.0 == 0) })
            .await;
    let next = call(&p.client, &f, Vec::new(), DEADLINE).await;

    report.figure("code of the call in flight", format!("{:?}", outcome.code()), "");
    if let Err(status) = &outcome.result {
        report.figure("its message", status.message().to_string(), "");
    }
    report.figure("kill → the call's error", secs(failed_after), "s");
    report.figure("kill → instance gone from the worker's State", down.map(secs), "s");
    report.figure("kill → instance gone from the leaf", forgotten.map(secs), "s");
    report.figure("next call (cold start + 20 s sleep)", secs(next.took), "s");
    report.check("the call in flight fails", !outcome.ok());
    // ABORTED: the call may have run, so nobody below retries it (the leaf
    // retries UNAVAILABLE from a worker as "never reached the function").
    report.check(
        "with a clear code (ABORTED: lost mid-call, may have run), not UNKNOWN or INTERNAL",
        outcome.code() == tonic::Code::Aborted,
    );
    report.check(
        "it fails when the container dies, not after the function's 20 s",
        failed_after < Duration::from_secs(15),
    );
    report.check("the worker takes the instance down", down.is_some());
    report.check("the leaf forgets it", forgotten.is_some());
    report.check("the next call works", next.ok());
    report.check("on another instance", next.instance().is_some_and(|i| i != instance));
    report.finish(|| p.debug());
}
