//! What the generator runs on: the validated workload, made only by
//! [`Workload::from_raw`].

use std::collections::BTreeMap;
use std::time::Duration;

use hyperfake_core::payload::PayloadFeatures;
use hyperfake_core::{Bytes, FunctionConfig, ImageTag};
use serde::{Deserialize, Serialize};

/// `constant`: `start_rps` every second. `variable`: starts at `start_rps` and
/// moves towards `end_rps` by `step` every second, then holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseKind {
    Constant,
    Variable,
    /// One function of a trace (`trace:`); never written in a file.
    #[serde(skip_deserializing)]
    Trace,
}

/// How the calls of one second are placed within it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    /// Evenly spaced, `1/rate` apart (the default).
    #[default]
    Uniform,
    /// A Poisson process with the second's rate: exponential gaps, so the
    /// count per second varies around the rate.
    Poisson,
    /// All of a second's calls at its start, as the original generator did.
    Burst,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Echo,
    Generic,
    BfsJson,
    ThumbnailerJson,
}

/// One validated phase.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Phase {
    pub name: String,
    pub kind: PhaseKind,
    #[serde(with = "duration_text")]
    pub start_time: Duration,
    #[serde(with = "duration_text")]
    pub duration: Duration,
    pub start_rps: u32,
    pub end_rps: u32,
    /// Rate change per second, towards `end_rps` (0 for constant phases).
    pub step: u32,
    pub image_tag: ImageTag,
    pub arrival: Arrival,
}

/// A validated pattern, expanded into phases by `schedule::generate_phases`.
#[derive(Clone, Debug, PartialEq)]
pub struct Pattern {
    pub name: String,
    pub image_tag: ImageTag,
    pub phase_count: (u32, u32),
    pub constant_likelihood: f64,
    pub start_rps: (u32, u32),
    pub end_rps: (u32, u32),
    pub step: (u32, u32),
    pub arrival: Arrival,
}

/// Where the phases come from.
#[derive(Clone, Debug, PartialEq)]
pub enum PhaseSource {
    Manual(Vec<Phase>),
    Generated(Vec<Pattern>),
}

/// What the request bodies of one function look like.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DataProvider {
    /// Random bytes, size drawn uniformly from `min..=max`.
    Echo { min: Bytes, max: Bytes },
    /// Same as echo, for functions that ignore their input.
    Generic { min: Bytes, max: Bytes },
    /// `{"Size":N,"Seed":S}` with `N` nodes drawn from `min_nodes..=max_nodes`.
    BfsJson { min_nodes: u32, max_nodes: u32 },
    /// `{"image":"<base64 JPEG>","width":W,"height":H}`.
    ThumbnailerJson { sources: Vec<(u32, u32)>, width: (u32, u32), height: (u32, u32), jpeg_quality: u8 },
}

/// Everything needed to create and call the functions of one image.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionSpec {
    pub config: FunctionConfig,
    pub provider: DataProvider,
    /// Functions created from the image, each with its own id and instances;
    /// every call of the image goes to one of them, drawn from the seed.
    pub copies: u32,
    /// Extra model inputs computed from each request payload (`features:`);
    /// empty when none are declared.
    pub features: PayloadFeatures,
}

/// A validated workload.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    pub leaf_address: String,
    pub max_duration: Duration,
    pub call_timeout: Duration,
    pub seed: u64,
    pub max_in_flight: Option<usize>,
    pub phases: PhaseSource,
    /// Every image the workload calls, and nothing else.
    pub functions: BTreeMap<ImageTag, FunctionSpec>,
    /// The trace to replay (`trace:`), its files read and functions selected.
    pub trace: Option<crate::trace::Trace>,
    /// Instances to bring up before time 0 (`warmup:`); `None`: start cold.
    pub warmup: Option<Warmup>,
}

/// How many ready instances each function gets before the schedule starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WarmupInstances {
    /// This many for every function (each copy of each image).
    Each(u32),
    /// What the first `window` of the schedule needs, per function: its calls
    /// per second there × their mean trace duration (the concurrency it will
    /// see), over the calls one instance takes (`max_concurrency`, else 1),
    /// rounded up; at least 1 for a function called in the window, none for
    /// one that is not. Calls that carry no duration (phases) count as 1 s.
    Auto {
        #[serde(with = "duration_text")]
        window: Duration,
    },
}

/// A validated `warmup:` section.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Warmup {
    pub instances: WarmupInstances,
    /// How long the warm-up may take before the run fails.
    #[serde(with = "duration_text")]
    pub timeout: Duration,
}

/// Serializes durations as Go duration text, so the resolved schedule reads
/// like the workload file.
mod duration_text {
    use std::time::Duration;

    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::duration::format(*d))
    }
}
