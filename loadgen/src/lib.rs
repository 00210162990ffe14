//! An open-loop load generator for a HyperFaaS-style leaf.
//!
//! A workload file ([`config`]) is resolved into a seeded list of calls
//! ([`schedule`]) with their request bodies ([`payload`]); the calls are sent at
//! their scheduled times whether or not earlier ones returned ([`sender`]), and
//! every outcome, with all server timing metadata, goes to a SQLite run
//! database ([`record`]). [`run`] ties these together; [`bench`] measures the
//! generator itself against an in-process no-op leaf.
//!
//! ```
//! use loadgen::{Schedule, Workload};
//! let yaml = "
//! max_duration: 10s
//! workload:
//!   phases:
//!     - {name: warmup, type: constant, start_time: 0s, duration: 5s, start_rps: 2, image_tag: hyperfaas-echo:latest}
//! function_config:
//!   hyperfaas-echo:latest: {memory: 256MB, cpu: {period: 100000, quota: 50000}}
//! data_providers:
//!   hyperfaas-echo:latest: {type: echo, min_body_size: 16, max_body_size: 64}
//! ";
//! let workload = Workload::from_yaml(yaml).unwrap();
//! let schedule = Schedule::resolve(&workload);
//! assert_eq!(schedule.calls.len(), 10);
//! assert_eq!(schedule.to_json(), Schedule::resolve(&workload).to_json());
//! ```

pub mod bench;
pub mod bench_trace;
pub mod config;
pub mod duration;
pub mod payload;
pub mod record;
pub mod run;
pub mod schedule;
pub mod sender;
pub mod summary;
pub mod trace;
pub mod warmup;
pub mod yaml_path;

pub use config::{Problem, Workload, WorkloadError, WorkloadErrors};
pub use payload::Payloads;
pub use schedule::{Schedule, ScheduledCall};
pub use sender::Stop;
