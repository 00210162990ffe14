//! One row per call with its features, the worker sample joined on (the first
//! sample at or after the call's start), the drop reason, and from those the
//! `training_data` rows, the `training_data_avg` groups and the run summary.

use std::collections::{BTreeMap, HashMap};

use rusqlite::types::ValueRef;

use crate::error::Result;
use crate::extras::Extras;
use crate::features::Features;
use crate::raw::RawRun;
use crate::summary::{DropReason, ImageSummary, RunSummary};

pub use rundb::training::{AVG_COLUMNS, INPUTS, TARGETS, TRAINING_COLUMNS};

/// `calls.status` of a call that got an answer.
const OK: &str = rundb::CallStatus::Ok.as_str();

/// One call of the run and everything processing derived for it. Units as in
/// `docs/units.md`; missing data is `None` (NULL), never 0.
#[derive(Clone, Debug, PartialEq)]
pub struct CallRow {
    pub request_id: String,
    pub image_tag: String,
    pub status: String,
    pub has_function_error: bool,
    pub instance_id: Option<String>,
    /// Address of the worker that started the call's instance.
    pub worker: Option<String>,
    pub request_size_bytes: i64,
    pub call_queued_ns: Option<i64>,
    pub call_started_ns: Option<i64>,
    pub got_response_ns: Option<i64>,
    pub latency_ns: Option<i64>,
    pub bfs_size: Option<i64>,
    pub thumb_width: Option<i64>,
    pub thumb_height: Option<i64>,
    pub function_instances_count: Option<i64>,
    pub active_function_calls_count: Option<i64>,
    /// Cores busy on the call's worker over the sample interval containing its start.
    pub worker_cpu_usage: Option<f64>,
    pub worker_ram_usage: Option<i64>,
    /// Handler time (the runtime target).
    pub function_processing_time_ns: Option<i64>,
    pub worker_processing_time_ns: Option<i64>,
    pub function_cpu_usage: Option<f64>,
    pub function_ram_usage: Option<i64>,
    pub response_size_bytes: Option<i64>,
    /// `call_started_ns − call_queued_ns`.
    pub queue_time_ns: Option<i64>,
    /// `worker_processing_time_ns − function_processing_time_ns`.
    pub worker_overhead_ns: Option<i64>,
    /// Payload feature values, one per [`Extras::feature_columns`].
    pub features: Vec<Option<f64>>,
    /// `None` for a training row.
    pub drop_reason: Option<DropReason>,
}

impl CallRow {
    /// Whether every one of [`INPUTS`] is known.
    pub fn inputs_complete(&self) -> bool {
        self.function_instances_count.is_some()
            && self.active_function_calls_count.is_some()
            && self.worker_cpu_usage.is_some()
            && self.worker_ram_usage.is_some()
    }

    /// The value of the `training_data` column `column`; `None` when no such
    /// column exists. `feature_columns` names [`CallRow::features`].
    pub fn training_value<'a>(
        &'a self,
        column: &str,
        run_id: &'a str,
        feature_columns: &[String],
    ) -> Option<ValueRef<'a>> {
        let int = |v: Option<i64>| v.map_or(ValueRef::Null, ValueRef::Integer);
        let real = |v: Option<f64>| v.map_or(ValueRef::Null, ValueRef::Real);
        let text = |v: Option<&'a str>| v.map_or(ValueRef::Null, |s| ValueRef::Text(s.as_bytes()));
        Some(match column {
            "run_id" => text(Some(run_id)),
            "request_id" => text(Some(&self.request_id)),
            "image_tag" => text(Some(&self.image_tag)),
            "call_started_ns" => int(self.call_started_ns),
            "request_size_bytes" => ValueRef::Integer(self.request_size_bytes),
            "function_instances_count" => int(self.function_instances_count),
            "active_function_calls_count" => int(self.active_function_calls_count),
            "worker_cpu_usage" => real(self.worker_cpu_usage),
            "worker_ram_usage" => int(self.worker_ram_usage),
            "function_processing_time_ns" => int(self.function_processing_time_ns),
            "function_cpu_usage" => real(self.function_cpu_usage),
            "function_ram_usage" => int(self.function_ram_usage),
            "worker_processing_time_ns" => int(self.worker_processing_time_ns),
            "got_response_ns" => int(self.got_response_ns),
            "queue_time_ns" => int(self.queue_time_ns),
            "latency_ns" => int(self.latency_ns),
            "bfs_size" => int(self.bfs_size),
            "thumb_width" => int(self.thumb_width),
            "thumb_height" => int(self.thumb_height),
            "instance_id" => text(self.instance_id.as_deref()),
            "worker" => text(self.worker.as_deref()),
            "response_size_bytes" => int(self.response_size_bytes),
            "worker_overhead_ns" => int(self.worker_overhead_ns),
            feature => real(*self.features.get(feature_columns.iter().position(|c| c == feature)?)?),
        })
    }

    /// The first reason that applies, in [`DropReason`]'s order.
    fn drop_reason(&self) -> Option<DropReason> {
        let exceeds =
            matches!((self.function_processing_time_ns, self.latency_ns), (Some(r), Some(l)) if r > l);
        if self.status != OK || self.has_function_error {
            Some(DropReason::Failed)
        } else if self.worker.is_none() {
            Some(DropReason::UnknownInstance)
        } else if self.function_processing_time_ns.is_none() {
            Some(DropReason::NoRuntime)
        } else if self.function_cpu_usage.is_none() {
            Some(DropReason::NoFunctionCpu)
        } else if self.function_ram_usage.is_none() {
            Some(DropReason::NoFunctionRam)
        } else if exceeds {
            Some(DropReason::RuntimeExceedsLatency)
        } else {
            None
        }
    }
}

