//! The per-call features that need exact interval arithmetic: the call's
//! worker, live instances, calls in flight, and the function's CPU and RAM.
//! Definitions are in `docs/units.md` ("How processing computes each column");
//! this module is their implementation. Worker CPU/RAM are an as-of join and
//! live in [`crate::frame`].
//!
//! Everything is on the worker's clock, in ns, at nanosecond resolution.

use std::collections::HashMap;

use crate::raw::{Calls, ContainerSamples, InstanceEvents};

/// Per-call results, indexed like [`Calls`]. `None` is NULL.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Features {
    /// Index into [`Features::workers`]: the worker whose `instance_events`
    /// hold a successful START of the call's instance.
    pub worker: Vec<Option<u32>>,
    /// Worker addresses, as the collector wrote them.
    pub workers: Vec<String>,
    pub function_instances_count: Vec<Option<i64>>,
    pub active_function_calls_count: Vec<Option<i64>>,
    /// Cores.
    pub function_cpu_usage: Vec<Option<f64>>,
    /// Bytes.
    pub function_ram_usage: Vec<Option<i64>>,
}

/// A live instance: `[started_ns, ended_ns)` on `worker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lifetime {
    worker: u32,
    started_ns: i64,
    /// The first STOP/TIMEOUT/DOWN at or after the START; `None` = alive to the end.
    ended_ns: Option<i64>,
}

/// Instance lifetimes from the lifecycle events, and live-instance counts.
#[derive(Debug, Default)]
pub(crate) struct Lifecycle {
    workers: Vec<String>,
    instances: HashMap<String, Lifetime>,
    /// Per worker: sorted START times and sorted end times of its instances.
    starts: Vec<Vec<i64>>,
    ends: Vec<Vec<i64>>,
}

impl Lifecycle {
    pub(crate) fn from_events(events: &InstanceEvents) -> Lifecycle {
        let mut lc = Lifecycle::default();
        let mut worker_ids: HashMap<&str, u32> = HashMap::new();
        let n = events.timestamp_ns.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| events.timestamp_ns[i]);

        // Successful STARTs first: the earliest one places the instance.
        for &i in &order {
            let failed = events.status[i].as_deref().is_some_and(|s| s.eq_ignore_ascii_case("FAILED"));
            if !events.event[i].eq_ignore_ascii_case("START") || failed {
                continue;
            }
            let next = u32::try_from(worker_ids.len()).expect("fewer than 2^32 workers");
            let worker = *worker_ids.entry(events.worker[i].as_str()).or_insert_with(|| {
                lc.workers.push(events.worker[i].clone());
                next
            });
            let id = &events.instance_id[i];
            match lc.instances.get(id) {
                None => {
                    lc.instances.insert(
                        id.clone(),
                        Lifetime { worker, started_ns: events.timestamp_ns[i], ended_ns: None },
                    );
                }
                Some(prev) if prev.worker != worker => tracing::warn!(
                    instance = %id,
                    first = %lc.workers[prev.worker as usize],
                    second = %events.worker[i],
                    "instance started on two workers; keeping the first"
                ),
                Some(_) => {}
            }
        }
        // Then the first end event at or after the START.
        for &i in &order {
            let ev = &events.event[i];
            let is_end = ["STOP", "TIMEOUT", "DOWN"].iter().any(|e| ev.eq_ignore_ascii_case(e));
            if !is_end {
                continue;
            }
            if let Some(life) = lc.instances.get_mut(&events.instance_id[i])
                && life.ended_ns.is_none()
                && events.timestamp_ns[i] >= life.started_ns
            {
                life.ended_ns = Some(events.timestamp_ns[i]);
            }
        }
        lc.starts = vec![Vec::new(); lc.workers.len()];
        lc.ends = vec![Vec::new(); lc.workers.len()];
        for life in lc.instances.values() {
            lc.starts[life.worker as usize].push(life.started_ns);
            if let Some(end) = life.ended_ns {
                lc.ends[life.worker as usize].push(end);
            }
        }
        lc.starts.iter_mut().chain(lc.ends.iter_mut()).for_each(|v| v.sort_unstable());
        lc
    }

    /// Per worker: the live-instance count as steps `(t, count)`, two points
    /// per change so a line through them draws a step function.
    pub(crate) fn steps(&self) -> Vec<(String, Vec<(i64, i64)>)> {
        let mut out = Vec::new();
        for (w, name) in self.workers.iter().enumerate() {
            let mut deltas: Vec<(i64, i64)> = self.starts[w].iter().map(|&t| (t, 1)).collect();
            deltas.extend(self.ends[w].iter().map(|&t| (t, -1)));
            deltas.sort_unstable();
            let mut steps = Vec::with_capacity(deltas.len() * 2);
            let mut n = 0;
            for (t, d) in deltas {
                steps.push((t, n));
                n += d;
                steps.push((t, n));
            }
            out.push((name.clone(), steps));
        }
        out
    }

    fn worker_of(&self, instance: &str) -> Option<u32> {
        self.instances.get(instance).map(|l| l.worker)
    }

    /// Instances live on `worker` at `t`: START ≤ t and no end ≤ t.
    fn live_at(&self, worker: u32, t: i64) -> i64 {
        let started = self.starts[worker as usize].partition_point(|&s| s <= t);
        let ended = self.ends[worker as usize].partition_point(|&e| e <= t);
        to_i64(started) - to_i64(ended)
    }
}

