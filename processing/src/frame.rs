//! The polars part: one DataFrame of every call with its features, the worker
//! samples joined on with a forward as-of join, the drop reason, and from
//! those the `training_data`, `training_data_avg` and summary frames.

use std::collections::BTreeMap;

use polars::prelude::*;

use crate::error::{ProcessError, Result};
use crate::extras::Extras;
use crate::features::Features;
use crate::raw::RawRun;
use crate::summary::{DropReason, ImageSummary, RunSummary};

pub use rundb::training::{AVG_COLUMNS, INPUTS, TARGETS, TRAINING_COLUMNS};

/// `calls.status` of a call that got an answer.
const OK: &str = rundb::CallStatus::Ok.as_str();

/// The frames of one processed run.
#[derive(Debug)]
pub struct Frames {
    /// Every call, with features and `drop_reason` (NULL for training rows).
    pub calls: DataFrame,
    /// [`TRAINING_COLUMNS`], then [`Frames::feature_columns`].
    pub training: DataFrame,
    /// [`AVG_COLUMNS`].
    pub avg: DataFrame,
    pub summary: RunSummary,
    /// Payload feature columns, declarations and cold starts.
    pub extras: Extras,
}

impl Frames {
    /// The `feature_<name>` columns of `training`, after [`TRAINING_COLUMNS`].
    pub fn feature_columns(&self) -> &[String] {
        &self.extras.feature_columns
    }
}

fn opt_strs(v: &[Option<String>]) -> Vec<Option<&str>> {
    v.iter().map(Option::as_deref).collect()
}

