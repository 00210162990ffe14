//! `function.FunctionService/Call`: runs the handler for one request.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hyperfake_core::defaults::MAX_MESSAGE_SIZE;
use hyperfake_core::trailers::FUNCTION_HANDLER_TIME;
use hyperfake_core::{InstanceId, Nanos};
use prost::Message;
use proto::common::{self, CallRequest, CallResponse};
use proto::function::function_service_server::FunctionService;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};
use tracing::{debug, warn};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

type ErasedHandler = dyn Fn(Bytes) -> BoxFuture<Result<Vec<u8>, String>> + Send + Sync;

/// A handler with its error type erased to its message.
#[derive(Clone)]
pub(crate) struct BoxedHandler(Arc<ErasedHandler>);

impl BoxedHandler {
    pub(crate) fn new<F, Fut, E>(handler: F) -> Self
    where
        F: Fn(Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<u8>, E>> + Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        BoxedHandler(Arc::new(move |input| {
            let output = handler(input);
            Box::pin(async move { output.await.map_err(|e| e.to_string()) })
        }))
    }
}

impl fmt::Debug for BoxedHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BoxedHandler")
    }
}

/// The generated service's implementation: one handler, one instance id.
#[derive(Debug, Clone)]
pub(crate) struct CallService {
    handler: BoxedHandler,
    instance_id: InstanceId,
}

impl CallService {
    pub(crate) fn new(handler: BoxedHandler, instance_id: InstanceId) -> Self {
        CallService { handler, instance_id }
    }

    /// Runs the handler in its own task so that a panic is caught (as a
    /// `JoinError`) instead of tearing down the connection. Returns the
    /// handler's output and the time spent inside it.
    async fn run_handler(&self, input: Bytes) -> (Result<Vec<u8>, String>, Nanos) {
        let handler = self.handler.clone();
        let outer_start = Instant::now();
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let output = (handler.0)(input).await;
            (output, Nanos::from_duration(start.elapsed()))
        });
        match task.await {
            Ok(result) => result,
            Err(join_error) => {
                // The handler's own clock is lost with the panic; the task's
                // is the closest thing left.
                let elapsed = Nanos::from_duration(outer_start.elapsed());
                let message = match join_error.try_into_panic() {
                    Ok(payload) => format!("handler panicked: {}", panic_message(payload.as_ref())),
                    Err(join_error) => format!("handler task failed: {join_error}"),
                };
                warn!("{message}");
                (Err(message), elapsed)
            }
        }
    }
}

/// The text of a panic payload (`panic!` gives `&str` or `String`).
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)")
}

#[tonic::async_trait]
impl FunctionService for CallService {
    async fn call(&self, request: Request<CallRequest>) -> Result<Response<CallResponse>, Status> {
        let CallRequest { request_id, data, .. } = request.into_inner();
        let input_len = data.len();
        debug!(%request_id, input_len, "call started");
        let (output, handler_time) = self.run_handler(Bytes::from(data)).await;
        let (data, error) = match output {
            Ok(data) => (data, None),
            Err(message) => {
                debug!(%request_id, error = %message, "handler failed");
                (Vec::new(), Some(common::Error { message }))
            }
        };
        debug!(%request_id, output_len = data.len(), handler_time_ns = handler_time.0, "call finished");
        let reply = CallResponse {
            request_id,
            data,
            error,
            instance_id: Some(common::InstanceId::from(&self.instance_id)),
        };
        // Refuse here rather than let tonic's encoder fail with OUT_OF_RANGE.
        let size = reply.encoded_len();
        if size > MAX_MESSAGE_SIZE {
            return Err(Status::resource_exhausted(format!(
                "response of {size} bytes exceeds the limit of {MAX_MESSAGE_SIZE} bytes"
            )));
        }
        let mut response = Response::new(reply);
        response.metadata_mut().insert(FUNCTION_HANDLER_TIME, MetadataValue::from(handler_time.0));
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages() {
        let s: Box<dyn Any + Send> = Box::new("boom");
        assert_eq!(panic_message(s.as_ref()), "boom");
        let s: Box<dyn Any + Send> = Box::new(String::from("bang"));
        assert_eq!(panic_message(s.as_ref()), "bang");
        let s: Box<dyn Any + Send> = Box::new(7_u8);
        assert_eq!(panic_message(s.as_ref()), "(non-string panic payload)");
    }
}
