//! Warm start before the clock (`warmup:`): after the functions are created
//! and before the schedule's time 0, bring each function to its number of
//! ready instances, so the measured calls do not pay for cold starts that a
//! platform in production would long have been past.
//!
//! How: the leaf starts instances on demand, one more whenever the calls in
//! flight exceed `max_concurrency × (ready + starting)`. So for a function
//! that should have `n` instances, `n × max_concurrency` calls are sent at
//! once (each with the body of one of the function's scheduled calls,
//! [`WarmFunction::body_of`]), the
//! leaf's `State` is polled until it reports `n` ready, and another round is
//! sent whenever one ended short of it. Every warm-up call is recorded in
//! `calls` with `warmup = 1`, `phase = "warmup"` and a `call_index` after the
//! schedule's, so processing leaves it out of training rows and summaries.
//! The whole warm-up is bounded by `warmup.timeout`; running out of it fails
//! the run, naming each function that was short and by how much.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use hyperfake_core::{FunctionId, ImageTag, trailers};
use indicatif::{ProgressBar, ProgressStyle};
use proto::auth::AuthChannel;
use proto::leaf::leaf_client::LeafClient;
use proto::leaf::{LeafStateRequest, ScheduleCallRequest};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tonic::metadata::MetadataValue;

use crate::config::{MAX_WARMUP_INSTANCES, Warmup, WarmupInstances, Workload};
use crate::payload::Payloads;
use crate::record::{CallRecord, CallStatus};
use crate::schedule::{RequestParams, Schedule};
use crate::sender::{Stop, Target, call_status, metadata_map, reaches, record_answer, request_id};

/// The `calls.phase` of every warm-up call.
pub const WARMUP_PHASE: &str = "warmup";
/// How often the leaf's `State` is asked while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Duration counted for a call in an `auto` window that carries none (phases).
const CALL_WITHOUT_DURATION: Duration = Duration::from_secs(1);

/// One function to warm: which it is and how many instances it should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WarmFunction {
    pub image_tag: ImageTag,
    pub copy: u32,
    pub function_id: FunctionId,
    /// Ready instances wanted.
    pub instances: u32,
    /// Calls one instance takes before the leaf starts another.
    pub per_instance: u32,
    /// Index in [`Schedule::calls`] of the call whose body the warm-up calls
    /// send: the function's first call, except for trace calls, where it is
    /// the one asking the most memory (the shortest of those, then the
    /// first), so that each warmed instance has faulted in the memory the
    /// run will ask of it before the clock starts (the trace function keeps
    /// it; `functions/src/workload/trace/memory.rs`). `None` for a function
    /// the schedule never calls.
    pub body_of: Option<usize>,
}

/// The functions to warm and how far, in image and copy order; functions
/// that need no instance (`auto`, not called in the window) are left out.
/// `functions` are the ids created for each image, by copy (`Target::functions`).
pub fn plan(
    warmup: &Warmup,
    workload: &Workload,
    schedule: &Schedule,
    functions: &HashMap<ImageTag, Vec<FunctionId>>,
) -> Vec<WarmFunction> {
    let mut body_of: HashMap<(&ImageTag, u32), usize> = HashMap::new();
    for (i, call) in schedule.calls.iter().enumerate() {
        let chosen = body_of.entry((&call.image_tag, call.copy)).or_insert(i);
        if warms_more(&call.request, &schedule.calls[*chosen].request) {
            *chosen = i;
        }
    }
    let busy_seconds = match warmup.instances {
        WarmupInstances::Each(_) => HashMap::new(),
        WarmupInstances::Auto { window } => busy_seconds_in(schedule, window),
    };
    let mut out = Vec::new();
    for (image_tag, ids) in functions.iter().collect::<BTreeMap<_, _>>() {
        let per_instance = workload
            .functions
            .get(image_tag)
            .and_then(|spec| spec.config.max_concurrency)
            .unwrap_or(1)
            .max(1);
        for (copy, function_id) in (0_u32..).zip(ids) {
            let instances = match warmup.instances {
                WarmupInstances::Each(n) => n,
                WarmupInstances::Auto { window } => {
                    let busy = busy_seconds.get(&(image_tag, copy)).copied().unwrap_or(0.0);
                    instances_for(busy / window.as_secs_f64(), per_instance)
                }
            };
            if instances > 0 {
                out.push(WarmFunction {
                    image_tag: image_tag.clone(),
                    copy,
                    function_id: function_id.clone(),
                    instances,
                    per_instance,
                    body_of: body_of.get(&(image_tag, copy)).copied(),
                });
            }
        }
    }
    out
}

