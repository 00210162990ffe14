#![allow(unreachable_pub)]

//! Worker integration tests against the real Docker engine, a real database
//! service on loopback and a real SQLite file. Images come from
//! `scripts/build-function-images.sh`; a missing image fails the test.

mod common;

/// Fifty concurrent calls on one slot (the rest is in the contract:
/// fakeworker's `contract.rs` runs it against this worker too).
mod calls;
/// Limits visible in `docker inspect`, leftovers, errors for bad requests.
mod containers;
/// A requested stop drains the calls in flight first.
mod drain;
/// Status events only real containers show: DOWN, OOM, the idle clock.
mod events;
/// Function containers run unprivileged, read-only and bounded.
mod hardening;
/// Start, call and stop each workload function; payload fidelity.
mod lifecycle;
/// TCP_NODELAY on the worker's accepted and dialled connections.
mod nodelay;
/// Instances whose containers vanished without an exit event go DOWN.
mod reconcile;
/// Metrics and the per-container resource stream.
mod resources;
