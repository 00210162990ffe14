//! Trace workloads: replay the Azure Functions traces (2019 per-minute
//! counts, 2021 per-invocation rows) as calls, beside or instead of phases.
//!
//! The `trace:` section of a workload file ([`RawTrace`]) is validated into a
//! [`TraceSpec`] with the rest of the file; then [`Trace::load`] reads the
//! files once, streaming them line by line (a day of the full 2019 trace is
//! never held whole), selects the functions ([`select`]) and keeps only their
//! per-minute counts in the window and their duration and memory
//! distributions. Every problem names the file and line. The schedule turns
//! each selected function into one phase (named `<name>/<app>/<function>`, so
//! `calls.phase` says which trace function a call replays) and its counts
//! into calls ([`arrivals`]), each carrying the duration and memory the trace
//! gives for it in its JSON payload.
//!
//! Formats ([`azure2019`], [`azure2021`]) match the public files' column names.

pub mod arrivals;
pub mod azure2019;
pub mod azure2021;
pub(crate) mod csv;
pub mod error;
pub mod select;

use std::path::PathBuf;
use std::time::Duration;

use hyperfake_core::ImageTag;
use serde::{Deserialize, Serialize};

pub use arrivals::TraceArrival;
pub use error::{TraceError, TraceErrorKind};

use crate::config::{Arrival, Phase, PhaseKind, Scalar};
use crate::schedule::{rng, stream};

/// Minutes in one file of the 2019 trace (columns `1` .. `1440`).
pub const MINUTES_PER_DAY: u32 = 1440;
/// The length of a trace minute when the file gives none: real time.
pub const DEFAULT_MINUTE_LENGTH: Duration = Duration::from_secs(60);
/// Phase name prefix when the file gives no `name`.
pub const DEFAULT_NAME: &str = "trace";

/// Which trace the files are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceFormat {
    /// `invocations_per_function_md.anon.d*.csv` + `function_durations_percentiles.anon.d*.csv`
    /// (+ optional `app_memory_percentiles.anon.d*.csv`).
    #[serde(rename = "azure_2019")]
    Azure2019,
    /// `AzureFunctionsInvocationTraceForTwoWeeksJan2021`: `app,func,end_timestamp,duration`.
    #[serde(rename = "azure_2021")]
    Azure2021,
}

/// `trace:` as written. Unknown keys are errors.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrace {
    pub format: TraceFormat,
    pub invocations: String,
    pub durations: Option<String>,
    pub memory: Option<String>,
    pub image_tag: String,
    pub sample: Option<i64>,
    pub hashes: Option<Vec<String>>,
    pub first_minute: Option<i64>,
    pub minutes: Option<i64>,
    pub minute_length: Option<Scalar>,
    pub rate_scale: Option<f64>,
    pub arrival: Option<TraceArrival>,
    pub shift: Option<bool>,
    pub name: Option<String>,
}

impl RawTrace {
    /// Takes relative file paths from `dir`.
    pub fn rebase(&mut self, dir: &std::path::Path) {
        for file in
            [Some(&mut self.invocations), self.durations.as_mut(), self.memory.as_mut()].into_iter().flatten()
        {
            if !file.trim().is_empty() && std::path::Path::new(file.trim()).is_relative() {
                *file = dir.join(file.trim()).display().to_string();
            }
        }
    }
}

/// Which functions to replay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// A seeded sample of this many, stratified on invocations and duration.
    Sample(u32),
    /// The functions with these hashes (`HashFunction` / `func`, or `app/function`).
    Hashes(Vec<String>),
}

/// A validated `trace:` section; no file read yet.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TraceSpec {
    pub format: TraceFormat,
    pub invocations: PathBuf,
    pub durations: Option<PathBuf>,
    pub memory: Option<PathBuf>,
    pub image_tag: ImageTag,
    pub selection: Selection,
    /// First trace minute replayed, 1-based (the 2019 files' column name).
    pub first_minute: u32,
    /// Minutes replayed; `None`: to the end of the file.
    pub minutes: Option<u32>,
    /// How long one trace minute lasts in the run (time compression).
    #[serde(serialize_with = "as_go_duration")]
    pub minute_length: Duration,
    pub rate_scale: f64,
    pub arrival: TraceArrival,
    pub shift: bool,
    pub name: String,
}

