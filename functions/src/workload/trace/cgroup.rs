//! The container's own CPU quota and memory limit, read once at instance
//! start from the cgroup filesystem (v2 `cpu.max` / `memory.max`, else v1
//! `cpu.cfs_quota_us` + `cpu.cfs_period_us` / `memory.limit_in_bytes`).
//! Docker mounts the container's own cgroup at `/sys/fs/cgroup` in both
//! versions, so the values read there are the ones `--cpus` / `-m` set.

use std::path::Path;

use hyperfake_core::{Bytes, Cores};

/// What the kernel allows this instance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// CPU share from the CFS quota (`quota / period`), `None` when unlimited.
    pub cpu: Option<Cores>,
    /// Memory limit, `None` when unlimited.
    pub memory: Option<Bytes>,
}

/// v1 reports "no limit" as a huge number (`PAGE_COUNTER_MAX` pages); any
/// limit at or above this is treated as none.
const V1_UNLIMITED_BYTES: u64 = 1 << 62;

impl Limits {
    /// The limits of the cgroup mounted at `root` (normally `/sys/fs/cgroup`);
    /// what cannot be read counts as unlimited.
    pub fn read(root: &Path) -> Limits {
        let read = |rel: &str| std::fs::read_to_string(root.join(rel)).ok();
        let cpu = match read("cpu.max") {
            Some(text) => parse_cpu_max(&text),
            None => {
                let v1 = ["cpu", "cpu,cpuacct"].iter().find_map(|dir| {
                    Some((
                        read(&format!("{dir}/cpu.cfs_quota_us"))?,
                        read(&format!("{dir}/cpu.cfs_period_us"))?,
                    ))
                });
                v1.and_then(|(quota, period)| parse_cfs(&quota, &period))
            }
        };
        let memory = match read("memory.max") {
            Some(text) => parse_memory(&text),
            None => read("memory/memory.limit_in_bytes").and_then(|text| parse_memory(&text)),
        };
        Limits { cpu, memory }
    }
}

/// v2 `cpu.max`: `"<quota> <period>"` in µs, quota `max` when unlimited.
pub fn parse_cpu_max(text: &str) -> Option<Cores> {
    let mut fields = text.split_whitespace();
    let quota = fields.next()?;
    let period = fields.next().unwrap_or("100000");
    parse_cfs(quota, period)
}

/// v1 quota and period files (µs); quota `-1` means unlimited.
pub fn parse_cfs(quota: &str, period: &str) -> Option<Cores> {
    let quota: u64 = quota.trim().parse().ok()?;
    let period: u64 = period.trim().parse().ok().filter(|p| *p > 0)?;
    (quota > 0).then(|| Cores::from_cfs(quota, period))
}

/// `memory.max` (`max` when unlimited) or v1 `memory.limit_in_bytes`.
pub fn parse_memory(text: &str) -> Option<Bytes> {
    let bytes: u64 = text.trim().parse().ok()?;
    (bytes < V1_UNLIMITED_BYTES).then_some(Bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quota_in_both_versions() {
        assert_eq!(parse_cpu_max("25000 100000\n"), Some(Cores(0.25)));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cfs("50000\n", "100000\n"), Some(Cores(0.5)));
        assert_eq!(parse_cfs("-1\n", "100000\n"), None);
        assert_eq!(parse_cfs("200000", "100000"), Some(Cores(2.0)));
        assert_eq!(parse_cfs("1000", "0"), None);
    }

    #[test]
    fn memory_limit_in_both_versions() {
        assert_eq!(parse_memory("67108864\n"), Some(Bytes(64 << 20)));
        assert_eq!(parse_memory("max\n"), None);
        assert_eq!(parse_memory("9223372036854771712\n"), None);
    }

    #[test]
    fn reads_a_v1_and_a_v2_tree() {
        let dir = std::env::temp_dir().join(format!("hyperfake-cgroup-{}", std::process::id()));
        let v2 = dir.join("v2");
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(v2.join("cpu.max"), "50000 100000\n").unwrap();
        std::fs::write(v2.join("memory.max"), "134217728\n").unwrap();
        assert_eq!(Limits::read(&v2), Limits { cpu: Some(Cores(0.5)), memory: Some(Bytes(128 << 20)) });

        let v1 = dir.join("v1");
        std::fs::create_dir_all(v1.join("cpu,cpuacct")).unwrap();
        std::fs::create_dir_all(v1.join("memory")).unwrap();
        std::fs::write(v1.join("cpu,cpuacct/cpu.cfs_quota_us"), "25000\n").unwrap();
        std::fs::write(v1.join("cpu,cpuacct/cpu.cfs_period_us"), "100000\n").unwrap();
        std::fs::write(v1.join("memory/memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        assert_eq!(Limits::read(&v1), Limits { cpu: Some(Cores(0.25)), memory: None });

        assert_eq!(Limits::read(&dir.join("missing")), Limits { cpu: None, memory: None });
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
