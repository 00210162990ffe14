//! The workload file.
//!
//! Two shapes: [`RawWorkload`] ([`raw`]) is what the user wrote (serde,
//! unknown keys refused), [`Workload`] ([`validated`]) is what the generator
//! runs on, made by the one fallible function [`Workload::from_raw`].
//! [`Workload::from_yaml`] does both and returns every problem at once
//! ([`WorkloadErrors`]), each naming its YAML path and line.
//!
//! Validation has one file per section of the file: `top_level` fields,
//! then the sources of calls (`workload.phases` in `phases`, `patterns:`
//! in `patterns`, `trace:` in `traces`), then the images they call
//! (`function_config:` in `functions`, `data_providers:` in
//! `data_providers`), and the warm-up before time 0 (`warmup:` in
//! `warmup`); `scalar` reads single values for all of them and
//! `workload` runs them in order.
//!
//! The format is HyperFaaS's load-generator format, accepted unchanged; the
//! extensions are documented in `configs/README.md`.

mod data_providers;
pub mod defaults;
pub mod errors;
mod functions;
mod patterns;
mod phases;
pub mod raw;
mod scalar;
mod top_level;
mod traces;
pub mod validated;
mod warmup;
mod workload;

pub use defaults::*;
pub use errors::{Problem, WorkloadError, WorkloadErrors};
pub use raw::{
    RawCpu, RawDataProvider, RawFunctionConfig, RawPattern, RawPatternParameters, RawPatterns, RawPhase,
    RawPhases, RawRange, RawWarmup, RawWorkload, Scalar,
};
pub use validated::{
    Arrival, DataProvider, FunctionSpec, Pattern, Phase, PhaseKind, PhaseSource, ProviderKind, Warmup,
    WarmupInstances, Workload,
};

#[cfg(test)]
mod tests;
