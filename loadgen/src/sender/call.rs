//! One call: its request, its deadline, and the record of its outcome.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use hyperfake_core::{FunctionId, trailers};
use proto::auth::AuthChannel;
use proto::leaf::ScheduleCallRequest;
use proto::leaf::leaf_client::LeafClient;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tonic::metadata::{KeyAndValueRef, MetadataMap, MetadataValue};

use super::{Clock, Counters, Stop, Target, nanos_i64, reaches, request_id};
use crate::record::{CallRecord, CallStatus};
use crate::schedule::{Schedule, ScheduledCall};

/// Extra time past a call's gRPC deadline before the client gives up on its
/// own, in case the server does not honour `grpc-timeout`.
const DEADLINE_GRACE: Duration = Duration::from_secs(1);

/// What a record needs to know about its call, captured at dispatch.
pub(super) struct CallMeta {
    template: CallRecord,
    function_id: Option<FunctionId>,
    clock: Clock,
}

impl CallMeta {
    pub(super) fn new(
        schedule: &Schedule,
        call: &ScheduledCall,
        run_id: &str,
        target: &Target,
        clock: Clock,
        request_bytes: usize,
        payload_features: Option<Vec<Option<f64>>>,
    ) -> Self {
        let function_id =
            target.functions.get(&call.image_tag).and_then(|ids| ids.get(call.copy as usize)).cloned();
        CallMeta {
            template: CallRecord {
                call_index: call.index,
                request_id: request_id(run_id, call.index),
                image_tag: call.image_tag.to_string(),
                function_id: function_id.as_ref().map(|f| f.to_string()).unwrap_or_default(),
                phase: schedule.phases[call.phase as usize].name.clone(),
                scheduled_ns: clock.unix_ns.saturating_add(i64::try_from(call.offset_ns).unwrap_or(i64::MAX)),
                request_bytes: i64::try_from(request_bytes).unwrap_or(i64::MAX),
                request: Some(call.request.clone()),
                payload_features,
                ..CallRecord::default()
            },
            function_id,
            clock,
        }
    }

    pub(super) fn not_sent(self, why: String) -> CallRecord {
        CallRecord { status: CallStatus::NotSent, error: Some(why), ..self.template }
    }
}

/// A call on its way: everything its task needs.
pub(super) struct Call {
    pub(super) client: LeafClient<AuthChannel>,
    pub(super) meta: CallMeta,
    pub(super) body: Vec<u8>,
    pub(super) timeout: Duration,
    pub(super) records: mpsc::Sender<CallRecord>,
    pub(super) counters: Arc<Counters>,
    /// Records that could not be handed to the recorder.
    pub(super) lost: Arc<AtomicU64>,
    pub(super) stop: watch::Receiver<Stop>,
}

impl Call {
    /// Sends the call, waits for its outcome (or [`Stop::Abandon`]) and
    /// hands its record to the recorder.
    pub(super) async fn run(self) {
        let Call { mut client, meta, body, timeout, records, counters, lost, mut stop } = self;
        let CallMeta { template, function_id, clock } = meta;
        let mut request = tonic::Request::new(ScheduleCallRequest {
            function_id: function_id.as_ref().map(Into::into),
            data: body,
        });
        request.set_timeout(timeout);
        if let Ok(value) = MetadataValue::try_from(template.request_id.as_str()) {
            request.metadata_mut().insert(trailers::REQUEST_ID, value);
        }
        let sent = Instant::now();
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(timeout + DEADLINE_GRACE, client.schedule_call(request)) => Some(outcome),
            () = reaches(&mut stop, Stop::Abandon) => None,
        };
        let latency = sent.elapsed();
        counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        counters.completed.fetch_add(1, Ordering::Relaxed);
        let mut record = CallRecord {
            sent_ns: Some(clock.unix_at(sent)),
            latency_ns: Some(nanos_i64(latency)),
            ..template
        };
        let Some(outcome) = outcome else {
            // Dropping the request cancels it on the wire; whether the function
            // ran is unknown, so the row says so instead of guessing a code.
            counters.errors.fetch_add(1, Ordering::Relaxed);
            record.status = CallStatus::Abandoned;
            record.latency_ns = None;
            record.error = Some(format!(
                "abandoned {latency:?} after sending (second interrupt): outcome unknown, the platform may still run it"
            ));
            if records.send(record).await.is_err() {
                lost.fetch_add(1, Ordering::Relaxed);
            }
            return;
        };
        match outcome {
            Ok(Ok(response)) => record_answer(&mut record, response),
            Ok(Err(status)) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                // tonic reports its own client-side deadline as CANCELLED ("Timeout
                // expired"); gRPC's name for a passed deadline is DEADLINE_EXCEEDED.
                let code = if status.code() == tonic::Code::Cancelled && latency >= timeout {
                    tonic::Code::DeadlineExceeded
                } else {
                    status.code()
                };
                record.metadata = metadata_map(status.metadata());
                record.status = call_status(code);
                record.grpc_code = Some(code as i32);
                record.error = Some(status.message().to_string());
            }
            Err(_) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                record.status = CallStatus::DeadlineExceeded;
                record.grpc_code = Some(tonic::Code::DeadlineExceeded as i32);
                record.error =
                    Some(format!("no response within the deadline ({timeout:?}) plus {DEADLINE_GRACE:?}"));
            }
        }
        if records.send(record).await.is_err() {
            lost.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Every metadata entry as text; binary (`-bin`) values as base64. Repeated
/// keys are joined with `,` as HTTP does.
/// Records a call's answer in `record`: OK, the trailers, the response size,
/// the function's own error and the instance that served it.
pub fn record_answer(record: &mut CallRecord, response: tonic::Response<proto::leaf::ScheduleCallResponse>) {
    record.metadata = metadata_map(response.metadata());
    let response = response.into_inner();
    record.status = CallStatus::Ok;
    record.grpc_code = Some(0);
    record.response_bytes = Some(i64::try_from(response.data.len()).unwrap_or(i64::MAX));
    record.function_error = response.error.map(|e| e.message);
    record.response_instance_id = proto::convert::instance_id(response.instance_id.as_ref()).map(|i| i.0);
}

pub fn metadata_map(md: &MetadataMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for entry in md.iter() {
        let (key, value) = match entry {
            KeyAndValueRef::Ascii(k, v) => {
                (k.as_str().to_string(), v.to_str().map(str::to_string).unwrap_or_else(|_| format!("{v:?}")))
            }
            KeyAndValueRef::Binary(k, v) => (
                k.as_str().to_string(),
                v.to_bytes().map(|b| base64::engine::general_purpose::STANDARD.encode(b)).unwrap_or_default(),
            ),
        };
        out.entry(key)
            .and_modify(|existing| {
                existing.push(',');
                existing.push_str(&value);
            })
            .or_insert(value);
    }
    out
}

/// The stored status of a gRPC code (`CallStatus` covers every code).
pub fn call_status(code: tonic::Code) -> CallStatus {
    CallStatus::from_grpc_code(code as i32).unwrap_or(CallStatus::Unknown)
}
