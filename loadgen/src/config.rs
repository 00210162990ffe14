//! The workload file.
//!
//! Two shapes: [`RawWorkload`] is what the user wrote (serde, unknown keys
//! refused), [`Workload`] is what the generator runs on, made by the one
//! fallible function [`Workload::from_raw`]. [`Workload::from_yaml`] does both
//! and returns every problem at once, each naming its YAML path and line.
//!
//! The format is HyperFaaS's load-generator format, accepted unchanged; the
//! extensions are documented in `configs/README.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hyperfake_core::config::RawConfig;
use hyperfake_core::payload::{PayloadFeature, PayloadFeatureError, PayloadFeatures};
use hyperfake_core::{Bytes, ConfigError as FunctionConfigError, FunctionConfig, ImageTag};
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::duration;
use crate::yaml_path::YamlPath;

/// Per-call deadline when the file gives no `timeout`. HyperFaaS's example
/// files use 60 s; a call that has not returned by then is recorded as
/// `DEADLINE_EXCEEDED` rather than kept in flight for the rest of the run.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Echo/generic body sizes when a data provider gives none: the constants the
/// original generator hard-coded (256..=1024 bytes).
pub const DEFAULT_BODY_SIZE: (Bytes, Bytes) = (Bytes(256), Bytes(1024));
/// BFS graph sizes when a data provider gives none: the original's constants.
pub const DEFAULT_BFS_NODES: (u32, u32) = (100, 250);
/// The thumbnailer source image: the original fetched a 1920×1080 photo.
pub const DEFAULT_THUMBNAIL_SOURCE: (u32, u32) = (1920, 1080);
/// Thumbnail sizes drawn per call: the original drew width 1..=1440, height 1..=900.
pub const DEFAULT_THUMBNAIL_WIDTH: (u32, u32) = (1, 1440);
pub const DEFAULT_THUMBNAIL_HEIGHT: (u32, u32) = (1, 900);
/// JPEG quality of the generated source image (a typical camera/web setting).
pub const DEFAULT_JPEG_QUALITY: u8 = 85;
/// Largest request body a data provider may produce: the shared gRPC limit,
/// less room for the rest of the message.
pub const MAX_BODY_SIZE: Bytes = Bytes(hyperfake_core::defaults::MAX_MESSAGE_SIZE as u64 - 64 * 1024);

/// Most phases one pattern may generate: each is a schedule section of its
/// own, and a typo (`phase_count: 4000000000`) would otherwise exhaust memory
/// during validation (found by fuzzing).
pub const MAX_PHASE_COUNT: u32 = 100_000;

// === raw: what the user wrote ===

/// The workload file as written. Unknown keys are errors.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkload {
    pub leaf_address: Option<String>,
    pub max_duration: Option<Scalar>,
    /// Per-call deadline: integer seconds (HyperFaaS) or a duration (`30s`).
    pub timeout: Option<Scalar>,
    #[serde(default)]
    pub generate_workload: bool,
    pub seed: Option<i64>,
    pub patterns: Option<RawPatterns>,
    pub workload: Option<RawPhases>,
    #[serde(default)]
    pub function_config: BTreeMap<String, RawFunctionConfig>,
    #[serde(default)]
    pub data_providers: BTreeMap<String, RawDataProvider>,
    /// Extension: how calls are spread within each second.
    pub arrival: Option<Arrival>,
    /// Extension: calls in flight at most; a call due when the cap is reached
    /// is recorded as `NOT_SENT` instead of being queued.
    pub max_in_flight: Option<i64>,
    /// Extension: most calls the phases may schedule (default
    /// `schedule::DEFAULT_MAX_SCHEDULED_CALLS`); more is refused before
    /// anything is built.
    pub max_scheduled_calls: Option<i64>,
    /// Extension: replay an Azure Functions trace (see `crate::trace`).
    pub trace: Option<crate::trace::RawTrace>,
}

/// `workload:`: phases, plus the fields HyperFaaS's `Workload` struct also has.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPhases {
    pub leaf_address: Option<String>,
    pub max_duration: Option<Scalar>,
    pub timeout: Option<Scalar>,
    #[serde(default)]
    pub phases: Vec<RawPhase>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPhase {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: PhaseKind,
    pub start_time: Option<Scalar>,
    pub duration: Scalar,
    pub start_rps: i64,
    pub end_rps: Option<i64>,
    pub step: Option<i64>,
    pub image_tag: String,
    /// Extension: overrides the file's `arrival` for this phase.
    pub arrival: Option<Arrival>,
}

