//! Settings of the runtime-independent part of a worker.

use std::time::Duration;

/// How often idle instances are looked for. Idle timeouts are whole seconds,
/// so a quarter second keeps expiry within 250 ms of the configured value.
pub const DEFAULT_IDLE_CHECK_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Clone, Debug)]
pub struct WorkerSettings {
    /// Names this worker: labels its containers and scopes leftover cleanup.
    pub worker_id: String,
    /// Only images `<prefix><name>[:tag][@digest]` with one of these prefixes
    /// may be started (no registry, no path: [`hyperfake_core::ImageRef`]).
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
        hyperfake_core::ImageRef::parse_allowed(image, &self.allowed_image_prefixes).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allow_list_parses_the_reference_instead_of_matching_a_prefix() {
        let s = WorkerSettings::new("w");
        assert!(s.image_allowed("hyperfaas-echo:latest"));
        // Docker would read the first part as a registry and pull from it.
        assert!(!s.image_allowed("hyperfaas-evil.example.com/x"));
        assert!(!s.image_allowed("hyperfaas-echo/../x"));
        assert!(!s.image_allowed("other-echo:latest"));
    }
}
