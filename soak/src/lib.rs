//! The soak test (issue 14, "Measured" part 3): a long open-loop run against
//! the fake platform with scale-to-zero cycles, and what it must show — no
//! call lost, latency that does not drift, processes that do not grow, and
//! no instance that outlives its idle timeout.
//!
//! `scripts/soak.sh` drives the run; this crate is its tools:
//!
//! - [`workload`]: repeats a one-cycle workload (`configs/soak.yaml`) N times;
//! - [`procfs`] and [`samples`]: RSS and open file descriptors of every
//!   process of the platform, and the load average, sampled every few seconds;
//! - [`probe`]: what the leaf, the load-balancer node and the workers think
//!   exists once every idle timeout has passed, next to what the workers'
//!   runtimes really hold;
//! - [`calls`], [`instances`] and [`fit`]: the run database read back (calls
//!   due / sent / recorded, errors, latency per minute, instance lifecycles)
//!   and the least-squares slopes;
//! - [`report`]: all of it as `soak.json` and `soak.md`.
//!
//! ```
//! // A slope in units per minute from (minutes, value) points.
//! let fit = soak::fit::Line::fit(&[(0.0, 10.0), (1.0, 12.0), (2.0, 14.0)]).unwrap();
//! assert!((fit.slope - 2.0).abs() < 1e-12);
//! ```

pub mod calls;
pub mod fit;
pub mod instances;
pub mod probe;
pub mod procfs;
pub mod report;
pub mod samples;
pub mod workload;