/// `patterns:` as HyperFaaS writes it (a map from a pattern name), or a list.
#[derive(Clone, Debug)]
pub struct RawPatterns(pub Vec<(String, RawPattern)>);

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPattern {
    /// Only in the list form; the map form names patterns by their key.
    pub name: Option<String>,
    pub image_tag: String,
    pub phase_count: RawRange,
    pub constant_likelihood: f64,
    /// Accepted for compatibility; HyperFaaS ignores it too (a phase is
    /// variable whenever it is not constant).
    pub ramping_likelihood: Option<f64>,
    pub parameters: RawPatternParameters,
    pub arrival: Option<Arrival>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPatternParameters {
    pub start_rps: RawRange,
    pub end_rps: RawRange,
    pub step: RawRange,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRange {
    pub min: i64,
    pub max: i64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFunctionConfig {
    pub memory: Scalar,
    pub cpu: Option<RawCpu>,
    /// Extension: idle timeout of an instance (integer seconds or a duration).
    pub timeout: Option<Scalar>,
    /// Extension: calls one instance serves at once (0 = unlimited).
    pub max_concurrency: Option<i64>,
    /// Extension: how many functions to create from this image (default 1).
    pub copies: Option<i64>,
    /// Extension: extra model inputs computed from each request payload, in
    /// the [`PayloadFeatures`] form. Read as plain values here so that each
    /// entry's problem is reported at its own path and line.
    pub features: Option<Vec<serde_json::Value>>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCpu {
    pub period: i64,
    pub quota: i64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDataProvider {
    #[serde(rename = "type")]
    pub kind: ProviderKind,
    pub min_body_size: Option<Scalar>,
    pub max_body_size: Option<Scalar>,
    pub min_nodes: Option<i64>,
    pub max_nodes: Option<i64>,
    /// Extension (thumbnailer_json): source images as `WIDTHxHEIGHT`; each call
    /// picks one. One JPEG is generated per distinct size.
    pub source_sizes: Option<Vec<String>>,
    pub min_width: Option<i64>,
    pub max_width: Option<i64>,
    pub min_height: Option<i64>,
    pub max_height: Option<i64>,
    pub jpeg_quality: Option<i64>,
}

/// A scalar that may be written as a number or a string (`timeout: 60` and
/// `timeout: 60s` both appear in workload files).
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Int(i64),
    Float(f64),
    Text(String),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Text(s) => write!(f, "{s:?}"),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                i64::try_from(v).map(Scalar::Int).map_err(|_| E::custom(format!("{v} is too large")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Text(v.to_string()))
            }
        }
        de.deserialize_any(ScalarVisitor)
    }
}

impl<'de> Deserialize<'de> for RawPatterns {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct PatternsVisitor;
        impl<'de> Visitor<'de> for PatternsVisitor {
            type Value = RawPatterns;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map from pattern name to pattern, or a list of patterns")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawPatterns, A::Error> {
                let mut out = Vec::new();
                while let Some((name, pattern)) = map.next_entry::<String, RawPattern>()? {
                    out.push((name, pattern));
                }
                Ok(RawPatterns(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawPatterns, A::Error> {
                let mut out = Vec::new();
                while let Some(pattern) = seq.next_element::<RawPattern>()? {
                    let name = pattern.name.clone().unwrap_or_else(|| pattern.image_tag.clone());
                    out.push((name, pattern));
                }
                Ok(RawPatterns(out))
            }
        }
        de.deserialize_any(PatternsVisitor)
    }
}

// === validated: what the generator runs on ===

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

/// Most functions one image may be created as (`copies`): enough for a
/// many-tenant experiment, small enough that a typo cannot create millions.
pub const MAX_COPIES: u32 = 10_000;

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
}

// === errors ===

/// One problem in a workload file.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigError {
    /// Where the problem is, e.g. `workload.phases[1].duration`; empty when
    /// the parser could not tell.
    pub path: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    pub problem: Problem,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.path.is_empty(), self.line) {
            (false, Some(line)) => write!(f, "{} (line {line}): {}", self.path, self.problem),
            (false, None) => write!(f, "{}: {}", self.path, self.problem),
            (true, Some(line)) => write!(f, "line {line}: {}", self.problem),
            (true, None) => write!(f, "{}", self.problem),
        }
    }
}

/// What is wrong, without where.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Problem {
    /// The YAML did not parse into the expected shape (unknown key, wrong type, …).
    #[error("{0}")]
    Syntax(String),
    #[error("required but missing")]
    Missing,
    #[error("invalid duration {text:?}: {reason}")]
    Duration { text: String, reason: duration::DurationError },
    #[error("invalid size {0}: expected bytes or a number with a unit such as 512KB, 256MB or 2GB")]
    Size(String),
    #[error("must not be negative, got {0}")]
    Negative(i64),
    #[error("{value} is out of range: {expected}")]
    OutOfRange { value: String, expected: String },
    #[error("min ({min}) is larger than max ({max})")]
    MinAboveMax { min: String, max: String },
    #[error("image {0:?} has no entry in function_config")]
    MissingFunctionConfig(String),
    #[error("image {0:?} has no entry in data_providers")]
    MissingDataProvider(String),
    #[error("{0}")]
    Function(FunctionConfigError),
    #[error("not used by data provider type {0}")]
    NotApplicable(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// A payload feature declaration that is not valid (`function_config.<image>.features`).
    #[error("{0}")]
    Feature(String),
    /// The phases would schedule more calls than `max_scheduled_calls`.
    #[error(
        "the phases schedule about {planned} calls, more than max_scheduled_calls ({cap}); \
         largest: {largest}. Lower their rates or durations, or raise max_scheduled_calls"
    )]
    TooManyCalls { planned: u64, cap: u64, largest: String },
    /// A trace file (`trace:`) is missing or malformed.
    #[error("{0}")]
    Trace(crate::trace::TraceError),
}

