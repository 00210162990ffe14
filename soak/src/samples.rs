//! The sample file: one JSON object a line, written every interval by
//! [`Sampler`] and read back by [`read`] for the report.
//!
//! ```text
//! {"at_ns":1764745200000000000,"load":[1.1,0.9,0.7]}
//! {"at_ns":1764745200000000000,"process":"leaf","pid":4242,"rss_bytes":20971520,"open_fds":31}
//! {"at_ns":1764745205000000000,"process":"loadgen","pid":4250,"gone":true}
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::procfs::{self, CpuTimes, ProcError};

/// One line of the sample file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Sample {
    /// A reading of one process.
    Process {
        at_ns: i64,
        process: String,
        pid: u32,
        rss_bytes: u64,
        open_fds: u64,
        /// User + system CPU time so far, clock ticks.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cpu_ticks: Option<u64>,
    },
    /// The process has exited; it is not sampled again.
    Gone { at_ns: i64, process: String, pid: u32, gone: bool },
    /// The machine's 1-, 5- and 15-minute load averages, and its CPU times.
    Load {
        at_ns: i64,
        load: [f64; 3],
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cpu: Option<CpuTimes>,
        /// Clock ticks per second of every CPU time in the file.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ticks_per_s: Option<u64>,
    },
}

/// A process to sample, as `name=pid` on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub pid: u32,
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, pid) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected NAME=PID"))?;
        if name.is_empty() {
            return Err(format!("{s:?}: the name is empty"));
        }
        let pid = pid.parse().map_err(|_| format!("{s:?}: {pid:?} is not a process id"))?;
        Ok(Target { name: name.to_string(), pid })
    }
}

/// Samples processes and the load average into a file until stopped.
#[derive(Debug)]
pub struct Sampler {
    targets: Vec<Target>,
    interval: Duration,
    out: BufWriter<std::fs::File>,
    path: PathBuf,
    ticks_per_s: u64,
}

impl Sampler {
    /// Creates (truncating) `path`. Refuses an empty target list or a zero
    /// interval.
    pub fn create(path: &Path, targets: Vec<Target>, interval: Duration) -> anyhow::Result<Sampler> {
        anyhow::ensure!(!targets.is_empty(), "no process to sample (give --process NAME=PID)");
        anyhow::ensure!(!interval.is_zero(), "the sampling interval must be above 0");
        let file =
            std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Sampler {
            targets,
            interval,
            out: BufWriter::new(file),
            path: path.to_path_buf(),
            ticks_per_s: procfs::clock_ticks_per_second(),
        })
    }

    /// Samples every interval until `stop` resolves or every process has
    /// exited; flushes each round, so a killed sampler loses at most one.
    /// Returns the rounds taken.
    pub async fn run(mut self, stop: impl Future<Output = ()>) -> anyhow::Result<u64> {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut live = self.targets.clone();
        let mut rounds = 0u64;
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                _ = tick.tick() => {}
            }
            let at_ns = hyperfake_core::time::now_unix().as_i64();
            let mut still = Vec::with_capacity(live.len());
            for target in live {
                match procfs::read_process(target.pid) {
                    Ok(r) => {
                        self.write(&Sample::Process {
                            at_ns,
                            process: target.name.clone(),
                            pid: target.pid,
                            rss_bytes: r.rss_bytes,
                            open_fds: r.open_fds,
                            cpu_ticks: Some(r.cpu_ticks),
                        })?;
                        still.push(target);
                    }
                    Err(ProcError::Gone { .. }) => {
                        tracing::info!(process = %target.name, pid = target.pid, "exited; no longer sampled");
                        self.write(&Sample::Gone {
                            at_ns,
                            process: target.name,
                            pid: target.pid,
                            gone: true,
                        })?;
                    }
                    Err(e) => {
                        tracing::warn!(process = %target.name, "cannot sample: {e}");
                        still.push(target);
                    }
                }
            }
            live = still;
            let cpu = procfs::cpu_times().map_err(|e| tracing::warn!("cannot read the CPU times: {e}")).ok();
            match procfs::load_average() {
                Ok(load) => {
                    self.write(&Sample::Load { at_ns, load, cpu, ticks_per_s: Some(self.ticks_per_s) })?
                }
                Err(e) => tracing::warn!("cannot read the load average: {e}"),
            }
            self.out.flush().with_context(|| format!("cannot write {}", self.path.display()))?;
            rounds += 1;
            if live.is_empty() {
                tracing::info!("every sampled process has exited");
                break;
            }
        }
        Ok(rounds)
    }

    fn write(&mut self, sample: &Sample) -> anyhow::Result<()> {
        serde_json::to_writer(&mut self.out, sample)
            .and_then(|()| self.out.write_all(b"\n").map_err(serde_json::Error::io))
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

/// One reading of a process, read back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reading {
    pub at_ns: i64,
    pub rss_bytes: u64,
    pub open_fds: u64,
    pub cpu_ticks: Option<u64>,
}

