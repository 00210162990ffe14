//! Fake worker integration tests: the real worker service over the simulated
//! runtime, served on 127.0.0.1:0, with model files written to a TempDir.
#![allow(unreachable_pub)]

mod common;

/// The worker's contract, one suite against the real and the fake worker.
mod contract;
/// Model inputs follow docs/units.md; Metrics report simulated usage.
mod features;
/// Payload features, predicted response size, worker overhead, seeded spread
/// sampling, `--mean`, cold starts from the model (issue 10).
mod fidelity;
/// A real leaf in front of fake workers only.
mod leaf;
/// Lifecycle beyond the contract: a busy instance does not expire.
mod lifecycle;
/// Model loading errors and hot reload under load.
mod models;
/// TCP_NODELAY on the fake worker's accepted connections.
mod nodelay;
/// Runtime units: a model predicting 50 ms sleeps 50 ms (JSON ns, old JSON ms, ONNX).
mod units;
/// `--workers N`: many simulated workers in one process.
mod workers;