/// Every problem found in a workload file (never empty).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} problem{} in the workload file", if n == 1 { "" } else { "s" })?;
        for e in &self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    /// The first error at `path`, for tests and callers that look for one field.
    pub fn at(&self, path: &str) -> Option<&ConfigError> {
        self.0.iter().find(|e| e.path == path)
    }
}

impl ConfigError {
    /// Turns a serde_yaml_ng error into path, line and message.
    fn from_yaml(error: &serde_yaml_ng::Error) -> Self {
        let line = error.location().map(|l| l.line());
        let mut message = error.to_string();
        // serde_yaml_ng appends " at line L column C"; the line is kept separately.
        if let Some(at) = message.rfind(" at line ") {
            message.truncate(at);
        }
        // … and prefixes the path of nested errors: "workload.phases[1]: msg".
        let mut path = String::new();
        if let Some((prefix, rest)) = message.split_once(": ")
            && !prefix.is_empty()
            && !prefix.contains(' ')
        {
            path = prefix.to_string();
            message = rest.to_string();
        }
        // Name the offending key itself for unknown and missing fields.
        for marker in ["unknown field `", "missing field `", "duplicate field `"] {
            if let Some(name) = message.strip_prefix(marker).and_then(|r| r.split('`').next()) {
                path = if path.is_empty() { name.to_string() } else { format!("{path}.{name}") };
                break;
            }
        }
        ConfigError { path, line, problem: Problem::Syntax(message) }
    }
}

/// Collects problems during validation, with lines looked up in the text.
pub(crate) struct Problems<'a> {
    text: &'a str,
    pub(crate) errors: Vec<ConfigError>,
}

impl Problems<'_> {
    pub(crate) fn push(&mut self, path: &YamlPath, problem: Problem) {
        self.errors.push(ConfigError { path: path.to_string(), line: path.line_in(self.text), problem });
    }

    /// Records the error of a result and returns its value.
    fn check<T>(&mut self, path: &YamlPath, result: Result<T, Problem>) -> Option<T> {
        result.map_err(|problem| self.push(path, problem)).ok()
    }
}

// === validation ===

impl Workload {
    /// Parses and validates a workload file's text. Relative trace file
    /// paths (`trace:`) are taken from the working directory.
    pub fn from_yaml(text: &str) -> Result<Workload, ConfigErrors> {
        Workload::from_yaml_in(text, std::path::Path::new(""))
    }

    /// [`Workload::from_yaml`], with relative trace file paths taken from `dir`.
    pub fn from_yaml_in(text: &str, dir: &std::path::Path) -> Result<Workload, ConfigErrors> {
        let mut raw: RawWorkload =
            serde_yaml_ng::from_str(text).map_err(|e| ConfigErrors(vec![ConfigError::from_yaml(&e)]))?;
        if let Some(trace) = &mut raw.trace {
            trace.rebase(dir);
        }
        Workload::from_raw(raw, text)
    }

