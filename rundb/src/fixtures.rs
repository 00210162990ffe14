//! Synthetic run databases for tests and benchmarks, written through the
//! same DDL and inserts as the real writers: [`RawDb`] writes rows given by
//! hand (loadgen's and the collector's tables), [`SynthRun`] generates a
//! whole run with known properties.

// Generated values are small, positive and well inside i64.
#![allow(clippy::cast_possible_truncation)]

use std::path::Path;
use std::sync::Arc;

use hyperfake_core::payload::PayloadFeatures;
use hyperfake_core::{Bytes, CpuQuota, FunctionConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rusqlite::{Connection, params};

use crate::calls::{self, CallRow, RunRow};
use crate::collector::{self, ContainerRow, EventRow, SampleRows};
use crate::status::{CallStatus, RunStatus};

/// One `instance_events` row as a fixture gives it; [`RawDb::events`] fills
/// the rest (`status` NULL is written as `SUCCESS`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Event {
    pub worker: String,
    pub instance_id: String,
    pub event: String,
    pub status: Option<String>,
    pub timestamp_ns: i64,
    /// Successful START: Start accepted → instance ready.
    pub start_duration_ns: Option<i64>,
}

/// One `container_samples` row.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerSample {
    pub worker: String,
    pub instance_id: String,
    pub timestamp_ns: i64,
    pub cpu_usage_ns: Option<i64>,
    pub memory_bytes: Option<i64>,
}

/// One `worker_samples` row.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerSample {
    pub worker: String,
    pub timestamp_ns: i64,
    pub cpu_cores: Option<f64>,
    pub ram_bytes: Option<i64>,
}

/// A run database being written: loadgen's and the collector's tables.
#[derive(Debug)]
pub struct RawDb {
    conn: Connection,
    run_id: String,
}

impl RawDb {
    /// Creates the tables (if needed) and a completed `runs` row of `run_id`
    /// (seed 0, started and finished at 0).
    pub fn create(path: &Path, run_id: &str) -> rusqlite::Result<RawDb> {
        let run = RunRow {
            run_id: run_id.to_owned(),
            started_at_ns: 0,
            seed: 0,
            leaf_address: "synthetic".into(),
            config_path: None,
            config_yaml: String::new(),
            resolved_schedule_json: "{}".into(),
            calls_scheduled: 0,
            loadgen_version: "synthetic".into(),
        };
        RawDb::create_run(path, &run, 0)
    }

