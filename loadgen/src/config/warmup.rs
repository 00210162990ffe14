//! `warmup:`: how many ready instances each function gets before the
//! schedule's time 0, and how long bringing them up may take.
//!
//! ```yaml
//! warmup:
//!   instances: 2      # per function (each copy of each image), or `auto`
//!   timeout: 120s     # default DEFAULT_WARMUP_TIMEOUT
//!   window: 60s       # with `auto` only: the start of the schedule sized for
//! ```

use std::time::Duration;

use super::defaults::{DEFAULT_WARMUP_TIMEOUT, DEFAULT_WARMUP_WINDOW, MAX_WARMUP_INSTANCES};
use super::errors::{Problem, Problems};
use super::raw::{RawWarmup, Scalar};
use super::scalar::positive_duration;
use super::validated::{Warmup, WarmupInstances};
use crate::yaml_path::YamlPath;

/// The word that asks for the count the schedule's start needs.
pub(super) const AUTO: &str = "auto";

/// Validates `warmup:` at `path`. `trace_minute` is the trace's minute length
/// when the file replays one (the default `auto` window). `None` when a
/// problem was recorded.
pub(super) fn validate(
    p: &mut Problems<'_>,
    path: &YamlPath,
    raw: RawWarmup,
    trace_minute: Option<Duration>,
) -> Option<Warmup> {
    let RawWarmup { instances, timeout, window } = raw;
    let timeout = match &timeout {
        None => Some(DEFAULT_WARMUP_TIMEOUT),
        Some(s) => p.check(&path.key("timeout"), positive_duration(s)),
    };
    let window = match &window {
        None => None,
        Some(s) => p.check(&path.key("window"), positive_duration(s)).map(Some).unwrap_or(None),
    };
    let instances = match &instances {
        Scalar::Text(t) if t.trim() == AUTO => {
            Some(WarmupInstances::Auto { window: window.or(trace_minute).unwrap_or(DEFAULT_WARMUP_WINDOW) })
        }
        other => {
            if window.is_some() {
                p.push(&path.key("window"), Problem::Conflict(format!("only used with instances: {AUTO}")));
            }
            p.check(&path.key("instances"), instance_count(other)).map(WarmupInstances::Each)
        }
    };
    Some(Warmup { instances: instances?, timeout: timeout? })
}

/// A count of instances, 1..=[`MAX_WARMUP_INSTANCES`].
fn instance_count(s: &Scalar) -> Result<u32, Problem> {
    let expected = || format!("1..={MAX_WARMUP_INSTANCES} instances per function, or {AUTO}");
    match s {
        Scalar::Int(n) if *n < 0 => Err(Problem::Negative(*n)),
        Scalar::Int(n) => u32::try_from(*n)
            .ok()
            .filter(|n| (1..=MAX_WARMUP_INSTANCES).contains(n))
            .ok_or_else(|| Problem::OutOfRange { value: n.to_string(), expected: expected() }),
        other => Err(Problem::OutOfRange { value: other.to_string(), expected: expected() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Workload;

    const BASE: &str = "max_duration: 10s
workload:
  phases:
    - {name: p, type: constant, start_time: 0s, duration: 5s, start_rps: 2, image_tag: hyperfaas-echo:latest}
function_config:
  hyperfaas-echo:latest: {memory: 64MB, max_concurrency: 4}
data_providers:
  hyperfaas-echo:latest: {type: echo, min_body_size: 16, max_body_size: 64}
";

    fn with(warmup: &str) -> Result<Workload, crate::config::WorkloadErrors> {
        Workload::from_yaml(&format!("{BASE}{warmup}"))
    }

    #[test]
    fn absent_means_cold() {
        assert_eq!(with("").unwrap().warmup, None);
    }

    #[test]
    fn a_count_or_auto_with_defaults() {
        let w = with("warmup: {instances: 3}\n").unwrap().warmup.unwrap();
        assert_eq!(w, Warmup { instances: WarmupInstances::Each(3), timeout: DEFAULT_WARMUP_TIMEOUT });
        let w = with("warmup: {instances: auto, timeout: 30s, window: 10s}\n").unwrap().warmup.unwrap();
        assert_eq!(
            w,
            Warmup {
                instances: WarmupInstances::Auto { window: Duration::from_secs(10) },
                timeout: Duration::from_secs(30)
            }
        );
        let w = with("warmup: {instances: auto}\n").unwrap().warmup.unwrap();
        assert_eq!(w.instances, WarmupInstances::Auto { window: DEFAULT_WARMUP_WINDOW });
    }

    #[test]
    fn every_bad_field_is_named_with_its_line() {
        let cases: [(&str, &str, &str); 7] = [
            (
                "warmup: {instances: 0}\n",
                "warmup.instances",
                "0 is out of range: 1..=64 instances per function, or auto",
            ),
            ("warmup: {instances: 65}\n", "warmup.instances", "out of range"),
            ("warmup: {instances: -2}\n", "warmup.instances", "must not be negative"),
            ("warmup: {instances: many}\n", "warmup.instances", "\"many\" is out of range"),
            ("warmup: {instances: 2, timeout: 0s}\n", "warmup.timeout", "must be longer than 0"),
            ("warmup: {instances: 2, window: 5s}\n", "warmup.window", "only used with instances: auto"),
            ("warmup: {instances: 2, ready: true}\n", "warmup.ready", "unknown field"),
        ];
        for (yaml, path, message) in cases {
            let errors = with(yaml).unwrap_err();
            let error = errors.at(path).unwrap_or_else(|| panic!("{yaml}: no error at {path}: {errors}"));
            assert!(error.to_string().contains(message), "{yaml}: {error}");
            if path != "warmup.ready" {
                assert_eq!(error.line, Some(BASE.lines().count() + 1), "{yaml}: {error}");
            }
        }
    }
}
