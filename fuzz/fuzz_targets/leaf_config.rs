//! The leaf's config file: YAML into `FileConfig` (unknown keys refused),
//! then `leaf::config::merge` with no flags, the one function that applies
//! defaults and validates every setting. Accepted settings must respect what
//! `merge` promises (no zero durations or counts, `reconnect_min ≤ max`, one
//! role), and their token must make a valid header.
#![no_main]

use leaf::config::{Args, FileConfig, Role, merge};
use libfuzzer_sys::fuzz_target;
use proto::auth::BearerToken;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(file) = serde_yaml_ng::from_str::<FileConfig>(text) else { return };
    let settings = match merge(Args::default(), file) {
        Ok(s) => s,
        Err(e) => {
            assert!(!e.0.is_empty());
            let _ = e.to_string();
            return;
        }
    };
    let s = &settings.scheduler;
    assert!(!s.cold_start_timeout.is_zero() && !s.scale_down_interval.is_zero());
    assert!(s.target_concurrency > 0 && s.max_instances > 0 && s.max_pending_calls > 0);
    let p = &settings.pool;
    assert!(p.reconnect_min <= p.reconnect_max);
    assert!(!p.reconcile_interval.is_zero() && !p.connect_timeout.is_zero() && !p.state_interval.is_zero());
    match &settings.role {
        Role::Leaf { workers } => assert!(!workers.is_empty()),
        Role::Balancer { children } => assert!(!children.is_empty()),
    }
    assert_eq!(BearerToken::from_token(settings.token.as_ref()).is_set(), settings.token.is_some());
});
