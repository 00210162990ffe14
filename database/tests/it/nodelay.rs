//! The database accepts connections without Nagle's algorithm (TCP_NODELAY),
//! and its client dials the same way.

use database::DatabaseClient;
use hyperfake_core::ImageTag;
use hyperfake_testkit::sockets::{assert_no_nagle, connect_observed};

use crate::common::{TestDb, config};

#[tokio::test]
async fn the_database_accepts_and_its_client_dials_without_nagle() {
    let db = TestDb::start().await;
    let server = db.address();
    // The client dials lazily: its first call opens the one new connection.
    let ((), client) = connect_observed(server, async {
        let client = DatabaseClient::connect(&server.to_string()).unwrap();
        client.create(&ImageTag::from("hyperfaas-echo:latest"), &config()).await.expect("create");
    })
    .await;
    assert_no_nagle("database", server, client);
}