    /// Validates what the user wrote. `text` is the file the raw form came
    /// from, used only to find the line of each problem (may be empty).
    pub fn from_raw(raw: RawWorkload, text: &str) -> Result<Workload, ConfigErrors> {
        let RawWorkload {
            leaf_address,
            max_duration,
            timeout,
            generate_workload,
            seed,
            patterns,
            workload,
            function_config,
            data_providers,
            arrival,
            max_in_flight,
            max_scheduled_calls,
            trace,
        } = raw;
        let mut p = Problems { text, errors: Vec::new() };
        let root = YamlPath::root();
        let arrival = arrival.unwrap_or_default();

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

        // `workload:` may repeat the top-level fields (HyperFaaS's struct has
        // them); they must agree rather than silently win.
        let raw_phases = workload.unwrap_or_default();
        let wpath = root.key("workload");
        if let Some(addr) = &raw_phases.leaf_address
            && addr.trim() != leaf_address
        {
            p.push(
                &wpath.key("leaf_address"),
                Problem::Conflict(format!("differs from leaf_address ({leaf_address})")),
            );
        }
        if let Some(s) = &raw_phases.max_duration
            && let (Some(inner), Some(outer)) =
                (p.check(&wpath.key("max_duration"), positive_duration(s)), max_duration)
            && inner != outer
        {
            p.push(&wpath.key("max_duration"), Problem::Conflict("differs from max_duration".into()));
        }
        if let Some(s) = &raw_phases.timeout
            && let (Some(inner), Some(outer)) =
                (p.check(&wpath.key("timeout"), seconds_or_duration(s)), call_timeout)
            && inner != outer
        {
            p.push(&wpath.key("timeout"), Problem::Conflict("differs from timeout".into()));
        }

        // Phases, or patterns to generate them from; and the images they use,
        // with the path of the first use (for "missing function_config" errors).
        let mut used: BTreeMap<String, YamlPath> = BTreeMap::new();
        let trace = trace.and_then(|raw| crate::trace::validate(&mut p, &root.key("trace"), raw));
        // The trace's image needs a function_config; its calls bring their own bodies.
        let trace_image = trace.as_ref().map(|t| t.image_tag.to_string());
        let phases = if generate_workload {
            if !raw_phases.phases.is_empty() {
                p.push(
                    &wpath.key("phases"),
                    Problem::Conflict("phases are given but generate_workload is true; remove one".into()),
                );
            }
            let patterns = patterns.map(|ps| ps.0).unwrap_or_default();
            if patterns.is_empty() {
                p.push(&root.key("patterns"), Problem::Missing);
            }
            let list_form = text_has_pattern_list(text);
            let mut out = Vec::new();
            for (i, (name, raw)) in patterns.into_iter().enumerate() {
                let path =
                    if list_form { root.key("patterns").index(i) } else { root.key("patterns").key(&name) };
                used.entry(raw.image_tag.clone()).or_insert_with(|| path.key("image_tag"));
                if let Some(pattern) = validate_pattern(&mut p, &path, name, raw, arrival) {
                    out.push(pattern);
                }
            }
            PhaseSource::Generated(out)
        } else {
            if raw_phases.phases.is_empty() && trace_image.is_none() {
                p.push(&wpath.key("phases"), Problem::Missing);
            }
            let mut out = Vec::new();
            for (i, raw) in raw_phases.phases.into_iter().enumerate() {
                let path = wpath.key("phases").index(i);
                used.entry(raw.image_tag.clone()).or_insert_with(|| path.key("image_tag"));
                if let Some(phase) = validate_phase(&mut p, &path, i, raw, arrival, max_duration) {
                    out.push(phase);
                }
            }
            PhaseSource::Manual(out)
        };
        if let Some(tag) = &trace_image {
            used.entry(tag.clone()).or_insert_with(|| root.key("trace").key("image_tag"));
        }

        let mut functions = BTreeMap::new();
        for (tag, use_path) in &used {
            if tag.trim().is_empty() {
                p.push(use_path, Problem::Missing);
                continue;
            }
            let config = match function_config.get(tag) {
                None => {
                    p.push(use_path, Problem::MissingFunctionConfig(tag.clone()));
                    None
                }
                Some(raw) => validate_function_config(&mut p, &root.key("function_config").key(tag), raw),
            };
            let provider = match data_providers.get(tag) {
                None if trace_image.as_ref() == Some(tag) => {
                    Some(DataProvider::Generic { min: Bytes(0), max: Bytes(0) })
                }
                None => {
                    p.push(use_path, Problem::MissingDataProvider(tag.clone()));
                    None
                }
                Some(raw) => validate_provider(&mut p, &root.key("data_providers").key(tag), raw),
            };
            let copies = function_config
                .get(tag)
                .and_then(|raw| validate_copies(&mut p, &root.key("function_config").key(tag), raw));
            let features = function_config
                .get(tag)
                .and_then(|raw| validate_features(&mut p, &root.key("function_config").key(tag), raw));
            if let (Some(config), Some(provider), Some(copies), Some(features)) =
                (config, provider, copies, features)
            {
                functions
                    .insert(ImageTag::new(tag.clone()), FunctionSpec { config, provider, copies, features });
            }
        }
        // Entries for images no phase uses are still checked, so a typo in an
        // unused entry does not wait until someone uses it.
        for (tag, raw) in &function_config {
            if !used.contains_key(tag) {
                let path = root.key("function_config").key(tag);
                validate_function_config(&mut p, &path, raw);
                validate_copies(&mut p, &path, raw);
                validate_features(&mut p, &path, raw);
            }
        }
        for (tag, raw) in &data_providers {
            if !used.contains_key(tag) {
                validate_provider(&mut p, &root.key("data_providers").key(tag), raw);
            }
        }

        if !p.errors.is_empty() {
            return Err(ConfigErrors(p.errors));
        }
        let (Some(max_duration), Some(call_timeout), Some(max_scheduled_calls)) =
            (max_duration, call_timeout, max_scheduled_calls)
        else {
            unreachable!("a missing duration or bad cap was reported above; this is a bug")
        };
        // Go's int64 seed, reinterpreted: negative seeds stay distinct.
        let seed = seed.map_or(0, |s| u64::from_ne_bytes(s.to_ne_bytes()));
        // Counted from the phases, before anything is built.
        let (resolved, generated) = crate::schedule::resolve_phases(&phases, seed, max_duration);
        let mut planned: Vec<(&str, u64)> = resolved
            .iter()
            .map(|ph| (ph.name.as_str(), crate::schedule::planned_calls(ph, max_duration)))
            .collect();
        let Ok(trace) = crate::trace::load_checked(&mut p, &root.key("trace"), trace, seed) else {
            return Err(ConfigErrors(p.errors));
        };
        let trace_calls = trace.as_ref().map_or(0, crate::trace::Trace::planned_calls);
        planned.extend(trace.as_ref().map(|t| (t.spec.name.as_str(), trace_calls)));
        let total = planned.iter().fold(0u64, |sum, (_, n)| sum.saturating_add(*n));
        if total > max_scheduled_calls {
            planned.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
            let largest = planned.iter().take(3).map(|(name, n)| format!("{name} ({n})")).collect::<Vec<_>>();
            let path = if trace_calls * 2 > total {
                root.key("trace")
            } else if generated {
                root.key("patterns")
            } else {
                wpath.key("phases")
            };
            p.push(
                &path,
                Problem::TooManyCalls {
                    planned: total,
                    cap: max_scheduled_calls,
                    largest: largest.join(", "),
                },
            );
            return Err(ConfigErrors(p.errors));
        }
        Ok(Workload {
            leaf_address,
            max_duration,
            call_timeout,
            seed,
            max_in_flight,
            phases,
            functions,
            trace,
        })
    }