/// A call's interval on its worker, when both ends are known and ordered.
fn interval(calls: &Calls, i: usize) -> Option<(i64, i64)> {
    match (calls.call_started_ns[i], calls.got_response_ns[i]) {
        (Some(s), Some(e)) if e >= s => Some((s, e)),
        _ => None,
    }
}

/// Computes every feature of this module for every call.
///
/// `tolerance_ns`: a container sample further than this from the time it
/// brackets is not used (a gap in sampling gives NULL, not a guess).
pub fn compute(
    calls: &Calls,
    events: &InstanceEvents,
    samples: &ContainerSamples,
    tolerance_ns: i64,
) -> Features {
    let lc = Lifecycle::from_events(events);
    let n = calls.len();
    let mut f = Features {
        worker: Vec::with_capacity(n),
        workers: lc.workers.clone(),
        function_instances_count: Vec::with_capacity(n),
        active_function_calls_count: vec![None; n],
        function_cpu_usage: vec![None; n],
        function_ram_usage: vec![None; n],
    };

    // The worker, and live instances at the call's start.
    for i in 0..n {
        let worker = calls.instance_id[i].as_deref().and_then(|id| lc.worker_of(id));
        f.worker.push(worker);
        f.function_instances_count.push(match (worker, calls.call_started_ns[i]) {
            (Some(w), Some(t)) => Some(lc.live_at(w, t)),
            _ => None,
        });
    }

    // Calls in flight on the worker at the call's start: closed intervals, so
    // #(starts ≤ t) − #(ends < t); the call itself is always counted.
    let mut starts = vec![Vec::new(); lc.workers.len()];
    let mut ends = vec![Vec::new(); lc.workers.len()];
    for i in 0..n {
        if let (Some(w), Some((s, e))) = (f.worker[i], interval(calls, i)) {
            starts[w as usize].push(s);
            ends[w as usize].push(e);
        }
    }
    starts.iter_mut().chain(ends.iter_mut()).for_each(|v| v.sort_unstable());
    for i in 0..n {
        if let (Some(w), Some((s, _))) = (f.worker[i], interval(calls, i)) {
            let begun = starts[w as usize].partition_point(|&x| x <= s);
            let done = ends[w as usize].partition_point(|&x| x < s);
            f.active_function_calls_count[i] = Some(to_i64(begun) - to_i64(done));
        }
    }

    // Function CPU and RAM, per instance.
    let mut by_instance: HashMap<&str, Vec<usize>> = HashMap::new();
    for i in 0..n {
        if let (Some(id), Some(_), Some(_)) =
            (calls.instance_id[i].as_deref(), f.worker[i], interval(calls, i))
        {
            by_instance.entry(id).or_default().push(i);
        }
    }
    let series = InstanceSeries::index(samples);
    for (id, members) in &by_instance {
        let Some(s) = series.get(id) else { continue };
        let intervals: Vec<(i64, i64)> =
            members.iter().map(|&i| interval(calls, i).expect("filtered")).collect();
        let share = ShareIntegral::new(&intervals);
        for (&i, &(start, end)) in members.iter().zip(&intervals) {
            f.function_ram_usage[i] = s.peak_memory(start, end, tolerance_ns);
            if end > start {
                let cpu = s.cpu_at(end, tolerance_ns).zip(s.cpu_at(start, tolerance_ns));
                if let Some((cpu_end, cpu_start)) = cpu.filter(|(e, s)| e >= s) {
                    let wall = (end - start) as f64;
                    let instance_cores = (cpu_end - cpu_start) / wall;
                    f.function_cpu_usage[i] = Some(instance_cores * share.mean_share(start, end));
                }
            }
        }
    }
    f
}

/// ∫ 1/n(t) dt over an instance's calls, where n(t) is how many of them are
/// in flight at t: a call's share of the instance's CPU when the instance's
/// CPU rate is constant over the call and split equally among its calls.
#[derive(Debug)]
pub(crate) struct ShareIntegral {
    /// Distinct breakpoints (every start and end), ascending.
    times: Vec<i64>,
    /// ∫ 1/n from `times[0]` to `times[k]`.
    prefix: Vec<f64>,
}

