//! `function_config:`: how each image is created.

use std::collections::BTreeMap;
use std::time::Duration;

use hyperfake_core::config::RawConfig;
use hyperfake_core::payload::{PayloadFeature, PayloadFeatureError, PayloadFeatures};
use hyperfake_core::{Bytes, FunctionConfig, FunctionConfigError, ImageTag};

use super::data_providers::validate_provider;
use super::defaults::MAX_COPIES;
use super::errors::{Problem, Problems};
use super::raw::{RawDataProvider, RawFunctionConfig};
use super::scalar::{seconds_or_duration, size};
use super::validated::{DataProvider, FunctionSpec};
use crate::yaml_path::YamlPath;

/// The images the phases, patterns and trace use (`used`, each with the path
/// of its first use), each with its `function_config` and `data_providers`
/// entries; entries no one uses are checked too, so that a typo in one does
/// not wait until someone uses it. The trace's image needs no data provider:
/// its calls bring their own bodies.
pub(super) fn validate_all(
    p: &mut Problems<'_>,
    root: &YamlPath,
    used: &BTreeMap<String, YamlPath>,
    trace_image: Option<&str>,
    function_config: &BTreeMap<String, RawFunctionConfig>,
    data_providers: &BTreeMap<String, RawDataProvider>,
) -> BTreeMap<ImageTag, FunctionSpec> {
    let mut functions = BTreeMap::new();
    for (tag, use_path) in used {
        if tag.trim().is_empty() {
            p.push(use_path, Problem::Missing);
            continue;
        }
        let config = match function_config.get(tag) {
            None => {
                p.push(use_path, Problem::MissingFunctionConfig(tag.clone()));
                None
            }
            Some(raw) => validate_function_config(p, &root.key("function_config").key(tag), raw),
        };
        let provider = match data_providers.get(tag) {
            None if trace_image == Some(tag.as_str()) => {
                Some(DataProvider::Generic { min: Bytes(0), max: Bytes(0) })
            }
            None => {
                p.push(use_path, Problem::MissingDataProvider(tag.clone()));
                None
            }
            Some(raw) => validate_provider(p, &root.key("data_providers").key(tag), raw),
        };
        let copies = function_config
            .get(tag)
            .and_then(|raw| validate_copies(p, &root.key("function_config").key(tag), raw));
        let features = function_config
            .get(tag)
            .and_then(|raw| validate_features(p, &root.key("function_config").key(tag), raw));
        if let (Some(config), Some(provider), Some(copies), Some(features)) =
            (config, provider, copies, features)
        {
            functions.insert(ImageTag::new(tag.clone()), FunctionSpec { config, provider, copies, features });
        }
    }
    for (tag, raw) in function_config {
        if !used.contains_key(tag) {
            let path = root.key("function_config").key(tag);
            validate_function_config(p, &path, raw);
            validate_copies(p, &path, raw);
            validate_features(p, &path, raw);
        }
    }
    for (tag, raw) in data_providers {
        if !used.contains_key(tag) {
            validate_provider(p, &root.key("data_providers").key(tag), raw);
        }
    }
    functions
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
