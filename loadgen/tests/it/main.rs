//! loadgen's integration tests: one binary, one module per area.

// The harness in `common` is shared by sibling modules of this one binary.
#![allow(unreachable_pub)]

/// `loadgen bench` at a low rate: a no-op leaf process, its ceiling, every call recorded, reports written.
mod bench;
/// Functions a run created are deleted at its end unless kept; no row is lost either way.
mod cleanup;
/// Shared harness: an in-process leaf stand-in, workload builders, temp dirs.
mod common;
/// Workload files: the shipped examples parse, every error names its path and line.
mod config;
/// Runs against an in-process test leaf: every outcome recorded, trailers in columns, shutdown loses nothing.
mod run;
/// Seeds: same seed, same schedule and bodies, byte for byte; different seed, different.
mod schedule;
/// Trace workloads (Azure 2019/2021): parsing, every file error with its line, selection, windows, seeded schedules, inter-arrival times.
mod trace;
/// `warmup:` on the real platform: instances ready before time 0, warm-up calls marked, a clear failure.
mod warmup;
/// The call writer under a locked run database: retries lose no row; giving up stops the sending.
mod writer;
