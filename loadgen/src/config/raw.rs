//! What the user wrote: the workload file as serde reads it, unknown keys
//! refused. Nothing here is checked beyond its YAML type; [`super::Workload::from_raw`]
//! does that.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use super::validated::{Arrival, PhaseKind, ProviderKind};

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
    /// Extension: bring every function to ready instances before time 0.
    pub warmup: Option<RawWarmup>,
}

/// `warmup:` as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWarmup {
    /// Ready instances per function (each copy): a count, or `auto`.
    pub instances: Scalar,
    /// How long to wait for them.
    pub timeout: Option<Scalar>,
    /// With `auto`: the start of the schedule the count is sized for.
    pub window: Option<Scalar>,
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
