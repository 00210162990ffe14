//! Extra model inputs computed from a call's request payload.
//!
//! The five inputs of `docs/units.md` cannot see the work a request asks for
//! (the graph size of a bfs call, the image and target size of a thumbnail).
//! A function declares [`PayloadFeature`]s next to its config in the workload;
//! the load generator records their values with each call, processing turns
//! them into training columns ([`PayloadFeature::column`]), the trainer stores
//! the declarations inside the model file, and the fake worker evaluates the
//! *same* declarations on the payload at call time. One evaluation function
//! ([`PayloadFeatures::eval`]) serves all of them, so the values cannot drift.
//!
//! A value that cannot be computed (no such field, not a number, not JSON, bad
//! base64, a product that overflows) is `None` (stored as `NULL`), never 0.
//!
//! The declaration has one form everywhere (workload YAML, run database,
//! model file):
//!
//! ```
//! use hyperfake_core::payload::PayloadFeatures;
//! let features: PayloadFeatures = serde_json::from_str(r#"[
//!     {"name": "graph_nodes", "json": "/size"},
//!     {"name": "target_pixels", "product": ["/width", "/height"]},
//!     {"name": "image_bytes", "base64_len": "/image"},
//!     {"name": "request_bytes", "payload_bytes": true}
//! ]"#).unwrap();
//! let row = features.eval(br#"{"size": 1000, "width": 32, "height": 10, "image": "AAAA"}"#);
//! assert_eq!(row, vec![Some(1000.0), Some(320.0), Some(3.0), Some(58.0)]);
//! assert_eq!(features.eval(b"not json"), vec![None, None, None, Some(8.0)]);
//! ```

use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The most payload features one function may declare.
pub const MAX_PAYLOAD_FEATURES: usize = 16;
/// Prefix of a payload feature's column in `training_data` (see
/// [`PayloadFeature::column`]); keeps them apart from the five fixed inputs.
pub const COLUMN_PREFIX: &str = "feature_";

/// How a feature's value is computed from the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeatureSource {
    /// The number at a JSON pointer (RFC 6901) into the payload parsed as JSON.
    Json { pointer: String },
    /// The product of the numbers at several JSON pointers.
    Product { pointers: Vec<String> },
    /// The payload's length in bytes.
    PayloadBytes,
    /// The decoded length in bytes of a standard base64 string at a JSON pointer.
    Base64Len { pointer: String },
}

/// One declared extra input: a name and how to compute it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawPayloadFeature", into = "RawPayloadFeature")]
pub struct PayloadFeature {
    name: String,
    source: FeatureSource,
}

/// A function's declared features, in order (the model's inputs 5, 6, …).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<PayloadFeature>", into = "Vec<PayloadFeature>")]
pub struct PayloadFeatures(Vec<PayloadFeature>);

/// What is wrong with a feature declaration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayloadFeatureError {
    #[error("feature name {0:?} is not valid: use 1 to 48 characters a-z, 0-9 and _, starting with a letter")]
    Name(String),
    #[error("feature {name}: give exactly one of json, product, base64_len, payload_bytes (found {found})")]
    Source { name: String, found: usize },
    #[error("feature {name}: {pointer:?} is not a JSON pointer (it must be empty or start with '/')")]
    Pointer { name: String, pointer: String },
    #[error("feature {name}: product needs at least two pointers")]
    Product { name: String },
    #[error("feature {name}: payload_bytes must be true when given")]
    PayloadBytesFalse { name: String },
    #[error("feature {0} is declared twice")]
    Duplicate(String),
    #[error("{0} features declared; at most {MAX_PAYLOAD_FEATURES} are allowed")]
    TooMany(usize),
}

// === impl PayloadFeature ===

impl PayloadFeature {
    /// A validated declaration.
    pub fn new(name: impl Into<String>, source: FeatureSource) -> Result<Self, PayloadFeatureError> {
        let name = name.into();
        if !valid_name(&name) {
            return Err(PayloadFeatureError::Name(name));
        }
        let pointers: &[String] = match &source {
            FeatureSource::Json { pointer } | FeatureSource::Base64Len { pointer } => {
                std::slice::from_ref(pointer)
            }
            FeatureSource::Product { pointers } if pointers.len() < 2 => {
                return Err(PayloadFeatureError::Product { name });
            }
            FeatureSource::Product { pointers } => pointers,
            FeatureSource::PayloadBytes => &[],
        };
        if let Some(bad) = pointers.iter().find(|p| !p.is_empty() && !p.starts_with('/')) {
            return Err(PayloadFeatureError::Pointer { name, pointer: bad.clone() });
        }
        Ok(PayloadFeature { name, source })
    }

    /// The feature's name (also its model input name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How it is computed.
    pub fn source(&self) -> &FeatureSource {
        &self.source
    }

