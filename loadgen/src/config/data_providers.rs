//! `data_providers:`: what each image's request bodies look like.

use hyperfake_core::Bytes;

use super::defaults::{
    DEFAULT_BFS_NODES, DEFAULT_BODY_SIZE, DEFAULT_JPEG_QUALITY, DEFAULT_THUMBNAIL_HEIGHT,
    DEFAULT_THUMBNAIL_SOURCE, DEFAULT_THUMBNAIL_WIDTH, MAX_BODY_SIZE,
};
use super::errors::{Problem, Problems};
use super::raw::{RawDataProvider, Scalar};
use super::scalar::{at_most, image_size, size};
use super::validated::{DataProvider, ProviderKind};
use crate::yaml_path::YamlPath;

pub(super) fn validate_provider(
    p: &mut Problems<'_>,
    path: &YamlPath,
    raw: &RawDataProvider,
) -> Option<DataProvider> {
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
