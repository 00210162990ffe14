//! The functions in a SQLite file.
//!
//! One connection behind a mutex: writes are rare (a create or delete per
//! deployed function) and reads are point lookups, so a pool would buy nothing.
//! Every call runs on tokio's blocking pool, so SQLite never stalls the executor.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyperfake_core::config::RawConfig;
use hyperfake_core::ids::MAX_FUNCTION_ID_LEN;
use hyperfake_core::{FunctionConfig, FunctionId, ImageTag, time};
use proto::common;
use proto::database::FunctionRecord;
use rusqlite::{Connection, OptionalExtension, Row, params};
use tracing::warn;

use crate::function::{Function, InvalidRecord};
use crate::page::{Cursor, DEFAULT_PAGE_SIZE};

/// Schema migrations; `PRAGMA user_version` counts how many have run. Append,
/// never edit: a file written by an older build is upgraded step by step.
const MIGRATIONS: &[&str] = &[
    // v1: the raw wire values of `common.Config`, so that reading a row runs
    // the same validation as a `Create` request.
    "CREATE TABLE functions (
        id              TEXT PRIMARY KEY NOT NULL,
        image_tag       TEXT NOT NULL,
        memory_bytes    INTEGER NOT NULL,
        -- CFS period and quota in µs; both NULL when the CPU is unlimited.
        cpu_period_us   INTEGER,
        cpu_quota_us    INTEGER,
        -- Idle timeout in seconds; 0 never stops an idle instance.
        idle_timeout_s  INTEGER NOT NULL,
        -- Calls one instance serves at once; 0 is unlimited.
        max_concurrency INTEGER NOT NULL,
        -- Nanoseconds since the Unix epoch.
        created_at_ns   INTEGER NOT NULL
    ) STRICT;",
    // v2: `List` pages by (created_at_ns, rowid); an index on created_at_ns
    // (which carries the rowid) makes each page a range scan, not a sort.
    "CREATE INDEX functions_by_age ON functions (created_at_ns);",
];

const COLUMNS: &str = "id, image_tag, memory_bytes, cpu_period_us, cpu_quota_us, idle_timeout_s, max_concurrency, created_at_ns";

