//! Lifecycle events fan out to every `Status` subscriber.
//!
//! Each subscriber has its own bounded queue, so a slow subscriber never blocks
//! the worker or other subscribers. When a queue is full the subscriber is cut
//! off and its stream ends with `DATA_LOSS` naming how it lagged: events are
//! never dropped silently. The subscriber reconnects and reconciles (`State`).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use hyperfake_core::time::now_unix;
use hyperfake_core::{FunctionId, InstanceId};
use proto::controller::{Event, Status, StatusUpdate, VirtualizationType};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

/// Events a subscriber may fall behind by before it is cut off.
pub const SUBSCRIBER_QUEUE: usize = 65_536;

/// A lifecycle event before it is put on the wire.
#[derive(Clone, Debug, PartialEq)]
pub struct LifecycleEvent {
    pub event: Event,
    pub status: Status,
    pub instance_id: InstanceId,
    pub function_id: FunctionId,
    pub detail: String,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// Successful START only: from accepting `Start` to the instance being
    /// ready (`start_duration_ns` on the wire).
    pub start_duration: Option<Duration>,
}

impl LifecycleEvent {
    pub fn new(event: Event, instance_id: &InstanceId, function_id: &FunctionId) -> Self {
        LifecycleEvent {
            event,
            status: Status::Success,
            instance_id: instance_id.clone(),
            function_id: function_id.clone(),
            detail: String::new(),
            exit_code: None,
            oom_killed: false,
            start_duration: None,
        }
    }

    /// How long the start took (successful START only).
    pub fn start_duration(mut self, took: Duration) -> Self {
        self.start_duration = Some(took);
        self
    }

    pub fn failed(mut self, detail: impl Into<String>) -> Self {
        self.status = Status::Failed;
        self.detail = detail.into();
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    fn to_wire(&self) -> StatusUpdate {
        StatusUpdate {
            instance_id: Some((&self.instance_id).into()),
            r#type: VirtualizationType::TypeContainer.into(),
            event: self.event.into(),
            status: self.status.into(),
            function_id: Some((&self.function_id).into()),
            timestamp: Some(proto::convert::timestamp(now_unix())),
            detail: self.detail.clone(),
            exit_code: self.exit_code,
            oom_killed: self.oom_killed,
            start_duration_ns: self.start_duration.map(proto::convert::duration_to_ns),
        }
    }
}

#[derive(Debug)]
struct Subscriber {
    queue: mpsc::Sender<StatusUpdate>,
    lagged: Arc<AtomicBool>,
}

/// Fans lifecycle events out to subscribers.
#[derive(Debug, Default)]
pub struct EventHub {
    subscribers: Mutex<HashMap<String, Subscriber>>,
    /// Set at shutdown: every stream has ended and new ones end at once.
    closed: AtomicBool,
}

pub type EventStream = Pin<Box<dyn Stream<Item = Result<StatusUpdate, tonic::Status>> + Send>>;

impl EventHub {
    /// Subscribes `node_id`. A second subscription with the same id replaces the first.
    pub fn subscribe(&self, node_id: &str) -> EventStream {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_QUEUE);
        let lagged = Arc::new(AtomicBool::new(false));
        let mut subscribers = self.lock();
        // Checked under the lock `close` takes, so no subscription outlives it.
        if !self.closed.load(Ordering::Acquire) {
            subscribers.insert(node_id.to_string(), Subscriber { queue: tx, lagged: Arc::clone(&lagged) });
        }
        drop(subscribers);
        let node = node_id.to_string();
        let tail = futures::stream::once(async move {
            lagged.load(Ordering::Acquire).then(|| {
                tonic::Status::data_loss(format!(
                    "status subscriber {node:?} fell {SUBSCRIBER_QUEUE} events behind and was disconnected; \
                     resubscribe and reconcile with State"
                ))
            })
        })
        .filter_map(|e| e.map(Err));
        Box::pin(ReceiverStream::new(rx).map(Ok).chain(tail))
    }

