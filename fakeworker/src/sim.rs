//! The simulated runtime: instances are entries in a table, calls are async
//! timers whose length a model predicts. Inputs to the model follow
//! `docs/units.md` exactly, computed from the simulated state at the call's
//! start, so they mean at inference what they meant in training; the model's
//! payload features are computed from the request payload with the same
//! declarations the training data was recorded with.
//!
//! A call:
//! 1. builds the inputs (5 simulated inputs, then the payload features; a
//!    feature the payload does not yield takes the model's default and is
//!    counted, [`SimRuntime::payload_defaults_used`]),
//! 2. predicts runtime, CPU, RAM (and, for 5-output models, response size and
//!    worker overhead), clamped to the training ranges,
//! 3. draws the runtime and the overhead from the model's spreads
//!    ([`Sampling::Spread`], seeded, reproducible; a drawn runtime goes
//!    through the model's `runtime_quantile_map` when it has one, so drawn
//!    runtimes are distributed as the measured ones) or takes the means
//!    ([`Sampling::Mean`]),
//! 4. sleeps the runtime (reported as the handler time), then the overhead, so
//!    the worker-measured processing time is handler + overhead as on the real
//!    platform; both sleeps end at deadlines counted from the call's entry, so
//!    the simulation's own time is not added on top, on a timer that ends
//!    them on time rather than on tokio's next millisecond ([`crate::timer`]),
//! 5. answers with a payload of the predicted response size
//!    ([`ResponseMode::Predicted`]), the request ([`ResponseMode::Echo`]) or
//!    nothing ([`ResponseMode::Empty`]).
//!
//! `Start` takes a cold start drawn from the model's Start→ready quantiles
//! (their mean under [`Sampling::Mean`]), or the fixed
//! [`SimSettings::cold_start`] when the model records none.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hyperfake_core::defaults::MAX_MESSAGE_SIZE;
use hyperfake_core::{Bytes, Cores, ImageTag, Nanos};
use hyperfake_model::{ALL_TARGETS, HostLoad, ModelInfo, Prediction};
use proto::common::{CallRequest, CallResponse};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::{Notify, mpsc};
use worker::runtime::{
    CallError, CallOutput, ExitNotice, HostUsage, InstanceConn, ResourceCounters, Runtime,
};
use worker::{RuntimeError, StartSpec, Started};

use crate::models::ModelRegistry;
use crate::timer::PreciseTimer;

/// What a simulated call answers with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ResponseMode {
    /// A payload of the size the model predicts (zero bytes), for models that
    /// predict one; the request payload (like `echo`) for models that do not.
    #[default]
    Predicted,
    /// The request payload, like `echo` (a response of the request's size).
    Echo,
    /// An empty payload.
    Empty,
}

/// How a call's runtime and overhead are chosen from the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Sampling {
    /// Mean prediction plus a residual drawn from the model's spread for that
    /// prediction (seeded ChaCha, reproducible). Models without a spread give
    /// their mean.
    #[default]
    Spread,
    /// The mean prediction, nothing drawn (HyperFake's behaviour).
    Mean,
}

/// The largest response a simulated call sends: the platform's message limit
/// minus room for the envelope.
pub const MAX_RESPONSE_BYTES: usize = MAX_MESSAGE_SIZE - 64 * 1024;

#[derive(Clone, Debug)]
pub struct SimSettings {
    /// How long `Start` takes when the model records no cold-start
    /// distribution. The real worker's measured cold start on this class of
    /// machine is ~0.4 s (bench-results/worker.md).
    pub cold_start: Duration,
    /// Spread (default) or mean.
    pub sampling: Sampling,
    /// Seed of the random draws: the same seed and the same sequence of
    /// calls and starts give the same runtimes, overheads and cold starts.
    pub seed: u64,
    /// Cores the simulated host reports in `Metrics`.
    pub cores: usize,
    /// RAM the simulated host reports as total.
    pub ram_total: Bytes,
    pub response: ResponseMode,
}

impl Default for SimSettings {
    fn default() -> Self {
        SimSettings {
            cold_start: Duration::from_millis(400),
            sampling: Sampling::Spread,
            seed: 0,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            ram_total: Bytes(16 * Bytes::GIB),
            response: ResponseMode::Predicted,
        }
    }
}

/// Load on the simulated worker: calls in flight and their predicted usage.
#[derive(Debug, Default)]
struct Load {
    active_calls: u32,
    cpu: f64,
    ram: f64,
}

