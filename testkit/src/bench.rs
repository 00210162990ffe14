//! Where a benchmark ran, for the header of its report: the machine and how
//! busy it was (the build profile is `hyperfake_core::build::profile`).

pub use hyperfake_core::build::{load_average, machine};
