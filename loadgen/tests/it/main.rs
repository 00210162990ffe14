//! loadgen's integration tests: one binary, one module per area.

/// Shared harness: an in-process leaf stand-in, workload builders, temp dirs.
mod common;
/// Workload files: the shipped examples parse, every error names its path and line.
mod config;
/// Seeds: same seed, same schedule and bodies, byte for byte; different seed, different.
mod schedule;
