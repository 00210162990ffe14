//! The fault-injection suite (issue 14): each module injects one fault into
//! the real platform (the `database`, `worker` and `leaf` binaries as
//! processes, function containers on the real Docker engine) and records its
//! figures and checks ([`report`]); with `HYPERFAKE_FAULTS_REPORT=<dir>` they
//! are merged into `<dir>/faults.{json,md}` (`bench-results/`).
//!
//! Every case runs by default except the long ones and the one that restarts
//! a Docker engine (a second engine it starts itself), which are `#[ignore]`d:
//! run them with `--include-ignored`. The packet-loss and full-disk cases
//! need root (iptables, mount) and undo their fault on drop.

mod daemon_restart;
mod database_restart;
mod isolated_worker;
mod killed_container;
mod list_at_scale;
mod packet_loss;
mod paused_container;
mod payload_limit;
mod report;
mod run_database;
mod stopped_worker;
mod support;
