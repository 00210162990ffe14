#![allow(unreachable_pub)]

//! Leaf and load-balancer integration tests against the real Docker engine,
//! real workers and a real database on loopback. Images come from
//! `scripts/build-function-images.sh`; a missing image fails the test.

mod common;

/// A load-balancer node over leaves over fake workers: each function keeps to
/// one leaf, moves when that leaf goes away, and functions spread over leaves.
mod affinity;
/// The shared token at the leaf and load-balancer node, and passed down.
mod auth;
/// Creating functions and calling them through a leaf; codes and metadata.
mod calls;
/// compose.yaml: the token from a file, an internal functions network, loopback.
mod compose;
/// Holding calls at the leaf while every instance is at max_concurrency:
/// spread over new instances, bounded, deadlines kept.
mod holding;
/// Server limits: a call without a deadline ends at the server's maximum; a
/// load-balancer node's pending bound and CreateFunction timeout.
mod limits;
/// TCP_NODELAY on every hop: client, load-balancer node, leaf, worker, database.
mod nodelay;
/// Single-flight cold start, scale-up, scale-to-zero.
mod scaling;
/// A restarted leaf; a 3-level tree of load-balancer node, leaves and workers.
mod topology;
/// Several workers: placement, spreading, a worker killed mid-run, reconciliation.
mod workers;