    /// Its column in `training_data`: `feature_<name>`.
    pub fn column(&self) -> String {
        format!("{COLUMN_PREFIX}{}", self.name)
    }

    /// The value for one payload, `json` being the payload parsed as JSON (or
    /// `None` when it is not JSON).
    fn eval(&self, payload: &[u8], json: Option<&Value>) -> Option<f64> {
        let value = match &self.source {
            FeatureSource::PayloadBytes => payload.len() as f64,
            FeatureSource::Json { pointer } => number(json?.pointer(pointer)?)?,
            FeatureSource::Product { pointers } => {
                let json = json?;
                pointers.iter().map(|p| number(json.pointer(p)?)).product::<Option<f64>>()?
            }
            FeatureSource::Base64Len { pointer } => {
                let text = json?.pointer(pointer)?.as_str()?;
                base64::engine::general_purpose::STANDARD.decode(text).ok()?.len() as f64
            }
        };
        value.is_finite().then_some(value)
    }
}

impl fmt::Display for PayloadFeature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            FeatureSource::Json { pointer } => write!(f, "{} = json {pointer}", self.name),
            FeatureSource::Product { pointers } => {
                write!(f, "{} = product {}", self.name, pointers.join(" × "))
            }
            FeatureSource::PayloadBytes => write!(f, "{} = payload bytes", self.name),
            FeatureSource::Base64Len { pointer } => write!(f, "{} = base64 length of {pointer}", self.name),
        }
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 48
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// A JSON number as f64 (integers beyond 2^53 lose precision, never the sign).
fn number(v: &Value) -> Option<f64> {
    v.as_f64()
}

// === impl PayloadFeatures ===

impl PayloadFeatures {
    /// A validated list: unique names, at most [`MAX_PAYLOAD_FEATURES`].
    pub fn new(features: Vec<PayloadFeature>) -> Result<Self, PayloadFeatureError> {
        if features.len() > MAX_PAYLOAD_FEATURES {
            return Err(PayloadFeatureError::TooMany(features.len()));
        }
        for (i, f) in features.iter().enumerate() {
            if features[..i].iter().any(|g| g.name == f.name) {
                return Err(PayloadFeatureError::Duplicate(f.name.clone()));
            }
        }
        Ok(PayloadFeatures(features))
    }

    /// No features (a function that declares none; HyperFake's models).
    pub fn none() -> Self {
        PayloadFeatures(Vec::new())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, PayloadFeature> {
        self.0.iter()
    }

    /// Every feature's value for one payload, in declaration order. The payload
    /// is parsed as JSON at most once, and only when a feature needs it.
    pub fn eval(&self, payload: &[u8]) -> Vec<Option<f64>> {
        let needs_json = self.0.iter().any(|f| !matches!(f.source, FeatureSource::PayloadBytes));
        let json = if needs_json { serde_json::from_slice::<Value>(payload).ok() } else { None };
        self.0.iter().map(|f| f.eval(payload, json.as_ref())).collect()
    }

    /// The declarations as JSON (the form stored in run databases and model files).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "[]".into())
    }
}

impl<'a> IntoIterator for &'a PayloadFeatures {
    type Item = &'a PayloadFeature;
    type IntoIter = std::slice::Iter<'a, PayloadFeature>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl TryFrom<Vec<PayloadFeature>> for PayloadFeatures {
    type Error = PayloadFeatureError;
    fn try_from(v: Vec<PayloadFeature>) -> Result<Self, Self::Error> {
        PayloadFeatures::new(v)
    }
}

impl From<PayloadFeatures> for Vec<PayloadFeature> {
    fn from(f: PayloadFeatures) -> Self {
        f.0
    }
}

// === serde form ===

/// The written form: a name and exactly one of the source keys.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPayloadFeature {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    json: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    product: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base64_len: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload_bytes: Option<bool>,
}

impl TryFrom<RawPayloadFeature> for PayloadFeature {
    type Error = PayloadFeatureError;
    fn try_from(raw: RawPayloadFeature) -> Result<Self, Self::Error> {
        let RawPayloadFeature { name, json, product, base64_len, payload_bytes } = raw;
        let found = usize::from(json.is_some())
            + usize::from(product.is_some())
            + usize::from(base64_len.is_some())
            + usize::from(payload_bytes.is_some());
        if found != 1 {
            return Err(PayloadFeatureError::Source { name, found });
        }
        let source = match (json, product, base64_len, payload_bytes) {
            (Some(pointer), ..) => FeatureSource::Json { pointer },
            (_, Some(pointers), ..) => FeatureSource::Product { pointers },
            (_, _, Some(pointer), _) => FeatureSource::Base64Len { pointer },
            (.., Some(true)) => FeatureSource::PayloadBytes,
            (.., Some(false)) => return Err(PayloadFeatureError::PayloadBytesFalse { name }),
            (None, None, None, None) => unreachable!("exactly one source was counted above"),
        };
        PayloadFeature::new(name, source)
    }
}

