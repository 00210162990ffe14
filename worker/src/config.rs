//! Settings of the runtime-independent part of a worker.

use std::time::Duration;

/// How often idle instances are looked for. Idle timeouts are whole seconds,
/// so a quarter second keeps expiry within 250 ms of the configured value.
pub const DEFAULT_IDLE_CHECK_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Clone, Debug)]
pub struct WorkerSettings {
    /// Names this worker: labels its containers and scopes leftover cleanup.
    pub worker_id: String,
    /// Only images whose tag starts with one of these may be started.
    pub allowed_image_prefixes: Vec<String>,
    pub idle_check_interval: Duration,
}

impl WorkerSettings {
    pub fn new(worker_id: impl Into<String>) -> Self {
        WorkerSettings {
            worker_id: worker_id.into(),
            allowed_image_prefixes: vec![hyperfake_core::defaults::IMAGE_PREFIX.to_string()],
            idle_check_interval: DEFAULT_IDLE_CHECK_INTERVAL,
        }
    }

    pub fn image_allowed(&self, image: &str) -> bool {
        self.allowed_image_prefixes.iter().any(|p| image.starts_with(p.as_str()))
    }
}
