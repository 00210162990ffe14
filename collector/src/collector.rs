//! A running collector: one writer, and two followers per worker.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use proto::auth::{BearerToken, TokenError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::follow::{self, FollowSettings, WorkerStats};
use crate::store::{self, BatchSettings, Session, StoreError, Writer, WriterReport, WriterStats};

/// Smallest sampling interval the worker honours (it raises smaller ones).
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// The default sampling interval: well under the 250 ms the features need.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);

/// What a collector runs with (validated by [`Collector::start`]).
#[derive(Clone, Debug)]
pub struct CollectorSettings {
    /// Worker addresses as given; each is the `worker` column of its rows.
    pub workers: Vec<String>,
    /// The run database (usually the load generator's `training_data/<run_id>.db`).
    pub db: PathBuf,
    pub run_id: String,
    /// Resource sampling interval asked of every worker.
    pub interval: Duration,
    /// Also record `CALL` and `RESPONSE` events (two per call).
    pub record_call_events: bool,
    /// Shared token sent to every worker.
    pub token: Option<String>,
    pub batch: BatchSettings,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl CollectorSettings {
    /// Defaults for everything but what must be given.
    pub fn new(workers: Vec<String>, db: impl Into<PathBuf>, run_id: impl Into<String>) -> Self {
        CollectorSettings {
            workers,
            db: db.into(),
            run_id: run_id.into(),
            interval: DEFAULT_INTERVAL,
            record_call_events: false,
            token: None,
            batch: BatchSettings::default(),
            backoff_min: follow::BACKOFF_MIN,
            backoff_max: follow::BACKOFF_MAX,
        }
    }
}

/// Why a collector could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error("no workers to collect from: give at least one --worker")]
    NoWorkers,
    #[error("worker {address:?} is given twice")]
    DuplicateWorker { address: String },
    #[error("worker address {address:?} is not host:port or a URI")]
    InvalidWorker {
        address: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("run id {0:?}: use letters, digits, '-', '_' and '.' only (1 to 128 characters)")]
    InvalidRunId(String),
    #[error("interval {0:?} is shorter than the worker's minimum of 10ms")]
    IntervalTooShort(Duration),
    #[error("batch size must be at least one row")]
    EmptyBatch,
    #[error("invalid --token")]
    Token(#[from] TokenError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the writer thread could not be joined")]
    Join(#[from] tokio::task::JoinError),
}

/// A running collector. Stop it with [`Collector::shutdown`] (everything
/// received is committed and the session closed) or [`Collector::kill`]
/// (like `kill -9`). Dropping it stops the followers (their stop signal is
/// gone); the writer then commits and closes the session in the background.
#[derive(Debug)]
pub struct Collector {
    session: Session,
    db: PathBuf,
    workers: Vec<Arc<WorkerStats>>,
    writer: Writer,
    stop: watch::Sender<bool>,
    followers: Vec<JoinHandle<()>>,
}

/// What a stopped collector did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub session: Session,
    pub written: WriterReport,
}

impl Collector {
    /// Opens the database, starts a new session of the run and starts
    /// following every worker. Unreachable workers are not an error: their
    /// followers keep retrying.
    pub async fn start(settings: CollectorSettings) -> Result<Collector, CollectorError> {
        let CollectorSettings {
            workers,
            db,
            run_id,
            interval,
            record_call_events,
            token,
            batch,
            backoff_min,
            backoff_max,
        } = settings;
        if workers.is_empty() {
            return Err(CollectorError::NoWorkers);
        }
        for (i, address) in workers.iter().enumerate() {
            if workers[..i].contains(address) {
                return Err(CollectorError::DuplicateWorker { address: address.clone() });
            }
            follow::endpoint(address)
                .map_err(|source| CollectorError::InvalidWorker { address: address.clone(), source })?;
        }
        if !hyperfake_core::ids::valid_run_id(&run_id) {
            return Err(CollectorError::InvalidRunId(run_id));
        }
        if interval < MIN_INTERVAL {
            return Err(CollectorError::IntervalTooShort(interval));
        }
        if batch.rows == 0 {
            return Err(CollectorError::EmptyBatch);
        }
        let token = BearerToken::new(token.as_deref())?;
        let interval_ms = follow::interval_ms(interval);

        let (conn, session) = {
            let (db, run_id, workers) = (db.clone(), run_id.clone(), workers.clone());
            tokio::task::spawn_blocking(move || {
                let mut conn = store::open(&db)?;
                let session = Session::begin(&mut conn, &run_id, &workers, interval_ms)?;
                Ok::<_, StoreError>((conn, session))
            })
            .await??
        };
        let (writer, records) = Writer::start(conn, session.clone(), batch);

        let follow_settings =
            FollowSettings { run_id, interval, record_call_events, token, backoff_min, backoff_max };
        let (stop, stop_rx) = watch::channel(false);
        let mut stats = Vec::new();
        let mut followers = Vec::new();
        for address in &workers {
            let worker = Arc::new(WorkerStats::new(address));
            followers.push(tokio::spawn(follow::follow_status(
                Arc::clone(&worker),
                follow_settings.clone(),
                records.clone(),
                stop_rx.clone(),
            )));
            followers.push(tokio::spawn(follow::follow_resources(
                Arc::clone(&worker),
                follow_settings.clone(),
                records.clone(),
                stop_rx.clone(),
            )));
            stats.push(worker);
        }
        tracing::info!(run_id = %session.run_id, session = session.number, db = %db.display(), ?workers, "collecting");
        Ok(Collector { session, db, workers: stats, writer, stop, followers })
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn db(&self) -> &PathBuf {
        &self.db
    }

    /// Per-worker stream states and counters, in the order given.
    pub fn workers(&self) -> &[Arc<WorkerStats>] {
        &self.workers
    }

    pub fn writer(&self) -> &Arc<WriterStats> {
        self.writer.stats()
    }

    /// Stops following, commits everything received and closes the session.
    pub async fn shutdown(mut self) -> Result<Summary, CollectorError> {
        let _ = self.stop.send(true);
        for follower in std::mem::take(&mut self.followers) {
            // A follower that panicked has already dropped its sender.
            let _ = follower.await;
        }
        let Collector { session, writer, .. } = self;
        let written = tokio::task::spawn_blocking(move || writer.finish()).await??;
        tracing::info!(
            run_id = %session.run_id, session = session.number, rows = written.committed_rows,
            "session closed"
        );
        Ok(Summary { session, written })
    }

    /// Ends at once without committing the open batch or closing the session:
    /// what `kill -9` does. For tests of crash recovery.
    pub async fn kill(self) -> WriterReport {
        let Collector { writer, followers, .. } = self;
        // The writer first: followers ending first would close its channel,
        // which it takes as a clean stop.
        let report = tokio::task::spawn_blocking(move || writer.kill())
            .await
            .expect("the writer thread does not panic");
        for follower in followers {
            follower.abort();
            let _ = follower.await;
        }
        report
    }
}
