//! loadgen's integration tests: one binary, one module per area.

// The harness in `common` is shared by sibling modules of this one binary.
#![allow(unreachable_pub)]

/// Shared harness: an in-process leaf stand-in, workload builders, temp dirs.
mod common;
/// Workload files: the shipped examples parse, every error names its path and line.
mod config;
/// Runs against an in-process test leaf: every outcome recorded, trailers in columns, shutdown loses nothing.
mod run;
/// Seeds: same seed, same schedule and bodies, byte for byte; different seed, different.
mod schedule;