/// Whether a warm-up sending `call`'s body prepares an instance better than
/// one sending `chosen`'s: only trace calls differ, by more memory, then a
/// shorter duration (the warm-up waits for its calls).
fn warms_more(call: &RequestParams, chosen: &RequestParams) -> bool {
    match (call, chosen) {
        (
            RequestParams::Trace { duration_us: d, memory_mib: m },
            RequestParams::Trace { duration_us: chosen_d, memory_mib: chosen_m },
        ) => (m, std::cmp::Reverse(d)) > (chosen_m, std::cmp::Reverse(chosen_d)),
        _ => false,
    }
}

/// A run's warm-up: everything it reads.
#[derive(Debug)]
pub struct Warming<'a> {
    pub warmup: &'a Warmup,
    pub workload: &'a Workload,
    pub schedule: &'a Schedule,
    pub payloads: &'a Payloads,
    pub target: &'a Target,
    pub run_id: &'a str,
    /// Show a progress bar of instances ready.
    pub progress: bool,
}

impl Warming<'_> {
    /// Plans, warms and stores the warm-up calls in `conn` (marked
    /// `warmup = 1`); returns how many calls it sent. Ends early with an
    /// error when `stop` reaches [`Stop::Drain`].
    pub async fn run(
        self,
        conn: &mut rusqlite::Connection,
        mut stop: watch::Receiver<Stop>,
    ) -> anyhow::Result<usize> {
        let Warming { warmup, workload, schedule, payloads, target, run_id, progress } = self;
        let functions = plan(warmup, workload, schedule, &target.functions);
        let wanted: u32 = functions.iter().map(|f| f.instances).sum();
        tracing::info!(functions = functions.len(), instances = wanted, timeout = ?warmup.timeout, "warm-up: bringing instances up");
        let bar = if progress {
            let bar = ProgressBar::new(u64::from(wanted));
            bar.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} instances ready (warm-up)",
                )
                .expect("the template is valid")
                .progress_chars("=> "),
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        let options = WarmupRun {
            run_id,
            schedule,
            payloads,
            call_timeout: workload.call_timeout,
            timeout: warmup.timeout,
            progress: bar,
        };
        let records = tokio::select! {
            records = warm(target.client(), &functions, options) => records?,
            () = reaches(&mut stop, Stop::Drain) => bail!("interrupted during the warm-up, before any measured call"),
        };
        store(conn, run_id, &records).context("cannot record the warm-up calls")?;
        let failed =
            records.iter().filter(|r| r.status != CallStatus::Ok || r.function_error.is_some()).count();
        tracing::info!(calls = records.len(), failed, instances = wanted, "warm-up done; starting the clock");
        Ok(records.len())
    }
}

/// Per function, the seconds of work the calls sent in `[0, window)` ask
/// for: the sum of their trace durations (1 s for a call without one). Over
/// the window's length this is the mean concurrency the function will see
/// there (Little's law: arrival rate × mean duration).
fn busy_seconds_in(schedule: &Schedule, window: Duration) -> HashMap<(&ImageTag, u32), f64> {
    let window_ns = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
    let mut busy = HashMap::new();
    for call in schedule.calls.iter().take_while(|c| c.offset_ns < window_ns) {
        let seconds = match call.request {
            RequestParams::Trace { duration_us, .. } => Duration::from_micros(duration_us).as_secs_f64(),
            _ => CALL_WITHOUT_DURATION.as_secs_f64(),
        };
        *busy.entry((&call.image_tag, call.copy)).or_insert(0.0) += seconds;
    }
    busy
}

/// Instances for a mean concurrency: `⌈concurrency / per_instance⌉`, at
/// least 1 when there is any load, at most [`MAX_WARMUP_INSTANCES`].
pub fn instances_for(concurrency: f64, per_instance: u32) -> u32 {
    if concurrency <= 0.0 || !concurrency.is_finite() {
        return 0;
    }
    let n = (concurrency / f64::from(per_instance.max(1))).ceil();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let n = n.min(f64::from(MAX_WARMUP_INSTANCES)) as u32;
    n.max(1)
}