/// Builds every frame of one run from its raw tables and computed features.
pub fn build(raw: &RawRun, f: &Features, tolerance_ns: i64, queueing_ratio: f64) -> Result<Frames> {
    let c = &raw.calls;
    let n = c.len();
    let pl = ProcessError::polars;
    let worker: Vec<Option<&str>> =
        f.worker.iter().map(|w| w.map(|w| f.workers[w as usize].as_str())).collect();
    let has_error: Vec<bool> = c.function_error.iter().map(Option::is_some).collect();
    let extras = Extras::of(raw);
    let feature_values = extras.feature_values(raw);
    let mut columns = vec![
        Column::new("row".into(), (0..n as u64).collect::<Vec<u64>>()),
        Column::new("request_id".into(), &c.request_id),
        Column::new("image_tag".into(), &c.image_tag),
        Column::new("status".into(), &c.status),
        Column::new("has_function_error".into(), has_error),
        Column::new("instance_id".into(), opt_strs(&c.instance_id)),
        Column::new("worker".into(), worker),
        Column::new("request_size_bytes".into(), &c.request_bytes),
        Column::new("call_queued_ns".into(), &c.call_queued_ns),
        Column::new("call_started_ns".into(), &c.call_started_ns),
        Column::new("got_response_ns".into(), &c.got_response_ns),
        Column::new("latency_ns".into(), &c.latency_ns),
        Column::new("bfs_size".into(), &c.bfs_size),
        Column::new("thumb_width".into(), &c.thumb_width),
        Column::new("thumb_height".into(), &c.thumb_height),
        Column::new("function_instances_count".into(), &f.function_instances_count),
        Column::new("active_function_calls_count".into(), &f.active_function_calls_count),
        Column::new("function_processing_time_ns".into(), &c.function_handler_time_ns),
        Column::new("worker_processing_time_ns".into(), &c.function_processing_time_ns),
        Column::new("function_cpu_usage".into(), &f.function_cpu_usage),
        Column::new("function_ram_usage".into(), &f.function_ram_usage),
        Column::new("response_size_bytes".into(), &c.response_bytes),
    ];
    for (name, values) in extras.feature_columns.iter().zip(&feature_values) {
        columns.push(Column::new(name.as_str().into(), values));
    }
    let calls = DataFrame::new(n, columns).map_err(pl("building the calls frame"))?;

    let ws = &raw.worker_samples;
    let samples = DataFrame::new(
        ws.timestamp_ns.len(),
        vec![
            Column::new("worker".into(), &ws.worker),
            Column::new("sample_ns".into(), &ws.timestamp_ns),
            Column::new("worker_cpu_usage".into(), &ws.cpu_cores),
            Column::new("worker_ram_usage".into(), &ws.ram_bytes),
        ],
    )
    .map_err(pl("building the worker samples frame"))?;

    // Worker CPU/RAM: the first sample at or after the call's start on the
    // call's worker (its interval contains the start), within the tolerance.
    let starts = calls
        .clone()
        .lazy()
        .filter(col("worker").is_not_null().and(col("call_started_ns").is_not_null()))
        .select([col("row"), col("worker"), col("call_started_ns")])
        .sort(["call_started_ns"], SortMultipleOptions::default());
    let samples = samples.lazy().sort(["sample_ns"], SortMultipleOptions::default());
    let asof = AsOfOptions {
        strategy: AsofStrategy::Forward,
        tolerance: Some(Scalar::from(tolerance_ns)),
        left_by: Some(vec!["worker".into()]),
        right_by: Some(vec!["worker".into()]),
        allow_eq: true,
        check_sortedness: false,
        ..AsOfOptions::default()
    };
    let worker_usage = starts
        .join_builder()
        .with(samples)
        .left_on([col("call_started_ns")])
        .right_on([col("sample_ns")])
        .how(JoinType::AsOf(Box::new(asof)))
        .finish()
        .select([col("row"), col("worker_cpu_usage"), col("worker_ram_usage")]);

    let failed = col("status").neq(lit(OK)).or(col("has_function_error"));
    let reason = |r: DropReason| lit(r.as_str());
    let drop_reason = when(failed)
        .then(reason(DropReason::Failed))
        .when(col("worker").is_null())
        .then(reason(DropReason::UnknownInstance))
        .when(col("function_processing_time_ns").is_null())
        .then(reason(DropReason::NoRuntime))
        .when(col("function_cpu_usage").is_null())
        .then(reason(DropReason::NoFunctionCpu))
        .when(col("function_ram_usage").is_null())
        .then(reason(DropReason::NoFunctionRam))
        .when(col("function_processing_time_ns").gt(col("latency_ns")))
        .then(reason(DropReason::RuntimeExceedsLatency))
        .otherwise(lit(NULL).cast(DataType::String))
        .alias("drop_reason");

    let all = calls
        .lazy()
        .join(worker_usage, [col("row")], [col("row")], JoinArgs::new(JoinType::Left))
        .with_columns([
            (col("call_started_ns") - col("call_queued_ns")).alias("queue_time_ns"),
            // NULL when either is NULL (polars propagates nulls).
            (col("worker_processing_time_ns") - col("function_processing_time_ns"))
                .alias("worker_overhead_ns"),
            lit(raw.run_id.as_str()).alias("run_id"),
            drop_reason,
        ])
        .sort(["row"], SortMultipleOptions::default())
        .collect()
        .map_err(pl("joining worker samples"))?;

    let mut training_columns: Vec<Expr> = TRAINING_COLUMNS.map(col).to_vec();
    training_columns.extend(extras.feature_columns.iter().map(|c| col(c.as_str())));
    // A NULL payload feature or extra target does not drop the row: the
    // trainer drops and counts per model.
    let training = all
        .clone()
        .lazy()
        .filter(col("drop_reason").is_null())
        .select(training_columns)
        .collect()
        .map_err(pl("selecting training rows"))?;

    let complete = INPUTS.iter().fold(lit(true), |acc, c| acc.and(col(*c).is_not_null()));
    let mut keys = vec![col("image_tag")];
    keys.extend(INPUTS.map(col));
    let mut aggs: Vec<Expr> = TARGETS.iter().map(|t| col(*t).cast(DataType::Float64).mean()).collect();
    aggs.push(len().cast(DataType::Int64).alias("sample_count"));
    let avg = training
        .clone()
        .lazy()
        .filter(complete.clone())
        .group_by(keys)
        .agg(aggs)
        .with_column(lit(raw.run_id.as_str()).alias("run_id"))
        .with_columns(INPUTS.map(|c| col(c).cast(DataType::Float64)))
        .select(AVG_COLUMNS.map(col))
        .sort(AVG_COLUMNS[..6].to_vec(), SortMultipleOptions::default())
        .collect()
        .map_err(pl("averaging training rows"))?;

    let summary = summarize(raw, &all, &training, complete, queueing_ratio)?;
    Ok(Frames { calls: all, training, avg, summary, extras })
}

