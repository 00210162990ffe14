use std::time::{Duration, Instant};

use database::{ClientError, DatabaseClient};
use tokio::net::TcpListener;

use crate::common::TestDb;

#[tokio::test]
async fn a_closed_port_is_unavailable_at_once_and_named() {
    let address = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    // The listener is dropped: connections to `address` are now refused. The
    // default timeout is long, so a hang would show up as Timeout, not Unavailable.
    let client = DatabaseClient::connect(&address).unwrap().with_timeout(Duration::from_secs(10));
    let err = client.list().await.unwrap_err();
    assert!(matches!(&err, ClientError::Unavailable { address: a, .. } if *a == address), "{err:?}");
    assert!(err.is_unavailable());
    assert!(err.to_string().contains(&address), "{err}");
}

#[tokio::test]
async fn a_database_that_accepts_but_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });

    let after = Duration::from_millis(300);
    let client = DatabaseClient::connect(&address).unwrap().with_timeout(after);
    let started = Instant::now();
    let err = client.list().await.unwrap_err();
    let elapsed = started.elapsed();
    silent.abort();

    assert!(matches!(&err, ClientError::Timeout { after: a, .. } if *a == after), "{err:?}");
    assert!(err.is_unavailable());
    assert!(elapsed >= after && elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

#[tokio::test]
async fn shutdown_stops_the_server_and_clients_see_it_as_unavailable() {
    let mut db = TestDb::start().await;
    let client = db.client();
    client.list().await.unwrap();

    db.shut_down().await.unwrap();
    let err = client.list().await.unwrap_err();
    assert!(matches!(err, ClientError::Unavailable { .. }), "{err:?}");
}

#[test]
fn an_address_that_is_not_a_uri_is_rejected_up_front() {
    let err = DatabaseClient::connect("not a host:port").unwrap_err();
    assert!(matches!(err, ClientError::InvalidAddress { .. }), "{err:?}");
}