    /// Images the workload calls.
    pub fn image_tags(&self) -> impl Iterator<Item = &ImageTag> {
        self.functions.keys()
    }
}

/// Whether `patterns:` is written as a list, so paths can say `patterns[0]`.
fn text_has_pattern_list(text: &str) -> bool {
    let mut lines = text.lines().skip_while(|l| !l.starts_with("patterns:"));
    let Some(first) = lines.next() else { return false };
    let inline = first["patterns:".len()..].trim_start();
    if !inline.is_empty() && !inline.starts_with('#') {
        return inline.starts_with('[');
    }
    lines
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .is_some_and(|l| l.trim_start().starts_with('-'))
}

fn validate_phase(
    p: &mut Problems<'_>,
    path: &YamlPath,
    index: usize,
    raw: RawPhase,
    default_arrival: Arrival,
    max_duration: Option<Duration>,
) -> Option<Phase> {
    let RawPhase { name, kind, start_time, duration, start_rps, end_rps, step, image_tag, arrival } = raw;
    let start_time = match &start_time {
        None => Some(Duration::ZERO),
        Some(s) => p.check(&path.key("start_time"), any_duration(s)),
    };
    let duration = p.check(&path.key("duration"), positive_duration(&duration));
    let start = p.check(&path.key("start_rps"), rate(start_rps));
    let (end, step) = match kind {
        PhaseKind::Constant => {
            if start == Some(0) {
                p.push(
                    &path.key("start_rps"),
                    Problem::OutOfRange {
                        value: "0".into(),
                        expected: "a constant phase needs at least 1".into(),
                    },
                );
            }
            // HyperFaaS wants end_rps and step absent (0) here; the same value
            // as start_rps is accepted too, since it means the same thing.
            if let Some(end) = end_rps
                && end != 0
                && end != start_rps
            {
                p.push(
                    &path.key("end_rps"),
                    Problem::Conflict(format!(
                        "a constant phase runs at start_rps ({start_rps}); end_rps must be absent, 0 or equal"
                    )),
                );
            }
            if step.is_some_and(|s| s != 0) {
                p.push(
                    &path.key("step"),
                    Problem::Conflict("a constant phase has no step; remove it".into()),
                );
            }
            (start, Some(0))
        }
        PhaseKind::Variable => {
            let end = match end_rps {
                None => {
                    p.push(&path.key("end_rps"), Problem::Missing);
                    None
                }
                Some(e) => p.check(&path.key("end_rps"), rate(e)),
            };
            let step = match step {
                None | Some(0) => {
                    p.push(
                        &path.key("step"),
                        Problem::OutOfRange {
                            value: step.unwrap_or(0).to_string(),
                            expected: "a variable phase needs a non-zero step".into(),
                        },
                    );
                    None
                }
                Some(s) => {
                    // A negative step ramps down (HyperFaaS's convention); it
                    // must then point towards end_rps.
                    if let (Some(start), Some(end)) = (start, end)
                        && s < 0
                        && end > start
                    {
                        p.push(
                            &path.key("step"),
                            Problem::Conflict(format!(
                                "negative step {s} moves away from end_rps {end} (start_rps {start})"
                            )),
                        );
                    }
                    p.check(&path.key("step"), u32::try_from(s.unsigned_abs()).map_err(|_| too_large(s)))
                }
            };
            (end, step)
        }
        PhaseKind::Trace => unreachable!("`type: trace` is never deserialized (skip_deserializing); a bug"),
    };
    if let (Some(start_time), Some(max)) = (start_time, max_duration)
        && start_time >= max
    {
        p.push(
            &path.key("start_time"),
            Problem::OutOfRange {
                value: duration::format(start_time),
                expected: format!("the phase must start before max_duration ({})", duration::format(max)),
            },
        );
    }
    Some(Phase {
        name: name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| format!("phase{index}")),
        kind,
        start_time: start_time?,
        duration: duration?,
        start_rps: start?,
        end_rps: end?,
        step: step?,
        image_tag: ImageTag::new(image_tag),
        arrival: arrival.unwrap_or(default_arrival),
    })
}