impl From<PayloadFeature> for RawPayloadFeature {
    fn from(f: PayloadFeature) -> Self {
        let mut raw = RawPayloadFeature {
            name: f.name,
            json: None,
            product: None,
            base64_len: None,
            payload_bytes: None,
        };
        match f.source {
            FeatureSource::Json { pointer } => raw.json = Some(pointer),
            FeatureSource::Product { pointers } => raw.product = Some(pointers),
            FeatureSource::PayloadBytes => raw.payload_bytes = Some(true),
            FeatureSource::Base64Len { pointer } => raw.base64_len = Some(pointer),
        }
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(json: &str) -> PayloadFeatures {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_missing_field_or_a_non_number_is_none_never_zero() {
        let f = features(r#"[{"name":"n","json":"/size"},{"name":"p","product":["/w","/h"]}]"#);
        assert_eq!(f.eval(br#"{"w": 3}"#), vec![None, None]);
        assert_eq!(f.eval(br#"{"size": "12", "w": 3, "h": null}"#), vec![None, None]);
        assert_eq!(f.eval(br#"{"size": 0, "w": 3, "h": 2}"#), vec![Some(0.0), Some(6.0)]);
    }

    #[test]
    fn a_payload_that_is_not_json_gives_none_for_json_features() {
        let f = features(r#"[{"name":"n","json":"/size"},{"name":"b","payload_bytes":true}]"#);
        assert_eq!(f.eval(&[0xff, 0xfe, 0x00]), vec![None, Some(3.0)]);
        assert_eq!(f.eval(b""), vec![None, Some(0.0)]);
    }

    #[test]
    fn huge_and_negative_numbers_pass_through_and_an_overflowing_product_is_none() {
        let f = features(r#"[{"name":"n","json":"/n"},{"name":"p","product":["/a","/b"]}]"#);
        assert_eq!(f.eval(br#"{"n": -5, "a": -2, "b": 4}"#), vec![Some(-5.0), Some(-8.0)]);
        assert_eq!(
            f.eval(br#"{"n": 18446744073709551615, "a": 1e300, "b": 1e300}"#),
            vec![Some(18446744073709551615.0), None]
        );
    }

    #[test]
    fn base64_length_is_the_decoded_length_and_bad_base64_is_none() {
        let f = features(r#"[{"name":"img","base64_len":"/image"}]"#);
        assert_eq!(f.eval(br#"{"image": "aGVsbG8="}"#), vec![Some(5.0)]);
        assert_eq!(f.eval(br#"{"image": ""}"#), vec![Some(0.0)]);
        assert_eq!(f.eval(br#"{"image": "not base64!"}"#), vec![None]);
        assert_eq!(f.eval(br#"{"image": 12}"#), vec![None]);
    }

    #[test]
    fn nested_pointers_and_arrays_work() {
        let f = features(r#"[{"name":"n","json":"/graph/nodes/1"}]"#);
        assert_eq!(f.eval(br#"{"graph": {"nodes": [1, 22.5]}}"#), vec![Some(22.5)]);
    }

    #[test]
    fn declarations_round_trip_and_bad_ones_name_the_feature() {
        let text = r#"[{"name":"a","json":"/x"},{"name":"b","product":["/x","/y"]},{"name":"c","base64_len":"/i"},{"name":"d","payload_bytes":true}]"#;
        let f = features(text);
        assert_eq!(f.to_json(), text);
        let err = |s: &str| serde_json::from_str::<PayloadFeatures>(s).unwrap_err().to_string();
        assert!(err(r#"[{"name":"a"}]"#).contains("feature a: give exactly one"));
        assert!(err(r#"[{"name":"a","json":"/x","payload_bytes":true}]"#).contains("found 2"));
        assert!(err(r#"[{"name":"a","json":"x"}]"#).contains("\"x\" is not a JSON pointer"));
        assert!(err(r#"[{"name":"a","product":["/x"]}]"#).contains("at least two"));
        assert!(err(r#"[{"name":"Bad","json":"/x"}]"#).contains("\"Bad\" is not valid"));
        assert!(err(r#"[{"name":"a","json":"/x"},{"name":"a","json":"/y"}]"#).contains("declared twice"));
        assert!(err(r#"[{"name":"a","jsn":"/x"}]"#).contains("unknown field"));
        assert!(err(r#"[{"name":"a","payload_bytes":false}]"#).contains("must be true"));
    }

    #[test]
    fn the_column_is_prefixed() {
        let f = features(r#"[{"name":"graph_nodes","json":"/size"}]"#);
        assert_eq!(f.iter().next().unwrap().column(), "feature_graph_nodes");
        assert_eq!(f.iter().next().unwrap().to_string(), "graph_nodes = json /size");
    }
}
