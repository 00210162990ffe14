//! `List` is paged, so its answers stay far below the 16 MiB a client decodes,
//! and rows that no longer validate are skipped instead of failing the list.

use std::time::Instant;

use database::{DEFAULT_PAGE_SIZE, Function};
use hyperfake_core::ImageTag;
use proto::database::ListRequest;
use proto::database::function_store_client::FunctionStoreClient;
use rusqlite::{Connection, params};

use crate::common::{TestDb, config};

/// Writes `n` valid rows straight into the database's SQLite file, in one
/// transaction (creating them through the API would cost an fsync each).
/// Ids are UUID-shaped ([`bulk_id`]), like generated ones; row `i` was created at `i` ns.
fn insert_valid_rows(db: &TestDb, n: usize) {
    let mut conn = Connection::open(db.path()).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO functions (id, image_tag, memory_bytes, cpu_period_us, cpu_quota_us, \
                 idle_timeout_s, max_concurrency, created_at_ns) \
                 VALUES (?1, 'hyperfaas-thumbnailer:latest', 67108864, 100000, 50000, 30, 4, ?2)",
            )
            .unwrap();
        for i in 0..n {
            insert.execute(params![bulk_id(i), i64::try_from(i).unwrap()]).unwrap();
        }
    }
    tx.commit().unwrap();
}

fn bulk_id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn ids(functions: &[Function]) -> Vec<String> {
    functions.iter().map(|f| f.id.to_string()).collect()
}

#[tokio::test]
async fn the_client_reads_every_page_in_order() {
    let db = TestDb::start().await;
    let client = db.client().with_page_size(2);
    let mut created = Vec::new();
    for image in ["hyperfaas-echo:latest", "hyperfaas-bfs:latest", "hyperfaas-hello:latest"] {
        for _ in 0..2 {
            created.push(client.create(&ImageTag::from(image), &config()).await.unwrap());
        }
    }
    created.push(client.create(&ImageTag::from("hyperfaas-simul:latest"), &config()).await.unwrap());

    // The server answers one page at a time...
    let mut raw = FunctionStoreClient::connect(format!("http://{}", db.address())).await.unwrap();
    let first = raw.list(ListRequest { page_size: 2, page_token: String::new() }).await.unwrap().into_inner();
    assert_eq!(first.functions.len(), 2);
    assert!(!first.next_page_token.is_empty());

    // ...and the client follows the tokens to the end: 7 functions, 4 pages.
    let listing = client.listing().await.unwrap();
    assert_eq!((listing.functions, listing.skipped), (created, 0));
}

#[tokio::test]
async fn a_request_without_paging_fields_gets_a_bounded_first_page() {
    let db = TestDb::start().await;
    let default = DEFAULT_PAGE_SIZE as usize;
    insert_valid_rows(&db, default + 1);

    let mut raw = FunctionStoreClient::connect(format!("http://{}", db.address())).await.unwrap();
    let old_client = raw.list(ListRequest::default()).await.unwrap().into_inner();
    assert_eq!(old_client.functions.len(), default);
    let rest = raw
        .list(ListRequest { page_size: 0, page_token: old_client.next_page_token })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((rest.functions.len(), rest.next_page_token.as_str()), (1, ""));
    assert_eq!(rest.functions[0].function_id.as_ref().unwrap().id, bulk_id(default));

    let all = db.client().list().await.unwrap();
    let expected: Vec<String> = (0..=default).map(bulk_id).collect();
    assert_eq!(ids(&all), expected);
}

#[tokio::test]
async fn a_page_token_the_database_did_not_issue_is_invalid_argument() {
    let db = TestDb::start().await;
    let mut raw = FunctionStoreClient::connect(format!("http://{}", db.address())).await.unwrap();
    let status = raw.list(ListRequest { page_size: 0, page_token: "not-a-token".into() }).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().starts_with("page_token"), "{status:?}");
}

/// One stored row that no longer validates used to fail every `List`, so no
/// leaf could start; now the others are listed and the bad ones counted.
#[tokio::test]
async fn rows_that_no_longer_validate_are_skipped_and_the_others_listed() {
    let mut db = TestDb::start().await;
    let client = db.client();
    let mut created = Vec::new();
    for image in ["hyperfaas-echo:latest", "hyperfaas-bfs:latest", "hyperfaas-hello:latest"] {
        created.push(client.create(&ImageTag::from(image), &config()).await.unwrap());
    }
    let corrupted = created.remove(1);
    let conn = Connection::open(db.path()).unwrap();
    conn.execute("UPDATE functions SET memory_bytes = -1 WHERE id = ?1", [corrupted.id.as_str()]).unwrap();
    conn.execute(
        "INSERT INTO functions (id, image_tag, memory_bytes, cpu_period_us, cpu_quota_us, idle_timeout_s, \
         max_concurrency, created_at_ns) VALUES ('evil', 'hyperfaas-evil.example.com/x', 67108864, NULL, \
         NULL, 0, 0, 5)",
        [],
    )
    .unwrap();
    drop(conn);

    // Also across a restart, as a leaf starting up would read it, and with
    // pages that end on a bad row.
    db.restart().await;
    for page_size in [0, 1, 2] {
        let listing = db.client().with_page_size(page_size).listing().await.unwrap();
        assert_eq!((&listing.functions, listing.skipped), (&created, 2), "page size {page_size}");
    }
    assert_eq!(db.client().list().await.unwrap(), created);
}

/// More functions than one 16 MiB message holds (about 95 bytes each on the
/// wire: 19 MB) are listed page by page.
#[tokio::test]
async fn two_hundred_thousand_functions_are_listed() {
    const N: usize = 200_000;
    let db = TestDb::start().await;
    let started = Instant::now();
    insert_valid_rows(&db, N);
    let inserted = started.elapsed();
    let all = db.client().list().await.unwrap();
    eprintln!("inserted {N} rows in {inserted:.1?}, listed them in {:.1?}", started.elapsed() - inserted);
    assert_eq!(all.len(), N);
    assert_eq!(all[N - 1].id.as_str(), bulk_id(N - 1));
    assert!(all.windows(2).all(|w| w[0].created_at < w[1].created_at));
}