/// One `training_data_avg` row: the mean targets of the training rows of one
/// image with identical inputs and payload feature values.
#[derive(Clone, Debug, PartialEq)]
pub struct AvgRow {
    pub image_tag: String,
    /// [`INPUTS`], in order.
    pub inputs: [f64; 5],
    /// Mean of each of [`TARGETS`] over the rows that have it.
    pub targets: [Option<f64>; 3],
    pub sample_count: i64,
    /// The group's value of each payload feature column ([`Extras::feature_columns`]
    /// order; `None`: the payload did not yield it, or the image does not declare it).
    pub features: Vec<Option<f64>>,
}

impl AvgRow {
    /// The value of the `training_data_avg` column `column`; `None` when no
    /// such column exists.
    pub fn value<'a>(
        &'a self,
        column: &str,
        run_id: &'a str,
        feature_columns: &[String],
    ) -> Option<ValueRef<'a>> {
        if let Some(i) = INPUTS.iter().position(|c| *c == column) {
            return Some(ValueRef::Real(self.inputs[i]));
        }
        if let Some(i) = TARGETS.iter().position(|c| *c == column) {
            return Some(self.targets[i].map_or(ValueRef::Null, ValueRef::Real));
        }
        Some(match column {
            "image_tag" => ValueRef::Text(self.image_tag.as_bytes()),
            "sample_count" => ValueRef::Integer(self.sample_count),
            "run_id" => ValueRef::Text(run_id.as_bytes()),
            feature => {
                let value = *self.features.get(feature_columns.iter().position(|c| c == feature)?)?;
                value.map_or(ValueRef::Null, ValueRef::Real)
            }
        })
    }
}

/// The rows of one processed run.
#[derive(Debug)]
pub struct Frames {
    /// Every call in call order, with features and drop reason.
    pub calls: Vec<CallRow>,
    /// `training_data_avg`, ordered by image and inputs.
    pub avg: Vec<AvgRow>,
    pub summary: RunSummary,
    /// Payload feature columns, declarations and cold starts.
    pub extras: Extras,
}

impl Frames {
    /// The `feature_<name>` columns of `training_data`, after [`TRAINING_COLUMNS`].
    pub fn feature_columns(&self) -> &[String] {
        &self.extras.feature_columns
    }

    /// The training rows: calls without a drop reason, in call order.
    pub fn training(&self) -> impl Iterator<Item = &CallRow> {
        self.calls.iter().filter(|c| c.drop_reason.is_none())
    }
}

/// Per worker, its samples `(timestamp_ns, index)` in time order.
fn samples_by_worker(raw: &RawRun) -> HashMap<&str, Vec<(i64, usize)>> {
    let ws = &raw.worker_samples;
    let mut by: HashMap<&str, Vec<(i64, usize)>> = HashMap::new();
    for (i, (worker, ts)) in ws.worker.iter().zip(&ws.timestamp_ns).enumerate() {
        by.entry(worker.as_str()).or_default().push((*ts, i));
    }
    for samples in by.values_mut() {
        // Stable: of samples with the same time, the first read wins.
        samples.sort_by_key(|(ts, _)| *ts);
    }
    by
}

