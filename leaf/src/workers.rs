//! The leaf's workers: one connection each, a follower of its `Status` stream
//! (unique subscriber id, reconnect with backoff), periodic reconciliation via
//! `State`, and whether it is in rotation.
//!
//! A worker is in rotation while its status stream is connected and its
//! `State` answers ([`Health`]). Anything that suggests otherwise (a broken
//! stream, a failed `State`, a call that could not connect, or
//! [`LATE_IN_A_ROW`] `State`s in a row that did not answer in time) takes it
//! out and asks the follower to resubscribe; the follower's successful
//! resubscription and reconciliation are the only way back in.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyperfake_core::defaults::MAX_MESSAGE_SIZE;
use hyperfake_core::{FunctionId, InstanceId};
use proto::auth::{AuthChannel, BearerToken};
use proto::controller::controller_client::ControllerClient;
use proto::controller::{StateRequest, StateResponse, StatusRequest, StatusUpdate};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::config::PoolSettings;
use crate::failure::Failure;
use crate::health::{Health, HealthCell, HealthEvent, LATE_IN_A_ROW};
use crate::instances::WorkerIndex;

/// What the pool tells the scheduler.
#[derive(Debug)]
pub enum PoolEvent {
    /// A lifecycle event from a worker's status stream.
    Status(WorkerIndex, StatusUpdate),
    /// A worker's live instances, as `State` listed them when asked at `asked_at`.
    Reconciled { worker: WorkerIndex, state: StateResponse, asked_at: Instant },
}

/// A worker's `controller.Controller`, sending the shared token if one is set.
pub type WorkerClient = ControllerClient<AuthChannel>;

/// One worker.
#[derive(Debug)]
pub struct WorkerHandle {
    pub index: WorkerIndex,
    pub address: String,
    /// Subscriber id for this worker's status stream: unique per leaf process
    /// and worker, so two leaves (or two workers' followers) never replace
    /// each other's subscription.
    pub subscriber_id: String,
    client: WorkerClient,
    /// The status stream gets a connection of its own, so its event frames
    /// (two per call) never queue in front of calls.
    events: WorkerClient,
    health: HealthCell,
    resubscribe: Notify,
}

impl WorkerHandle {
    pub fn client(&self) -> WorkerClient {
        self.client.clone()
    }

    pub fn health(&self) -> Health {
        self.health.get()
    }

    pub fn in_rotation(&self) -> bool {
        self.health().in_rotation()
    }

    /// Takes the worker out of rotation until the follower reconnects.
    pub fn mark_down(&self, why: &str) {
        if self.health.apply(HealthEvent::Failed).0.in_rotation() {
            tracing::warn!(worker = %self.address, "worker out of rotation: {why}");
        }
        self.resubscribe.notify_one();
    }

    /// A reconciliation's `State` answered (`Ok`) or did not: a late answer
    /// counts towards [`LATE_IN_A_ROW`], any other failure takes the worker
    /// out at once.
    fn state_answered(&self, answer: Result<(), &tonic::Status>) {
        let event = match answer {
            Ok(()) => HealthEvent::OnTime,
            Err(status) if Failure::of(status) == Failure::Expired => HealthEvent::Late,
            Err(status) => return self.mark_down(&format!("State failed: {}", status.message())),
        };
        match self.health.apply(event) {
            (before, after) if before.in_rotation() && !after.in_rotation() => {
                tracing::warn!(worker = %self.address, "worker out of rotation: {LATE_IN_A_ROW} State answers in a row were late");
                self.resubscribe.notify_one();
            }
            (before, Health::InRotation) if before != Health::InRotation => {
                tracing::debug!(worker = %self.address, "State answered in time again");
            }
            (before, after) if before != after => {
                tracing::debug!(worker = %self.address, health = ?after, "State answered late; still in rotation");
            }
            _ => {}
        }
    }

    fn set_up(&self) {
        if !self.health.apply(HealthEvent::Up).0.in_rotation() {
            tracing::info!(worker = %self.address, "worker in rotation");
        }
    }
}

/// Every worker of a leaf.
#[derive(Debug)]
pub struct WorkerPool {
    workers: Vec<Arc<WorkerHandle>>,
    settings: PoolSettings,
}

/// A client for a controller at `address` that dials lazily, with the pool's
/// connect timeout and keep-alives that notice a vanished peer.
pub fn channel(address: &str, connect_timeout: Duration) -> Result<Channel, tonic::transport::Error> {
    Ok(proto::endpoint(address)?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5))
        .connect_lazy())
}