#[derive(Debug, Default)]
struct InstanceCounters {
    /// CPU time of finished calls, plus the in-flight share on read.
    cpu_ns: AtomicU64,
    /// RAM the instance holds with no call: the smallest `function_ram_usage`
    /// in the model's training rows (a real container's resident memory at
    /// rest), 0 when the model records no ranges.
    resting_ram: f64,
    /// RAM that calls in flight add to the resting RAM: each call's
    /// predicted container RAM above it.
    ram: Mutex<f64>,
}

/// The resting RAM of an instance of `info`'s function (see [`InstanceCounters`]).
fn resting_ram(info: &ModelInfo) -> f64 {
    let ram = ALL_TARGETS.iter().position(|t| *t == "function_ram_usage");
    info.output_ranges
        .as_ref()
        .zip(ram)
        .and_then(|(r, i)| r.get(i))
        .map_or(0.0, |r| finite_non_negative(r.min))
}

#[derive(Debug)]
struct SimState {
    settings: SimSettings,
    models: Arc<ModelRegistry>,
    live: Mutex<HashMap<String, Arc<InstanceCounters>>>,
    load: Mutex<Load>,
    /// Draws of calls (two per call: runtime, overhead).
    call_rng: Mutex<ChaCha8Rng>,
    /// Draws of starts (one per start), a separate stream so that starts
    /// (e.g. a leaf scaling up) do not shift the calls' draws.
    start_rng: Mutex<ChaCha8Rng>,
    /// Payload feature values that fell back to the model's default.
    payload_defaults: AtomicU64,
    /// The calls' sleeps, ended on time ([`crate::timer`]).
    timer: PreciseTimer,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, Clone)]
pub struct SimRuntime {
    state: Arc<SimState>,
}

impl SimRuntime {
    /// A lone simulated worker with a timer thread of its own.
    pub fn new(models: Arc<ModelRegistry>, settings: SimSettings) -> Self {
        Self::for_worker(0, models, settings, PreciseTimer::new())
    }

    /// The `index`-th of several simulated workers in one process
    /// (`fakeworker --workers N`, [`crate::fleet`]): instances, load and
    /// draws of its own, `models` and `timer` shared (one timer thread for
    /// every worker of the process). Its draws are the ChaCha streams
    /// `2·index` (calls) and `2·index + 1` (starts) of `settings.seed`, so
    /// worker 0 draws what a lone fake worker with that seed draws, and no
    /// two workers of a process draw the same sequence.
    pub fn for_worker(
        index: u64,
        models: Arc<ModelRegistry>,
        settings: SimSettings,
        timer: PreciseTimer,
    ) -> Self {
        let stream = |n: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
            rng.set_stream(n);
            Mutex::new(rng)
        };
        SimRuntime {
            state: Arc::new(SimState {
                call_rng: stream(index.saturating_mul(2)),
                start_rng: stream(index.saturating_mul(2).saturating_add(1)),
                settings,
                models,
                live: Mutex::new(HashMap::new()),
                load: Mutex::new(Load::default()),
                payload_defaults: AtomicU64::new(0),
                timer,
            }),
        }
    }

    pub fn models(&self) -> &Arc<ModelRegistry> {
        &self.state.models
    }

    pub fn settings(&self) -> &SimSettings {
        &self.state.settings
    }

    /// Calls in flight on the simulated worker.
    pub fn active_calls(&self) -> u32 {
        lock(&self.state.load).active_calls
    }

    /// How many payload feature values so far could not be computed from a
    /// call's payload (missing field, not JSON, …) and took the model's
    /// default instead.
    pub fn payload_defaults_used(&self) -> u64 {
        self.state.payload_defaults.load(Ordering::Relaxed)
    }
}

/// A cold start for a model: drawn from its Start→ready quantiles (their mean
/// under [`Sampling::Mean`]), else the fixed setting.
fn cold_start(info: &ModelInfo, settings: &SimSettings, rng: &Mutex<ChaCha8Rng>) -> Duration {
    let drawn = match settings.sampling {
        Sampling::Spread => {
            let u: f64 = lock(rng).random();
            info.sample_cold_start(u)
        }
        Sampling::Mean => info.mean_cold_start(),
    };
    drawn.map_or(settings.cold_start, Nanos::as_duration)
}

#[async_trait]
impl Runtime for SimRuntime {
    async fn start(&self, spec: &StartSpec) -> Result<Started, RuntimeError> {
        let Some(model) = self.state.models.current().get(&spec.image_tag) else {
            return Err(RuntimeError::NoModel { image: spec.image_tag.clone() });
        };
        let wait = cold_start(model.info(), &self.state.settings, &self.state.start_rng);
        let resting_ram = resting_ram(model.info());
        drop(model);
        tokio::time::sleep(wait).await;
        let handle = spec.instance_id.to_string();
        let counters = Arc::new(InstanceCounters { resting_ram, ..Default::default() });
        lock(&self.state.live).insert(handle.clone(), Arc::clone(&counters));
        let conn = SimInstance { image: spec.image_tag.clone(), state: Arc::clone(&self.state), counters };
        Ok(Started {
            name: format!("fake-{handle}"),
            address: format!("simulated/{handle}"),
            handle,
            conn: Arc::new(conn),
        })
    }

