use database::{ClientError, DatabaseClient, Store};
use hyperfake_core::{Bytes, FunctionConfig, ImageTag};
use proto::auth::RequireToken;
use tokio::net::TcpListener;

const TOKEN: &str = "db-token-42";

/// With `--token`, calls without the token (or with another) are refused
/// with UNAUTHENTICATED naming the problem; with it they are served.
#[tokio::test]
async fn a_database_with_a_token_serves_only_clients_that_send_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("functions.db")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let auth = RequireToken::new(Some(TOKEN)).unwrap();
    let server = tokio::spawn(database::serve_with(listener, store, std::future::pending(), auth));

    let refused = |err: ClientError, expected: &str| match err {
        ClientError::Server { source, .. } => {
            assert_eq!(source.code(), tonic::Code::Unauthenticated);
            assert!(source.message().starts_with(expected), "{}", source.message());
        }
        other => panic!("expected UNAUTHENTICATED, got {other:?}"),
    };
    let anonymous = DatabaseClient::connect(&address).unwrap();
    refused(anonymous.list().await.unwrap_err(), "missing token");
    let wrong = DatabaseClient::connect(&address).unwrap().with_token(Some("nope")).unwrap();
    refused(wrong.list().await.unwrap_err(), "wrong token");

    let client = DatabaseClient::connect(&address).unwrap().with_token(Some(TOKEN)).unwrap();
    let config =
        FunctionConfig { memory: Bytes::mib(64), cpu: None, idle_timeout: None, max_concurrency: None };
    let created = client.create(&ImageTag::from("hyperfaas-echo:latest"), &config).await.unwrap();
    assert_eq!(client.list().await.unwrap(), vec![created]);
    server.abort();
}
