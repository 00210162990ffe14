//! The functions in a SQLite file.
//!
//! One writer connection and a small pool of read-only ones ([`READERS`]),
//! the file in WAL mode so readers run beside the writer and each other. One
//! connection for everything was enough for a handful of workers, but under
//! a start storm (1 000 workers each fetching a function per cold start) the
//! `Get`s queued behind one mutex, each holding a blocking thread while it
//! waited: 515 threads, and 3 566 starts failed with the client's 5 s
//! timeout. Every call runs on tokio's blocking pool, so SQLite never stalls
//! the executor, but only after taking a permit for a connection: a storm
//! queues as futures on the semaphores, and at most `READERS + 1` blocking
//! threads do the store's work at a time.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyperfake_core::config::RawConfig;
use hyperfake_core::ids::MAX_FUNCTION_ID_LEN;
use hyperfake_core::{FunctionConfig, FunctionId, ImageTag, time};
use proto::common;
use proto::database::FunctionRecord;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use tokio::sync::Semaphore;
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

/// Read-only connections. A `Get` is a point lookup of a few microseconds,
/// so a few connections keep up with thousands of requests a second; more
/// would only add blocking threads on a small machine.
const READERS: usize = 4;

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

/// The function table of one SQLite file. Cheap to clone; clones share the
/// connections.
#[derive(Clone, Debug)]
pub struct Store {
    connections: Arc<Connections>,
}

/// The writer and the readers, each pool behind a semaphore with one permit
/// per connection: a call waits for a permit (as a future, holding no
/// thread), then runs on the blocking pool with a connection that is sure to
/// be free.
#[derive(Debug)]
struct Connections {
    writer: Mutex<Connection>,
    writing: Arc<Semaphore>,
    /// Idle read-only connections; a reader takes one and puts it back.
    readers: Mutex<Vec<Connection>>,
    reading: Arc<Semaphore>,
}

impl Store {
    /// Opens (or creates) the store at `path` and brings its schema up to date.
    /// Blocks: call it before serving, not on the async executor.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref();
        let open_error = |source| StoreError::Open { path: path.to_path_buf(), source };
        let mut writer = Connection::open(path).map_err(open_error)?;
        writer.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
        // WAL: readers never block the writer, nor the writer them.
        // synchronous=NORMAL: in WAL mode a commit is then durable against a
        // crash of this process (or any process), and the database never
        // corrupts; only a power loss or OS crash may roll back the last
        // commits. FULL also fsyncs the WAL on every commit, which made
        // deleting 10 000 functions at the end of the scale run take about
        // 100 s; 2 000 deletes through the store took 3.5 s with FULL and
        // 0.19 s with NORMAL (2026-12-03, this 2-core machine's disk). A
        // function lost with the machine is lost with every leaf and worker
        // that knew it, so FULL's extra guarantee buys nothing here.
        writer.pragma_update(None, "journal_mode", "WAL").map_err(open_error)?;
        writer.pragma_update(None, "synchronous", "NORMAL").map_err(open_error)?;
        migrate(&mut writer, path)?;
        let readers = (0..READERS)
            .map(|_| {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let reader = Connection::open_with_flags(path, flags)?;
                reader.busy_timeout(BUSY_TIMEOUT)?;
                Ok(reader)
            })
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(open_error)?;
        Ok(Store {
            connections: Arc::new(Connections {
                writer: Mutex::new(writer),
                writing: Arc::new(Semaphore::new(1)),
                readers: Mutex::new(readers),
                reading: Arc::new(Semaphore::new(READERS)),
            }),
        })
    }

    /// Registers a function under a new id. Committed when this returns.
    pub async fn create(&self, image_tag: ImageTag, config: FunctionConfig) -> Result<Function, StoreError> {
        let function = Function {
            id: FunctionId::new(uuid::Uuid::new_v4().to_string()),
            image_tag,
            config,
            created_at: time::now_unix(),
        };
        self.write(move |conn| {
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
        self.read(move |conn| {
            let mut statement =
                conn.prepare_cached(&format!("SELECT {COLUMNS} FROM functions WHERE id = ?1"))?;
            let record = statement.query_row([id.as_str()], record).optional()?;
            Ok(Function::try_from(record.ok_or(StoreError::NotFound(id))?)?)
        })
        .await
    }

    /// Up to `limit` rows after `after` (from the start when `None`), oldest
    /// first. A row that no longer validates is left out, logged with its id
    /// and reason, and counted in [`Page::skipped`], so one bad row cannot make
    /// the whole list unreadable.
    pub async fn list_page(&self, after: Option<Cursor>, limit: u32) -> Result<Page, StoreError> {
        self.read(move |conn| {
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
        self.write(move |conn| {
            let sql = format!("DELETE FROM functions WHERE id = ?1 RETURNING {COLUMNS}");
            let record = conn.query_row(&sql, [id.as_str()], record).optional()?;
            Ok(Function::try_from(record.ok_or(StoreError::NotFound(id))?)?)
        })
        .await
    }

    /// Runs `f` on a read-only connection, waiting for one to be free.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let connections = Arc::clone(&self.connections);
        let Ok(permit) = Arc::clone(&self.connections.reading).acquire_owned().await else {
            unreachable!("the store never closes its semaphores: a bug")
        };
        tokio::task::spawn_blocking(move || {
            let Some(reader) = connections.readers.lock().unwrap_or_else(PoisonError::into_inner).pop()
            else {
                unreachable!("a read permit without an idle reader: a bug")
            };
            // A read changes nothing, so a panic in `f` leaves the connection
            // usable; it is put back either way.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&reader)));
            connections.readers.lock().unwrap_or_else(PoisonError::into_inner).push(reader);
            drop(permit);
            result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
        .await?
    }

    /// Runs `f` on the writer connection, waiting for it to be free.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let connections = Arc::clone(&self.connections);
        let Ok(permit) = Arc::clone(&self.connections.writing).acquire_owned().await else {
            unreachable!("the store never closes its semaphores: a bug")
        };
        tokio::task::spawn_blocking(move || {
            // Every call is one statement, which SQLite applies entirely or not
            // at all, so a panic cannot leave the connection half-way through.
            let writer = connections.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let result = f(&writer);
            drop(permit);
            result
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
