//! How faithful is the simulation? Reads two run databases of the same seeded
//! workload, one from the real platform and one from the fake, and compares
//! them per function: latency percentiles and their ratio, the KS distance
//! between the latency distributions, throughput, error rates and instance
//! counts over time, where the latency goes (leaf, hops, worker queue and
//! overhead, handler, return path), and why a function misses the targets.

pub mod data;
pub mod decompose;
pub mod plots;
pub mod reference;
pub mod report;
pub mod stats;

pub use data::{ImageCalls, RunData};
pub use decompose::{CallTimings, Decomposition, DecompositionSummary, Part};
pub use reference::{RealVsReal, Reference};
pub use report::{Comparison, ImageComparison, Miss, SampleRelation, Side};