fn summarize(
    raw: &RawRun,
    all: &DataFrame,
    training: &DataFrame,
    complete: Expr,
    queueing_ratio: f64,
) -> Result<RunSummary> {
    let pl = ProcessError::polars;
    let mut images: BTreeMap<String, ImageSummary> = BTreeMap::new();

    let by_status = all
        .clone()
        .lazy()
        .group_by([col("image_tag"), col("status")])
        .agg([len().cast(DataType::Int64).alias("n")])
        .collect()
        .map_err(pl("counting calls by status"))?;
    for ((image, status), n) in strs(&by_status, "image_tag")?
        .into_iter()
        .zip(strs(&by_status, "status")?)
        .zip(i64s(&by_status, "n")?)
    {
        let img = images.entry(image.unwrap_or_default()).or_default();
        let n = n.unwrap_or(0).unsigned_abs();
        img.calls += n;
        *img.calls_by_status.entry(status.unwrap_or_default()).or_default() += n;
    }

    let dropped = all
        .clone()
        .lazy()
        .filter(col("drop_reason").is_not_null())
        .group_by([col("image_tag"), col("drop_reason")])
        .agg([len().cast(DataType::Int64).alias("n")])
        .collect()
        .map_err(pl("counting dropped calls"))?;
    for ((image, reason), n) in
        strs(&dropped, "image_tag")?.into_iter().zip(strs(&dropped, "drop_reason")?).zip(i64s(&dropped, "n")?)
    {
        let reason =
            reason.as_deref().and_then(DropReason::parse).expect("drop reasons come from DropReason");
        let img = images.entry(image.unwrap_or_default()).or_default();
        *img.dropped.entry(reason).or_default() += n.unwrap_or(0).unsigned_abs();
    }

    let per_image = all
        .clone()
        .lazy()
        .group_by([col("image_tag")])
        .agg([
            col("has_function_error")
                .and(col("status").eq(lit(OK)))
                .cast(DataType::Int64)
                .sum()
                .alias("errors"),
            col("queue_time_ns").filter(col("status").eq(lit(OK))).median().alias("queue"),
            col("function_processing_time_ns").filter(col("status").eq(lit(OK))).median().alias("runtime"),
        ])
        .collect()
        .map_err(pl("computing medians"))?;
    let queue = f64s(&per_image, "queue")?;
    let runtime = f64s(&per_image, "runtime")?;
    for (k, (image, errors)) in
        strs(&per_image, "image_tag")?.into_iter().zip(i64s(&per_image, "errors")?).enumerate()
    {
        let img = images.entry(image.unwrap_or_default()).or_default();
        img.function_errors = errors.unwrap_or(0).unsigned_abs();
        img.median_queue_time_ns = queue[k].map(round_ns);
        img.median_runtime_ns = runtime[k].map(round_ns);
        img.overloaded = matches!((queue[k], runtime[k]), (Some(q), Some(r)) if q > queueing_ratio * r);
    }

    let rows = training
        .clone()
        .lazy()
        .group_by([col("image_tag")])
        .agg([
            len().cast(DataType::Int64).alias("rows"),
            complete.not().cast(DataType::Int64).sum().alias("incomplete"),
        ])
        .collect()
        .map_err(pl("counting training rows"))?;
    for ((image, n), incomplete) in
        strs(&rows, "image_tag")?.into_iter().zip(i64s(&rows, "rows")?).zip(i64s(&rows, "incomplete")?)
    {
        let img = images.entry(image.unwrap_or_default()).or_default();
        img.training_rows = n.unwrap_or(0).unsigned_abs();
        img.training_rows_null_inputs = incomplete.unwrap_or(0).unsigned_abs();
    }

    // NULL payload feature values among each image's training rows.
    for (image, features) in &raw.payload_features {
        let nulls = training
            .clone()
            .lazy()
            .filter(col("image_tag").eq(lit(image.as_str())))
            .select(
                features
                    .iter()
                    .map(|f| col(f.column()).null_count().cast(DataType::Int64))
                    .collect::<Vec<_>>(),
            )
            .collect()
            .map_err(pl("counting NULL payload features"))?;
        let img = images.entry(image.clone()).or_default();
        for f in features {
            let n = i64s(&nulls, &f.column())?.first().copied().flatten().unwrap_or(0);
            img.payload_feature_nulls.insert(f.name().to_owned(), n.unsigned_abs());
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
    Ok(RunSummary { run_id: raw.run_id.clone(), images, missing_tables: raw.missing_tables.clone() })
}

#[allow(clippy::cast_possible_truncation)]
fn round_ns(v: f64) -> i64 {
    v.round() as i64
}

pub(crate) fn strs(df: &DataFrame, name: &str) -> Result<Vec<Option<String>>> {
    let c = df.column(name).map_err(ProcessError::polars("reading a column"))?;
    let s = c.str().map_err(ProcessError::polars("reading a string column"))?;
    Ok(s.iter().map(|v| v.map(str::to_owned)).collect())
}

pub(crate) fn i64s(df: &DataFrame, name: &str) -> Result<Vec<Option<i64>>> {
    let c = df
        .column(name)
        .and_then(|c| c.cast(&DataType::Int64))
        .map_err(ProcessError::polars("reading an integer column"))?;
    let s = c.i64().map_err(ProcessError::polars("reading an integer column"))?;
    Ok(s.iter().collect())
}

pub(crate) fn f64s(df: &DataFrame, name: &str) -> Result<Vec<Option<f64>>> {
    let c = df
        .column(name)
        .and_then(|c| c.cast(&DataType::Float64))
        .map_err(ProcessError::polars("reading a float column"))?;
    let s = c.f64().map_err(ProcessError::polars("reading a float column"))?;
    Ok(s.iter().collect())
}