    /// Creates the tables (if needed) and the `runs` row `run`, completed at
    /// `finished_at_ns`, replacing an earlier row of that run.
    pub fn create_run(path: &Path, run: &RunRow, finished_at_ns: i64) -> rusqlite::Result<RawDb> {
        let conn = crate::open(path)?;
        calls::create(&conn)?;
        collector::create(&conn)?;
        conn.execute("DELETE FROM runs WHERE run_id = ?1", [&run.run_id])?;
        calls::insert_run(&conn, run)?;
        calls::finish_run(&conn, &run.run_id, finished_at_ns, RunStatus::Completed, None, None, None)?;
        Ok(RawDb { conn, run_id: run.run_id.clone() })
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// A `functions` row, with the config as loadgen serializes it and no payload features.
    pub fn function(&self, image_tag: &str, config: &FunctionConfig) -> rusqlite::Result<()> {
        self.function_with_features(image_tag, config, &PayloadFeatures::none())
    }

    /// A `functions` row declaring `features`.
    pub fn function_with_features(
        &self,
        image_tag: &str,
        config: &FunctionConfig,
        features: &PayloadFeatures,
    ) -> rusqlite::Result<()> {
        let json = serde_json::to_string(config).expect("a config always serializes");
        calls::insert_function(
            &self.conn,
            &self.run_id,
            image_tag,
            0,
            &format!("fn-{image_tag}"),
            &json,
            &features.to_json(),
        )
    }

    /// A `collector_sessions` row.
    pub fn session(&self, interval_ms: i64) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO collector_sessions (run_id, session, started_at_ns, workers_json, interval_ms)
             VALUES (?1, 1, 0, '[]', ?2)",
            params![self.run_id, interval_ms],
        )?;
        Ok(())
    }

    /// `calls` rows. Left empty, the request id becomes `<run>-<index>`, the
    /// function id `fn-<image>`, the phase `main` and the trailers `{}`.
    pub fn calls(&mut self, rows: &[CallRow]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(calls::INSERT_CALL)?;
            for r in rows {
                let mut r = r.clone();
                if r.request_id.is_empty() {
                    r.request_id = format!("{}-{}", self.run_id, r.call_index);
                }
                if r.function_id.is_empty() {
                    r.function_id = format!("fn-{}", r.image_tag);
                }
                if r.phase.is_empty() {
                    r.phase = "main".into();
                }
                if r.trailers_json.is_empty() {
                    r.trailers_json = "{}".into();
                }
                r.grpc_code = r.grpc_code.or(r.status.grpc_code());
                calls::insert_call(&mut stmt, &self.run_id, &r)?;
            }
        }
        tx.commit()
    }

    pub fn events(&mut self, rows: &[Event]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(collector::INSERT_EVENT)?;
            for r in rows {
                let row = EventRow {
                    worker: Arc::from(r.worker.as_str()),
                    instance_id: Some(r.instance_id.clone()),
                    function_id: None,
                    event: r.event.clone(),
                    status: r.status.clone().unwrap_or_else(|| "SUCCESS".into()),
                    timestamp_ns: Some(r.timestamp_ns),
                    detail: String::new(),
                    exit_code: None,
                    oom_killed: false,
                    start_duration_ns: r.start_duration_ns,
                };
                collector::insert_event(&mut stmt, &self.run_id, &row)?;
            }
        }
        tx.commit()
    }

    pub fn container_samples(&mut self, rows: &[ContainerSample]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(collector::INSERT_CONTAINER)?;
            for r in rows {
                let sample = SampleRows {
                    worker: Arc::from(r.worker.as_str()),
                    timestamp_ns: Some(r.timestamp_ns),
                    cpu_cores: None,
                    ram_bytes: None,
                    containers: vec![ContainerRow {
                        instance_id: Some(r.instance_id.clone()),
                        function_id: None,
                        cpu_usage_ns: r.cpu_usage_ns,
                        memory_bytes: r.memory_bytes,
                    }],
                };
                collector::insert_sample(&mut stmt, None, &self.run_id, &sample)?;
            }
        }
        tx.commit()
    }

    pub fn worker_samples(&mut self, rows: &[WorkerSample]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut container = tx.prepare_cached(collector::INSERT_CONTAINER)?;
            let mut worker = tx.prepare_cached(collector::INSERT_WORKER)?;
            for r in rows {
                let sample = SampleRows {
                    worker: Arc::from(r.worker.as_str()),
                    timestamp_ns: Some(r.timestamp_ns),
                    cpu_cores: r.cpu_cores,
                    ram_bytes: r.ram_bytes,
                    containers: Vec::new(),
                };
                collector::insert_sample(&mut container, Some(&mut worker), &self.run_id, &sample)?;
            }
        }
        tx.commit()
    }
}

// === impl SynthRun ===

/// One synthetic image: its CPU limit and how long its handler takes.
#[derive(Clone, Debug)]
pub struct SynthImage {
    pub image_tag: String,
    pub quota: CpuQuota,
    /// Mean handler time for a request of `mean_request_bytes`.
    pub mean_runtime_ns: f64,
    pub mean_request_bytes: f64,
    /// Declared payload features; the bfs image declares its graph size and
    /// the thumbnailer its target pixels (from `bfs_size` and the thumbnail
    /// size, as loadgen would compute them from the payload).
    pub features: PayloadFeatures,
}

/// A synthetic run: Poisson arrivals, instances that are replaced now and
/// then, CPU that follows the calls in flight (never above the quota), memory
/// that grows with them, and a few failed calls and missing samples.
#[derive(Clone, Debug)]
pub struct SynthRun {
    pub run_id: String,
    pub seed: u64,
    pub calls: usize,
    pub calls_per_second: f64,
    pub workers: usize,
    pub images: Vec<SynthImage>,
    /// Collector interval (worker and container samples).
    pub sample_interval_ns: i64,
    /// Calls an instance serves before it is replaced (a STOP and a new START).
    pub calls_per_instance: usize,
    /// Fraction of samples with a NULL value.
    pub missing_sample_fraction: f64,
}

