//! `loadgen bench-trace`: how long does a trace schedule take to build, and
//! how much memory, for one full day of an Azure 2019-format trace?
//!
//! Generates (seeded) a day of `functions` functions in the 2019 format
//! (invocations with all 1440 minute columns, durations, memory) into a
//! scratch directory, then times [`Workload::from_yaml`] (streaming the files
//! twice, selecting every function) and [`Schedule::resolve`] over the whole
//! day at real time, and reads the process's peak resident memory. Daily
//! invocation counts are heavy-tailed as in the real trace (log-normal,
//! median 8, most functions called a few times a day, a few every second).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use rand::Rng;
use serde::Serialize;

use crate::config::Workload;
use crate::schedule::{Schedule, rng};
use crate::trace::azure2019::{DURATION_PERCENTILES, MEMORY_PERCENTILES};

/// What to measure.
#[derive(Clone, Debug)]
pub struct TraceBenchOptions {
    pub functions: u32,
    pub seed: u64,
    /// Where the reports go.
    pub out_dir: PathBuf,
    /// Scratch directory for the generated files (removed afterwards).
    pub scratch: PathBuf,
}

#[derive(Clone, Debug, Serialize)]
pub struct TraceBenchReport {
    pub functions: u32,
    pub minutes: u32,
    pub seed: u64,
    pub invocations_file_bytes: u64,
    pub trace_invocations: u64,
    pub scheduled_calls: u64,
    pub generate_s: f64,
    /// Reading, validating and selecting (`Workload::from_yaml`).
    pub load_s: f64,
    /// Turning counts into calls (`Schedule::resolve`).
    pub schedule_s: f64,
    pub total_s: f64,
    /// Peak resident memory after generating (before loading) and at the end.
    pub peak_rss_after_generate_mb: f64,
    pub peak_rss_mb: f64,
    pub cpus: usize,
    pub machine: String,
    /// The build profile (`hyperfake_core::build::profile`).
    pub profile: String,
}