fn validate_pattern(
    p: &mut Problems<'_>,
    path: &YamlPath,
    name: String,
    raw: RawPattern,
    default_arrival: Arrival,
) -> Option<Pattern> {
    let RawPattern {
        name: _,
        image_tag,
        phase_count,
        constant_likelihood,
        ramping_likelihood,
        parameters,
        arrival,
    } = raw;
    let count = range(p, &path.key("phase_count"), phase_count);
    if let Some((min, _)) = count
        && min == 0
    {
        p.push(
            &path.key("phase_count").key("min"),
            Problem::OutOfRange { value: "0".into(), expected: "at least 1".into() },
        );
    }
    if let Some((_, max)) = count
        && max > MAX_PHASE_COUNT
    {
        p.push(
            &path.key("phase_count").key("max"),
            Problem::OutOfRange { value: max.to_string(), expected: format!("at most {MAX_PHASE_COUNT}") },
        );
    }
    let likelihood = |p: &mut Problems<'_>, key: &str, v: f64| {
        let ok = (0.0..=1.0).contains(&v);
        if !ok {
            p.push(
                &path.key(key),
                Problem::OutOfRange { value: v.to_string(), expected: "0.0..=1.0".into() },
            );
        }
        ok.then_some(v)
    };
    let constant = likelihood(p, "constant_likelihood", constant_likelihood);
    if let Some(r) = ramping_likelihood {
        likelihood(p, "ramping_likelihood", r);
    }
    let params = path.key("parameters");
    let start = range(p, &params.key("start_rps"), parameters.start_rps);
    let end = range(p, &params.key("end_rps"), parameters.end_rps);
    let step = range(p, &params.key("step"), parameters.step);
    Some(Pattern {
        name,
        image_tag: ImageTag::new(image_tag),
        phase_count: count.filter(|(min, max)| *min > 0 && *max <= MAX_PHASE_COUNT)?,
        constant_likelihood: constant?,
        start_rps: start?,
        end_rps: end?,
        step: step?,
        arrival: arrival.unwrap_or(default_arrival),
    })
}

fn range(p: &mut Problems<'_>, path: &YamlPath, raw: RawRange) -> Option<(u32, u32)> {
    let min = p.check(&path.key("min"), rate(raw.min));
    let max = p.check(&path.key("max"), rate(raw.max));
    let (min, max) = (min?, max?);
    if min > max {
        p.push(path, Problem::MinAboveMax { min: min.to_string(), max: max.to_string() });
        return None;
    }
    Some((min, max))
}

fn validate_copies(p: &mut Problems<'_>, path: &YamlPath, raw: &RawFunctionConfig) -> Option<u32> {
    match raw.copies {
        None => Some(1),
        Some(n) => match u32::try_from(n) {
            Ok(n) if (1..=MAX_COPIES).contains(&n) => Some(n),
            _ => {
                p.push(
                    &path.key("copies"),
                    Problem::OutOfRange { value: n.to_string(), expected: format!("1..={MAX_COPIES}") },
                );
                None
            }
        },
    }
}

/// `features:` of one function: each entry in the [`PayloadFeature`] form,
/// then the list as a whole (unique names, not too many). Every problem names
/// the entry it is in.
fn validate_features(
    p: &mut Problems<'_>,
    path: &YamlPath,
    raw: &RawFunctionConfig,
) -> Option<PayloadFeatures> {
    let Some(entries) = &raw.features else { return Some(PayloadFeatures::none()) };
    let path = path.key("features");
    let before = p.errors.len();
    let mut list = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        match serde_json::from_value::<PayloadFeature>(entry.clone()) {
            Ok(feature) => list.push(feature),
            Err(e) => p.push(&path.index(i), Problem::Feature(e.to_string())),
        }
    }
    if p.errors.len() > before {
        return None;
    }
    match PayloadFeatures::new(list) {
        Ok(features) => Some(features),
        Err(e) => {
            let at = match &e {
                // The second declaration of the name is the one to remove.
                PayloadFeatureError::Duplicate(name) => entries
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.get("name").and_then(|n| n.as_str()) == Some(name.as_str()))
                    .nth(1)
                    .map_or_else(|| path.clone(), |(i, _)| path.index(i)),
                _ => path.clone(),
            };
            p.push(&at, Problem::Feature(e.to_string()));
            None
        }
    }
}

fn validate_function_config(
    p: &mut Problems<'_>,
    path: &YamlPath,
    raw: &RawFunctionConfig,
) -> Option<FunctionConfig> {
    let RawFunctionConfig { memory, cpu, timeout, max_concurrency, copies: _, features: _ } = raw;
    let memory = p.check(&path.key("memory"), size(memory));
    let idle = match timeout {
        None => Some(Duration::ZERO),
        Some(s) => p.check(&path.key("timeout"), seconds_or_duration(s)),
    };
    let max_concurrency = match max_concurrency {
        None => Some(0),
        Some(n) if *n < 0 => {
            p.push(&path.key("max_concurrency"), Problem::Negative(*n));
            None
        }
        Some(n) => Some(*n),
    };
    let raw = RawConfig {
        memory_bytes: memory?.as_i64(),
        cpu: cpu.map(|c| (c.period, c.quota)),
        timeout_s: i64::try_from(idle?.as_secs()).unwrap_or(i64::MAX),
        max_concurrency: max_concurrency?,
    };
    match FunctionConfig::validate(raw) {
        Ok(config) => Some(config),
        Err(e) => {
            let field = match &e {
                FunctionConfigError::Memory(_) => path.key("memory"),
                FunctionConfigError::QuotaWithoutPeriod { .. } | FunctionConfigError::CpuPeriod(_) => {
                    path.key("cpu").key("period")
                }
                FunctionConfigError::PeriodWithoutQuota { .. } | FunctionConfigError::CpuQuota(_) => {
                    path.key("cpu").key("quota")
                }
                FunctionConfigError::Timeout(_) => path.key("timeout"),
                FunctionConfigError::MaxConcurrency(_) => path.key("max_concurrency"),
                FunctionConfigError::MissingImageTag
                | FunctionConfigError::ImageTag(_)
                | FunctionConfigError::MissingConfig => path.clone(),
            };
            p.push(&field, Problem::Function(e));
            None
        }
    }
}

