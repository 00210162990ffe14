use std::time::Duration;

use hyperfake_testkit::{ContainerSweeper, TestDatabase, TestLeaf, TestWorker};
use leaf::NodeSettings;
use proto::auth::{BearerToken, Token};
use proto::leaf::leaf_client::LeafClient;
use proto::leaf::{CreateFunctionRequest, LeafStateRequest, ScheduleCallRequest};
use tonic::Code;
use tonic::transport::Channel;
use worker::{ServeOptions, WorkerSettings};

use crate::common::*;

const TOKEN: &str = "leaf-test-token";

async fn client_with(address: &str, token: Option<&str>) -> LeafClient<proto::auth::AuthChannel> {
    let channel = Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap();
    LeafClient::with_interceptor(channel, BearerToken::new(token).unwrap())
}

/// Every service of the platform requires the token: the database, the
/// worker, the leaf and the load-balancer node. A call through the tree only
/// works if each node passes the token to the nodes below and to the database.
#[tokio::test]
async fn a_shared_token_is_required_at_every_node_and_passed_down() {
    let sweeper = ContainerSweeper::new();
    let database = TestDatabase::start_with_token(Some(TOKEN)).await;
    let worker = TestWorker::docker_with(
        &sweeper,
        WorkerSettings::new(format!("auth-{}", sweeper.test_id)),
        database.client.clone(),
        ServeOptions { token: Some(TOKEN.into()) },
    )
    .await;
    let mut settings = leaf_settings(&database.address, vec![worker.address.clone()]);
    settings.token = Some(Token::new(TOKEN).unwrap());
    let leaf = TestLeaf::start(settings).await;
    let mut settings = NodeSettings::balancer(&database.address, vec![leaf.address.clone()]);
    settings.pool.state_interval = Duration::from_millis(100);
    settings.token = Some(Token::new(TOKEN).unwrap());
    let lb = TestLeaf::start(settings).await;

    for (node, address) in [("leaf", &leaf.address), ("load-balancer node", &lb.address)] {
        for (token, expected) in [(None, "missing token"), (Some("guess"), "wrong token")] {
            let mut client = client_with(address, token).await;
            let refused = client.state(LeafStateRequest::default()).await.unwrap_err();
            assert_eq!(refused.code(), Code::Unauthenticated, "{node}, token {token:?}: {refused:?}");
            assert!(refused.message().starts_with(expected), "{node}: {}", refused.message());
            let refused = client
                .schedule_call(ScheduleCallRequest { function_id: None, data: b"x".to_vec() })
                .await
                .unwrap_err();
            assert_eq!(refused.code(), Code::Unauthenticated, "{node}: {refused:?}");
        }
    }

    // With the token, through the whole tree: LB -> leaf (-> database) ->
    // worker (-> database) -> function container.
    hyperfake_testkit::require_image(ECHO);
    let mut client = client_with(&lb.address, Some(TOKEN)).await;
    let created = client
        .create_function(CreateFunctionRequest {
            image_tag: Some(proto::common::ImageTag { tag: ECHO.to_string() }),
            config: Some((&config(64, None, 0, 0)).into()),
            function_id: None,
        })
        .await
        .unwrap_or_else(|s| panic!("CreateFunction with the token: {s:?}"))
        .into_inner()
        .function_id;
    let response = client
        .schedule_call(ScheduleCallRequest { function_id: created.clone(), data: b"with the token".to_vec() })
        .await
        .unwrap_or_else(|s| panic!("a call with the token: {s:?}\n{}", container_logs(&sweeper.label())));
    assert_eq!(response.into_inner().data, b"with the token");

    let mut direct = client_with(&leaf.address, Some(TOKEN)).await;
    let response = direct
        .schedule_call(ScheduleCallRequest { function_id: created, data: b"direct".to_vec() })
        .await
        .unwrap();
    assert_eq!(response.into_inner().data, b"direct");
}