/// Generates the trace, builds its schedule, writes trace-schedule.{json,md}.
pub fn bench_trace(options: &TraceBenchOptions) -> anyhow::Result<TraceBenchReport> {
    let minutes = crate::trace::MINUTES_PER_DAY;
    std::fs::create_dir_all(&options.scratch)
        .with_context(|| format!("cannot create {}", options.scratch.display()))?;
    let started = Instant::now();
    let trace_invocations = generate_2019(&options.scratch, options.functions, options.seed)?;
    let generate_s = started.elapsed().as_secs_f64();
    let rss_generated = peak_rss_mb();
    let invocations = options.scratch.join("invocations_per_function_md.anon.d01.csv");
    let invocations_file_bytes = std::fs::metadata(&invocations)?.len();
    let yaml = format!(
        "max_duration: 24h\nseed: {seed}\nmax_scheduled_calls: 1000000000\ntrace:\n  format: azure_2019\n  \
         invocations: {inv}\n  durations: {dur}\n  memory: {mem}\n  image_tag: hyperfaas-simul:latest\n  \
         sample: {n}\n  arrival: exponential\n  shift: true\nfunction_config:\n  \
         hyperfaas-simul:latest: {{memory: 64MB}}\n",
        seed = options.seed,
        inv = invocations.display(),
        dur = options.scratch.join("function_durations_percentiles.anon.d01.csv").display(),
        mem = options.scratch.join("app_memory_percentiles.anon.d01.csv").display(),
        n = options.functions,
    );
    let t0 = Instant::now();
    let workload = Workload::from_yaml(&yaml).map_err(|e| anyhow::anyhow!("{e}"))?;
    let load_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let schedule = Schedule::resolve(&workload);
    let schedule_s = t1.elapsed().as_secs_f64();
    let report = TraceBenchReport {
        functions: options.functions,
        minutes,
        seed: options.seed,
        invocations_file_bytes,
        trace_invocations,
        scheduled_calls: schedule.calls.len() as u64,
        generate_s,
        load_s,
        schedule_s,
        total_s: load_s + schedule_s,
        peak_rss_after_generate_mb: rss_generated,
        peak_rss_mb: peak_rss_mb(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        machine: machine(),
        profile: hyperfake_core::build::profile(cfg!(debug_assertions)),
    };
    drop(schedule);
    let _ = std::fs::remove_dir_all(&options.scratch);
    std::fs::create_dir_all(&options.out_dir)?;
    let json = options.out_dir.join("trace-schedule.json");
    std::fs::write(&json, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", json.display()))?;
    let md = options.out_dir.join("trace-schedule.md");
    std::fs::write(&md, markdown(&report)).with_context(|| format!("cannot write {}", md.display()))?;
    Ok(report)
}

pub fn markdown(r: &TraceBenchReport) -> String {
    format!(
        "# loadgen trace schedule benchmark\n\n\
         One full day ({} minutes) of {} functions in the Azure 2019 format, generated with seed {} \
         ({:.0} MB invocations file, {} invocations), every function selected, real time, exponential \
         arrivals shifted off the minute: {} calls scheduled.\n\n\
         | phase | seconds |\n|---|---:|\n\
         | load (stream the files twice, select) | {:.2} |\n\
         | schedule (counts → calls, sort) | {:.2} |\n\
         | **total** | {:.2} |\n\n\
         Peak RSS: **{:.0} MB** ({:.0} MB before loading; the file is streamed, not held). \
         Generating the files took {:.1} s (not counted).\n\n\
         Machine: {}, {} CPUs. Build profile: {}.\n\n\
         Measured with `loadgen bench-trace --out bench-results`.\n",
        r.minutes,
        r.functions,
        r.seed,
        r.invocations_file_bytes as f64 / 1e6,
        r.trace_invocations,
        r.scheduled_calls,
        r.load_s,
        r.schedule_s,
        r.total_s,
        r.peak_rss_mb,
        r.peak_rss_after_generate_mb,
        r.generate_s,
        r.machine,
        r.cpus,
        r.profile,
    )
}

/// Writes the three 2019 files for `functions` functions; returns the total invocations.
pub fn generate_2019(dir: &Path, functions: u32, seed: u64) -> anyhow::Result<u64> {
    let minutes = crate::trace::MINUTES_PER_DAY as usize;
    let mut r = rng(seed, 0);
    let create = |name: &str| -> anyhow::Result<BufWriter<File>> {
        let path = dir.join(name);
        Ok(BufWriter::new(File::create(&path).with_context(|| format!("cannot create {}", path.display()))?))
    };
    let mut inv = create("invocations_per_function_md.anon.d01.csv")?;
    let mut dur = create("function_durations_percentiles.anon.d01.csv")?;
    let mut mem = create("app_memory_percentiles.anon.d01.csv")?;
    inv.write_all(b"HashOwner,HashApp,HashFunction,Trigger")?;
    for m in 1..=minutes {
        write!(inv, ",{m}")?;
    }
    inv.write_all(b"\n")?;
    write!(dur, "HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum")?;
    for (c, _) in DURATION_PERCENTILES {
        write!(dur, ",{c}")?;
    }
    dur.write_all(b"\n")?;
    write!(mem, "HashOwner,HashApp,SampleCount,AverageAllocatedMb")?;
    for (c, _) in MEMORY_PERCENTILES {
        write!(mem, ",{c}")?;
    }
    mem.write_all(b"\n")?;
    let triggers = ["http", "timer", "queue", "event", "storage", "orchestration", "others"];
    let mut counts = vec![0u32; minutes];
    let mut row = String::with_capacity(minutes * 3 + 256);
    let mut total = 0u64;
    let (mut owner, mut app) = (String::new(), String::new());
    for f in 0..functions {
        // About three functions per app, five apps per owner.
        if f % 3 == 0 {
            app = hex(&mut r);
            if f % 15 == 0 {
                owner = hex(&mut r);
            }
            let base: f64 = 40.0 * (r.random::<f64>() * 3.0).exp();
            write!(mem, "{owner},{app},1000,{base:.1}")?;
            for (_, p) in MEMORY_PERCENTILES {
                write!(mem, ",{:.1}", base * (0.8 + p / 100.0))?;
            }
            mem.write_all(b"\n")?;
        }
        let function = hex(&mut r);
        // Daily invocations: log-normal, median 8, capped at 100 per minute.
        let daily = (8.0 * (2.0 * normal(&mut r)).exp()).min(100.0 * minutes as f64);
        let daily = crate::trace::arrivals::to_u64(daily);
        counts.iter_mut().for_each(|c| *c = 0);
        let whole = u32::try_from(daily / minutes as u64).unwrap_or(u32::MAX);
        let rest = daily % minutes as u64;
        counts.iter_mut().for_each(|c| *c = whole);
        for _ in 0..rest {
            counts[r.random_range(0..minutes)] += 1;
        }
        total += daily;
        row.clear();
        row.push_str(&format!("{owner},{app},{function},{}", triggers[r.random_range(0..triggers.len())]));
        for &c in &counts {
            row.push(',');
            if c == 0 {
                row.push('0');
            } else {
                row.push_str(&c.to_string());
            }
        }
        row.push('\n');
        inv.write_all(row.as_bytes())?;
        let median: f64 = 200.0 * (1.5 * normal(&mut r)).exp();
        write!(
            dur,
            "{owner},{app},{function},{:.1},{daily},{:.1},{:.1}",
            median * 1.3,
            median * 0.1,
            median * 8.0
        )?;
        for (_, p) in DURATION_PERCENTILES {
            write!(dur, ",{:.1}", median * (0.1 + 7.9 * (p / 100.0).powi(3)) * 1.0)?;
        }
        dur.write_all(b"\n")?;
    }
    inv.flush()?;
    dur.flush()?;
    mem.flush()?;
    Ok(total)
}

fn hex(r: &mut rand_chacha::ChaCha8Rng) -> String {
    (0..4).map(|_| format!("{:016x}", r.random::<u64>())).collect()
}

/// A standard normal draw (Box–Muller).
fn normal(r: &mut rand_chacha::ChaCha8Rng) -> f64 {
    let (u, v): (f64, f64) = (r.random(), r.random());
    (-2.0 * (1.0 - u).ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// The process's peak resident set (`VmHWM`), in MB; NaN where unknown.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The CPU model and memory, from /proc.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or("unknown memory".into(), |kb| format!("{:.0} GB RAM", kb / 1024.0 / 1024.0));
    format!("{cpu}, {mem}")
}