    async fn stop(&self, handle: &str) -> Result<(), RuntimeError> {
        lock(&self.state.live).remove(handle);
        Ok(())
    }

    async fn sample(&self, handle: &str) -> Option<ResourceCounters> {
        let counters = lock(&self.state.live).get(handle).cloned()?;
        let memory = counters.resting_ram + *lock(&counters.ram);
        Some(ResourceCounters {
            cpu_usage: Nanos(counters.cpu_ns.load(Ordering::Relaxed)),
            memory: Bytes(Nanos::from_f64_saturating(memory).0),
        })
    }

    /// Simulated instances never exit on their own: nothing to send, no
    /// view to lose.
    fn watch(&self, _exits: mpsc::Sender<ExitNotice>, _resync: Arc<Notify>) {}

    /// The simulated calls' load on top of the models' median host base load.
    fn usage(&self) -> HostUsage {
        let base = self.state.models.current().host_base();
        let load = lock(&self.state.load);
        let (cpu, ram) = (base.cpu_cores + load.cpu, base.ram_bytes + load.ram);
        drop(load);
        let cores = self.state.settings.cores.max(1);
        let per_core = (100.0 * cpu / cores as f64).clamp(0.0, 100.0);
        HostUsage {
            cpu_percent_per_core: vec![per_core; cores],
            cpu: Cores(cpu),
            ram_used: Bytes(Nanos::from_f64_saturating(ram).0),
            ram_total: self.state.settings.ram_total,
        }
    }
}

/// One simulated instance's call path.
#[derive(Debug)]
struct SimInstance {
    image: ImageTag,
    state: Arc<SimState>,
    counters: Arc<InstanceCounters>,
}

/// A call's share of the simulated load, released when dropped (also when
/// the caller gives up mid-call).
struct InFlight<'a> {
    state: &'a SimState,
    counters: &'a InstanceCounters,
    cpu: f64,
    ram: f64,
    /// What this call adds to its instance's RAM.
    instance_ram: f64,
    started: Instant,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut load = lock(&self.state.load);
        load.active_calls -= 1;
        load.cpu -= self.cpu;
        load.ram -= self.ram;
        if load.active_calls == 0 {
            // Floating-point sums drift; an idle worker uses nothing.
            load.cpu = 0.0;
            load.ram = 0.0;
        }
        drop(load);
        *lock(&self.counters.ram) -= self.instance_ram;
        let cpu_ns = Nanos::from_f64_saturating(self.cpu * self.started.elapsed().as_nanos() as f64);
        self.counters.cpu_ns.fetch_add(cpu_ns.0, Ordering::Relaxed);
    }
}

/// What one call does, decided before it sleeps.
#[derive(Debug, PartialEq)]
struct Plan {
    runtime: Nanos,
    overhead: Nanos,
    cpu: f64,
    ram: f64,
    /// Bytes to answer with under [`ResponseMode::Predicted`]; `None` when
    /// the model predicts no size.
    response_bytes: Option<usize>,
}

impl SimState {
    /// The host's load besides the calls, for one call's inputs: drawn from
    /// the model's [`hyperfake_model::HostBaseline`] ([`Sampling::Spread`])
    /// or its median ([`Sampling::Mean`]); zero when the model records none.
    fn host_base(&self, info: &ModelInfo) -> HostLoad {
        let Some(baseline) = &info.host_baseline else { return HostLoad::default() };
        match self.settings.sampling {
            Sampling::Mean => baseline.median(),
            Sampling::Spread => baseline.sample(lock(&self.call_rng).random()),
        }
    }