/// What a warm-up needs besides the plan.
#[derive(Debug)]
pub struct WarmupRun<'a> {
    pub run_id: &'a str,
    pub schedule: &'a Schedule,
    pub payloads: &'a Payloads,
    pub call_timeout: Duration,
    pub timeout: Duration,
    pub progress: ProgressBar,
}

/// Warms `functions` through `client`; returns the record of every warm-up
/// call (`call_index` from `schedule.calls.len()`), each to be stored with
/// `warmup = 1`. Fails when the instances are not all ready within the
/// timeout, naming those that are short.
pub async fn warm(
    client: &LeafClient<AuthChannel>,
    functions: &[WarmFunction],
    options: WarmupRun<'_>,
) -> anyhow::Result<Vec<CallRecord>> {
    let WarmupRun { run_id, schedule, payloads, call_timeout, timeout, progress } = options;
    let deadline = Instant::now() + timeout;
    let wanted: u64 = functions.iter().map(|f| u64::from(f.instances)).sum();
    progress.set_length(wanted);
    let bodies: Vec<Arc<Vec<u8>>> = functions
        .iter()
        .map(|f| Arc::new(f.body_of.map(|i| payloads.body(&schedule.calls[i])).unwrap_or_default()))
        .collect();
    let mut next_index = schedule.calls.len() as u64;
    let mut records = Vec::new();
    let mut in_flight: JoinSet<(usize, CallRecord)> = JoinSet::new();
    // Warm-up calls of each function not yet answered; a new round starts
    // only when the last one ended.
    let mut outstanding = vec![0_u32; functions.len()];
    loop {
        let ready = ready_instances(client).await?;
        let ready_of = |f: &WarmFunction| ready.get(f.function_id.as_str()).copied().unwrap_or(0);
        progress.set_position(functions.iter().map(|f| u64::from(ready_of(f).min(f.instances))).sum());
        let short: Vec<usize> =
            (0..functions.len()).filter(|&i| ready_of(&functions[i]) < functions[i].instances).collect();
        if short.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            in_flight.abort_all();
            let names: Vec<String> = short
                .iter()
                .map(|&i| {
                    let f = &functions[i];
                    format!(
                        "{} (copy {}, function {}): {} of {} ready",
                        f.image_tag,
                        f.copy,
                        f.function_id,
                        ready_of(f),
                        f.instances
                    )
                })
                .collect();
            bail!(
                "warm-up: not every function had its instances ready within {timeout:?} (warmup.timeout): {}",
                names.join("; ")
            );
        }
        for &i in &short {
            if outstanding[i] > 0 {
                continue;
            }
            let f = &functions[i];
            let sent = f.body_of.map(|c| &schedule.calls[c]);
            let features = sent.and_then(|call| payloads.feature_values(call, &bodies[i]));
            let calls = f.instances.saturating_mul(f.per_instance);
            outstanding[i] = calls;
            for _ in 0..calls {
                let call = WarmupCall {
                    function: f.clone(),
                    body: Arc::clone(&bodies[i]),
                    index: next_index,
                    request_id: request_id(run_id, next_index),
                    timeout: call_timeout,
                    features: features.clone(),
                };
                next_index += 1;
                let client = client.clone();
                in_flight.spawn(async move { (i, call.send(client).await) });
            }
        }
        let poll = tokio::time::sleep(POLL_INTERVAL);
        tokio::pin!(poll);
        loop {
            tokio::select! {
                () = &mut poll => break,
                Some(joined) = in_flight.join_next() => {
                    let (i, record) = joined.map_err(|e| anyhow::anyhow!("a warm-up call task failed: {e}"))?;
                    outstanding[i] = outstanding[i].saturating_sub(1);
                    records.push(record);
                }
            }
        }
    }
    // Let the last calls finish before time 0, so none overlaps the schedule.
    while let Some(joined) = in_flight.join_next().await {
        records.push(joined.map_err(|e| anyhow::anyhow!("a warm-up call task failed: {e}"))?.1);
    }
    progress.finish_and_clear();
    records.sort_by_key(|r| r.call_index);
    Ok(records)
}

/// One warm-up call and what its record needs.
struct WarmupCall {
    function: WarmFunction,
    body: Arc<Vec<u8>>,
    index: u64,
    request_id: String,
    timeout: Duration,
    features: Option<Vec<Option<f64>>>,
}

