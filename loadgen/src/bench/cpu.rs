//! CPU time of a process, from `/proc/<pid>/stat`, and what the machine is.

use std::time::Instant;

/// `/proc` reports CPU times in `USER_HZ` ticks, 100 a second on Linux
/// whatever the kernel's own tick rate (it is part of the user-space ABI).
const USER_HZ: f64 = 100.0;

/// User + system CPU seconds used so far by process `pid` (every thread).
pub fn cpu_seconds(pid: u32) -> std::io::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path)?;
    stat_cpu_seconds(&stat).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{path}: no utime/stime fields"))
    })
}

/// utime + stime of a `/proc/<pid>/stat` line, in seconds.
fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces and ')': fields are counted after the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': index 0 is field 3 (state), so utime (14) and stime (15) are 11 and 12.
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    Some((ticks(11)? + ticks(12)?) as f64 / USER_HZ)
}

/// CPU used by a process over an interval, in cores (CPU seconds per second).
#[derive(Debug)]
pub struct CpuMeter {
    pid: u32,
    cpu: f64,
    wall: Instant,
}

impl CpuMeter {
    /// Starts measuring process `pid` now.
    pub fn start(pid: u32) -> CpuMeter {
        CpuMeter { pid, cpu: cpu_seconds(pid).unwrap_or(0.0), wall: Instant::now() }
    }

    /// Cores used since [`CpuMeter::start`]; NaN when the process is gone.
    pub fn cores(&self) -> f64 {
        let seconds = self.wall.elapsed().as_secs_f64();
        match cpu_seconds(self.pid) {
            Ok(cpu) if seconds > 0.0 => (cpu - self.cpu) / seconds,
            _ => f64::NAN,
        }
    }
}

/// The CPU model (`/proc/cpuinfo`), or "unknown".
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The 1-minute load average (`/proc/loadavg`): how busy the machine was
/// with other work when a figure was taken.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let line = "4242 (tokio rt) x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1 2 3";
        assert_eq!(stat_cpu_seconds(line), Some(3.0));
        assert_eq!(stat_cpu_seconds("4242 (short) S 1"), None);
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        let spin: u64 = (0..2_000_000u64).fold(0, |a, b| a.wrapping_add(b * b));
        assert!(spin > 0);
        assert!(cpu_seconds(std::process::id()).unwrap() >= 0.0);
    }
}
