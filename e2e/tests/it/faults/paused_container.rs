//! c. A paused container (`docker pause`): a call to it is ended at its
//! deadline with DEADLINE_EXCEEDED (by the leaf and by the worker alike), the
//! instance stays (a paused container still runs), and calls work again once
//! it is unpaused.

use std::time::Duration;

use hyperfake_testkit::{ECHO, config};
use proto::controller::controller_client::ControllerClient;

use super::report::Report;
use super::support::*;

const DEADLINE: Duration = Duration::from_secs(2);
/// What a deadline may be late by on a loaded 2-core machine.
const SLACK: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_container_honours_the_callers_deadline() {
    let p = Platform::start(1).await;
    let f = create(&p.client, ECHO, &config(64, None, 0, 0)).await;
    let mut report =
        Report::new("c-paused-container", "a paused container (docker pause): the deadline holds");
    let warm = call(&p.client, &f, b"warm".to_vec(), Duration::from_secs(60)).await;
    assert!(warm.ok(), "warm-up call: {:?}\n{}", warm.result, p.debug());
    let instance = warm.instance().unwrap().to_string();
    let container = container_of(&instance);

    let mut paused =
        Undo::apply(&format!("docker pause {container}"), &format!("docker unpause {container}"));
    let via_leaf = call(&p.client, &f, b"paused?".to_vec(), DEADLINE).await;
    // The worker's own hop: a call straight to the worker, same deadline.
    let direct = {
        let mut client = ControllerClient::with_origin(transport(), origin(&p.workers[0].address));
        let mut request = tonic::Request::new(proto::common::CallRequest {
            request_id: hyperfake_testkit::unique("req"),
            instance_id: None,
            data: b"paused?".to_vec(),
            function_id: Some((&f).into()),
        });
        request
            .metadata_mut()
            .insert("grpc-timeout", proto::deadline::encode_grpc_timeout(DEADLINE).parse().unwrap());
        let started = std::time::Instant::now();
        let result = client.call(request).await;
        (result.err().map(|s| s.code()), started.elapsed())
    };
    let still_listed = worker_instances(&p.workers[0].address).await.unwrap_or_default().contains(&instance);
    paused.now();
    let after = call(&p.client, &f, b"back".to_vec(), Duration::from_secs(10)).await;

    report.figure("deadline", secs(DEADLINE), "s");
    report.figure("through the leaf: code", format!("{:?}", via_leaf.code()), "");
    report.figure("through the leaf: answered after", secs(via_leaf.took), "s");
    report.figure("straight to the worker: code", format!("{:?}", direct.0.unwrap_or(tonic::Code::Ok)), "");
    report.figure("straight to the worker: answered after", secs(direct.1), "s");
    report.figure("first call after unpause", secs(after.took), "s");
    report.check("the leaf answers DEADLINE_EXCEEDED", via_leaf.code() == tonic::Code::DeadlineExceeded);
    report.check("within deadline + 1 s", via_leaf.took <= DEADLINE + SLACK);
    report.check("the worker answers DEADLINE_EXCEEDED", direct.0 == Some(tonic::Code::DeadlineExceeded));
    report.check("within deadline + 1 s (worker)", direct.1 <= DEADLINE + SLACK);
    report.check("the paused instance is not taken down", still_listed);
    report.check(
        "after unpause the same instance answers",
        after.ok() && after.instance() == Some(instance.as_str()),
    );
    report.finish(|| p.debug());
}
