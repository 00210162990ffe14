//! Request bodies built ahead of their send time, on a blocking thread, and
//! handed to the dispatcher in chunks: one wake-up of either thread per chunk
//! rather than per call (the builder thread woke, built one body and slept
//! again for every call).

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::payload::Payloads;
use crate::schedule::Schedule;

/// Most calls in one chunk.
const CHUNK_CALLS: usize = 64;
/// A chunk is handed over once its bodies reach this size, so that large
/// bodies (thumbnails) do not pile up.
const CHUNK_BYTES: usize = 1 << 20;

/// A call's position in the schedule, its body and its payload feature values.
pub(super) type Ready = (usize, Vec<u8>, Option<Vec<Option<f64>>>);

/// The dispatcher's end: calls in schedule order, their bodies built.
pub(super) struct Lookahead {
    chunks: mpsc::Receiver<Vec<Ready>>,
    buffer: VecDeque<Ready>,
}

impl Lookahead {
    /// Starts building bodies on a blocking thread of `runtime`, about
    /// `calls_ahead` calls ahead of the dispatcher.
    pub(super) fn start(
        schedule: Arc<Schedule>,
        payloads: Arc<Payloads>,
        calls_ahead: usize,
        runtime: &tokio::runtime::Handle,
    ) -> (Lookahead, JoinHandle<()>) {
        let (tx, chunks) = mpsc::channel::<Vec<Ready>>((calls_ahead / CHUNK_CALLS).max(2));
        let builder = runtime.spawn_blocking(move || {
            let mut chunk = Vec::with_capacity(CHUNK_CALLS);
            let mut bytes = 0usize;
            for (i, call) in schedule.calls.iter().enumerate() {
                // Features are computed here, off the send clock, from the
                // exact bytes the call will carry.
                let body = payloads.body(call);
                let features = payloads.feature_values(call, &body);
                bytes += body.len();
                chunk.push((i, body, features));
                // Hand over a full chunk, or any chunk when the dispatcher
                // has taken everything (it may be waiting for this call).
                if chunk.len() >= CHUNK_CALLS || bytes >= CHUNK_BYTES || tx.capacity() == tx.max_capacity() {
                    bytes = 0;
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_CALLS));
                    if tx.blocking_send(full).is_err() {
                        return; // The dispatcher stopped.
                    }
                }
            }
            if !chunk.is_empty() {
                let _ = tx.blocking_send(chunk);
            }
        });
        (Lookahead { chunks, buffer: VecDeque::new() }, builder)
    }

    /// The next call; `None` once the schedule is exhausted.
    pub(super) async fn next(&mut self) -> Option<Ready> {
        if let Some(ready) = self.buffer.pop_front() {
            return Some(ready);
        }
        let chunk = self.chunks.recv().await?;
        self.buffer.extend(chunk);
        self.buffer.pop_front()
    }

    /// The next call if it is built already.
    pub(super) fn try_next(&mut self) -> Option<Ready> {
        if self.buffer.is_empty()
            && let Ok(chunk) = self.chunks.try_recv()
        {
            self.buffer.extend(chunk);
        }
        self.buffer.pop_front()
    }

    /// Returns a call taken too early; it comes next again.
    pub(super) fn put_back(&mut self, ready: Ready) {
        self.buffer.push_front(ready);
    }
}