/// A process's readings in time order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    pub pid: u32,
    pub readings: Vec<Reading>,
    /// When it was seen gone, if it was.
    pub gone_at_ns: Option<i64>,
}

/// One reading of the machine, read back.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MachineReading {
    pub at_ns: i64,
    /// 1-, 5- and 15-minute load averages.
    pub load: [f64; 3],
    pub cpu: Option<CpuTimes>,
}

/// A sample file read back.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Samples {
    pub processes: BTreeMap<String, Series>,
    pub machine: Vec<MachineReading>,
    /// Clock ticks per second of the CPU times (100 when the file says none).
    pub ticks_per_s: u64,
}

/// Reads a sample file; an unreadable line is an error naming the file and
/// the line.
pub fn read(path: &Path) -> anyhow::Result<Samples> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut samples = Samples { ticks_per_s: 100, ..Samples::default() };
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let sample: Sample = serde_json::from_str(&line)
            .with_context(|| format!("{}, line {}: not a sample", path.display(), i + 1))?;
        match sample {
            Sample::Process { at_ns, process, pid, rss_bytes, open_fds, cpu_ticks } => {
                let series = samples.processes.entry(process).or_default();
                series.pid = pid;
                series.readings.push(Reading { at_ns, rss_bytes, open_fds, cpu_ticks });
            }
            Sample::Gone { at_ns, process, pid, .. } => {
                let series = samples.processes.entry(process).or_default();
                series.pid = pid;
                series.gone_at_ns = Some(at_ns);
            }
            Sample::Load { at_ns, load, cpu, ticks_per_s } => {
                samples.machine.push(MachineReading { at_ns, load, cpu });
                if let Some(t) = ticks_per_s.filter(|t| *t > 0) {
                    samples.ticks_per_s = t;
                }
            }
        }
    }
    for series in samples.processes.values_mut() {
        series.readings.sort_by_key(|r| r.at_ns);
    }
    samples.machine.sort_by_key(|l| l.at_ns);
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_bad_ones_say_why() {
        assert_eq!("leaf=42".parse::<Target>(), Ok(Target { name: "leaf".into(), pid: 42 }));
        assert!("leaf".parse::<Target>().unwrap_err().contains("NAME=PID"));
        assert!("=4".parse::<Target>().unwrap_err().contains("empty"));
        assert!("leaf=x".parse::<Target>().unwrap_err().contains("not a process id"));
    }

    #[test]
    fn every_kind_of_line_round_trips() {
        for sample in [
            Sample::Process {
                at_ns: 1,
                process: "leaf".into(),
                pid: 2,
                rss_bytes: 3,
                open_fds: 4,
                cpu_ticks: Some(9),
            },
            Sample::Process {
                at_ns: 1,
                process: "old".into(),
                pid: 2,
                rss_bytes: 3,
                open_fds: 4,
                cpu_ticks: None,
            },
            Sample::Gone { at_ns: 5, process: "loadgen".into(), pid: 6, gone: true },
            Sample::Load { at_ns: 7, load: [1.5, 1.0, 0.5], cpu: None, ticks_per_s: None },
            Sample::Load {
                at_ns: 8,
                load: [1.5, 1.0, 0.5],
                cpu: Some(CpuTimes { busy: 1, idle: 2, iowait: 3, steal: 4 }),
                ticks_per_s: Some(100),
            },
        ] {
            let line = serde_json::to_string(&sample).unwrap();
            assert_eq!(serde_json::from_str::<Sample>(&line).unwrap(), sample, "{line}");
        }
    }
}
