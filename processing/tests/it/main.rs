//! Integration tests of the processing crate: one binary, one module per area.

mod common;

/// `process check` on good and bad run databases.
mod check;
/// The `process` command end to end.
mod cli;
/// Known answers on tiny hand-built run databases, one per definition.
mod definitions;
/// Payload feature columns, extra targets and cold starts.
mod extras;
/// `process import-huawei` on the Huawei 2025 trace fixture.
mod huawei;
/// Invariants on a larger synthetic run.
mod invariants;
/// Plot files and the HTML index.
mod plots;
/// Plots of a trace replay: calls per trace minute, inter-arrival times.
mod trace_plots;
/// Warm-up calls: recorded, left out of training rows and summaries.
mod warmup;