impl WorkerPool {
    /// A pool over the workers at `addresses`, sending `token` with every request.
    pub fn new(
        addresses: &[String],
        settings: PoolSettings,
        token: &BearerToken,
    ) -> Result<Self, tonic::transport::Error> {
        let node = uuid::Uuid::new_v4().simple().to_string();
        let workers = addresses
            .iter()
            .enumerate()
            .map(|(index, address)| {
                let client = ControllerClient::with_interceptor(
                    channel(address, settings.connect_timeout)?,
                    token.clone(),
                )
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE);
                let events = ControllerClient::with_interceptor(
                    channel(address, settings.connect_timeout)?,
                    token.clone(),
                );
                Ok(Arc::new(WorkerHandle {
                    index,
                    address: address.clone(),
                    subscriber_id: format!("leaf-{}-{index}", &node[..12]),
                    client,
                    events,
                    health: HealthCell::default(),
                    resubscribe: Notify::new(),
                }))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(WorkerPool { workers, settings })
    }

    pub fn get(&self, index: WorkerIndex) -> &Arc<WorkerHandle> {
        &self.workers[index]
    }

    pub fn all(&self) -> &[Arc<WorkerHandle>] {
        &self.workers
    }

    pub fn in_rotation(&self, index: WorkerIndex) -> bool {
        self.workers.get(index).is_some_and(|w| w.in_rotation())
    }

    pub fn in_rotation_count(&self) -> usize {
        self.workers.iter().filter(|w| w.in_rotation()).count()
    }

    /// Starts a follower per worker and the reconciliation timer. Events go to
    /// `events`; the tasks end when it is closed or the handles are aborted.
    pub fn spawn(&self, events: mpsc::Sender<PoolEvent>) -> Vec<JoinHandle<()>> {
        let mut tasks: Vec<_> = self
            .workers
            .iter()
            .map(|w| tokio::spawn(follow(Arc::clone(w), self.settings.clone(), events.clone())))
            .collect();
        let workers = self.workers.clone();
        let interval = self.settings.reconcile_interval;
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let rounds = workers.iter().filter(|w| w.health().is_subscribed()).map(|w| {
                    let events = events.clone();
                    async move {
                        match reconcile(w, interval).await {
                            Ok(event) => {
                                w.state_answered(Ok(()));
                                let _ = events.send(event).await;
                            }
                            Err(status) => w.state_answered(Err(&status)),
                        }
                    }
                });
                futures::future::join_all(rounds).await;
                if events.is_closed() {
                    return;
                }
            }
        }));
        tasks
    }
}

async fn reconcile(worker: &WorkerHandle, within: Duration) -> Result<PoolEvent, tonic::Status> {
    let asked_at = Instant::now();
    let mut request = tonic::Request::new(StateRequest { node_id: worker.subscriber_id.clone() });
    request.set_timeout(within);
    let state = tokio::time::timeout(within, worker.client().state(request))
        .await
        .map_err(|_| tonic::Status::deadline_exceeded("State timed out"))??
        .into_inner();
    Ok(PoolEvent::Reconciled { worker: worker.index, state, asked_at })
}

/// Follows one worker's status stream for as long as `events` is open.
async fn follow(worker: Arc<WorkerHandle>, settings: PoolSettings, events: mpsc::Sender<PoolEvent>) {
    let mut backoff = settings.reconnect_min;
    loop {
        let request = StatusRequest { node_id: worker.subscriber_id.clone() };
        match worker.events.clone().status(request).await {
            Ok(stream) => {
                let mut stream = stream.into_inner();
                // Reconcile right after subscribing: events missed while
                // disconnected are accounted for by the worker's own list.
                match reconcile(&worker, settings.reconcile_interval.max(settings.connect_timeout)).await {
                    Ok(event) => {
                        if events.send(event).await.is_err() {
                            return;
                        }
                        worker.set_up();
                        backoff = settings.reconnect_min;
                        loop {
                            tokio::select! {
                                message = stream.message() => match message {
                                    Ok(Some(update)) => {
                                        if events.send(PoolEvent::Status(worker.index, update)).await.is_err() {
                                            return;
                                        }
                                    }
                                    Ok(None) => break worker.mark_down("status stream ended"),
                                    Err(status) => break worker.mark_down(&format!("status stream failed: {}", status.message())),
                                },
                                () = worker.resubscribe.notified() => break,
                            }
                        }
                    }
                    Err(status) => worker.mark_down(&format!("State failed: {}", status.message())),
                }
            }
            Err(status) => worker.mark_down(&format!("cannot subscribe: {}", status.message())),
        }
        worker.health.apply(HealthEvent::Lost);
        if events.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(settings.reconnect_max);
    }
}

/// The instances a `State` answer lists, with their function and idle time.
pub fn listed_instances(state: &StateResponse) -> Vec<(FunctionId, InstanceId, Duration)> {
    state
        .functions
        .iter()
        .flat_map(|f| {
            f.running.iter().chain(&f.idle).map(|i| {
                let idle = Duration::from_millis(u64::try_from(i.time_since_last_work).unwrap_or(0));
                (FunctionId::new(f.function_id.clone()), InstanceId::new(i.instance_id.clone()), idle)
            })
        })
        .collect()
}

/// Ids in a `State` answer.
pub fn listed_ids(state: &StateResponse) -> HashSet<InstanceId> {
    listed_instances(state).into_iter().map(|(_, id, _)| id).collect()
}

#[cfg(test)]
mod tests {
    use proto::auth::BearerToken;
    use tonic::Status;

    use super::*;

    #[tokio::test]
    async fn only_late_states_in_a_row_take_a_worker_out_and_a_failed_one_does_at_once() {
        // Nothing listens at port 1: the channels dial lazily and are never used here.
        let token = BearerToken::new(None).unwrap();
        let pool = WorkerPool::new(&["127.0.0.1:1".to_string()], PoolSettings::default(), &token).unwrap();
        let worker = pool.get(0);
        worker.set_up();
        let late = [Status::deadline_exceeded("State timed out"), Status::cancelled("Timeout expired")];

        for status in late.iter().cycle().take(LATE_IN_A_ROW as usize - 1) {
            worker.state_answered(Err(status));
            assert!(worker.in_rotation(), "{:?} after {status:?}", worker.health());
        }
        worker.state_answered(Ok(()));
        assert_eq!(worker.health(), Health::InRotation, "an answer in time clears the count");
        for status in late.iter().cycle().take(LATE_IN_A_ROW as usize) {
            worker.state_answered(Err(status));
        }
        assert_eq!(worker.health(), Health::OutOfRotation);

        worker.set_up();
        worker.state_answered(Err(&Status::unavailable("tcp connect error")));
        assert_eq!(worker.health(), Health::OutOfRotation, "a failure that is not lateness counts at once");
    }
}
