use database::ClientError;
use hyperfake_core::{Bytes, CpuQuota, FunctionConfig, FunctionId, ImageTag};
use proto::common;
use proto::database::CreateRequest;
use proto::database::function_store_client::FunctionStoreClient;

use crate::common::{TestDb, config};

fn invalid_message(result: Result<impl std::fmt::Debug, ClientError>) -> String {
    match result {
        Err(ClientError::Invalid(message)) => message,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn each_invalid_config_reaches_the_client_naming_its_field() {
    let db = TestDb::start().await;
    let client = db.client();
    let echo = ImageTag::from("hyperfaas-echo:latest");
    let cpu =
        |period_us, quota_us| FunctionConfig { cpu: Some(CpuQuota { period_us, quota_us }), ..config() };
    let cases = [
        ("empty image", ImageTag::from(""), config(), "image_tag"),
        ("zero memory", echo.clone(), FunctionConfig { memory: Bytes(0), ..config() }, "config.memory"),
        (
            "memory below Docker's minimum",
            echo.clone(),
            FunctionConfig { memory: Bytes(1), ..config() },
            "config.memory",
        ),
        ("quota without period", echo.clone(), cpu(0, 50_000), "config.cpu.quota"),
        ("period without quota", echo.clone(), cpu(100_000, 0), "config.cpu.period"),
        ("period out of range", echo.clone(), cpu(10, 5_000), "config.cpu.period"),
        ("quota below minimum", echo.clone(), cpu(100_000, 10), "config.cpu.quota"),
    ];
    for (case, image, config, field) in cases {
        let message = invalid_message(client.create(&image, &config).await);
        assert!(message.starts_with(field), "{case}: {message:?} should name {field}");
    }
    assert_eq!(client.list().await.unwrap(), vec![], "nothing invalid may be stored");
}

/// What the typed client cannot even express, sent with the raw gRPC client.
#[tokio::test]
async fn malformed_wire_requests_are_invalid_argument_naming_the_field() {
    let db = TestDb::start().await;
    let mut raw = FunctionStoreClient::connect(format!("http://{}", db.address())).await.unwrap();
    let wire = |timeout, max_concurrency| common::Config {
        timeout,
        max_concurrency,
        ..common::Config::from(&config())
    };
    let image_tag = Some(common::ImageTag { tag: "hyperfaas-echo:latest".into() });
    let cases = [
        (None, "config"),
        (Some(wire(-1, 0)), "config.timeout"),
        (Some(wire(0, -1)), "config.max_concurrency"),
    ];
    for (config, field) in cases {
        let status = raw.create(CreateRequest { image_tag: image_tag.clone(), config }).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(status.message().starts_with(field), "{:?} should name {field}", status.message());
    }
    let status = raw.get(common::FunctionId { id: String::new() }).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
}

#[tokio::test]
async fn unknown_and_empty_ids() {
    let db = TestDb::start().await;
    let client = db.client();
    let unknown = FunctionId::from("00000000-0000-4000-8000-000000000000");
    assert!(matches!(client.get(&unknown).await, Err(ClientError::NotFound(id)) if id == unknown));
    assert!(matches!(client.delete(&unknown).await, Err(ClientError::NotFound(id)) if id == unknown));

    let echo = client.create(&ImageTag::from("hyperfaas-echo:latest"), &config()).await.unwrap();
    client.delete(&echo.id).await.unwrap();
    assert!(matches!(client.delete(&echo.id).await, Err(ClientError::NotFound(id)) if id == echo.id));

    let message = invalid_message(client.get(&FunctionId::from("")).await);
    assert!(message.starts_with("function_id"), "{message:?}");
}

/// Docker reads `hyperfaas-evil.example.com` as a registry: a prefix check let
/// such images in. Every image and id goes through one parser now.
#[tokio::test]
async fn images_with_a_registry_or_path_and_unbounded_ids_are_refused() {
    let db = TestDb::start().await;
    let client = db.client();
    for image in [
        "hyperfaas-evil.example.com/x",
        "hyperfaas-evil.example.com/x:latest",
        "localhost:5000/hyperfaas-echo",
        "hyperfaas-Echo:latest",
        "nginx:latest",
        "hyperfaas-echo:bad+tag",
    ] {
        let message = invalid_message(client.create(&ImageTag::from(image), &config()).await);
        assert!(message.starts_with("image_tag: "), "{image}: {message:?}");
        assert!(message.contains(image), "{message:?} should name {image}");
    }
    assert_eq!(client.list().await.unwrap(), vec![], "nothing invalid may be stored");

    for id in ["a b".to_string(), "../x".to_string(), "x".repeat(129)] {
        let message = invalid_message(client.get(&FunctionId::new(id.clone())).await);
        assert!(message.starts_with("function_id: "), "{id}: {message:?}");
        let message = invalid_message(client.delete(&FunctionId::new(id.clone())).await);
        assert!(message.starts_with("function_id: "), "{id}: {message:?}");
    }
}
