//! The workload file: `Workload::from_yaml` (parse + validate, every error
//! formatted with its path and line), then `Schedule::resolve` and its JSON.
//!
//! Bound: a workload is resolved only when its phases plan at most
//! `MAX_CALLS` calls (`schedule::planned_calls`, the count the validator
//! itself checks against `max_scheduled_calls`), so one exec stays fast. Every
//! other step runs on whatever the validator accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loadgen::schedule::{planned_calls, resolve_phases};
use loadgen::{Schedule, Workload};

const MAX_CALLS: u64 = 10_000;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let workload = match Workload::from_yaml(text) {
        Ok(w) => w,
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error list is never empty");
            let _ = errors.to_string();
            return;
        }
    };
    let (phases, _) = resolve_phases(&workload.phases, workload.seed, workload.max_duration);
    let planned = phases.iter().fold(0u64, |n, p| n.saturating_add(planned_calls(p, workload.max_duration)));
    if planned > MAX_CALLS {
        return;
    }
    let schedule = Schedule::resolve(&workload);
    let max_ns = u64::try_from(workload.max_duration.as_nanos()).unwrap_or(u64::MAX);
    for pair in schedule.calls.windows(2) {
        assert!(pair[0].offset_ns <= pair[1].offset_ns, "calls are in send order");
    }
    for call in &schedule.calls {
        assert!(call.offset_ns < max_ns, "no call at or after max_duration");
        assert!(workload.functions.contains_key(&call.image_tag), "every call's image has a spec");
    }
    let _ = schedule.summary();
    let _ = schedule.to_json_without_calls();
});
