//! The open-file limit. Each worker of a process holds a listening socket
//! and one socket per client connection (a leaf, a collector, …), so a
//! process serving a thousand simulated workers needs several thousand file
//! descriptors, past the usual soft limit of 1024. The soft limit is raised
//! to the hard one at start (what Go's runtime does for every program); a
//! hard limit still too low for the workers asked for is warned about, naming
//! it.

/// File descriptors one worker is expected to hold: its listener and the
/// connections of a leaf, a collector and a client or two.
pub const FILES_PER_WORKER: u64 = 4;

/// Descriptors the process holds besides its workers' (the runtime, the
/// database connection, log files, the model files being read).
pub const FILES_BASE: u64 = 64;

/// Raises the soft open-file limit to the hard limit; returns the soft limit
/// in force afterwards (`None` if it cannot be read).
pub fn raise_open_files(workers: usize) -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one `rlimit` through a valid, exclusive pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        tracing::warn!("cannot read the open-file limit: {}", std::io::Error::last_os_error());
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: setrlimit reads one `rlimit` through a valid pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            tracing::debug!(from = limit.rlim_cur, to = raised.rlim_cur, "raised the open-file limit");
            limit = raised;
        } else {
            tracing::warn!("cannot raise the open-file limit: {}", std::io::Error::last_os_error());
        }
    }
    let needed = FILES_BASE + FILES_PER_WORKER * workers as u64;
    if limit.rlim_cur < needed {
        tracing::warn!(
            limit = limit.rlim_cur,
            needed,
            workers,
            "the open-file limit (ulimit -n) is below what {workers} workers are expected to need; \
             raise the hard limit (ulimit -Hn, LimitNOFILE=) or serve fewer workers per process"
        );
    }
    Some(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let soft = raise_open_files(1).expect("the limit is readable");
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: as in `raise_open_files`.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
        assert_eq!((soft, limit.rlim_cur), (limit.rlim_max, limit.rlim_max));
    }
}
