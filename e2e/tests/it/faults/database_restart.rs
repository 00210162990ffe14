//! e. The function database (the `database` binary) killed with SIGKILL under
//! load and restarted on the same address and file 5 s later.
//!
//! Promised: calls to warm functions go on (neither leaf nor worker asks the
//! database on a warm call); what needs it (creating a function, the first
//! cold start of a function the worker has not seen) fails cleanly with
//! UNAVAILABLE while it is down; after the restart both work again and
//! nothing stored was lost.

use std::time::{Duration, Instant};

use hyperfake_testkit::{ECHO, HELLO, config};
use proto::leaf::CreateFunctionRequest;
use tokio::sync::watch;

use super::report::Report;
use super::support::*;

const RATE: u32 = 20;
const DEADLINE: Duration = Duration::from_secs(2);
const OUTAGE: Duration = Duration::from_secs(5);

/// `CreateFunction` for echo with a 2 s deadline.
async fn try_create(p: &Platform) -> Result<String, tonic::Status> {
    let mut request = tonic::Request::new(CreateFunctionRequest {
        image_tag: Some(proto::common::ImageTag { tag: ECHO.to_string() }),
        config: Some((&config(64, None, 0, 0)).into()),
        function_id: None,
    });
    request.set_timeout(Duration::from_secs(2));
    p.client.clone().create_function(request).await.map(|r| r.into_inner().function_id.unwrap_or_default().id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_database_killed_under_load_and_restarted() {
    let mut p = Platform::start(1).await;
    let mut report =
        Report::new("e-database-restart", "the database killed (SIGKILL) under load, restarted 5 s later");
    let warm = create(&p.client, ECHO, &config(64, None, 0, 0)).await;
    // Created but never started: its first cold start needs the database.
    let cold = create(&p.client, HELLO, &config(64, None, 0, 0)).await;
    let first = call(&p.client, &warm, b"warm".to_vec(), Duration::from_secs(60)).await;
    assert!(first.ok(), "{:?}\n{}", first.result, p.debug());

    let (stop_tx, stop) = watch::channel(false);
    let load = load(p.client.clone(), warm.clone(), RATE, DEADLINE, stop);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (address, file) = (p.database.address.clone(), p.dir.path().join("functions.db"));
    let killed = Instant::now();
    p.database.kill();
    let create_while_down = {
        let started = Instant::now();
        (try_create(&p).await, started.elapsed())
    };
    let cold_while_down = call(&p.client, &cold, b"cold".to_vec(), Duration::from_secs(10)).await;
    tokio::time::sleep(OUTAGE.saturating_sub(killed.elapsed())).await;

    let restarted = Instant::now();
    p.database = database(&file, &address, p.dir.path());
    // Polled by hand: the first success is the new function.
    let (mut new, mut create_back) = (None, None);
    while restarted.elapsed() < Duration::from_secs(30) {
        if let Ok(id) = try_create(&p).await {
            (new, create_back) = (Some(hyperfake_core::FunctionId::new(id)), Some(restarted.elapsed()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let new_call = match &new {
        Some(f) => Some(call(&p.client, f, b"new".to_vec(), Duration::from_secs(60)).await),
        None => None,
    };
    let cold_after = call(&p.client, &cold, b"cold".to_vec(), Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_tx.send(true).unwrap();
    let outcomes = load.await.unwrap();
    let listed =
        database::DatabaseClient::connect(&p.database.address).unwrap().list().await.map(|l| l.len());

    let during: Vec<_> =
        outcomes.iter().filter(|o| o.started >= killed && o.started < restarted).cloned().collect();
    let ok = |v: &[Outcome]| v.iter().filter(|o| o.ok()).count();
    report.figure(
        "load on a warm function",
        format!("{RATE} calls/s, deadline {} s", DEADLINE.as_secs()),
        "",
    );
    report.figure("outage", secs(restarted - killed), "s");
    report.figure(
        "warm calls during the outage: ok / sent",
        format!("{} / {}", ok(&during), during.len()),
        "",
    );
    report.figure(
        "warm calls over the whole run: ok / sent",
        format!("{} / {}", ok(&outcomes), outcomes.len()),
        "",
    );
    report.figure(
        "CreateFunction while down: code",
        format!("{:?}", create_while_down.0.as_ref().err().map(|s| s.code())),
        "",
    );
    report.figure("CreateFunction while down: answered after", secs(create_while_down.1), "s");
    report.figure("first cold start while down: code", format!("{:?}", cold_while_down.code()), "");
    report.figure("restart → CreateFunction works again", create_back.map(secs), "s");
    report.figure("functions stored after the restart", format!("{listed:?}"), "");
    report
        .check("every warm call during the outage works", !during.is_empty() && ok(&during) == during.len());
    report.check("every warm call of the run works", ok(&outcomes) == outcomes.len());
    report.check(
        "CreateFunction while down fails with UNAVAILABLE",
        create_while_down.0.as_ref().is_err_and(|s| s.code() == tonic::Code::Unavailable),
    );
    report.check(
        "a cold start needing the database fails cleanly (UNAVAILABLE) while it is down",
        cold_while_down.code() == tonic::Code::Unavailable,
    );
    report.check("CreateFunction works after the restart", create_back.is_some());
    report.check("the function created after it answers", new_call.as_ref().is_some_and(Outcome::ok));
    report.check("the cold start works after the restart", cold_after.ok());
    report.check("nothing stored was lost (3 functions)", listed.as_ref().is_ok_and(|n| *n == 3));
    report.finish(|| p.debug());
}
