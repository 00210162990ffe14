//! `process bench`: times processing of a synthetic run, phase by phase.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use indicatif::ProgressBar;
use serde::Serialize;

use crate::error::{ProcessError, Result};
use crate::{ProcessOptions, features, frame, raw, store};
use rundb::fixtures::SynthRun;

/// Seconds per phase and what was processed.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub calls: usize,
    pub instances: usize,
    pub container_samples: usize,
    pub worker_samples: usize,
    pub training_rows: usize,
    /// Writing the synthetic raw tables (not part of processing).
    pub generate_s: f64,
    pub read_s: f64,
    pub features_s: f64,
    pub frames_s: f64,
    pub write_s: f64,
    /// read + features + frames + write.
    pub total_s: f64,
    pub calls_per_second: f64,
    pub cpus: usize,
    /// The build profile (`hyperfake_core::build::profile`).
    pub profile: String,
}

/// Generates a synthetic run of `calls` calls in a scratch directory and
/// processes it once. `progress` ticks per phase.
pub fn run(calls: usize, progress: &ProgressBar) -> Result<BenchReport> {
    let dir = std::env::temp_dir().join(format!("hyperfake-processing-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| ProcessError::Write { path: dir.clone(), source })?;
    let db = dir.join("bench.db");
    let result = run_in(&db, calls, progress);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(db: &Path, calls: usize, progress: &ProgressBar) -> Result<BenchReport> {
    progress.set_length(5);
    let mut synth = SynthRun::new("bench", calls);
    synth.workers = 4;
    synth.calls_per_second = 2_000.0;
    let t = Instant::now();
    let counts = synth.write(db).map_err(ProcessError::sql("writing the synthetic run"))?;
    let generate_s = t.elapsed().as_secs_f64();
    progress.inc(1);

    let options = ProcessOptions::default();
    let mut conn = store::open_write(db)?;
    let t = Instant::now();
    let raw = raw::read_run(&conn, "bench", &ProgressBar::hidden())?;
    let read_s = t.elapsed().as_secs_f64();
    progress.inc(1);

    let tolerance = options.tolerance_ns(raw.sample_interval_ns);
    let t = Instant::now();
    let f = features::compute(&raw.calls, &raw.events, &raw.container_samples, tolerance);
    let features_s = t.elapsed().as_secs_f64();
    progress.inc(1);

    let t = Instant::now();
    let frames = frame::build(&raw, &f, tolerance, options.queueing_flag_ratio)?;
    let frames_s = t.elapsed().as_secs_f64();
    progress.inc(1);

    let t = Instant::now();
    store::write_run(&mut conn, &frames, &ProgressBar::hidden())?;
    let write_s = t.elapsed().as_secs_f64();
    progress.finish_and_clear();

    let total_s = read_s + features_s + frames_s + write_s;
    Ok(BenchReport {
        calls: counts.calls,
        instances: counts.instances,
        container_samples: counts.container_samples,
        worker_samples: counts.worker_samples,
        training_rows: frames.training().count(),
        generate_s,
        read_s,
        features_s,
        frames_s,
        write_s,
        total_s,
        calls_per_second: counts.calls as f64 / total_s,
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        profile: hyperfake_core::build::profile(cfg!(debug_assertions)),
    })
}

impl BenchReport {
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# processing benchmark\n");
        let _ = writeln!(
            s,
            "{} calls ({} instances, {} container samples, {} worker samples) → {} training rows; \
             {} CPUs, build profile: {}.\n",
            self.calls,
            self.instances,
            self.container_samples,
            self.worker_samples,
            self.training_rows,
            self.cpus,
            self.profile
        );
        let _ = writeln!(s, "| phase | seconds |\n|---|---|");
        for (name, v) in [
            ("read (rusqlite → columns)", self.read_s),
            ("features (sweeps, interpolation)", self.features_s),
            ("rows (as-of join, drop reasons, averages, summary)", self.frames_s),
            ("write (training_data, training_data_avg, run_summary)", self.write_s),
            ("**total**", self.total_s),
        ] {
            let _ = writeln!(s, "| {name} | {v:.2} |");
        }
        let _ = writeln!(
            s,
            "\n{:.0} calls/s end to end. Generating the synthetic raw tables took {:.2} s (not counted).",
            self.calls_per_second, self.generate_s
        );
        s
    }

    /// Writes `<out>.json` and `<out>.md`.
    pub fn write(&self, out: &Path) -> Result<()> {
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| ProcessError::Write { path: dir.to_owned(), source })?;
        }
        let json = out.with_extension("json");
        let md = out.with_extension("md");
        let text = serde_json::to_string_pretty(self).expect("a report serializes");
        std::fs::write(&json, text).map_err(|source| ProcessError::Write { path: json.clone(), source })?;
        std::fs::write(&md, self.markdown())
            .map_err(|source| ProcessError::Write { path: md.clone(), source })
    }
}
