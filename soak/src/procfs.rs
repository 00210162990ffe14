//! What `/proc` says about a process and the machine: resident memory
//! (`VmRSS` of `/proc/<pid>/status`), open file descriptors (entries of
//! `/proc/<pid>/fd`) and the load average.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One reading of one process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessReading {
    pub rss_bytes: u64,
    pub open_fds: u64,
    /// CPU time used so far, user + system, in clock ticks
    /// ([`clock_ticks_per_second`]).
    pub cpu_ticks: u64,
}

/// The machine's CPU time so far, over every CPU, in clock ticks (the first
/// line of `/proc/stat`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTimes {
    /// user + nice + system + irq + softirq
    pub busy: u64,
    pub idle: u64,
    pub iowait: u64,
    /// Time the hypervisor ran something else while this VM wanted a CPU.
    pub steal: u64,
}

/// Why a process could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The process has exited (its `/proc` entry is gone).
    #[error("process {pid} has exited")]
    Gone { pid: u32 },
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: no VmRSS line in kB (a kernel thread or a zombie?)", .path.display())]
    NoRss { path: PathBuf },
}

impl ProcError {
    fn from_io(pid: u32, path: &Path, source: std::io::Error) -> ProcError {
        if source.kind() == std::io::ErrorKind::NotFound {
            ProcError::Gone { pid }
        } else {
            ProcError::Read { path: path.to_path_buf(), source }
        }
    }
}

/// Reads `pid`'s RSS and open file descriptors.
pub fn read_process(pid: u32) -> Result<ProcessReading, ProcError> {
    let status = PathBuf::from(format!("/proc/{pid}/status"));
    let text = std::fs::read_to_string(&status).map_err(|e| ProcError::from_io(pid, &status, e))?;
    let rss_bytes = vm_rss_bytes(&text).ok_or_else(|| ProcError::NoRss { path: status.clone() })?;
    let fd_dir = PathBuf::from(format!("/proc/{pid}/fd"));
    let entries = std::fs::read_dir(&fd_dir).map_err(|e| ProcError::from_io(pid, &fd_dir, e))?;
    let open_fds = entries.filter(Result::is_ok).count() as u64;
    let stat = PathBuf::from(format!("/proc/{pid}/stat"));
    let text = std::fs::read_to_string(&stat).map_err(|e| ProcError::from_io(pid, &stat, e))?;
    let cpu_ticks = process_cpu_ticks(&text).ok_or_else(|| ProcError::Read {
        path: stat.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "no utime/stime fields"),
    })?;
    Ok(ProcessReading { rss_bytes, open_fds, cpu_ticks })
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` text. The
/// command name (field 2) may hold spaces and parentheses: fields are
/// counted after its last `)`.
pub fn process_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3 (state): utime is its 12th field.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The machine's CPU times from `/proc/stat`.
pub fn cpu_times() -> Result<CpuTimes, ProcError> {
    let path = Path::new("/proc/stat");
    let text =
        std::fs::read_to_string(path).map_err(|source| ProcError::Read { path: path.into(), source })?;
    parse_cpu_times(&text).ok_or_else(|| ProcError::Read {
        path: path.into(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "no aggregate cpu line"),
    })
}

fn parse_cpu_times(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find_map(|l| l.strip_prefix("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().map(str::parse).collect::<Result<_, _>>().ok()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    (v.len() >= 4).then(|| CpuTimes {
        busy: at(0) + at(1) + at(2) + at(5) + at(6),
        idle: at(3),
        iowait: at(4),
        steal: at(7),
    })
}

/// Clock ticks per second of `/proc` CPU times (`sysconf(_SC_CLK_TCK)`,
/// 100 on Linux when it cannot be read).
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf reads a constant of the C library; it has no
    // preconditions and touches no memory of ours.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// The `VmRSS:` line of a `/proc/<pid>/status` text, in bytes.
pub fn vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let mut parts = line.split_whitespace();
    let kib: u64 = parts.next()?.parse().ok()?;
    (parts.next() == Some("kB")).then_some(kib * 1024)
}

/// The 1-, 5- and 15-minute load averages.
pub fn load_average() -> Result<[f64; 3], ProcError> {
    let path = Path::new("/proc/loadavg");
    let text =
        std::fs::read_to_string(path).map_err(|source| ProcError::Read { path: path.into(), source })?;
    parse_loadavg(&text).ok_or_else(|| ProcError::Read {
        path: path.into(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, format!("unexpected content {text:?}")),
    })
}

fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    Some([fields.next()?.ok()?, fields.next()?.ok()?, fields.next()?.ok()?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\tleaf\nVmPeak:\t  100 kB\nVmRSS:\t   20480 kB\nThreads:\t4\n";
        assert_eq!(vm_rss_bytes(status), Some(20 * 1024 * 1024));
        assert_eq!(vm_rss_bytes("Name:\tkthreadd\n"), None);
        assert_eq!(vm_rss_bytes("VmRSS:\t12 MB\n"), None, "only kB is what the kernel writes");
    }

    #[test]
    fn cpu_ticks_are_counted_after_the_command_name() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 5 1000 10";
        assert_eq!(process_cpu_ticks(stat), Some(10));
        assert_eq!(process_cpu_ticks("42 (x) S 1"), None);
        let times = parse_cpu_times("cpu  100 5 20 900 7 1 2 3 0 0\ncpu0 1 2 3 4\n").unwrap();
        assert_eq!(times, CpuTimes { busy: 128, idle: 900, iowait: 7, steal: 3 });
        assert!(clock_ticks_per_second() > 0);
    }

    #[test]
    fn load_averages_parse() {
        assert_eq!(parse_loadavg("1.10 0.24 0.08 2/300 4242\n"), Some([1.10, 0.24, 0.08]));
        assert_eq!(parse_loadavg("x"), None);
    }

    #[test]
    fn this_process_can_be_read_and_a_missing_one_is_gone() {
        let me = read_process(std::process::id()).unwrap();
        assert!(me.rss_bytes > 0 && me.open_fds >= 3, "{me:?}");
        // Pids are at most 2^22 on Linux.
        assert!(matches!(read_process(u32::MAX - 1), Err(ProcError::Gone { .. })));
    }
}
