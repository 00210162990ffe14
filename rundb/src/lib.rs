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

use rusqlite::{Connection, OpenFlags};

pub use status::{CallStatus, RunStatus, UnknownStatus};

/// How long a writer waits for another writer's transaction (loadgen, the
/// collector and processing may share a file).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens (creating it and its directory if needed) a run database for
/// writing: WAL, `synchronous = NORMAL` (survives a process crash, not a
/// power loss, and keeps commits cheap), and [`BUSY_TIMEOUT`]. Each writer
/// then creates its own tables (`calls::create`, `collector::create`,
/// `training::create`). Hardened as [`open_untrusted`] is (`trusted_schema`
/// off, defensive): processing writes into files that came from elsewhere.
/// Readers use [`open_untrusted`].
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
    harden(&conn)?;
    // Busy timeout first: switching to WAL needs a lock another writer may hold.
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

/// Opens a run database for reading only, as every reader does (processing,
/// the trainer, the fidelity report): run databases travel between hosts, so
/// a file may have been crafted. The connection
///
/// - is opened read-only (`SQLITE_OPEN_READ_ONLY`, no create), and
///   `query_only` is on, so nothing in the file can make a reader write;
/// - has `trusted_schema` off: views, triggers, CHECK constraints, defaults
///   and generated or indexed expressions in the file may not call SQL
///   functions that are not marked innocuous, nor use virtual tables;
/// - waits [`BUSY_TIMEOUT`] on writers, and reads a WAL file while loadgen
///   and the collector keep writing.
pub fn open_untrusted(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    harden(&conn)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

/// Turns off what lets a crafted schema run code in this connection: `trusted_schema`
/// (functions not marked innocuous and virtual tables in views, triggers and
/// schema expressions) and, through `SQLITE_DBCONFIG_DEFENSIVE`, writes to the
/// schema and other ways of corrupting the file on purpose.
fn harden(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "trusted_schema", false)?;
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A run database whose `runs` is a view over a virtual table that is not
    /// innocuous (`pragma_database_list`: it would put the reader's file paths
    /// into a report): as a crafted file from another host might be.
    fn crafted(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("crafted.db");
        let conn = open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE calls(run_id TEXT);
             CREATE VIEW runs AS SELECT file AS run_id FROM pragma_database_list;",
        )
        .unwrap();
        path
    }

    #[test]
    fn open_untrusted_does_not_trust_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = crafted(dir.path());
        let conn = open_untrusted(&path).unwrap();
        let trusted: i64 = conn.query_row("PRAGMA trusted_schema", [], |r| r.get(0)).unwrap();
        assert_eq!(trusted, 0);
        let err = conn.query_row("SELECT run_id FROM runs", [], |r| r.get::<_, String>(0)).unwrap_err();
        assert!(err.to_string().contains("unsafe use of virtual table"), "{err}");
        // What a plain read-only connection (SQLite's default) would have done.
        let trusting = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let leaked: String = trusting.query_row("SELECT run_id FROM runs", [], |r| r.get(0)).unwrap();
        assert!(leaked.ends_with("crafted.db"), "{leaked}");
        // The helpers readers use at the top level still work.
        assert!(has_table(&conn, "calls").unwrap());
        assert_eq!(columns(&conn, "calls").unwrap(), vec!["run_id".to_string()]);
    }

    #[test]
    fn open_untrusted_cannot_write_nor_create() {
        let dir = tempfile::tempdir().unwrap();
        let path = crafted(dir.path());
        let conn = open_untrusted(&path).unwrap();
        let err = conn.execute("INSERT INTO calls VALUES ('x')", []).unwrap_err();
        assert!(err.to_string().contains("readonly"), "{err}");
        assert!(conn.execute_batch("CREATE TABLE t(a)").is_err());
        assert!(conn.execute_batch("PRAGMA query_only = OFF; INSERT INTO calls VALUES ('x')").is_err());
        let missing = dir.path().join("missing.db");
        assert!(open_untrusted(&missing).is_err());
        assert!(!missing.exists(), "a reader must not create a database");
    }

    #[test]
    fn writers_do_not_trust_the_schema_either() {
        let dir = tempfile::tempdir().unwrap();
        let path = crafted(dir.path());
        let conn = open(&path).unwrap();
        let trusted: i64 = conn.query_row("PRAGMA trusted_schema", [], |r| r.get(0)).unwrap();
        assert_eq!(trusted, 0);
        assert!(conn.query_row("SELECT run_id FROM runs", [], |r| r.get::<_, String>(0)).is_err());
    }
}
