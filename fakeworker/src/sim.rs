//! The simulated runtime: instances are entries in a table, calls are async
//! timers whose length a model predicts. Inputs to the model follow
//! `docs/units.md` exactly, computed from the simulated state at the call's
//! start, so they mean at inference what they meant in training.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hyperfake_core::{Bytes, Cores, ImageTag, Nanos};
use proto::common::{CallRequest, CallResponse};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::mpsc;
use worker::runtime::{
    CallError, CallOutput, ExitNotice, HostUsage, InstanceConn, ResourceCounters, Runtime,
};
use worker::{RuntimeError, StartSpec, Started};

use crate::models::ModelRegistry;

/// What a simulated call answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ResponseMode {
    /// The request payload, like `echo` (a response of the request's size).
    Echo,
    /// An empty payload.
    Empty,
}

#[derive(Clone, Debug)]
pub struct SimSettings {
    /// How long `Start` takes. The real worker's measured cold start on this
    /// class of machine is ~0.4 s (bench-results/worker.md).
    pub cold_start: Duration,
    /// Sample runtime noise from the model's training residuals, seeded.
    pub noise_seed: Option<u64>,
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
            noise_seed: None,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            ram_total: Bytes(16 * Bytes::GIB),
            response: ResponseMode::Echo,
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
    /// Predicted RAM of calls in flight on this instance.
    ram: Mutex<f64>,
}

#[derive(Debug)]
struct SimState {
    settings: SimSettings,
    models: Arc<ModelRegistry>,
    live: Mutex<HashMap<String, Arc<InstanceCounters>>>,
    load: Mutex<Load>,
    rng: Mutex<ChaCha8Rng>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, Clone)]
pub struct SimRuntime {
    state: Arc<SimState>,
}

impl SimRuntime {
    pub fn new(models: Arc<ModelRegistry>, settings: SimSettings) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(settings.noise_seed.unwrap_or(0));
        SimRuntime {
            state: Arc::new(SimState {
                settings,
                models,
                live: Mutex::new(HashMap::new()),
                load: Mutex::new(Load::default()),
                rng: Mutex::new(rng),
            }),
        }
    }

    pub fn models(&self) -> &Arc<ModelRegistry> {
        &self.state.models
    }

    /// Calls in flight on the simulated worker.
    pub fn active_calls(&self) -> u32 {
        lock(&self.state.load).active_calls
    }
}

#[async_trait]
impl Runtime for SimRuntime {
    async fn start(&self, spec: &StartSpec) -> Result<Started, RuntimeError> {
        if self.state.models.current().get(&spec.image_tag).is_none() {
            return Err(RuntimeError::NoModel { image: spec.image_tag.clone() });
        }
        tokio::time::sleep(self.state.settings.cold_start).await;
        let handle = spec.instance_id.to_string();
        let counters = Arc::new(InstanceCounters::default());
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
        let memory = *lock(&counters.ram);
        Some(ResourceCounters {
            cpu_usage: Nanos(counters.cpu_ns.load(Ordering::Relaxed)),
            memory: Bytes(Nanos::from_f64_saturating(memory).0),
        })
    }

    /// Simulated instances never exit on their own.
    fn watch_exits(&self, _exits: mpsc::Sender<ExitNotice>) {}

    fn usage(&self) -> HostUsage {
        let load = lock(&self.state.load);
        let cores = self.state.settings.cores.max(1);
        let per_core = (100.0 * load.cpu / cores as f64).clamp(0.0, 100.0);
        HostUsage {
            cpu_percent_per_core: vec![per_core; cores],
            cpu: Cores(load.cpu),
            ram_used: Bytes(Nanos::from_f64_saturating(load.ram).0),
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
        *lock(&self.counters.ram) -= self.ram;
        let cpu_ns = Nanos::from_f64_saturating(self.cpu * self.started.elapsed().as_nanos() as f64);
        self.counters.cpu_ns.fetch_add(cpu_ns.0, Ordering::Relaxed);
    }
}

#[async_trait]
impl InstanceConn for SimInstance {
    async fn call(&self, request: CallRequest, timeout: Option<Duration>) -> Result<CallOutput, CallError> {
        let models = self.state.models.current();
        let model = models.get(&self.image).ok_or_else(|| {
            CallError::Status(tonic::Status::failed_precondition(format!(
                "no model for {} is loaded any more",
                self.image
            )))
        })?;
        let instances = lock(&self.state.live).len();
        #[allow(clippy::cast_possible_truncation)]
        let features = {
            let mut load = lock(&self.state.load);
            load.active_calls += 1;
            [
                request.data.len() as f32,
                instances as f32,
                load.active_calls as f32,
                load.cpu as f32,
                load.ram as f32,
            ]
        };
        let mut in_flight = InFlight {
            state: &self.state,
            counters: &self.counters,
            cpu: 0.0,
            ram: 0.0,
            started: Instant::now(),
        };
        let info = model.info();
        let (mut row, _defaults) = info.inputs_for(features, &request.data);
        info.clamp_input(&mut row);
        let prediction = model.predict_one(&row).map_err(|e| {
            CallError::Status(tonic::Status::internal(format!(
                "model {} failed: {e:#}",
                model.path().display()
            )))
        })?;
        let prediction = info.clamp_output(prediction);
        let [runtime_ns, cpu, ram] = prediction.targets().map(f64::from);
        let noise = match self.state.settings.noise_seed {
            Some(_) => {
                let u: f64 = lock(&self.state.rng).random();
                info.sample_runtime_residual(runtime_ns, u).unwrap_or(0.0)
            }
            None => 0.0,
        };
        // NaN and negatives become zero: a prediction never becomes a nonsense sleep.
        let runtime = Nanos::from_f64_saturating(runtime_ns + noise);
        let (cpu, ram) = (finite_non_negative(cpu), finite_non_negative(ram));
        {
            let mut load = lock(&self.state.load);
            load.cpu += cpu;
            load.ram += ram;
        }
        *lock(&self.counters.ram) += ram;
        in_flight.cpu = cpu;
        in_flight.ram = ram;

        match timeout {
            Some(t) if t < runtime.as_duration() => {
                tokio::time::sleep(t).await;
                return Err(CallError::DeadlineExceeded);
            }
            _ => tokio::time::sleep(runtime.as_duration()).await,
        }
        drop(in_flight);
        let data = match self.state.settings.response {
            ResponseMode::Echo => request.data,
            ResponseMode::Empty => Vec::new(),
        };
        Ok(CallOutput {
            response: CallResponse {
                request_id: request.request_id,
                data,
                error: None,
                instance_id: request.instance_id,
            },
            handler_time: Some(runtime),
        })
    }
}

fn finite_non_negative(v: f64) -> f64 {
    if v.is_finite() && v > 0.0 { v } else { 0.0 }
}
