//! Where a call's client latency goes: per successful call, six consecutive
//! parts computed from loadgen's `calls` timings, which add up to the
//! client-measured latency.
//!
//! | part | from `calls` | clock |
//! |---|---|---|
//! | leaf | `leaf_scheduled_call_ns − leaf_got_request_ns` | leaf |
//! | leaf→worker | `call_queued_ns − leaf_scheduled_call_ns` | leaf → worker (crosses hosts) |
//! | worker queue | `call_started_ns − call_queued_ns` | worker |
//! | worker overhead | `function_processing_time_ns − function_handler_time_ns` | worker |
//! | handler | `function_handler_time_ns` | function |
//! | rest | `latency_ns` minus all of the above | client |
//!
//! `function_processing_time_ns` is `got_response_ns − call_started_ns` on the
//! worker. The *rest* is the client→leaf hop plus the whole return path
//! (worker → leaf → client). Durations on one host's clock are exact; the
//! leaf→worker part compares a leaf and a worker timestamp, so when they run on
//! different hosts it carries the clock offset between them, and the rest
//! carries the same offset with the opposite sign (the sum stays the latency).
//! Parts are signed for that reason; [`Decomposition::negative`] counts calls
//! with a negative part.

use crate::stats::percentile_i64;

/// One part of a call's latency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    Leaf,
    LeafToWorker,
    WorkerQueue,
    WorkerOverhead,
    Handler,
    Rest,
}

impl Part {
    /// Every part, in the order a call passes through them.
    pub const ALL: [Part; 6] =
        [Part::Leaf, Part::LeafToWorker, Part::WorkerQueue, Part::WorkerOverhead, Part::Handler, Part::Rest];

    /// Short label for tables and legends.
    pub fn label(self) -> &'static str {
        match self {
            Part::Leaf => "leaf",
            Part::LeafToWorker => "leaf→worker",
            Part::WorkerQueue => "worker queue",
            Part::WorkerOverhead => "worker overhead",
            Part::Handler => "handler",
            Part::Rest => "return path + client→leaf",
        }
    }

    /// How the part is computed.
    pub fn definition(self) -> &'static str {
        match self {
            Part::Leaf => "leaf got request → leaf scheduled the call (leaf clock)",
            Part::LeafToWorker => "leaf scheduled → worker queued the call (leaf and worker clocks)",
            Part::WorkerQueue => "worker queued → call started on an instance (worker clock)",
            Part::WorkerOverhead => "worker-measured processing time − handler time",
            Part::Handler => "time inside the function's handler",
            Part::Rest => "client latency − all of the above: client→leaf plus worker→leaf→client",
        }
    }

    pub fn index(self) -> usize {
        Part::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }
}

/// The timing columns of one `calls` row that the decomposition needs (ns).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallTimings {
    pub latency_ns: Option<i64>,
    pub leaf_got_request_ns: Option<i64>,
    pub leaf_scheduled_call_ns: Option<i64>,
    pub call_queued_ns: Option<i64>,
    pub call_started_ns: Option<i64>,
    pub function_processing_time_ns: Option<i64>,
    pub function_handler_time_ns: Option<i64>,
}

impl CallTimings {
    /// The six parts in [`Part::ALL`] order; `None` when a column is missing.
    /// They add up to `latency_ns` exactly.
    pub fn parts(&self) -> Option<[i64; 6]> {
        let latency = self.latency_ns?;
        let leaf = self.leaf_scheduled_call_ns?.checked_sub(self.leaf_got_request_ns?)?;
        let hop = self.call_queued_ns?.checked_sub(self.leaf_scheduled_call_ns?)?;
        let queue = self.call_started_ns?.checked_sub(self.call_queued_ns?)?;
        let processing = self.function_processing_time_ns?;
        let handler = self.function_handler_time_ns?;
        let overhead = processing.checked_sub(handler)?;
        let rest =
            latency.checked_sub(leaf)?.checked_sub(hop)?.checked_sub(queue)?.checked_sub(processing)?;
        Some([leaf, hop, queue, overhead, handler, rest])
    }
}

