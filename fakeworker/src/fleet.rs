//! Many simulated workers in one process (`fakeworker --workers N`): each
//! its own [`SimRuntime`] (instances, load, draws, simulated host) behind its
//! own [`worker::Worker`] and `controller.Controller` port, all sharing one
//! [`ModelRegistry`] and one timer thread. [`worker::cli::run`] serves them.

use std::sync::Arc;

use async_trait::async_trait;
use worker::{Runtime, RuntimeSource};

use crate::models::ModelRegistry;
use crate::sim::{SimRuntime, SimSettings};
use crate::timer::PreciseTimer;

/// Makes the simulated runtime of each worker of a fake worker process.
#[derive(Debug)]
pub struct SimFleet {
    models: Arc<ModelRegistry>,
    settings: SimSettings,
    timer: PreciseTimer,
    runtimes: Vec<SimRuntime>,
}

impl SimFleet {
    pub fn new(models: Arc<ModelRegistry>, settings: SimSettings) -> Self {
        SimFleet { models, settings, timer: PreciseTimer::new(), runtimes: Vec::new() }
    }

    /// The runtime of worker `index`: streams `2·index` and `2·index + 1`
    /// of the seed ([`SimRuntime::for_worker`]).
    pub fn runtime(&mut self, index: usize) -> SimRuntime {
        let runtime = SimRuntime::for_worker(
            index as u64,
            Arc::clone(&self.models),
            self.settings.clone(),
            self.timer.clone(),
        );
        self.runtimes.push(runtime.clone());
        runtime
    }

    /// Every runtime made so far, in order.
    pub fn runtimes(&self) -> &[SimRuntime] {
        &self.runtimes
    }
}

#[async_trait]
impl RuntimeSource for SimFleet {
    fn kind(&self) -> &'static str {
        "fakeworker"
    }

    async fn runtime(&mut self, index: usize, _worker_id: &str) -> anyhow::Result<Arc<dyn Runtime>> {
        Ok(Arc::new(SimFleet::runtime(self, index)))
    }
}