impl ShareIntegral {
    pub(crate) fn new(intervals: &[(i64, i64)]) -> ShareIntegral {
        let mut deltas: Vec<(i64, i64)> = Vec::with_capacity(intervals.len() * 2);
        for &(s, e) in intervals {
            deltas.push((s, 1));
            deltas.push((e, -1));
        }
        deltas.sort_unstable();
        let mut times = Vec::new();
        let mut prefix = Vec::new();
        let mut in_flight = 0i64;
        let mut acc = 0f64;
        let mut k = 0;
        while k < deltas.len() {
            let t = deltas[k].0;
            if let Some(&prev) = times.last() {
                if in_flight > 0 {
                    acc += (t - prev) as f64 / in_flight as f64;
                }
            }
            times.push(t);
            prefix.push(acc);
            while k < deltas.len() && deltas[k].0 == t {
                in_flight += deltas[k].1;
                k += 1;
            }
        }
        ShareIntegral { times, prefix }
    }

    fn at(&self, t: i64) -> f64 {
        let k = self.times.partition_point(|&x| x < t);
        debug_assert!(self.times.get(k) == Some(&t), "only breakpoints are looked up");
        self.prefix[k]
    }

    /// Time-weighted mean of 1/n(t) over `[start, end]` (a call's own interval, so n ≥ 1).
    pub(crate) fn mean_share(&self, start: i64, end: i64) -> f64 {
        (self.at(end) - self.at(start)) / (end - start) as f64
    }
}

/// One instance's samples: CPU and memory series without their NULLs.
#[derive(Debug, Default)]
struct Series {
    cpu_ts: Vec<i64>,
    cpu_ns: Vec<f64>,
    mem_ts: Vec<i64>,
    mem: Vec<i64>,
}

#[derive(Debug)]
struct InstanceSeries<'a>(HashMap<&'a str, Series>);

impl<'a> InstanceSeries<'a> {
    fn index(samples: &'a ContainerSamples) -> InstanceSeries<'a> {
        let mut map: HashMap<&str, Series> = HashMap::new();
        for i in 0..samples.timestamp_ns.len() {
            let s = map.entry(samples.instance_id[i].as_str()).or_default();
            let t = samples.timestamp_ns[i];
            if let Some(cpu) = samples.cpu_usage_ns[i] {
                s.cpu_ts.push(t);
                s.cpu_ns.push(cpu as f64);
            }
            if let Some(mem) = samples.memory_bytes[i] {
                s.mem_ts.push(t);
                s.mem.push(mem);
            }
        }
        for s in map.values_mut() {
            sort_pairs(&mut s.cpu_ts, &mut s.cpu_ns);
            sort_pairs(&mut s.mem_ts, &mut s.mem);
        }
        InstanceSeries(map)
    }

    fn get(&self, id: &str) -> Option<&Series> {
        self.0.get(id)
    }
}

fn sort_pairs<T: Copy>(ts: &mut Vec<i64>, vals: &mut Vec<T>) {
    if ts.is_sorted() {
        return;
    }
    let mut pairs: Vec<(i64, T)> = ts.iter().copied().zip(vals.iter().copied()).collect();
    pairs.sort_by_key(|p| p.0);
    (*ts, *vals) = pairs.into_iter().unzip();
}

impl Series {
    /// Cumulative CPU ns at `t`, linearly interpolated between the samples
    /// just before and just after `t` (each within `tol` of `t`).
    fn cpu_at(&self, t: i64, tol: i64) -> Option<f64> {
        let b = self.cpu_ts.partition_point(|&x| x < t);
        let tb = *self.cpu_ts.get(b)?;
        if tb == t {
            return Some(self.cpu_ns[b]);
        }
        let a = b.checked_sub(1)?;
        let ta = self.cpu_ts[a];
        if t - ta > tol || tb - t > tol {
            return None;
        }
        let frac = (t - ta) as f64 / (tb - ta) as f64;
        Some(self.cpu_ns[a] + (self.cpu_ns[b] - self.cpu_ns[a]) * frac)
    }

    /// The largest memory sample in `(start, end)`, together with the last
    /// sample at or before `start` and the first at or after `end` (each
    /// within `tol`). `None` when there is none.
    fn peak_memory(&self, start: i64, end: i64, tol: i64) -> Option<i64> {
        let lo = self.mem_ts.partition_point(|&x| x <= start); // first > start
        let hi = self.mem_ts.partition_point(|&x| x < end); // first ≥ end
        let mut peak = self.mem[lo.min(hi)..hi].iter().copied().max();
        if let Some(a) = lo.checked_sub(1).filter(|&a| start - self.mem_ts[a] <= tol) {
            peak = peak.max(Some(self.mem[a]));
        }
        if self.mem_ts.get(hi).is_some_and(|&tb| tb - end <= tol) {
            peak = peak.max(Some(self.mem[hi]));
        }
        peak
    }
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).expect("a count fits in i64")
}

#[cfg(test)]
mod tests;
