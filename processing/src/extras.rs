//! The columns and tables that come from payload features and lifecycle
//! durations: `feature_<name>` columns of `training_data`, the
//! `payload_features` table (what each image declared) and the `cold_starts`
//! table (Start→ready per instance). Definitions are in `docs/units.md`.

use std::collections::{BTreeMap, HashMap};

use hyperfake_core::payload::PayloadFeatures;

use crate::raw::RawRun;

/// One successful START that carried its duration (a `cold_starts` row).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColdStart {
    /// The image of the instance's function; `None` when neither `functions`
    /// nor any call names it.
    pub image_tag: Option<String>,
    pub instance_id: String,
    pub worker: String,
    /// ns from the worker accepting `Start` to the instance being ready.
    pub duration_ns: i64,
}

/// What one run adds beyond the HyperFaaS columns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Extras {
    /// `feature_<name>` for every feature any image declares: images in tag
    /// order, each image's features in declaration order, each name once.
    pub feature_columns: Vec<String>,
    /// Per image, its declared features (images that declare none are absent).
    pub declarations: BTreeMap<String, PayloadFeatures>,
    pub cold_starts: Vec<ColdStart>,
}

impl Extras {
    pub fn of(raw: &RawRun) -> Extras {
        let mut feature_columns: Vec<String> = Vec::new();
        for features in raw.payload_features.values() {
            for f in features {
                let column = f.column();
                if !feature_columns.contains(&column) {
                    feature_columns.push(column);
                }
            }
        }
        Extras { feature_columns, declarations: raw.payload_features.clone(), cold_starts: cold_starts(raw) }
    }

    /// The values of every feature column for every call (indexed like
    /// [`crate::raw::Calls`]): the call's value when its image declares the
    /// feature, else NULL. A value is NULL too when the call recorded none.
    pub fn feature_values(&self, raw: &RawRun) -> Vec<Vec<Option<f64>>> {
        // Per image: column index → position in that image's values.
        let positions: HashMap<&str, Vec<Option<usize>>> = self
            .declarations
            .iter()
            .map(|(image, features)| {
                let at = self
                    .feature_columns
                    .iter()
                    .map(|column| features.iter().position(|f| f.column() == *column))
                    .collect();
                (image.as_str(), at)
            })
            .collect();
        let c = &raw.calls;
        let mut columns = vec![Vec::with_capacity(c.len()); self.feature_columns.len()];
        for i in 0..c.len() {
            let at = positions.get(c.image_tag[i].as_str());
            let values = c.payload_features[i].as_deref().unwrap_or_default();
            for (k, column) in columns.iter_mut().enumerate() {
                let value = at.and_then(|at| at[k]).and_then(|p| values.get(p).copied().flatten());
                column.push(value);
            }
        }
        columns
    }
}

/// Successful STARTs that carry `start_duration_ns`, earliest first. The image
/// comes from the START's function (`functions`), else from a call the
/// instance served.
fn cold_starts(raw: &RawRun) -> Vec<ColdStart> {
    let e = &raw.events;
    let mut served: HashMap<&str, &str> = HashMap::new();
    for (instance, image) in raw.calls.instance_id.iter().zip(&raw.calls.image_tag) {
        if let Some(instance) = instance.as_deref() {
            served.entry(instance).or_insert(image.as_str());
        }
    }
    let mut order: Vec<usize> = (0..e.timestamp_ns.len()).collect();
    order.sort_by_key(|&i| e.timestamp_ns[i]);
    order
        .into_iter()
        .filter(|&i| {
            e.event[i].eq_ignore_ascii_case("START")
                && !e.status[i].as_deref().is_some_and(|s| s.eq_ignore_ascii_case("FAILED"))
        })
        .filter_map(|i| {
            let duration_ns = e.start_duration_ns[i].filter(|d| *d >= 0)?;
            let instance = e.instance_id[i].as_str();
            let image_tag = e.function_id[i]
                .as_deref()
                .and_then(|f| raw.function_images.get(f))
                .map(String::as_str)
                .or_else(|| served.get(instance).copied())
                .map(str::to_owned);
            Some(ColdStart {
                image_tag,
                instance_id: instance.to_owned(),
                worker: e.worker[i].clone(),
                duration_ns,
            })
        })
        .collect()
}