impl SynthRun {
    /// A small run with three images on two workers.
    pub fn new(run_id: &str, calls: usize) -> SynthRun {
        let image = |tag: &str, quota_us: u64, ms: f64, bytes: f64, features: &str| SynthImage {
            image_tag: tag.into(),
            quota: CpuQuota { period_us: 100_000, quota_us },
            mean_runtime_ns: ms * 1e6,
            mean_request_bytes: bytes,
            features: serde_json::from_str(features).expect("valid payload features"),
        };
        SynthRun {
            run_id: run_id.into(),
            seed: 7,
            calls,
            calls_per_second: 400.0,
            workers: 2,
            images: vec![
                image("hyperfaas-echo:latest", 50_000, 2.0, 1_000.0, "[]"),
                image(
                    "hyperfaas-bfs-json:latest",
                    100_000,
                    12.0,
                    200.0,
                    r#"[{"name":"graph_nodes","json":"/Size"}]"#,
                ),
                image(
                    "hyperfaas-thumbnailer-json:latest",
                    200_000,
                    25.0,
                    60_000.0,
                    r#"[{"name":"target_pixels","product":["/width","/height"]}]"#,
                ),
            ],
            sample_interval_ns: 100_000_000,
            calls_per_instance: 400,
            missing_sample_fraction: 0.01,
        }
    }