fn validate_provider(p: &mut Problems<'_>, path: &YamlPath, raw: &RawDataProvider) -> Option<DataProvider> {
    let RawDataProvider {
        kind,
        min_body_size,
        max_body_size,
        min_nodes,
        max_nodes,
        source_sizes,
        min_width,
        max_width,
        min_height,
        max_height,
        jpeg_quality,
    } = raw;
    let type_name = match kind {
        ProviderKind::Echo => "echo",
        ProviderKind::Generic => "generic",
        ProviderKind::BfsJson => "bfs_json",
        ProviderKind::ThumbnailerJson => "thumbnailer_json",
    };
    // Refuse fields that belong to another type: they would be silently ignored.
    let not_for = |p: &mut Problems<'_>, key: &str, present: bool| {
        if present {
            p.push(&path.key(key), Problem::NotApplicable(type_name));
        }
    };
    let bytes_type = matches!(kind, ProviderKind::Echo | ProviderKind::Generic);
    let bfs = *kind == ProviderKind::BfsJson;
    let thumb = *kind == ProviderKind::ThumbnailerJson;
    not_for(p, "min_body_size", !bytes_type && min_body_size.is_some());
    not_for(p, "max_body_size", !bytes_type && max_body_size.is_some());
    not_for(p, "min_nodes", !bfs && min_nodes.is_some());
    not_for(p, "max_nodes", !bfs && max_nodes.is_some());
    for (key, present) in [
        ("source_sizes", source_sizes.is_some()),
        ("min_width", min_width.is_some()),
        ("max_width", max_width.is_some()),
        ("min_height", min_height.is_some()),
        ("max_height", max_height.is_some()),
        ("jpeg_quality", jpeg_quality.is_some()),
    ] {
        not_for(p, key, !thumb && present);
    }
    let before = p.errors.len();
    let provider = match kind {
        ProviderKind::Echo | ProviderKind::Generic => {
            let body = |p: &mut Problems<'_>, key: &str, v: &Option<Scalar>, default: Bytes| match v {
                None => Some(default),
                Some(s) => p.check(&path.key(key), size(s).and_then(|b| at_most(b, MAX_BODY_SIZE))),
            };
            let min = body(p, "min_body_size", min_body_size, DEFAULT_BODY_SIZE.0);
            // A lone min_body_size above the default max means "exactly min".
            let default_max = Bytes(DEFAULT_BODY_SIZE.1.0.max(min.map_or(0, |m| m.0)));
            let max = body(p, "max_body_size", max_body_size, default_max);
            let (min, max) = (min?, max?);
            if min > max {
                p.push(
                    &path.key("min_body_size"),
                    Problem::MinAboveMax { min: min.to_string(), max: max.to_string() },
                );
                return None;
            }
            if *kind == ProviderKind::Echo {
                DataProvider::Echo { min, max }
            } else {
                DataProvider::Generic { min, max }
            }
        }
        ProviderKind::BfsJson => {
            let (min_nodes, max_nodes) = count_range(
                p,
                path,
                ("min_nodes", *min_nodes),
                ("max_nodes", *max_nodes),
                DEFAULT_BFS_NODES,
                1,
            )?;
            DataProvider::BfsJson { min_nodes, max_nodes }
        }
        ProviderKind::ThumbnailerJson => {
            let sources = match source_sizes {
                None => vec![DEFAULT_THUMBNAIL_SOURCE],
                Some(list) if list.is_empty() => {
                    p.push(&path.key("source_sizes"), Problem::Missing);
                    return None;
                }
                Some(list) => {
                    let mut out = Vec::new();
                    for (i, text) in list.iter().enumerate() {
                        if let Some(size) = p.check(&path.key("source_sizes").index(i), image_size(text)) {
                            out.push(size);
                        }
                    }
                    out
                }
            };
            let width = count_range(
                p,
                path,
                ("min_width", *min_width),
                ("max_width", *max_width),
                DEFAULT_THUMBNAIL_WIDTH,
                1,
            );
            let height = count_range(
                p,
                path,
                ("min_height", *min_height),
                ("max_height", *max_height),
                DEFAULT_THUMBNAIL_HEIGHT,
                1,
            );
            let quality = match jpeg_quality {
                None => Some(DEFAULT_JPEG_QUALITY),
                Some(q) => p.check(
                    &path.key("jpeg_quality"),
                    u8::try_from(*q)
                        .ok()
                        .filter(|q| (1..=100).contains(q))
                        .ok_or(Problem::OutOfRange { value: q.to_string(), expected: "1..=100".into() }),
                ),
            };
            DataProvider::ThumbnailerJson { sources, width: width?, height: height?, jpeg_quality: quality? }
        }
    };
    (p.errors.len() == before).then_some(provider)
}