impl WarmupCall {
    /// Sends the call and records its outcome (never fails: an error is the
    /// record's status, as for a measured call).
    async fn send(self, mut client: LeafClient<AuthChannel>) -> CallRecord {
        let WarmupCall { function, body, index, request_id, timeout, features } = self;
        let mut record = CallRecord {
            call_index: index,
            request_id: request_id.clone(),
            image_tag: function.image_tag.to_string(),
            function_id: function.function_id.to_string(),
            phase: WARMUP_PHASE.to_string(),
            request_bytes: i64::try_from(body.len()).unwrap_or(i64::MAX),
            payload_features: features,
            ..CallRecord::default()
        };
        let mut request = tonic::Request::new(ScheduleCallRequest {
            function_id: Some((&function.function_id).into()),
            data: body.as_ref().clone(),
        });
        request.set_timeout(timeout);
        if let Ok(value) = MetadataValue::try_from(request_id.as_str()) {
            request.metadata_mut().insert(trailers::REQUEST_ID, value);
        }
        let sent_ns = hyperfake_core::time::now_unix().as_i64();
        let sent = Instant::now();
        let outcome =
            tokio::time::timeout(timeout + Duration::from_secs(1), client.schedule_call(request)).await;
        record.scheduled_ns = sent_ns;
        record.sent_ns = Some(sent_ns);
        record.latency_ns = Some(i64::try_from(sent.elapsed().as_nanos()).unwrap_or(i64::MAX));
        match outcome {
            Ok(Ok(response)) => record_answer(&mut record, response),
            Ok(Err(status)) => {
                record.metadata = metadata_map(status.metadata());
                record.status = call_status(status.code());
                record.grpc_code = Some(status.code() as i32);
                record.error = Some(status.message().to_string());
            }
            Err(_) => {
                record.status = CallStatus::DeadlineExceeded;
                record.grpc_code = Some(tonic::Code::DeadlineExceeded as i32);
                record.error = Some(format!("no response within the deadline ({timeout:?})"));
            }
        }
        record
    }
}

/// Stores warm-up records in `calls`, marked `warmup = 1`, in one transaction.
pub fn store(conn: &mut rusqlite::Connection, run_id: &str, records: &[CallRecord]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(rundb::calls::INSERT_CALL)?;
        for record in records {
            let row = rundb::calls::CallRow { warmup: true, ..record.to_row() };
            rundb::calls::insert_call(&mut insert, run_id, &row)?;
        }
    }
    tx.commit()
}

