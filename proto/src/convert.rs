//! The one place where wire integers become unit types and back.

use std::time::Duration;

use hyperfake_core::config::RawConfig;
use hyperfake_core::{
    FunctionConfig, FunctionConfigError, FunctionId, ImageRef, ImageTag, InstanceId, Nanos,
};

use crate::common;

// === Config ===

impl From<&common::Config> for RawConfig {
    fn from(c: &common::Config) -> Self {
        RawConfig {
            memory_bytes: c.memory,
            cpu: c.cpu.as_ref().map(|cpu| (cpu.period, cpu.quota)),
            timeout_s: i64::from(c.timeout),
            max_concurrency: i64::from(c.max_concurrency),
        }
    }
}

impl From<RawConfig> for common::Config {
    fn from(raw: RawConfig) -> Self {
        common::Config {
            memory: raw.memory_bytes,
            cpu: raw.cpu.map(|(period, quota)| common::CpuConfig { period, quota }),
            timeout: i32::try_from(raw.timeout_s).unwrap_or(i32::MAX),
            max_concurrency: i32::try_from(raw.max_concurrency).unwrap_or(i32::MAX),
        }
    }
}

impl From<&FunctionConfig> for common::Config {
    fn from(c: &FunctionConfig) -> Self {
        c.to_raw().into()
    }
}

/// Validates an optional wire config.
pub fn function_config(config: Option<&common::Config>) -> Result<FunctionConfig, FunctionConfigError> {
    let config = config.ok_or(FunctionConfigError::MissingConfig)?;
    FunctionConfig::validate(config.into())
}

/// Validates an optional wire image tag: present, non-empty, and a reference
/// [`ImageRef::parse`] allows (a local `hyperfaas-<name>` image, no registry).
pub fn image_tag(tag: Option<&common::ImageTag>) -> Result<ImageTag, FunctionConfigError> {
    match tag {
        Some(t) if !t.tag.trim().is_empty() => Ok(ImageRef::parse(t.tag.trim())?.image_tag()),
        _ => Err(FunctionConfigError::MissingImageTag),
    }
}

// === Ids ===

impl From<&FunctionId> for common::FunctionId {
    fn from(id: &FunctionId) -> Self {
        common::FunctionId { id: id.0.clone() }
    }
}

impl From<&InstanceId> for common::InstanceId {
    fn from(id: &InstanceId) -> Self {
        common::InstanceId { id: id.0.clone() }
    }
}

impl From<&ImageTag> for common::ImageTag {
    fn from(tag: &ImageTag) -> Self {
        common::ImageTag { tag: tag.0.clone() }
    }
}

/// The id inside an optional wire `FunctionID`, if present and non-empty.
pub fn function_id(id: Option<&common::FunctionId>) -> Option<FunctionId> {
    id.filter(|i| !i.id.is_empty()).map(|i| FunctionId::new(i.id.clone()))
}

/// The id inside an optional wire `InstanceID`, if present and non-empty.
pub fn instance_id(id: Option<&common::InstanceId>) -> Option<InstanceId> {
    id.filter(|i| !i.id.is_empty()).map(|i| InstanceId::new(i.id.clone()))
}

// === Time ===

/// Nanoseconds since the Unix epoch as a protobuf `Timestamp`.
pub fn timestamp(ns: Nanos) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: i64::try_from(ns.0 / 1_000_000_000).unwrap_or(i64::MAX),
        nanos: i32::try_from(ns.0 % 1_000_000_000).unwrap_or(0),
    }
}

/// A protobuf `Timestamp` as nanoseconds since the Unix epoch (0 if before it).
pub fn timestamp_nanos(ts: &prost_types::Timestamp) -> Nanos {
    let secs = u64::try_from(ts.seconds).unwrap_or(0);
    let nanos = u64::try_from(ts.nanos).unwrap_or(0);
    Nanos(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
}

/// Sets the timing trailer `key` (the HyperFaaS trailers carry nanoseconds
/// as decimal text) to `ns`: the number written straight into the header
/// value, with no `String` on the way and no re-validation; a call carries
/// up to ten of them.
pub fn put_nanos(metadata: &mut tonic::metadata::MetadataMap, key: &'static str, Nanos(ns): Nanos) {
    metadata.insert(key, tonic::metadata::AsciiMetadataValue::from(ns));
}

// === Durations ===

/// A duration as wire ns (`StatusUpdate.start_duration_ns`), saturating at
/// `i64::MAX` (292 years).
pub fn duration_to_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Wire ns as a duration; absent or negative (never sent by a worker) is `None`.
pub fn duration_from_ns(ns: Option<i64>) -> Option<Nanos> {
    ns.and_then(|n| u64::try_from(n).ok()).map(Nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags_go_through_the_image_reference_parser() {
        let tag = |t: &str| image_tag(Some(&common::ImageTag { tag: t.into() }));
        assert_eq!(tag(" hyperfaas-echo:latest "), Ok(ImageTag::from("hyperfaas-echo:latest")));
        assert_eq!(tag(""), Err(FunctionConfigError::MissingImageTag));
        assert_eq!(image_tag(None), Err(FunctionConfigError::MissingImageTag));
        let err = tag("hyperfaas-evil.example.com/x").unwrap_err();
        assert!(
            matches!(err, FunctionConfigError::ImageTag(hyperfake_core::ImageRefError::Path { .. })),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("image_tag: image reference \"hyperfaas-evil.example.com/x\""));
    }

    #[test]
    fn durations_round_trip_and_negative_is_absent() {
        let d = Duration::from_millis(412);
        assert_eq!(duration_from_ns(Some(duration_to_ns(d))), Some(Nanos(412_000_000)));
        assert_eq!(duration_to_ns(Duration::MAX), i64::MAX);
        assert_eq!(duration_from_ns(Some(-1)), None);
        assert_eq!(duration_from_ns(None), None);
    }
}
