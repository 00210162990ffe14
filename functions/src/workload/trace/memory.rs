//! The instance's memory: one arena, grown to the largest request, kept
//! between calls and shared by the calls in flight.
//!
//! Why one arena for the instance. The traces' memory is what the app
//! holds (Azure 2019: an app's allocated memory), not something each call
//! allocates afresh. Allocating and first-touching memory costs the kernel a
//! page fault and a zeroed page for each 4 KiB: 380 MiB took 0.2 s of a full
//! core on this VM, so about 0.8 s at a quarter core. Memory the instance
//! already holds is resident. So the arena is faulted in once per instance,
//! by the first call that asks for that much (which is what the warm-up's
//! calls do: they ask for the most memory any call of the run asks), and
//! calls in flight share it, as an app's concurrent invocations share the
//! app's memory.
//!
//! A call writes only the chunks the instance does not hold yet. Rewriting
//! held pages is not free: one write per resident 4 KiB page cost about
//! 70 ns on this VM (a TLB miss under nested paging), so 260 MiB took 4.5 ms
//! of CPU, 19 ms at a quarter core, and the trace asks for 5–20 ms calls of
//! apps holding that much: in the Azure example pipeline (run
//! 20261203T141553Z-local) 70 of the 89 calls that missed their duration by
//! more than 5 % were such calls, every one on memory its instance already
//! held. A pool of per-call buffers (the design before
//! this one) faulted again for every new largest request and for every
//! second call in flight: in the Azure example pipeline 116 of 663 calls
//! took more than twice their duration, all of them on such faults.
//!
//! Layout: 1 MiB chunks (requests are whole MiB), each mapped lazily (a
//! zeroed allocation of that size is a fresh anonymous mapping), so growing
//! the arena costs nothing until a call writes the pages; chunks never move,
//! so a call holds the ones it uses while the arena grows for another.
//! Transparent huge pages were measured and rejected: first-touching
//! 380 MiB as 2 MiB pages took 2.2 s (compaction), ten times the 4 KiB
//! pages' 0.2 s.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Bytes per chunk: one MiB.
pub const CHUNK: usize = 1 << 20;
/// Bytes touched per page (one write each).
pub const PAGE: usize = 4096;
const PAGES_PER_CHUNK: usize = CHUNK / PAGE;

/// One MiB of the arena. Atomic bytes so that calls in flight may write the
/// same pages (a relaxed load and store is a plain move on x86 and ARM).
#[derive(Debug)]
pub struct Chunk {
    bytes: Box<[AtomicU8]>,
    /// Every page written once: resident, held by the instance.
    held: AtomicBool,
}

impl Chunk {
    fn new() -> Chunk {
        let bytes = vec![0_u8; CHUNK].into_boxed_slice();
        // SAFETY: `AtomicU8` has the same size, alignment and bit validity
        // as `u8` (its documentation guarantees it), so a boxed `[u8]` is a
        // valid boxed `[AtomicU8]` of the same length, freed with the same
        // layout. The zeroed allocation stays lazily mapped.
        let bytes = unsafe { Box::from_raw(Box::into_raw(bytes) as *mut [AtomicU8]) };
        Chunk { bytes, held: AtomicBool::new(false) }
    }
}

/// The instance's arena.
#[derive(Debug, Default)]
pub struct Arena {
    chunks: Mutex<Vec<Arc<Chunk>>>,
}

impl Arena {
    /// The pages of the first `mib` MiB of the arena that the instance
    /// does not hold yet, growing the arena to that size first. The caller
    /// checks `mib` against the instance's limit.
    pub fn take(&self, mib: u64) -> Pages {
        let wanted = usize::try_from(mib).expect("mib is bounded by MAX_MEMORY_MIB");
        let mut chunks = self.chunks.lock().unwrap_or_else(PoisonError::into_inner);
        while chunks.len() < wanted {
            chunks.push(Arc::new(Chunk::new()));
        }
        let unheld = chunks[..wanted].iter().filter(|c| !c.held.load(Ordering::Acquire)).cloned().collect();
        Pages { chunks: unheld }
    }

    /// Bytes the arena holds (mapped; resident once a call wrote them).
    pub fn bytes(&self) -> u64 {
        let chunks = self.chunks.lock().unwrap_or_else(PoisonError::into_inner);
        (chunks.len() * CHUNK) as u64
    }
}

/// The pages one call writes: those of its memory the instance does not
/// hold yet (two calls in flight may both write a chunk neither found held).
#[derive(Debug, Default)]
pub struct Pages {
    chunks: Vec<Arc<Chunk>>,
}

impl Pages {
    /// Number of pages.
    pub fn len(&self) -> usize {
        self.chunks.len() * PAGES_PER_CHUNK
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Writes the first byte of page `page` (`< len()`), which faults it
    /// in; the chunk is held once its last page is written. Not a constant
    /// store: a page already holding it could be skipped by a clever compiler.
    pub fn touch(&self, page: usize) {
        let chunk = &self.chunks[page / PAGES_PER_CHUNK];
        let byte = &chunk.bytes[(page % PAGES_PER_CHUNK) * PAGE];
        byte.store(byte.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        if page % PAGES_PER_CHUNK == PAGES_PER_CHUNK - 1 {
            chunk.held.store(true, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arena_grows_to_the_largest_request_and_calls_write_only_what_it_does_not_hold() {
        let arena = Arena::default();
        let small = arena.take(2);
        assert_eq!((small.len(), arena.bytes()), (2 * PAGES_PER_CHUNK, 2 * CHUNK as u64));
        // A call in flight beside it finds nothing held yet either.
        let beside = arena.take(5);
        assert_eq!((beside.len(), arena.bytes()), (5 * PAGES_PER_CHUNK, 5 * CHUNK as u64));
        assert!(Arc::ptr_eq(&small.chunks[1], &beside.chunks[1]), "the same memory");
        (0..small.len()).for_each(|page| small.touch(page));
        beside.touch(PAGES_PER_CHUNK + 3);
        assert_eq!(
            small.chunks[1].bytes[3 * PAGE].load(Ordering::Relaxed),
            2,
            "both calls wrote the same page"
        );
        // Written: the first 2 MiB are held, so a later call of 5 MiB
        // writes only the other 3, and one of 2 MiB writes nothing.
        assert_eq!(arena.take(5).len(), 3 * PAGES_PER_CHUNK);
        assert!(arena.take(2).is_empty());
        assert_eq!(arena.bytes(), 5 * CHUNK as u64, "a smaller request does not shrink it");
        assert!(arena.take(0).is_empty());
    }
}