/// Builds every row of one run from its raw tables and computed features.
pub fn build(raw: &RawRun, f: &Features, tolerance_ns: i64, queueing_ratio: f64) -> Result<Frames> {
    let c = &raw.calls;
    let extras = Extras::of(raw);
    let feature_values = extras.feature_values(raw);
    let samples = samples_by_worker(raw);
    let ws = &raw.worker_samples;

    let calls = (0..c.len())
        .map(|i| {
            let worker = f.worker[i].map(|w| f.workers[w as usize].as_str());
            // Worker CPU/RAM: the first sample at or after the call's start on
            // the call's worker (its interval contains the start), within the tolerance.
            let sample = worker.zip(c.call_started_ns[i]).and_then(|(w, started)| {
                let s = samples.get(w)?;
                let (ts, k) = s[s.partition_point(|(ts, _)| *ts < started)..].first()?;
                (ts - started <= tolerance_ns).then_some(*k)
            });
            let handler = c.function_handler_time_ns[i];
            let processing = c.function_processing_time_ns[i];
            let mut row = CallRow {
                request_id: c.request_id[i].clone(),
                image_tag: c.image_tag[i].clone(),
                status: c.status[i].clone(),
                has_function_error: c.function_error[i].is_some(),
                instance_id: c.instance_id[i].clone(),
                worker: worker.map(str::to_owned),
                request_size_bytes: c.request_bytes[i],
                call_queued_ns: c.call_queued_ns[i],
                call_started_ns: c.call_started_ns[i],
                got_response_ns: c.got_response_ns[i],
                latency_ns: c.latency_ns[i],
                bfs_size: c.bfs_size[i],
                thumb_width: c.thumb_width[i],
                thumb_height: c.thumb_height[i],
                function_instances_count: f.function_instances_count[i],
                active_function_calls_count: f.active_function_calls_count[i],
                worker_cpu_usage: sample.and_then(|k| ws.cpu_cores[k]),
                worker_ram_usage: sample.and_then(|k| ws.ram_bytes[k]),
                function_processing_time_ns: handler,
                worker_processing_time_ns: processing,
                function_cpu_usage: f.function_cpu_usage[i],
                function_ram_usage: f.function_ram_usage[i],
                response_size_bytes: c.response_bytes[i],
                queue_time_ns: c.call_started_ns[i].zip(c.call_queued_ns[i]).map(|(s, q)| s - q),
                worker_overhead_ns: processing.zip(handler).map(|(p, h)| p - h),
                features: feature_values.iter().map(|column| column[i]).collect(),
                drop_reason: None,
            };
            row.drop_reason = row.drop_reason();
            row
        })
        .collect::<Vec<_>>();

    let avg = averages(calls.iter().filter(|c| c.drop_reason.is_none()));
    let summary = summarize(raw, &calls, &extras, queueing_ratio);
    Ok(Frames { calls, avg, summary, extras })
}

/// `training_data_avg`: training rows with all inputs known, grouped by image,
/// inputs and payload feature values (floats compared by value; a missing
/// feature is its own value), targets averaged over the rows that have them.
/// Without the features in the key, calls of one image asking for different
/// work (bfs graphs of 100 and 100 000 nodes) would be averaged together.
fn averages<'a>(training: impl Iterator<Item = &'a CallRow>) -> Vec<AvgRow> {
    #[derive(Default)]
    struct Sums {
        sum: [f64; 3],
        n: [u32; 3],
        rows: i64,
    }
    type Key<'a> = (&'a str, [u64; 5], Vec<Option<u64>>);
    let mut groups: HashMap<Key<'_>, ([f64; 5], &[Option<f64>], Sums)> = HashMap::new();
    for row in training {
        let (Some(instances), Some(active), Some(cpu), Some(ram)) = (
            row.function_instances_count,
            row.active_function_calls_count,
            row.worker_cpu_usage,
            row.worker_ram_usage,
        ) else {
            continue;
        };
        #[allow(clippy::cast_precision_loss)]
        let inputs = [row.request_size_bytes as f64, instances as f64, active as f64, cpu, ram as f64];
        // +0.0 and −0.0 are one group, as they are one value.
        let key = inputs.map(|x| (x + 0.0).to_bits());
        let features: Vec<Option<u64>> =
            row.features.iter().map(|f| f.map(|x| (x + 0.0).to_bits())).collect();
        let (_, _, sums) = groups
            .entry((row.image_tag.as_str(), key, features))
            .or_insert_with(|| (inputs, row.features.as_slice(), Sums::default()));
        #[allow(clippy::cast_precision_loss)]
        let targets = [
            row.function_processing_time_ns.map(|v| v as f64),
            row.function_cpu_usage,
            row.function_ram_usage.map(|v| v as f64),
        ];
        for (k, t) in targets.into_iter().enumerate() {
            if let Some(t) = t {
                sums.sum[k] += t;
                sums.n[k] += 1;
            }
        }
        sums.rows += 1;
    }
    let mut avg: Vec<AvgRow> = groups
        .into_iter()
        .map(|((image, _, _), (inputs, features, s))| AvgRow {
            image_tag: image.to_owned(),
            inputs,
            targets: std::array::from_fn(|k| (s.n[k] > 0).then(|| s.sum[k] / f64::from(s.n[k]))),
            sample_count: s.rows,
            features: features.to_vec(),
        })
        .collect();
    avg.sort_by(|a, b| {
        a.image_tag.cmp(&b.image_tag).then_with(|| {
            a.inputs
                .iter()
                .zip(&b.inputs)
                .map(|(x, y)| x.total_cmp(y))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| {
                    let key = |f: &[Option<f64>]| {
                        f.iter().map(|v| v.unwrap_or(f64::NEG_INFINITY)).collect::<Vec<_>>()
                    };
                    key(&a.features)
                        .iter()
                        .zip(&key(&b.features))
                        .map(|(x, y)| x.total_cmp(y))
                        .find(|o| o.is_ne())
                        .unwrap_or(std::cmp::Ordering::Equal)
                })
        })
    });
    avg
}

