//! End to end: a real SQLite file in a TempDir, a real server on 127.0.0.1:0 and
//! the real [`database::DatabaseClient`].

mod common;

/// Shared-token authentication (`--token`).
mod auth;
/// Create, get, list and delete, and what survives a restart.
mod functions;
/// Paged `List`, and rows that no longer validate.
mod list;
/// TCP_NODELAY on accepted and dialled connections.
mod nodelay;
/// Bad requests and unknown ids, as the client sees them.
mod requests;
/// Databases that are down, silent, or shutting down.
mod transport;