    pub fn publish(&self, event: LifecycleEvent) {
        tracing::debug!(?event.event, instance = %event.instance_id, function = %event.function_id, "event");
        let update = event.to_wire();
        self.lock().retain(|node, sub| match sub.queue.try_send(update.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => false,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(subscriber = %node, "status subscriber lagged; disconnecting it");
                sub.lagged.store(true, Ordering::Release);
                false
            }
        });
    }

    /// Ends every subscriber's stream, and any later subscription at once
    /// (at shutdown: a server waits for its open streams before it exits,
    /// and a `Status` stream never ends on its own).
    pub fn close(&self) {
        let mut subscribers = self.lock();
        self.closed.store(true, Ordering::Release);
        subscribers.clear();
    }

    pub fn subscriber_count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Subscriber>> {
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: Event) -> LifecycleEvent {
        LifecycleEvent::new(event, &"i1".into(), &"f1".into())
    }

    #[tokio::test]
    async fn every_subscriber_sees_every_event_with_ids() {
        let hub = EventHub::default();
        let mut a = hub.subscribe("a");
        let mut b = hub.subscribe("b");
        hub.publish(ev(Event::Start));
        hub.publish(ev(Event::Down).failed("exit 1"));
        for s in [&mut a, &mut b] {
            let first = s.next().await.unwrap().unwrap();
            assert_eq!(first.event(), Event::Start);
            assert_eq!(first.function_id.unwrap().id, "f1");
            let second = s.next().await.unwrap().unwrap();
            assert_eq!((second.event(), second.status()), (Event::Down, Status::Failed));
            assert!(second.timestamp.is_some());
        }
    }

    #[tokio::test]
    async fn only_an_event_given_a_start_duration_carries_it_on_the_wire() {
        let hub = EventHub::default();
        let mut s = hub.subscribe("a");
        hub.publish(ev(Event::Start).start_duration(Duration::from_micros(412_345)));
        hub.publish(ev(Event::Start).failed("no such image"));
        let ok = s.next().await.unwrap().unwrap();
        assert_eq!(ok.start_duration_ns, Some(412_345_000));
        let failed = s.next().await.unwrap().unwrap();
        assert_eq!((failed.status(), failed.start_duration_ns), (Status::Failed, None));
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_cut_off_loudly_and_others_are_unaffected() {
        let hub = EventHub::default();
        let mut slow = hub.subscribe("slow");
        let mut fast = hub.subscribe("fast");
        for _ in 0..SUBSCRIBER_QUEUE {
            hub.publish(ev(Event::Call));
            fast.next().await.unwrap().unwrap();
        }
        hub.publish(ev(Event::Timeout));
        assert_eq!(fast.next().await.unwrap().unwrap().event(), Event::Timeout);
        assert_eq!(hub.subscriber_count(), 1);
        let mut seen = 0;
        let err = loop {
            match slow.next().await.unwrap() {
                Ok(_) => seen += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(seen, SUBSCRIBER_QUEUE);
        assert_eq!(err.code(), tonic::Code::DataLoss);
        assert!(slow.next().await.is_none());
    }

    #[tokio::test]
    async fn closing_ends_every_stream_and_later_ones_at_once() {
        let hub = EventHub::default();
        let mut before = hub.subscribe("a");
        hub.close();
        assert!(before.next().await.is_none(), "an open stream ends");
        let mut after = hub.subscribe("b");
        hub.publish(ev(Event::Start));
        assert!(after.next().await.is_none(), "a stream opened after closing ends at once");
        assert_eq!(hub.subscriber_count(), 0);
    }

    #[tokio::test]
    async fn resubscribing_replaces_the_old_stream() {
        let hub = EventHub::default();
        let mut old = hub.subscribe("n");
        let _new = hub.subscribe("n");
        assert_eq!(hub.subscriber_count(), 1);
        assert!(old.next().await.is_none(), "old stream ends cleanly");
    }
}
