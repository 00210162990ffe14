//! What a processed run looks like, per image: calls by status, training rows,
//! rows dropped and why, and whether the run was overloaded.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// Why a call is not a training row. The first that applies is recorded, in
/// this order, so the reasons partition the calls that are not rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// Status other than OK, or the handler returned an error.
    Failed,
    /// No instance id, or one without a successful START in `instance_events`.
    UnknownInstance,
    /// No handler time (`function_handler_time_ns` NULL).
    NoRuntime,
    /// Function CPU could not be computed (interval not bracketed by CPU samples).
    NoFunctionCpu,
    /// No memory sample in or around the call's interval.
    NoFunctionRam,
    /// Handler time longer than the client-measured latency: a broken measurement.
    RuntimeExceedsLatency,
}

impl DropReason {
    pub const ALL: [DropReason; 6] = [
        DropReason::Failed,
        DropReason::UnknownInstance,
        DropReason::NoRuntime,
        DropReason::NoFunctionCpu,
        DropReason::NoFunctionRam,
        DropReason::RuntimeExceedsLatency,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Failed => "failed",
            DropReason::UnknownInstance => "unknown_instance",
            DropReason::NoRuntime => "no_runtime",
            DropReason::NoFunctionCpu => "no_function_cpu",
            DropReason::NoFunctionRam => "no_function_ram",
            DropReason::RuntimeExceedsLatency => "runtime_exceeds_latency",
        }
    }

    pub fn parse(s: &str) -> Option<DropReason> {
        DropReason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// One image's summary (a `run_summary` row).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ImageSummary {
    pub image_tag: String,
    pub calls: u64,
    /// `calls.status` → count (OK, gRPC code names, NOT_SENT).
    pub calls_by_status: BTreeMap<String, u64>,
    /// OK calls whose handler returned an error.
    pub function_errors: u64,
    pub training_rows: u64,
    /// Training rows with a NULL input (the trainer drops and counts them).
    pub training_rows_null_inputs: u64,
    pub dropped: BTreeMap<DropReason, u64>,
    /// Median `call_started − call_queued` of successful calls.
    pub median_queue_time_ns: Option<i64>,
    /// Median handler time of successful calls.
    pub median_runtime_ns: Option<i64>,
    /// Median queueing above [`crate::QUEUEING_FLAG_RATIO`] of the median runtime.
    pub overloaded: bool,
    /// The function's CPU limit from `functions.config_json`, cores.
    pub cpu_quota_cores: Option<f64>,
    /// Per declared payload feature (by name): training rows whose value is
    /// NULL (the payload lacked the field). Empty when the image declares none.
    pub payload_feature_nulls: BTreeMap<String, u64>,
}

impl ImageSummary {
    pub fn calls_ok(&self) -> u64 {
        self.calls_by_status.get(rundb::CallStatus::Ok.as_str()).copied().unwrap_or(0)
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }
}

/// One run's summary.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub images: Vec<ImageSummary>,
    /// Collector tables missing from the file.
    pub missing_tables: Vec<&'static str>,
}

impl RunSummary {
    pub fn calls(&self) -> u64 {
        self.images.iter().map(|i| i.calls).sum()
    }

    pub fn training_rows(&self) -> u64 {
        self.images.iter().map(|i| i.training_rows).sum()
    }
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "run {}: {} calls, {} training rows", self.run_id, self.calls(), self.training_rows())?;
        if !self.missing_tables.is_empty() {
            writeln!(f, "  missing collector tables (features NULL): {}", self.missing_tables.join(", "))?;
        }
        for img in &self.images {
            let statuses: Vec<String> = img.calls_by_status.iter().map(|(s, n)| format!("{s} {n}")).collect();
            writeln!(f, "  {}: {} calls ({})", img.image_tag, img.calls, statuses.join(", "))?;
            let dropped: Vec<String> = img
                .dropped
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(r, n)| format!("{} {n}", r.as_str()))
                .collect();
            writeln!(
                f,
                "    training rows {} ({} with a NULL input); dropped {}{}",
                img.training_rows,
                img.training_rows_null_inputs,
                img.dropped_total(),
                if dropped.is_empty() { String::new() } else { format!(": {}", dropped.join(", ")) },
            )?;
            if !img.payload_feature_nulls.is_empty() {
                let nulls: Vec<String> =
                    img.payload_feature_nulls.iter().map(|(name, n)| format!("{name} {n}")).collect();
                writeln!(f, "    NULL payload features in training rows: {}", nulls.join(", "))?;
            }
            let ms = |v: Option<i64>| v.map_or("-".to_owned(), |ns| format!("{:.3} ms", ns as f64 / 1e6));
            writeln!(
                f,
                "    median queueing {} vs runtime {}{}",
                ms(img.median_queue_time_ns),
                ms(img.median_runtime_ns),
                if img.overloaded { "  OVERLOADED: runtimes measured under queueing" } else { "" },
            )?;
        }
        Ok(())
    }
}
