//! The soak tools' integration tests: one binary, one module per area.

/// The report from a run database with known calls, events, samples and probe.
mod report;
/// The sampler against real processes: readings while they run, `gone` once they exit.
mod sampler;
/// Repeating configs/soak.yaml: N shifted cycles that loadgen accepts; bad templates refused.
mod workload;
