//! End-to-end tests of the data pipeline on the real platform.
//!
//! - `local_run`: an in-process platform (database, two Docker workers, leaf),
//!   the collector and load generator libraries, then processing; the training
//!   rows must pass `processing::check` (the invariants of `docs/units.md`).
//! - `two_host`: `scripts/test-two-host.sh`, the pipeline script run from this
//!   host against the containerized platform on its own Docker network.
//! - `swarm`: `scripts/test-swarm.sh`, the simulated cluster as a stack on a
//!   two-node Docker Swarm of two private engines on this machine.

mod faults;
mod local_run;
mod swarm;
mod two_host;
