//! Integration tests for the `functions` crate: one binary, one module per area.

/// Test servers, gRPC clients and deadline polling shared by every module.
mod common;

/// The SDK over real gRPC on 127.0.0.1:0: echo, errors, panics, health, limits, shutdown.
mod sdk;

/// The built function binaries as processes: signals, exit codes, `crash`.
mod binaries;

/// The workload handlers served through the SDK.
mod workloads;

/// The `trace` image at a CPU quota on the real Docker engine (needs
/// `scripts/build-function-images.sh trace`; fails, never skips, without it).
mod trace_image;

/// The Docker images from `scripts/build-function-images.sh` (ignored by
/// default: run `cargo test -p functions --test it -- --ignored` after building them).
mod images;