    /// Writes the run into `path` (creating it).
    pub fn write(&self, path: &Path) -> rusqlite::Result<SynthCounts> {
        let mut db = RawDb::create(path, &self.run_id)?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        for img in &self.images {
            let config = FunctionConfig {
                memory: Bytes::mib(256),
                cpu: Some(img.quota),
                idle_timeout: None,
                max_concurrency: None,
            };
            db.function_with_features(&img.image_tag, &config, &img.features)?;
        }
        db.session(self.sample_interval_ns / 1_000_000)?;

        const T0: i64 = 1_750_000_000_000_000_000;
        let worker_name = |w: usize| format!("10.0.0.{}:50051", w + 1);
        // Per (worker, image) two instance slots; each instance serves
        // `calls_per_instance` calls, then a new one takes its slot.
        let slots = self.workers * self.images.len() * 2;
        let mut slot_instance: Vec<Option<usize>> = vec![None; slots];
        let mut slot_served = vec![0usize; slots];
        let mut instances: Vec<Instance> = Vec::new();
        let mut rows = Vec::with_capacity(self.calls);
        let mut t = T0 as f64;
        for k in 0..self.calls {
            t += -rng.random::<f64>().max(1e-12).ln() / self.calls_per_second * 1e9;
            let arrival = t as i64;
            let image = rng.random_range(0..self.images.len());
            let img = &self.images[image];
            let mut row = CallRow {
                call_index: to_i64(k),
                image_tag: img.image_tag.clone(),
                scheduled_ns: arrival,
                sent_ns: Some(arrival),
                ..CallRow::default()
            };
            let size = (img.mean_request_bytes * (0.5 + rng.random::<f64>())) as i64;
            row.request_bytes = size;
            if image == 1 {
                row.bfs_size = Some(size);
            }
            if image == 2 {
                row.thumb_width = Some(rng.random_range(64..512));
                row.thumb_height = Some(rng.random_range(64..512));
            }
            // The features loadgen would compute from these payloads.
            if !img.features.is_empty() {
                let value = match (row.bfs_size, row.thumb_width.zip(row.thumb_height)) {
                    (Some(n), _) => Some(n),
                    (None, Some((w, h))) => Some(w * h),
                    _ => None,
                };
                row.payload_features = Some(vec![value.map(|v| v as f64)]);
            }
            let fate = rng.random::<f64>();
            if fate < 0.02 {
                row.status = CallStatus::Unavailable;
                row.latency_ns = Some(rng.random_range(200_000..2_000_000));
                rows.push(row);
                continue;
            }
            let worker = rng.random_range(0..self.workers);
            let slot = (worker * self.images.len() + image) * 2 + rng.random_range(0..2);
            let leaf_got = arrival + rng.random_range(50_000..150_000);
            let leaf_sched = leaf_got + rng.random_range(20_000..300_000);
            let queued = leaf_sched + rng.random_range(100_000..300_000);
            let started = queued + rng.random_range(10_000..200_000);
            if slot_instance[slot].is_none() || slot_served[slot] >= self.calls_per_instance {
                if let Some(old) = slot_instance[slot] {
                    instances[old].retired = true;
                }
                let cold = rng.random_range(50_000_000..150_000_000);
                instances.push(Instance {
                    id: format!("{:012x}", rng.random::<u64>() >> 16),
                    worker,
                    image,
                    started_ns: started - cold,
                    start_duration_ns: cold,
                    calls: Vec::new(),
                    retired: false,
                });
                slot_instance[slot] = Some(instances.len() - 1);
                slot_served[slot] = 0;
            }
            let inst = slot_instance[slot].expect("just set");
            slot_served[slot] += 1;
            let scale = (size as f64 / img.mean_request_bytes).sqrt();
            let handler = (img.mean_runtime_ns * scale * (0.7 + 0.6 * rng.random::<f64>())) as i64;
            let responded = started + handler + rng.random_range(20_000..100_000);
            instances[inst].calls.push((started, responded));
            row.status = CallStatus::Ok;
            row.instance_id = Some(instances[inst].id.clone());
            row.worker_address = Some(worker_name(worker));
            row.leaf_got_request_ns = Some(leaf_got);
            row.leaf_scheduled_call_ns = Some(leaf_sched);
            row.call_queued_ns = Some(queued);
            row.call_started_ns = Some(started);
            row.got_response_ns = Some(responded);
            row.function_processing_time_ns = Some(responded - started);
            // Echo answers with its request; the others with a small result.
            row.response_bytes = Some(if image == 0 { size } else { 64 + size / 16 });
            row.function_handler_time_ns = (fate > 0.025).then_some(handler);
            if (0.025..0.035).contains(&fate) {
                row.function_error = Some("handler failed".into());
            }
            row.latency_ns = Some(responded - arrival + rng.random_range(100_000..400_000));
            rows.push(row);
        }
        let end = t as i64 + 2_000_000_000;

        let mut events = Vec::new();
        let mut container = Vec::new();
        // Per worker: (time, Δcores, Δbytes) from every instance.
        let mut worker_deltas: Vec<Vec<(i64, f64, i64)>> = vec![Vec::new(); self.workers];
        for inst in &instances {
            let quota = self.images[inst.image].quota.cores().0;
            let last_end = inst.calls.iter().map(|c| c.1).max().unwrap_or(inst.started_ns);
            let stopped = inst.retired.then(|| last_end + 1_000_000_000);
            let w = worker_name(inst.worker);
            events.push(Event {
                worker: w.clone(),
                instance_id: inst.id.clone(),
                event: "START".into(),
                status: Some("SUCCESS".into()),
                timestamp_ns: inst.started_ns,
                start_duration_ns: Some(inst.start_duration_ns),
            });
            if let Some(s) = stopped {
                events.push(Event {
                    worker: w.clone(),
                    instance_id: inst.id.clone(),
                    event: "STOP".into(),
                    status: None,
                    timestamp_ns: s,
                    start_duration_ns: None,
                });
            }
            let alive_until = stopped.unwrap_or(end);
            let profile = Profile::new(&inst.calls, quota);
            let mut deltas = profile.deltas(inst.started_ns);
            // Every call has ended by then: only the base remains to remove.
            deltas.push((alive_until, -BASE_CORES, -BASE_MEMORY));
            worker_deltas[inst.worker].extend(deltas);
            let mut ts = inst.started_ns + self.sample_interval_ns;
            while ts < alive_until {
                let missing = rng.random::<f64>() < self.missing_sample_fraction;
                container.push(ContainerSample {
                    worker: w.clone(),
                    instance_id: inst.id.clone(),
                    timestamp_ns: ts,
                    cpu_usage_ns: (!missing).then(|| profile.cpu_ns_at(ts, inst.started_ns) as i64),
                    memory_bytes: (!missing).then(|| profile.memory_at(ts)),
                });
                ts += self.sample_interval_ns;
            }
        }

        let mut worker_rows = Vec::new();
        for (w, deltas) in worker_deltas.iter_mut().enumerate() {
            deltas.sort_by_key(|d| d.0);
            let (mut cores, mut bytes, mut k) = (0.05f64, 200 * Bytes::MIB as i64, 0);
            let mut ts = T0;
            while ts < end {
                while k < deltas.len() && deltas[k].0 <= ts {
                    cores += deltas[k].1;
                    bytes += deltas[k].2;
                    k += 1;
                }
                let missing = rng.random::<f64>() < self.missing_sample_fraction;
                worker_rows.push(WorkerSample {
                    worker: worker_name(w),
                    timestamp_ns: ts,
                    cpu_cores: (!missing).then_some(cores.max(0.0)),
                    ram_bytes: (!missing).then_some(bytes),
                });
                ts += self.sample_interval_ns;
            }
        }

        db.calls(&rows)?;
        db.events(&events)?;
        db.container_samples(&container)?;
        db.worker_samples(&worker_rows)?;
        Ok(SynthCounts {
            calls: rows.len(),
            instances: instances.len(),
            container_samples: container.len(),
            worker_samples: worker_rows.len(),
        })
    }
}