    /// Runtime, overhead, usage and response size of a prediction, drawing
    /// two numbers per call in [`Sampling::Spread`] mode.
    fn plan(&self, info: &ModelInfo, p: &Prediction) -> Plan {
        let runtime_ns = f64::from(p.runtime_ns);
        let overhead_ns = p.worker_overhead_ns.map(f64::from);
        let (runtime_ns, overhead_noise) = match self.settings.sampling {
            Sampling::Mean => (runtime_ns, 0.0),
            Sampling::Spread => {
                let (u_runtime, u_overhead): (f64, f64) = {
                    let mut rng = lock(&self.call_rng);
                    (rng.random(), rng.random())
                };
                let drawn = runtime_ns + info.sample_runtime_residual(runtime_ns, u_runtime).unwrap_or(0.0);
                (
                    // Onto the measured runtime distribution (see `QuantileMap`).
                    info.runtime_quantile_map.as_ref().map_or(drawn, |m| m.apply(drawn)),
                    overhead_ns.and_then(|o| info.sample_overhead_residual(o, u_overhead)).unwrap_or(0.0),
                )
            }
        };
        // NaN and negatives become zero: a prediction never becomes a nonsense sleep.
        Plan {
            runtime: Nanos::from_f64_saturating(runtime_ns),
            overhead: Nanos::from_f64_saturating(overhead_ns.unwrap_or(0.0) + overhead_noise),
            cpu: finite_non_negative(f64::from(p.cpu_cores)),
            ram: finite_non_negative(f64::from(p.ram_bytes)),
            response_bytes: p.response_size_bytes.map(|b| {
                #[allow(clippy::cast_possible_truncation)]
                let n = Nanos::from_f64_saturating(f64::from(b).round()).0 as usize;
                n.min(MAX_RESPONSE_BYTES)
            }),
        }
    }
}

#[async_trait]
impl InstanceConn for SimInstance {
    async fn call(&self, request: CallRequest, timeout: Option<Duration>) -> Result<CallOutput, CallError> {
        // Deadlines from here: the time this simulation itself takes (the
        // prediction, the timer's millisecond rounding of the first sleep) is
        // part of the predicted times, not added to them.
        let entered = tokio::time::Instant::now();
        let models = self.state.models.current();
        let model =
            models.get(&self.image).ok_or_else(|| CallError::ModelUnloaded { image: self.image.clone() })?;
        let info = model.info();
        let instances = lock(&self.state.live).len();
        // The worker host's usage as the real worker reports it: everything
        // besides the calls, plus the calls in flight.
        let host = self.state.host_base(info);
        #[allow(clippy::cast_possible_truncation)]
        let base = {
            let mut load = lock(&self.state.load);
            load.active_calls += 1;
            [
                request.data.len() as f32,
                instances as f32,
                load.active_calls as f32,
                (host.cpu_cores + load.cpu) as f32,
                (host.ram_bytes + load.ram) as f32,
            ]
        };
        let mut in_flight = InFlight {
            state: &self.state,
            counters: &self.counters,
            cpu: 0.0,
            ram: 0.0,
            instance_ram: 0.0,
            started: Instant::now(),
        };
        let (mut row, defaults) = info.inputs_for(base, &request.data);
        if defaults > 0 {
            self.state.payload_defaults.fetch_add(defaults as u64, Ordering::Relaxed);
            tracing::debug!(
                image = %self.image,
                request_id = %request.request_id,
                defaults,
                "payload feature(s) not in the payload; using the model's defaults"
            );
        }
        info.clamp_input(&mut row);
        let prediction = model.predict_one(&row).map_err(|e| CallError::ModelFailed {
            path: model.path().to_path_buf(),
            reason: format!("{e:#}"),
        })?;
        let plan = self.state.plan(info, &info.clamp_output(prediction));
        {
            let mut load = lock(&self.state.load);
            load.cpu += plan.cpu;
            load.ram += plan.ram;
        }
        let instance_ram = (plan.ram - self.counters.resting_ram).max(0.0);
        *lock(&self.counters.ram) += instance_ram;
        in_flight.cpu = plan.cpu;
        in_flight.ram = plan.ram;
        in_flight.instance_ram = instance_ram;

        // The handler's time, then the worker's own (the hop to the instance
        // and back): the worker measures both as the processing time. Both
        // sleeps end at deadlines counted from `entered`, so the second
        // absorbs how late the first woke.
        let total = plan.runtime.as_duration().saturating_add(plan.overhead.as_duration());
        match timeout {
            Some(t) if t < total => {
                tokio::time::sleep_until(entered + t).await;
                return Err(CallError::DeadlineExceeded);
            }
            _ => self.state.timer.sleep_until(entered + plan.runtime.as_duration()).await,
        }
        drop(in_flight);
        self.state.timer.sleep_until(entered + total).await;
        let data = match (self.state.settings.response, plan.response_bytes) {
            (ResponseMode::Predicted, Some(n)) => vec![0u8; n],
            (ResponseMode::Predicted, None) | (ResponseMode::Echo, _) => request.data,
            (ResponseMode::Empty, _) => Vec::new(),
        };
        Ok(CallOutput {
            response: CallResponse {
                request_id: request.request_id,
                data,
                error: None,
                instance_id: request.instance_id,
            },
            handler_time: Some(plan.runtime),
        })
    }
}

fn finite_non_negative(v: f64) -> f64 {
    if v.is_finite() && v > 0.0 { v } else { 0.0 }
}
