//! The instance's memory for calls: buffers kept between calls and reused.
//!
//! Why a pool. The traces' memory is what the app holds (Azure 2019: an
//! app's allocated memory), not something it allocates afresh on every
//! call. Allocating and first-touching 300 MiB per call costs the kernel a
//! page fault and a zeroed page for each of 77 000 pages: seconds of CPU at a
//! quarter core on a virtual machine, where the requested 5 ms call took
//! 16 s (measured in the first pipeline run of the trace example). A
//! buffer returned to the pool is resident, so the next call writes its
//! pages without faulting: the container holds the memory as the app did,
//! and a call's CPU is its own work. The first call of a size on an instance
//! pays the faults (which is what a warm-up call is for).
//!
//! Bound: buffers in use and pooled never exceed the instance's memory limit
//! less the process's reserve; a call that would exceed it counting only the
//! buffers in use is refused, and pooled buffers are dropped (largest first)
//! to make room for one that fits.

use std::sync::{Mutex, PoisonError};

/// Buffers in use and kept, under one lock (held for bookkeeping only:
/// a new buffer is mapped lazily, so allocating it is cheap).
#[derive(Debug, Default)]
pub struct MemoryPool {
    state: Mutex<PoolState>,
}

#[derive(Debug, Default)]
struct PoolState {
    pool: Vec<Vec<u8>>,
    pooled_bytes: u64,
    in_use_bytes: u64,
}

/// A buffer cannot be had: the bytes already in use by other calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoRoom {
    pub in_use_bytes: u64,
}

impl MemoryPool {
    /// A buffer of at least `bytes` (the smallest pooled one that is large
    /// enough, else a new one), with `usable` the most that buffers in use
    /// and pooled may add up to (`None`: no limit).
    pub fn take(&self, bytes: u64, usable: Option<u64>) -> Result<Option<Vec<u8>>, NoRoom> {
        if bytes == 0 {
            return Ok(None);
        }
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let fitting = st
            .pool
            .iter()
            .enumerate()
            .filter(|(_, b)| b.len() as u64 >= bytes)
            .min_by_key(|(_, b)| b.len())
            .map(|(i, _)| i);
        if let Some(i) = fitting {
            let buffer = st.pool.swap_remove(i);
            st.pooled_bytes -= buffer.len() as u64;
            st.in_use_bytes += buffer.len() as u64;
            return Ok(Some(buffer));
        }
        if let Some(usable) = usable {
            if st.in_use_bytes + bytes > usable {
                return Err(NoRoom { in_use_bytes: st.in_use_bytes });
            }
            st.pool.sort_by_key(Vec::len);
            while st.in_use_bytes + st.pooled_bytes + bytes > usable {
                let Some(dropped) = st.pool.pop() else { break };
                st.pooled_bytes -= dropped.len() as u64;
            }
        }
        st.in_use_bytes += bytes;
        drop(st);
        let len = usize::try_from(bytes).expect("bytes are bounded by MAX_MEMORY_MIB");
        Ok(Some(vec![0_u8; len]))
    }

    /// Returns a buffer taken with [`MemoryPool::take`] (or, when the call's
    /// thread panicked and took its buffer with it, just `len`).
    pub fn give_back(&self, buffer: Option<Vec<u8>>, len: u64) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.in_use_bytes -= len;
        if let Some(buffer) = buffer {
            st.pooled_bytes += buffer.len() as u64;
            st.pool.push(buffer);
        }
    }

    /// Bytes in buffers in use and pooled.
    pub fn bytes(&self) -> (u64, u64) {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        (st.in_use_bytes, st.pooled_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_smallest_first() {
        let pool = MemoryPool::default();
        let a = pool.take(100, None).unwrap().unwrap();
        let b = pool.take(300, None).unwrap().unwrap();
        assert_eq!(pool.bytes(), (400, 0));
        pool.give_back(Some(a), 100);
        pool.give_back(Some(b), 300);
        assert_eq!(pool.bytes(), (0, 400));
        // 50 bytes: the 100-byte buffer, not the 300-byte one.
        let c = pool.take(50, None).unwrap().unwrap();
        assert_eq!(c.len(), 100);
        assert_eq!(pool.bytes(), (100, 300));
        pool.give_back(Some(c), 100);
        assert_eq!(pool.take(0, Some(0)).unwrap(), None);
    }

    #[test]
    fn the_limit_counts_buffers_in_use_and_drops_pooled_ones_to_make_room() {
        let pool = MemoryPool::default();
        let a = pool.take(600, Some(1000)).unwrap().unwrap();
        assert_eq!(pool.take(500, Some(1000)), Err(NoRoom { in_use_bytes: 600 }));
        pool.give_back(Some(a), 600);
        // 700 does not fit beside the pooled 600: that one is dropped.
        let b = pool.take(700, Some(1000)).unwrap().unwrap();
        assert_eq!(b.len(), 700);
        assert_eq!(pool.bytes(), (700, 0));
        pool.give_back(None, 700);
        assert_eq!(pool.bytes(), (0, 0), "a buffer lost with a panicked call is still accounted for");
    }
}