/// Another process (an operator's `sqlite3`) may hold the write lock briefly.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("function {0} not found")]
    NotFound(FunctionId),
    #[error("stored record is invalid")]
    Corrupt(#[from] InvalidRecord),
    #[error("cannot open the function store {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path} has schema version {found}; this build knows versions 0 to {supported}")]
    UnknownSchema { path: PathBuf, found: i64, supported: usize },
    #[error("sqlite failed")]
    Sqlite(#[from] rusqlite::Error),
    #[error("storage task panicked")]
    Task(#[from] tokio::task::JoinError),
}

/// The function table of one SQLite file. Cheap to clone; clones share the connection.
#[derive(Clone, Debug)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (or creates) the store at `path` and brings its schema up to date.
    /// Blocks: call it before serving, not on the async executor.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref();
        let open_error = |source| StoreError::Open { path: path.to_path_buf(), source };
        let mut conn = Connection::open(path).map_err(open_error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
        // WAL: readers never block the writer. synchronous=FULL also syncs the
        // WAL on every commit, so a function whose id was handed out survives a
        // power loss, not just a crash; with a write per deployment the fsync is free.
        conn.pragma_update(None, "journal_mode", "WAL").map_err(open_error)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(open_error)?;
        migrate(&mut conn, path)?;
        Ok(Store { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Registers a function under a new id. Committed when this returns.
    pub async fn create(&self, image_tag: ImageTag, config: FunctionConfig) -> Result<Function, StoreError> {
        let function = Function {
            id: FunctionId::new(uuid::Uuid::new_v4().to_string()),
            image_tag,
            config,
            created_at: time::now_unix(),
        };
        self.run(move |conn| {
            let RawConfig { memory_bytes, cpu, timeout_s, max_concurrency } = function.config.to_raw();
            conn.execute(
                &format!("INSERT INTO functions ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
                params![
                    function.id.as_str(),
                    function.image_tag.as_str(),
                    memory_bytes,
                    cpu.map(|(period, _)| period),
                    cpu.map(|(_, quota)| quota),
                    timeout_s,
                    max_concurrency,
                    function.created_at.as_i64(),
                ],
            )?;
            Ok(function)
        })
        .await
    }

    pub async fn get(&self, id: &FunctionId) -> Result<Function, StoreError> {
        let id = id.clone();
        self.run(move |conn| {
            let sql = format!("SELECT {COLUMNS} FROM functions WHERE id = ?1");
            let record = conn.query_row(&sql, [id.as_str()], record).optional()?;
            Ok(Function::try_from(record.ok_or(StoreError::NotFound(id))?)?)
        })
        .await
    }

    /// Up to `limit` rows after `after` (from the start when `None`), oldest
    /// first. A row that no longer validates is left out, logged with its id
    /// and reason, and counted in [`Page::skipped`], so one bad row cannot make
    /// the whole list unreadable.
    pub async fn list_page(&self, after: Option<Cursor>, limit: u32) -> Result<Page, StoreError> {
        self.run(move |conn| {
            let limit = limit.max(1);
            // One row more than asked for tells whether another page follows.
            let fetch = i64::from(limit) + 1;
            let select = format!("SELECT rowid, {COLUMNS} FROM functions");
            let order = "ORDER BY created_at_ns, rowid LIMIT ?1";
            let (mut statement, start) = match after {
                None => (conn.prepare_cached(&format!("{select} {order}"))?, None),
                Some(c) => {
                    let sql = format!("{select} WHERE (created_at_ns, rowid) > (?2, ?3) {order}");
                    (conn.prepare_cached(&sql)?, Some((c.created_at_ns, c.rowid)))
                }
            };
            let mut rows = match start {
                None => statement.query(params![fetch])?,
                Some((created_at_ns, rowid)) => statement.query(params![fetch, created_at_ns, rowid])?,
            };
            let mut page = Page::default();
            let mut read = 0u32;
            let mut last = None;
            while let Some(row) = rows.next()? {
                if read == limit {
                    page.next = last;
                    break;
                }
                read += 1;
                last = Some(Cursor { created_at_ns: row.get("created_at_ns")?, rowid: row.get(0)? });
                let function = record(row)
                    .map_err(|e| e.to_string())
                    .and_then(|r| Function::try_from(r).map_err(|e| e.to_string()));
                match function {
                    Ok(function) => page.functions.push(function),
                    Err(reason) => {
                        let id = stored_id(row);
                        warn!(%id, %reason, "skipping a stored function that does not validate");
                        page.skipped += 1;
                    }
                }
            }
            Ok(page)
        })
        .await
    }

    /// All functions that validate, oldest first, read page by page.
    pub async fn list(&self) -> Result<Vec<Function>, StoreError> {
        let mut functions = Vec::new();
        let mut after = None;
        loop {
            let page = self.list_page(after, DEFAULT_PAGE_SIZE).await?;
            functions.extend(page.functions);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(functions),
            }
        }
    }

    /// Removes a function and returns it. A row that no longer validates is
    /// still removed, and reported as [`StoreError::Corrupt`].
    pub async fn delete(&self, id: &FunctionId) -> Result<Function, StoreError> {
        let id = id.clone();
        self.run(move |conn| {
            let sql = format!("DELETE FROM functions WHERE id = ?1 RETURNING {COLUMNS}");
            let record = conn.query_row(&sql, [id.as_str()], record).optional()?;
            Ok(Function::try_from(record.ok_or(StoreError::NotFound(id))?)?)
        })
        .await
    }

    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // Every call is one statement, which SQLite applies entirely or not
            // at all, so a panic cannot leave the connection half-way through.
            let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&conn)
        })
        .await?
    }
}

/// One page of [`Store::list_page`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    pub functions: Vec<Function>,
    /// Rows of this page left out because they do not validate.
    pub skipped: u32,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

/// A row's id for a log line, even when it is not valid UTF-8 or absurdly long.
fn stored_id(row: &Row<'_>) -> String {
    match row.get_ref("id") {
        Ok(value) => {
            let bytes = value.as_bytes().unwrap_or_default();
            let id = String::from_utf8_lossy(bytes);
            match id.char_indices().nth(MAX_FUNCTION_ID_LEN) {
                Some((end, _)) => format!("{}...", &id[..end]),
                None => id.into_owned(),
            }
        }
        Err(e) => format!("<unreadable: {e}>"),
    }
}

/// A row as the wire record it was made from, not yet validated.
fn record(row: &Row<'_>) -> rusqlite::Result<FunctionRecord> {
    let period: Option<i64> = row.get("cpu_period_us")?;
    let quota: Option<i64> = row.get("cpu_quota_us")?;
    let raw = RawConfig {
        memory_bytes: row.get("memory_bytes")?,
        // Half a CPU limit stays visible, so validation can name the missing half.
        cpu: match (period, quota) {
            (None, None) => None,
            (period, quota) => Some((period.unwrap_or(0), quota.unwrap_or(0))),
        },
        timeout_s: row.get("idle_timeout_s")?,
        max_concurrency: row.get("max_concurrency")?,
    };
    Ok(FunctionRecord {
        function_id: Some(common::FunctionId { id: row.get("id")? }),
        image_tag: Some(common::ImageTag { tag: row.get("image_tag")? }),
        config: Some(raw.into()),
        created_at_ns: row.get("created_at_ns")?,
    })
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let found: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let applied = usize::try_from(found).ok().filter(|v| *v <= MIGRATIONS.len()).ok_or_else(|| {
        StoreError::UnknownSchema { path: path.to_path_buf(), found, supported: MIGRATIONS.len() }
    })?;
    for migration in &MIGRATIONS[applied..] {
        tx.execute_batch(migration)?;
    }
    tx.pragma_update(None, "user_version", i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX))?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests;