/// The median of `values` (the mean of the middle two for an even count);
/// `None` when empty.
fn median(mut values: Vec<i64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let n = values.len();
    #[allow(clippy::cast_precision_loss)]
    let at = |k: usize| values[k] as f64;
    Some(if n % 2 == 1 { at(n / 2) } else { (at(n / 2 - 1) + at(n / 2)) / 2.0 })
}

fn summarize(raw: &RawRun, calls: &[CallRow], extras: &Extras, queueing_ratio: f64) -> RunSummary {
    let mut images: BTreeMap<String, ImageSummary> = BTreeMap::new();
    // Per image: queue times and runtimes of OK calls.
    let mut ok_times: HashMap<&str, (Vec<i64>, Vec<i64>)> = HashMap::new();
    for row in calls {
        let img = images.entry(row.image_tag.clone()).or_default();
        img.calls += 1;
        *img.calls_by_status.entry(row.status.clone()).or_default() += 1;
        if let Some(reason) = row.drop_reason {
            *img.dropped.entry(reason).or_default() += 1;
        } else {
            img.training_rows += 1;
            img.training_rows_null_inputs += u64::from(!row.inputs_complete());
        }
        if row.status == OK {
            img.function_errors += u64::from(row.has_function_error);
            let (queue, runtime) = ok_times.entry(row.image_tag.as_str()).or_default();
            queue.extend(row.queue_time_ns);
            runtime.extend(row.function_processing_time_ns);
        }
    }
    for (image, (queue, runtime)) in ok_times {
        let img = images.get_mut(image).expect("every call's image has a summary");
        let (queue, runtime) = (median(queue), median(runtime));
        img.median_queue_time_ns = queue.map(round_ns);
        img.median_runtime_ns = runtime.map(round_ns);
        img.overloaded = matches!((queue, runtime), (Some(q), Some(r)) if q > queueing_ratio * r);
    }

    // NULL payload feature values among each image's training rows.
    for (image, features) in &raw.payload_features {
        let img = images.entry(image.clone()).or_default();
        for f in features {
            let column = extras.feature_columns.iter().position(|c| *c == f.column());
            let nulls = calls
                .iter()
                .filter(|c| c.drop_reason.is_none() && c.image_tag == *image)
                .filter(|c| column.and_then(|k| c.features[k]).is_none())
                .count();
            img.payload_feature_nulls.insert(f.name().to_owned(), nulls as u64);
        }
    }

    let images = images
        .into_iter()
        .map(|(image_tag, mut img)| {
            for r in DropReason::ALL {
                img.dropped.entry(r).or_default();
            }
            img.cpu_quota_cores =
                raw.function_configs.get(&image_tag).and_then(|c| c.cpu).map(|q| q.cores().0);
            img.image_tag = image_tag;
            img
        })
        .collect();
    RunSummary { run_id: raw.run_id.clone(), images, missing_tables: raw.missing_tables.clone() }
}

#[allow(clippy::cast_possible_truncation)]
fn round_ns(v: f64) -> i64 {
    v.round() as i64
}
