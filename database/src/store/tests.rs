use hyperfake_core::{Bytes, CpuQuota, FunctionConfigError};
use tempfile::TempDir;

use super::*;

fn config() -> FunctionConfig {
    FunctionConfig {
        memory: Bytes::mib(128),
        cpu: Some(CpuQuota { period_us: 100_000, quota_us: 25_000 }),
        idle_timeout: Some(Duration::from_secs(10)),
        max_concurrency: None,
    }
}

fn open() -> (TempDir, PathBuf, Store) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("functions.db");
    let store = Store::open(&path).unwrap();
    (dir, path, store)
}

#[test]
fn a_new_file_gets_the_latest_schema_in_wal_mode() {
    let (_dir, path, _store) = open();
    let conn = Connection::open(&path).unwrap();
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
    assert_eq!((version, mode.as_str()), (MIGRATIONS.len() as i64, "wal"));
}

#[test]
fn refuses_a_schema_from_a_newer_build() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("functions.db");
    Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::UnknownSchema { found: 99, .. }), "{err:?}");
}

#[tokio::test]
async fn reopening_keeps_functions_and_ids_are_unique() {
    let (_dir, path, store) = open();
    let a = store.create(ImageTag::from("hyperfaas-echo:latest"), config()).await.unwrap();
    let b = store.create(ImageTag::from("hyperfaas-echo:latest"), config()).await.unwrap();
    assert_ne!(a.id, b.id);
    drop(store);

    let store = Store::open(&path).unwrap();
    assert_eq!(store.get(&a.id).await.unwrap(), a);
    assert_eq!(store.list().await.unwrap(), vec![a, b]);
}

#[tokio::test]
async fn a_row_edited_into_nonsense_is_reported_as_corrupt() {
    let (_dir, path, store) = open();
    let function = store.create(ImageTag::from("hyperfaas-echo:latest"), config()).await.unwrap();
    Connection::open(&path).unwrap().execute("UPDATE functions SET cpu_period_us = NULL", []).unwrap();

    let expected = InvalidRecord::Config {
        id: function.id.clone(),
        error: FunctionConfigError::QuotaWithoutPeriod { quota: 25_000, period: 0 },
    };
    let err = store.get(&function.id).await.unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt(e) if *e == expected), "{err:?}");
    // Listing leaves it out rather than failing as a whole.
    let page = store.list_page(None, 10).await.unwrap();
    assert_eq!((page.functions, page.skipped, page.next), (vec![], 1, None));
    // Deleting is how an operator gets rid of it.
    assert!(matches!(store.delete(&function.id).await, Err(StoreError::Corrupt(_))));
    assert_eq!(store.list_page(None, 10).await.unwrap(), Page::default());
}

#[tokio::test]
async fn pages_follow_each_other_and_survive_deletes_between_them() {
    let (_dir, _path, store) = open();
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(store.create(ImageTag::from("hyperfaas-echo:latest"), config()).await.unwrap());
    }
    let first = store.list_page(None, 2).await.unwrap();
    assert_eq!(first.functions, created[..2]);
    let next = first.next.expect("more pages");
    // Deleting the row the cursor points at does not lose or repeat others.
    store.delete(&created[1].id).await.unwrap();
    let second = store.list_page(Some(next), 2).await.unwrap();
    assert_eq!(second.functions, created[2..4]);
    let third = store.list_page(second.next, 2).await.unwrap();
    assert_eq!((third.functions.as_slice(), third.next), (&created[4..], None));
    // A page that ends exactly at the last row says so.
    assert_eq!(store.list_page(None, 4).await.unwrap().next, None);
    let all: Vec<_> = created.iter().filter(|f| f.id != created[1].id).cloned().collect();
    assert_eq!(store.list().await.unwrap(), all);
}

#[tokio::test]
async fn rows_that_do_not_validate_are_skipped_and_counted_the_others_listed() {
    let (_dir, path, store) = open();
    let good = store.create(ImageTag::from("hyperfaas-echo:latest"), config()).await.unwrap();
    let insert = |id: &str, image: &str, created: i64| {
        Connection::open(&path)
            .unwrap()
            .execute(
                &format!("INSERT INTO functions ({COLUMNS}) VALUES (?1, ?2, 67108864, NULL, NULL, 0, 0, ?3)"),
                params![id, image, created],
            )
            .unwrap();
    };
    insert("evil", "hyperfaas-evil.example.com/x:latest", 1);
    insert("has space", "hyperfaas-echo:latest", 2);
    insert(&"x".repeat(300), "hyperfaas-echo:latest", 3);
    insert("before-epoch", "hyperfaas-echo:latest", -1);
    let later = store.create(ImageTag::from("hyperfaas-bfs:latest"), config()).await.unwrap();

    let page = store.list_page(None, 100).await.unwrap();
    assert_eq!((page.functions, page.skipped), (vec![good.clone(), later.clone()], 4));
    // Paging one row at a time steps over the bad rows too.
    let (mut after, mut seen, mut skipped) = (None, Vec::new(), 0);
    loop {
        let page = store.list_page(after, 1).await.unwrap();
        seen.extend(page.functions);
        skipped += page.skipped;
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!((seen, skipped), (vec![good, later], 4));
}

#[test]
fn the_file_syncs_normally_under_wal() {
    let (_dir, _path, store) = open();
    let synchronous: i64 = store
        .connections
        .writer
        .lock()
        .unwrap()
        .pragma_query_value(None, "synchronous", |r| r.get(0))
        .unwrap();
    assert_eq!(synchronous, 1, "NORMAL (see Store::open)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_proceed_while_the_writer_holds_a_transaction_open() {
    let (_dir, _path, store) = open();
    let stored = store.create(ImageTag::from("hyperfaas-echo:latest"), config()).await.unwrap();
    let (opened_tx, opened_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let writer = store.clone();
    let writing = tokio::spawn(async move {
        writer
            .write(move |conn| {
                conn.execute_batch("BEGIN IMMEDIATE")?;
                conn.execute(
                    &format!("INSERT INTO functions ({COLUMNS}) VALUES ('open', 'hyperfaas-echo:latest', 67108864, NULL, NULL, 0, 0, 1)"),
                    [],
                )?;
                opened_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                conn.execute_batch("COMMIT")?;
                Ok(())
            })
            .await
    });
    opened_rx.await.unwrap();
    // With the writer's transaction open: many Gets at once, more than there
    // are readers, all answered; none sees the uncommitted row.
    let mut gets = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (store, id) = (store.clone(), stored.id.clone());
        gets.spawn(async move { store.get(&id).await });
    }
    let results = tokio::time::timeout(Duration::from_secs(10), gets.join_all())
        .await
        .expect("reads blocked by the writer");
    assert!(results.iter().all(|r| r.as_ref().is_ok_and(|f| *f == stored)), "{results:?}");
    let open = FunctionId::from("open");
    let unseen = tokio::time::timeout(Duration::from_secs(10), store.get(&open)).await.unwrap();
    assert!(matches!(unseen, Err(StoreError::NotFound(_))), "{unseen:?}");
    let page =
        tokio::time::timeout(Duration::from_secs(10), store.list_page(None, 10)).await.unwrap().unwrap();
    assert_eq!(page.functions, vec![stored.clone()]);
    // Committed: visible to every reader.
    release_tx.send(()).unwrap();
    writing.await.unwrap().unwrap();
    for _ in 0..READERS + 1 {
        assert_eq!(store.get(&open).await.unwrap().id, open);
    }
}
