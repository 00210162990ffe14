//! The collector: follows every worker's lifecycle events (`Status`) and
//! resource samples (`Resources`) over gRPC and records them, under a run id,
//! in the run's SQLite database next to the load generator's tables.
//!
//! - [`follow`]: one task per worker and stream, reconnecting with backoff;
//! - [`record`]: the rows, built from the wire messages;
//! - [`store`]: the schema, sessions, and the single batching writer;
//! - [`Collector`]: starts all of it and stops it cleanly (or abruptly).
//!
//! ```no_run
//! # async fn example() -> Result<(), collector::CollectorError> {
//! use collector::{Collector, CollectorSettings};
//! let settings = CollectorSettings::new(vec!["127.0.0.1:50051".into()], "training_data/r1.db", "r1");
//! let collector = Collector::start(settings).await?;
//! // ... run the workload ...
//! let summary = collector.shutdown().await?;
//! println!("{} rows in session {}", summary.written.committed_rows, summary.session.number);
//! # Ok(()) }
//! ```

mod collector;
pub mod follow;
pub mod record;
pub mod store;

pub use collector::{Collector, CollectorError, CollectorSettings, DEFAULT_INTERVAL, MIN_INTERVAL, Summary};
pub use follow::{LinkState, StreamStats, WorkerStats};
pub use store::{BatchSettings, Session, StoreError, WriterReport, WriterStats};

/// An error and all its sources on one line, `a: b: c`.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        // tonic and hyper often repeat the source in the message.
        if !text.ends_with(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