/// A distribution of a per-call quantity (duration in ms, memory in MiB).
#[derive(Clone, Debug, PartialEq)]
pub enum WorkDist {
    /// `(percentile, value)` points, sorted by both.
    Percentiles(Vec<(f64, f64)>),
    /// Recorded values, drawn uniformly (never empty).
    Samples(Vec<f64>),
}

/// One selected trace function.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceFunction {
    /// `HashOwner` (2019 only).
    pub owner: Option<String>,
    pub app: String,
    pub function: String,
    /// `Trigger` (2019 only).
    pub trigger: Option<String>,
    /// Its line in the invocations file (the first, for 2021).
    pub line: u64,
    /// `(minute from the window's start, invocations)`, the non-zero ones, ascending.
    pub counts: Vec<(u32, u32)>,
    /// Duration in ms.
    pub duration: WorkDist,
    /// Memory in MiB, when the trace gives it.
    pub memory: Option<WorkDist>,
}

/// A loaded trace: the spec and the selected functions, in file order.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    pub spec: TraceSpec,
    pub functions: Vec<TraceFunction>,
    /// Minutes in the window.
    pub minutes: u32,
    /// Functions in the invocations file, and those a sample could take.
    pub functions_in_file: u64,
    pub candidates: u64,
}

impl Trace {
    /// Reads the trace files and selects the functions. The one place trace
    /// files are read; the same files and seed give the same trace.
    pub fn load(spec: TraceSpec, seed: u64) -> Result<Trace, TraceError> {
        let mut selection_rng = rng(seed, stream::TRACE_SELECTION);
        match spec.format {
            TraceFormat::Azure2019 => azure2019::load(spec, &mut selection_rng),
            TraceFormat::Azure2021 => azure2021::load(spec, &mut selection_rng),
        }
    }

    /// Most calls the trace can schedule: every scaled count rounded up.
    pub fn planned_calls(&self) -> u64 {
        let scale = self.spec.rate_scale;
        self.functions
            .iter()
            .flat_map(|f| &f.counts)
            .map(|&(_, c)| arrivals::to_u64((f64::from(c) * scale).ceil()))
            .fold(0u64, u64::saturating_add)
    }

    /// One phase per selected function, in order.
    pub fn phases(&self) -> Vec<Phase> {
        let duration = self.spec.minute_length.saturating_mul(self.minutes);
        self.functions
            .iter()
            .map(|f| Phase {
                name: format!("{}/{}/{}", self.spec.name, f.app, f.function),
                kind: PhaseKind::Trace,
                start_time: Duration::ZERO,
                duration,
                start_rps: 0,
                end_rps: 0,
                step: 0,
                image_tag: self.spec.image_tag.clone(),
                arrival: match self.spec.arrival {
                    TraceArrival::Exponential => Arrival::Poisson,
                    TraceArrival::Uniform | TraceArrival::Equidistant => Arrival::Uniform,
                },
            })
            .collect()
    }

    /// The YAML key under `trace` that names the file of `error`.
    pub fn key_of(spec: &TraceSpec, error: &TraceError) -> &'static str {
        if error.line.is_none() && matches!(error.kind, TraceErrorKind::HashNotFound(_)) {
            "hashes"
        } else if spec.durations.as_ref() == Some(&error.path) {
            "durations"
        } else if spec.memory.as_ref() == Some(&error.path) {
            "memory"
        } else {
            "invocations"
        }
    }
}

/// The window `[first, last]` of 1-based minutes, clipped to the file's
/// `available` minutes; an error when it starts beyond them.
pub(crate) fn window(spec: &TraceSpec, available: u32) -> Result<(u32, u32), TraceErrorKind> {
    let first = spec.first_minute;
    let last = match spec.minutes {
        Some(n) => first.saturating_add(n - 1),
        None => available.max(first),
    };
    if first > available || last > available {
        return Err(TraceErrorKind::Window { first, last, available });
    }
    Ok((first, last))
}

fn as_go_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::duration::format(*d))
}
