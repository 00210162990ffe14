use hyperfake_core::{Bytes, ConfigError, CpuQuota};
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
        error: ConfigError::QuotaWithoutPeriod { quota: 25_000, period: 0 },
    };
    let err = store.get(&function.id).await.unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt(e) if *e == expected), "{err:?}");
    assert!(matches!(store.list().await, Err(StoreError::Corrupt(_))));
    // Deleting is how an operator gets rid of it.
    assert!(matches!(store.delete(&function.id).await, Err(StoreError::Corrupt(_))));
    assert_eq!(store.list().await.unwrap(), vec![]);
}