/// Ready instances per function id, from the leaf's `State`.
async fn ready_instances(client: &LeafClient<AuthChannel>) -> anyhow::Result<HashMap<String, u32>> {
    let mut client = client.clone();
    let state = client
        .state(LeafStateRequest::default())
        .await
        .map_err(|s| anyhow::anyhow!("warm-up: the leaf's State failed: {}: {}", s.code(), s.message()))?
        .into_inner();
    Ok(state.functions.into_iter().filter_map(|f| Some((f.function_id?.id, f.ready_instances))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "max_duration: 20s
workload:
  phases:
    - {name: e, type: constant, start_time: 0s, duration: 10s, start_rps: 4, image_tag: hyperfaas-echo:latest}
    - {name: s, type: constant, start_time: 15s, duration: 2s, start_rps: 1, image_tag: hyperfaas-simul:latest}
function_config:
  hyperfaas-echo:latest: {memory: 64MB, max_concurrency: 3, copies: 2}
  hyperfaas-simul:latest: {memory: 64MB}
data_providers:
  hyperfaas-echo:latest: {type: echo, min_body_size: 16, max_body_size: 64}
  hyperfaas-simul:latest: {type: generic, min_body_size: 0, max_body_size: 8}
";

    fn ids(workload: &Workload) -> HashMap<ImageTag, Vec<FunctionId>> {
        workload
            .functions
            .iter()
            .map(|(tag, spec)| {
                let ids = (0..spec.copies).map(|c| FunctionId::new(format!("{}-{c}", tag.name()))).collect();
                (tag.clone(), ids)
            })
            .collect()
    }

    #[test]
    fn a_count_warms_every_function_of_every_image() {
        let workload = Workload::from_yaml(&format!("{YAML}warmup: {{instances: 2}}\n")).unwrap();
        let schedule = Schedule::resolve(&workload);
        let plan = plan(workload.warmup.as_ref().unwrap(), &workload, &schedule, &ids(&workload));
        let got: Vec<(String, u32, u32, u32)> =
            plan.iter().map(|f| (f.function_id.to_string(), f.copy, f.instances, f.per_instance)).collect();
        assert_eq!(
            got,
            [
                ("hyperfaas-echo-0".to_string(), 0, 2, 3),
                ("hyperfaas-echo-1".to_string(), 1, 2, 3),
                ("hyperfaas-simul-0".to_string(), 0, 2, 1)
            ]
        );
        // Each warm-up call sends the body of its function's first call.
        for f in &plan {
            let first = &schedule.calls[f.body_of.unwrap()];
            assert_eq!((&first.image_tag, first.copy), (&f.image_tag, f.copy));
            assert!(
                schedule
                    .calls
                    .iter()
                    .take(f.body_of.unwrap())
                    .all(|c| (&c.image_tag, c.copy) != (&f.image_tag, f.copy))
            );
        }
    }

    #[test]
    fn trace_calls_warm_with_the_most_memory_then_the_shortest_duration() {
        let workload = Workload::from_yaml(&format!("{YAML}warmup: {{instances: 1}}\n")).unwrap();
        let mut schedule = Schedule::resolve(&workload);
        // Echo copy 0's calls become trace calls: 10, 300, 300, 50 MiB with
        // durations 5, 9, 2, 1 ms; the warm-up should send the 300 MiB, 2 ms one.
        let trace = [(10, 5_000), (300, 9_000), (300, 2_000), (50, 1_000)];
        let mut copy0 =
            schedule.calls.iter_mut().filter(|c| c.copy == 0 && c.image_tag.name() == "hyperfaas-echo");
        let mut indices = Vec::new();
        for (call, (memory, duration)) in copy0.by_ref().zip(trace) {
            call.request = RequestParams::Trace { duration_us: duration, memory_mib: Some(memory) };
            indices.push(usize::try_from(call.index).unwrap());
        }
        copy0.for_each(|call| call.request = RequestParams::Trace { duration_us: 1, memory_mib: Some(1) });
        let plan = plan(workload.warmup.as_ref().unwrap(), &workload, &schedule, &ids(&workload));
        let echo0 = plan.iter().find(|f| f.function_id.as_str() == "hyperfaas-echo-0").unwrap();
        assert_eq!(echo0.body_of, Some(indices[2]));
        // Other calls keep the first call's body.
        let echo1 = plan.iter().find(|f| f.function_id.as_str() == "hyperfaas-echo-1").unwrap();
        let first1 = schedule.calls.iter().position(|c| c.copy == 1).unwrap();
        assert_eq!(echo1.body_of, Some(first1));
    }

    #[test]
    fn auto_sizes_from_the_window_and_skips_functions_not_called_in_it() {
        // Echo: 4 calls/s over both copies, 1 s each (no trace duration) →
        // about 2 concurrent calls per copy, 3 per instance → 1 instance each.
        // Simul is first called at 15 s, outside the 10 s window: not warmed.
        let workload =
            Workload::from_yaml(&format!("{YAML}warmup: {{instances: auto, window: 10s}}\n")).unwrap();
        let schedule = Schedule::resolve(&workload);
        let plan = plan(workload.warmup.as_ref().unwrap(), &workload, &schedule, &ids(&workload));
        let got: Vec<(String, u32)> = plan.iter().map(|f| (f.function_id.to_string(), f.instances)).collect();
        assert_eq!(got, [("hyperfaas-echo-0".to_string(), 1), ("hyperfaas-echo-1".to_string(), 1)]);
    }

    #[test]
    fn instances_follow_concurrency_over_the_per_instance_target() {
        assert_eq!(instances_for(0.0, 4), 0);
        assert_eq!(instances_for(0.01, 4), 1);
        assert_eq!(instances_for(4.0, 4), 1);
        assert_eq!(instances_for(4.01, 4), 2);
        assert_eq!(instances_for(7.5, 1), 8);
        assert_eq!(instances_for(1e9, 1), MAX_WARMUP_INSTANCES);
        assert_eq!(instances_for(f64::NAN, 1), 0);
        assert_eq!(instances_for(3.0, 0), 3, "a per-instance target of 0 counts as 1");
    }
}