/// One function's parts over its successful calls.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decomposition {
    /// Per part (in [`Part::ALL`] order), the values of every complete call, sorted (ns).
    pub parts: [Vec<i64>; 6],
    /// Successful calls whose timings were incomplete (not in `parts`).
    pub incomplete: u64,
    /// Complete calls with at least one negative part (clock offset between hosts).
    pub negative: u64,
}

impl Decomposition {
    pub fn push(&mut self, timings: &CallTimings) {
        match timings.parts() {
            Some(parts) => {
                if parts.iter().any(|v| *v < 0) {
                    self.negative += 1;
                }
                for (column, value) in self.parts.iter_mut().zip(parts) {
                    column.push(value);
                }
            }
            None => self.incomplete += 1,
        }
    }

    /// Sorts each part; call once after the last [`Decomposition::push`].
    pub fn finish(&mut self) {
        for column in &mut self.parts {
            column.sort_unstable();
        }
    }

    /// Calls with every timing.
    pub fn complete(&self) -> usize {
        self.parts[0].len()
    }

    /// Median and p99 of each part, in ms.
    pub fn summary(&self) -> DecompositionSummary {
        let ms = |v: Option<i64>| v.map(|v| v as f64 / 1e6);
        DecompositionSummary {
            complete_calls: self.complete() as u64,
            incomplete_calls: self.incomplete,
            negative_calls: self.negative,
            parts: Part::ALL
                .iter()
                .map(|&part| PartSummary {
                    part,
                    p50_ms: ms(percentile_i64(&self.parts[part.index()], 0.50)),
                    p99_ms: ms(percentile_i64(&self.parts[part.index()], 0.99)),
                })
                .collect(),
        }
    }
}

/// Median and p99 of one part (ms).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PartSummary {
    pub part: Part,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// One side's decomposition, as reported.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct DecompositionSummary {
    pub complete_calls: u64,
    pub incomplete_calls: u64,
    pub negative_calls: u64,
    /// In [`Part::ALL`] order.
    pub parts: Vec<PartSummary>,
}

impl DecompositionSummary {
    pub fn part(&self, part: Part) -> Option<&PartSummary> {
        self.parts.iter().find(|p| p.part == part)
    }
}

/// The part whose statistic (`p50` or `p99`) differs most between the two
/// sides, with (real, fake) in ms; `None` when no part has both values.
pub fn largest_difference(
    real: &DecompositionSummary,
    fake: &DecompositionSummary,
    p99: bool,
) -> Option<(Part, f64, f64)> {
    let value = |s: &PartSummary| if p99 { s.p99_ms } else { s.p50_ms };
    Part::ALL
        .iter()
        .filter_map(|&part| Some((part, value(real.part(part)?)?, value(fake.part(part)?)?)))
        .max_by(|a, b| (a.2 - a.1).abs().total_cmp(&(b.2 - b.1).abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timings() -> CallTimings {
        CallTimings {
            latency_ns: Some(10_000),
            leaf_got_request_ns: Some(1_000),
            leaf_scheduled_call_ns: Some(1_500),
            call_queued_ns: Some(2_000),
            call_started_ns: Some(2_200),
            function_processing_time_ns: Some(5_000),
            function_handler_time_ns: Some(4_000),
        }
    }

    #[test]
    fn parts_add_up_to_the_latency() {
        let parts = timings().parts().unwrap();
        assert_eq!(parts, [500, 500, 200, 1_000, 4_000, 3_800]);
        assert_eq!(parts.iter().sum::<i64>(), 10_000);
    }

    #[test]
    fn a_missing_column_makes_the_call_incomplete() {
        let mut d = Decomposition::default();
        d.push(&CallTimings { call_queued_ns: None, ..timings() });
        d.push(&timings());
        d.finish();
        assert_eq!((d.complete(), d.incomplete), (1, 1));
    }

    #[test]
    fn a_clock_offset_shows_as_a_negative_part() {
        let mut d = Decomposition::default();
        // The worker's clock is 1 µs behind the leaf's.
        d.push(&CallTimings { call_queued_ns: Some(500), call_started_ns: Some(700), ..timings() });
        d.finish();
        assert_eq!(d.negative, 1);
        assert_eq!(d.parts[Part::LeafToWorker.index()], vec![-1_000]);
    }
}
