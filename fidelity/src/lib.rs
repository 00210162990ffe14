//! How faithful is the simulation? Reads two run databases of the same seeded
//! workload, one from the real platform and one from the fake, and compares
//! them per function: latency percentiles and their ratio, the KS distance
//! between the latency distributions, throughput, error rates and instance
//! counts over time.

pub mod data;
pub mod plots;
pub mod report;
pub mod stats;

pub use data::{ImageCalls, RunData};
pub use report::{Comparison, ImageComparison, Side};