fn count_range(
    p: &mut Problems<'_>,
    path: &YamlPath,
    (min_key, min): (&str, Option<i64>),
    (max_key, max): (&str, Option<i64>),
    default: (u32, u32),
    least: u32,
) -> Option<(u32, u32)> {
    let value = |p: &mut Problems<'_>, key: &str, v: Option<i64>, d: u32| match v {
        None => Some(d),
        Some(v) => p.check(
            &path.key(key),
            u32::try_from(v).ok().filter(|v| *v >= least).ok_or(if v < 0 {
                Problem::Negative(v)
            } else {
                Problem::OutOfRange { value: v.to_string(), expected: format!("{least}..={}", u32::MAX) }
            }),
        ),
    };
    let lo = value(p, min_key, min, default.0);
    let lo_value = lo.unwrap_or(default.0);
    let hi = value(p, max_key, max, default.1.max(if max.is_none() { lo_value } else { 0 }));
    let (lo, hi) = (lo?, hi?);
    if lo > hi {
        p.push(&path.key(min_key), Problem::MinAboveMax { min: lo.to_string(), max: hi.to_string() });
        return None;
    }
    Some((lo, hi))
}

// === scalar readers ===

fn too_large(v: i64) -> Problem {
    Problem::OutOfRange { value: v.to_string(), expected: format!("0..={}", u32::MAX) }
}

/// A request rate in calls per second.
fn rate(v: i64) -> Result<u32, Problem> {
    if v < 0 {
        return Err(Problem::Negative(v));
    }
    u32::try_from(v).map_err(|_| too_large(v))
}

fn positive_usize(v: i64) -> Result<usize, Problem> {
    if v < 0 {
        return Err(Problem::Negative(v));
    }
    usize::try_from(v)
        .ok()
        .filter(|v| *v > 0)
        .ok_or(Problem::OutOfRange { value: v.to_string(), expected: "at least 1".into() })
}

/// A duration written with a unit (`30s`). A bare `0` is accepted.
fn any_duration(s: &Scalar) -> Result<Duration, Problem> {
    match s {
        Scalar::Int(0) => Ok(Duration::ZERO),
        Scalar::Int(i) if *i < 0 => Err(Problem::Negative(*i)),
        Scalar::Int(i) => Err(Problem::Duration {
            text: i.to_string(),
            reason: duration::DurationError::MissingUnit(i.to_string()),
        }),
        Scalar::Float(x) => Err(Problem::Duration {
            text: x.to_string(),
            reason: duration::DurationError::MissingUnit(x.to_string()),
        }),
        Scalar::Text(t) => duration::parse(t).map_err(|reason| Problem::Duration { text: t.clone(), reason }),
    }
}

fn positive_duration(s: &Scalar) -> Result<Duration, Problem> {
    any_duration(s).and_then(nonzero)
}

fn nonzero(d: Duration) -> Result<Duration, Problem> {
    if d.is_zero() {
        Err(Problem::OutOfRange { value: "0".into(), expected: "must be longer than 0".into() })
    } else {
        Ok(d)
    }
}

/// HyperFaaS writes `timeout: 60` (seconds); a duration text is accepted too.
fn seconds_or_duration(s: &Scalar) -> Result<Duration, Problem> {
    match s {
        Scalar::Int(i) if *i < 0 => Err(Problem::Negative(*i)),
        Scalar::Int(i) => Ok(Duration::from_secs(i.unsigned_abs())),
        other => any_duration(other),
    }
}

/// A size: integer bytes, or a number with a unit (`256MB`).
fn size(s: &Scalar) -> Result<Bytes, Problem> {
    match s {
        Scalar::Int(i) if *i < 0 => Err(Problem::Negative(*i)),
        Scalar::Int(i) => Ok(Bytes(i.unsigned_abs())),
        Scalar::Float(x) => Err(Problem::Size(x.to_string())),
        Scalar::Text(t) => Bytes::parse_size(t).map_err(|_| Problem::Size(format!("{t:?}"))),
    }
}

fn at_most(b: Bytes, max: Bytes) -> Result<Bytes, Problem> {
    if b > max {
        Err(Problem::OutOfRange {
            value: b.to_string(),
            expected: format!("at most {max} (the gRPC message limit)"),
        })
    } else {
        Ok(b)
    }
}

/// `WIDTHxHEIGHT`, each 1..=8192 pixels.
fn image_size(text: &str) -> Result<(u32, u32), Problem> {
    let bad =
        || Problem::OutOfRange { value: format!("{text:?}"), expected: "WIDTHxHEIGHT, each 1..=8192".into() };
    let (w, h) = text.trim().split_once(['x', 'X']).ok_or_else(bad)?;
    let w: u32 = w.trim().parse().map_err(|_| bad())?;
    let h: u32 = h.trim().parse().map_err(|_| bad())?;
    if !(1..=8192).contains(&w) || !(1..=8192).contains(&h) {
        return Err(bad());
    }
    Ok((w, h))
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

#[cfg(test)]
mod tests;
