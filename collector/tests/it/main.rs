#![allow(unreachable_pub)]

//! The collector against real workers: Docker workers where the data must be
//! real (cgroup samples), fake workers (the real worker over a simulated
//! runtime) where the test must start, stop and restart workers quickly.

mod common;

/// Shared-token authentication between the collector and workers.
mod auth;
/// The `collector` binary: help, exit on SIGTERM.
mod cli;
/// What one session records from a real worker, and what a graceful stop flushes.
mod collect;
/// Workers that are down at start, or restart mid-run.
mod reconnect;
/// A collector killed mid-run and restarted into the same run.
mod restart;
