//! The human-readable schedule summary `loadgen validate` prints.

use std::fmt::Write;

use crate::config::{PhaseKind, Workload};
use crate::duration::format as dur;
use crate::schedule::Schedule;

/// A few lines per phase and per function; nothing is sent.
pub fn render(workload: &Workload, schedule: &Schedule) -> String {
    let summary = schedule.summary();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "valid: leaf {}, seed {}, max_duration {}, call timeout {}, phases {} ({})",
        workload.leaf_address,
        workload.seed,
        dur(workload.max_duration),
        dur(workload.call_timeout),
        schedule.phases.len(),
        if schedule.generated { "generated from patterns" } else { "from the file" },
    );
    let _ = writeln!(
        out,
        "\n{:<28} {:<9} {:>8} {:>8} {:>16} {:>8}  image",
        "phase", "type", "start", "length", "rps", "calls"
    );
    for (phase, calls) in schedule.phases.iter().zip(&summary.calls_per_phase) {
        let rps = match phase.kind {
            PhaseKind::Constant => phase.start_rps.to_string(),
            PhaseKind::Variable => format!("{}→{} by {}", phase.start_rps, phase.end_rps, phase.step),
            PhaseKind::Trace => "per trace".to_string(),
        };
        let kind = match phase.kind {
            PhaseKind::Constant => "constant",
            PhaseKind::Variable => "variable",
            PhaseKind::Trace => "trace",
        };
        let _ = writeln!(
            out,
            "{:<28} {:<9} {:>8} {:>8} {:>16} {:>8}  {}",
            phase.name,
            kind,
            dur(phase.start_time),
            dur(phase.duration),
            rps,
            calls,
            phase.image_tag
        );
    }
    let _ = writeln!(out, "\ncalls per function:");
    for (image, calls) in &summary.calls_per_image {
        let spec = &workload.functions[&image.as_str().into()];
        let _ = writeln!(
            out,
            "  {image}: {calls} calls, memory {}, provider {}",
            spec.config.memory,
            serde_json::to_string(&spec.provider).unwrap_or_default()
        );
    }
    let _ = writeln!(
        out,
        "\ntotal {} calls, peak {} calls in one second, last call at {:.3}s",
        summary.calls,
        summary.peak_calls_per_second,
        summary.last_call_at.as_secs_f64()
    );
    if summary.past_max_duration > 0 {
        let _ = writeln!(
            out,
            "{} calls fall at or after max_duration and will not be sent",
            summary.past_max_duration
        );
    }
    out
}
