//! `FunctionConfig::validate`, the one place that decides what a valid
//! config is, on arbitrary wire numbers. An accepted config must respect the
//! documented limits and convert back (`to_raw`) to numbers that validate to
//! the same config.
#![no_main]

use arbitrary::Arbitrary;
use hyperfake_core::FunctionConfig;
use hyperfake_core::config::{CPU_PERIOD_RANGE_US, MIN_CPU_QUOTA_US, MIN_MEMORY, RawConfig};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    memory_bytes: i64,
    cpu: Option<(i64, i64)>,
    timeout_s: i64,
    max_concurrency: i64,
}

fuzz_target!(|input: Input| {
    let Input { memory_bytes, cpu, timeout_s, max_concurrency } = input;
    let raw = RawConfig { memory_bytes, cpu, timeout_s, max_concurrency };
    let config = match FunctionConfig::validate(raw) {
        Ok(config) => config,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    assert!(config.memory >= MIN_MEMORY);
    if let Some(q) = config.cpu {
        assert!(CPU_PERIOD_RANGE_US.contains(&q.period_us));
        assert!(q.quota_us >= MIN_CPU_QUOTA_US);
        assert!(q.cores().0 > 0.0);
    }
    assert_eq!(FunctionConfig::validate(config.to_raw()), Ok(config.clone()), "to_raw is validate's inverse");
});
