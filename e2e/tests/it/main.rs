//! End-to-end tests of the data pipeline on the real platform.
//!
//! - `local_run`: an in-process platform (database, two Docker workers, leaf),
//!   the collector and load generator libraries, then processing; the training
//!   rows must pass `processing::check` (the invariants of `docs/units.md`).
//! - `two_host`: `scripts/test-two-host.sh`, the pipeline script run from this
//!   host against the containerized platform on its own Docker network.

mod local_run;
mod two_host;
