//! The top-level fields (`leaf_address`, `max_duration`, `timeout`,
//! `max_in_flight`, `max_scheduled_calls`), and their repetitions under
//! `workload:`, which must agree.

use std::time::Duration;

use super::defaults::DEFAULT_CALL_TIMEOUT;
use super::errors::{Problem, Problems};
use super::raw::{RawPhases, Scalar};
use super::scalar::{nonzero, positive_duration, positive_usize, seconds_or_duration};
use crate::yaml_path::YamlPath;

/// The top-level fields as written.
pub(super) struct RawTopLevel {
    pub(super) leaf_address: Option<String>,
    pub(super) max_duration: Option<Scalar>,
    pub(super) timeout: Option<Scalar>,
    pub(super) max_in_flight: Option<i64>,
    pub(super) max_scheduled_calls: Option<i64>,
}

/// The top-level fields, each `None` when its problem was recorded.
pub(super) struct TopLevel {
    pub(super) leaf_address: String,
    pub(super) max_duration: Option<Duration>,
    pub(super) call_timeout: Option<Duration>,
    pub(super) max_in_flight: Option<usize>,
    pub(super) max_scheduled_calls: Option<u64>,
}

pub(super) fn validate(p: &mut Problems<'_>, root: &YamlPath, raw: RawTopLevel) -> TopLevel {
    let RawTopLevel { leaf_address, max_duration, timeout, max_in_flight, max_scheduled_calls } = raw;
    let leaf_address = match leaf_address {
        Some(a) if a.trim().is_empty() => {
            p.push(&root.key("leaf_address"), Problem::Missing);
            String::new()
        }
        Some(a) => a.trim().to_string(),
        None => hyperfake_core::defaults::LEAF_ADDRESS.to_string(),
    };
    let max_duration = match &max_duration {
        None => {
            p.push(&root.key("max_duration"), Problem::Missing);
            None
        }
        Some(s) => p.check(&root.key("max_duration"), positive_duration(s)),
    };
    let call_timeout = match &timeout {
        None => Some(DEFAULT_CALL_TIMEOUT),
        Some(s) => p.check(&root.key("timeout"), seconds_or_duration(s).and_then(nonzero)),
    };
    let max_in_flight = match max_in_flight {
        None => None,
        Some(n) => p.check(&root.key("max_in_flight"), positive_usize(n)).map(Some).unwrap_or(None),
    };
    let max_scheduled_calls = match max_scheduled_calls {
        None => Some(crate::schedule::DEFAULT_MAX_SCHEDULED_CALLS),
        Some(n) => p
            .check(&root.key("max_scheduled_calls"), positive_usize(n))
            .map(|n| u64::try_from(n).unwrap_or(u64::MAX)),
    };
    TopLevel { leaf_address, max_duration, call_timeout, max_in_flight, max_scheduled_calls }
}

/// `workload:` may repeat the top-level fields (HyperFaaS's struct has
/// them); they must agree rather than silently win.
pub(super) fn check_repeated(p: &mut Problems<'_>, wpath: &YamlPath, raw: &RawPhases, top: &TopLevel) {
    let RawPhases { leaf_address, max_duration, timeout, phases: _ } = raw;
    if let Some(addr) = leaf_address
        && addr.trim() != top.leaf_address
    {
        p.push(
            &wpath.key("leaf_address"),
            Problem::Conflict(format!("differs from leaf_address ({})", top.leaf_address)),
        );
    }
    if let Some(s) = max_duration
        && let (Some(inner), Some(outer)) =
            (p.check(&wpath.key("max_duration"), positive_duration(s)), top.max_duration)
        && inner != outer
    {
        p.push(&wpath.key("max_duration"), Problem::Conflict("differs from max_duration".into()));
    }
    if let Some(s) = timeout
        && let (Some(inner), Some(outer)) =
            (p.check(&wpath.key("timeout"), seconds_or_duration(s)), top.call_timeout)
        && inner != outer
    {
        p.push(&wpath.key("timeout"), Problem::Conflict("differs from timeout".into()));
    }
}
