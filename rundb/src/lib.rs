//! The run database: one SQLite file per run, written by the load generator
//! ([`calls`]: `runs`, `functions`, `schedule`, `calls`), the collector
//! ([`collector`]: sessions, lifecycle events, resource samples) and
//! processing ([`training`]: training rows, summaries, payload feature
//! declarations, cold starts), and read by the trainer and the fidelity
//! report. This crate is the one place that defines those tables, their row
//! types and inserts, the [`CallStatus`] stored per call, and the training
//! column order the models follow; [`fixtures`] writes synthetic run
//! databases through the same code for tests and benchmarks.
//!
//! Units: `docs/units.md`. Column documentation: `configs/README.md`, "The
//! run database".

pub mod calls;
pub mod collector;
pub mod fixtures;
pub mod status;
pub mod training;

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

pub use status::{CallStatus, RunStatus, UnknownStatus};

/// How long a writer waits for another writer's transaction (loadgen, the
/// collector and processing may share a file).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens (creating it and its directory if needed) a run database for
/// writing: WAL, `synchronous = NORMAL` (survives a process crash, not a
/// power loss, and keeps commits cheap), and [`BUSY_TIMEOUT`]. Each writer
/// then creates its own tables (`calls::create`, `collector::create`,
/// `training::create`).
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!("cannot create {}: {e}", dir.display())),
            )
        })?;
    }
    let conn = Connection::open(path)?;
    // Busy timeout first: switching to WAL needs a lock another writer may hold.
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

/// The columns of `table`, in table order (empty if there is no such table).
pub fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    conn.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?
        .query_map([table], |r| r.get(0))?
        .collect()
}

/// Whether `table` has `column`.
pub fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    Ok(columns(conn, table)?.iter().any(|c| c == column))
}

/// Whether the database has a table named `table`.
pub fn has_table(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [table], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n > 0)
}