/// What [`SynthRun::write`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynthCounts {
    pub calls: usize,
    pub instances: usize,
    pub container_samples: usize,
    pub worker_samples: usize,
}

#[derive(Debug)]
struct Instance {
    id: String,
    worker: usize,
    image: usize,
    started_ns: i64,
    /// Start accepted → ready, reported with the START.
    start_duration_ns: i64,
    calls: Vec<(i64, i64)>,
    retired: bool,
}

/// An idle container's CPU (cores) and memory.
const BASE_CORES: f64 = 0.002;
const BASE_MEMORY: i64 = 20 * Bytes::MIB as i64;
/// Memory each call in flight adds.
const CALL_MEMORY: i64 = 3 * Bytes::MIB as i64;

/// An instance's CPU rate as a step function of its calls in flight:
/// `min(quota, 0.4 × quota × n) + BASE_CORES` (capped at the quota).
#[derive(Debug)]
struct Profile {
    /// Step times and the number in flight from each on.
    times: Vec<i64>,
    in_flight: Vec<i64>,
    /// Cumulative CPU ns (above the base) at each step time.
    cpu_prefix: Vec<f64>,
    quota: f64,
}

impl Profile {
    fn new(calls: &[(i64, i64)], quota: f64) -> Profile {
        let mut d: Vec<(i64, i64)> = calls.iter().flat_map(|&(s, e)| [(s, 1), (e, -1)]).collect();
        d.sort_unstable();
        let mut p = Profile { times: Vec::new(), in_flight: Vec::new(), cpu_prefix: Vec::new(), quota };
        let mut n = 0;
        let mut acc = 0.0;
        for (t, delta) in d {
            if let (Some(&prev), Some(&prev_n)) = (p.times.last(), p.in_flight.last()) {
                acc += (t - prev) as f64 * p.rate(prev_n);
            }
            n += delta;
            if p.times.last() == Some(&t) {
                *p.in_flight.last_mut().expect("same length") = n;
            } else {
                p.times.push(t);
                p.in_flight.push(n);
                p.cpu_prefix.push(acc);
            }
        }
        p
    }

    /// Cores above the base with `n` calls in flight. The base is added so
    /// that the total stays at or below the quota.
    fn rate(&self, n: i64) -> f64 {
        (0.4 * self.quota * n as f64).min(self.quota - BASE_CORES)
    }

    /// Cumulative CPU ns at `t` since the container started at `started`.
    fn cpu_ns_at(&self, t: i64, started: i64) -> f64 {
        let base = (t - started) as f64 * BASE_CORES;
        let k = self.times.partition_point(|&x| x <= t);
        let calls = match k.checked_sub(1) {
            None => 0.0,
            Some(j) => self.cpu_prefix[j] + (t - self.times[j]) as f64 * self.rate(self.in_flight[j]),
        };
        base + calls
    }

    fn memory_at(&self, t: i64) -> i64 {
        let k = self.times.partition_point(|&x| x <= t);
        BASE_MEMORY + k.checked_sub(1).map_or(0, |j| self.in_flight[j]) * CALL_MEMORY
    }

    /// Worker-level changes: (time, Δcores, Δbytes), starting with the base.
    fn deltas(&self, started: i64) -> Vec<(i64, f64, i64)> {
        let mut out = vec![(started, BASE_CORES, BASE_MEMORY)];
        let mut prev_n = 0;
        for (&t, &n) in self.times.iter().zip(&self.in_flight) {
            out.push((t, self.rate(n) - self.rate(prev_n), (n - prev_n) * CALL_MEMORY));
            prev_n = n;
        }
        out
    }
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).expect("a count fits in i64")
}
