//! Turns a run database into training data.
//!
//! loadgen's `calls` (with the worker's timing trailers) and the collector's
//! lifecycle events and resource samples are read with rusqlite ([`raw`]); the
//! features that need exact interval arithmetic are computed per worker and
//! per instance ([`features`]); [`frame`] joins the worker samples on (the
//! first at or after each call's start) and derives the training rows, the
//! averages and the run summary; the payload feature columns and the cold starts come from
//! [`extras`]; [`store`] writes them back into the same file. Every column is
//! defined in `docs/units.md`; missing data is NULL, never 0.
//!
//! [`plots`] draws a run; [`bench`] measures processing on synthetic runs
//! (`rundb::fixtures`); [`huawei`] imports the Huawei 2025 per-request trace
//! as a run database.
//!
//! ```no_run
//! use processing::{ProcessOptions, process_db};
//! let summaries = process_db("training_data/run1.db".as_ref(), None, &ProcessOptions::default(), &Default::default())?;
//! for s in &summaries {
//!     println!("{s}");
//! }
//! # Ok::<(), processing::ProcessError>(())
//! ```

pub mod bench;
pub mod check;
pub mod error;
pub mod extras;
pub mod features;
pub mod frame;
pub mod huawei;
pub mod plots;
pub mod raw;
pub mod store;
pub mod summary;
pub mod trace_plots;

use std::path::Path;
use std::time::Duration;

use indicatif::ProgressBar;

pub use error::{ProcessError, Result};
pub use frame::{INPUTS, TARGETS};
pub use summary::{DropReason, ImageSummary, RunSummary};

/// A call is flagged as measured under overload when the median queueing of
/// its image exceeds this fraction of the median runtime: the runtimes then
/// include contention that the inputs may not capture.
pub const QUEUEING_FLAG_RATIO: f64 = 0.10;

/// The smallest sample tolerance: container samples arrive every 100–250 ms
/// and a late `docker stats` read must not turn a call's features NULL.
pub const MIN_SAMPLE_TOLERANCE: Duration = Duration::from_secs(1);

/// The collector interval assumed when `collector_sessions` has none.
pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_millis(250);

/// How to process.
#[derive(Clone, Debug)]
pub struct ProcessOptions {
    /// How far a sample may be from the time it describes. By default,
    /// `max(2 × the collector's interval, MIN_SAMPLE_TOLERANCE)`.
    pub sample_tolerance: Option<Duration>,
    /// By default, [`QUEUEING_FLAG_RATIO`].
    pub queueing_flag_ratio: f64,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        ProcessOptions { sample_tolerance: None, queueing_flag_ratio: QUEUEING_FLAG_RATIO }
    }
}

impl ProcessOptions {
    /// The tolerance for a run whose collector sampled every `interval_ns`.
    pub fn tolerance_ns(&self, interval_ns: Option<i64>) -> i64 {
        let ns = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        match self.sample_tolerance {
            Some(t) => ns(t),
            None => {
                let interval = interval_ns.unwrap_or(ns(DEFAULT_SAMPLE_INTERVAL));
                interval.saturating_mul(2).max(ns(MIN_SAMPLE_TOLERANCE))
            }
        }
    }
}

/// Progress bars for the three phases (hidden by default).
#[derive(Clone, Debug)]
pub struct Progress {
    /// Rows read.
    pub read: ProgressBar,
    /// Runs processed.
    pub process: ProgressBar,
    /// Rows written.
    pub write: ProgressBar,
}

impl Default for Progress {
    fn default() -> Self {
        Progress { read: ProgressBar::hidden(), process: ProgressBar::hidden(), write: ProgressBar::hidden() }
    }
}

/// One processed run, before it is written.
#[derive(Debug)]
pub struct Processed {
    pub raw: raw::RawRun,
    pub features: features::Features,
    pub frames: frame::Frames,
}

/// Computes everything for one run already read.
pub fn process_run(raw: raw::RawRun, options: &ProcessOptions) -> Result<Processed> {
    let tolerance = options.tolerance_ns(raw.sample_interval_ns);
    let features = features::compute(&raw.calls, &raw.events, &raw.container_samples, tolerance);
    let frames = frame::build(&raw, &features, tolerance, options.queueing_flag_ratio)?;
    Ok(Processed { raw, features, frames })
}

/// Processes `run_id` (or every run) of the database at `path` and writes
/// `training_data`, `training_data_avg` and `run_summary` into it.
pub fn process_db(
    path: &Path,
    run_id: Option<&str>,
    options: &ProcessOptions,
    progress: &Progress,
) -> Result<Vec<RunSummary>> {
    let runs = {
        let conn = raw::open_read(path)?;
        let known = raw::run_ids(&conn, path)?;
        match run_id {
            None => known,
            Some(r) if known.iter().any(|k| k == r) => vec![r.to_owned()],
            Some(r) => {
                return Err(ProcessError::UnknownRun {
                    path: path.to_owned(),
                    run_id: r.to_owned(),
                    known: known.join(", "),
                });
            }
        }
    };
    progress.process.set_length(runs.len() as u64);
    let mut conn = store::open_write(path)?;
    let mut summaries = Vec::with_capacity(runs.len());
    for run in &runs {
        let raw = raw::read_run(&conn, run, &progress.read)?;
        tracing::info!(run, calls = raw.calls.len(), "read");
        let processed = process_run(raw, options)?;
        progress.process.inc(1);
        let f = &processed.frames;
        store::write_run(&mut conn, f, &progress.write)?;
        summaries.push(processed.frames.summary);
    }
    Ok(summaries)
}
