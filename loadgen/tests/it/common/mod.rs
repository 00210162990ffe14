//! Helpers shared by the test modules.

use std::path::PathBuf;

/// The repository's `configs/` directory.
pub fn configs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

/// A minimal valid workload with one echo phase, to derive error cases from.
pub const BASE: &str = "\
leaf_address: 127.0.0.1:50050
max_duration: 1m
timeout: 30s
seed: 7
workload:
  phases:
    - name: warmup
      type: constant
      start_time: 0s
      duration: 10s
      start_rps: 2
      image_tag: hyperfaas-echo:latest
    - name: ramp
      type: variable
      start_time: 10s
      duration: 20s
      start_rps: 1
      end_rps: 5
      step: 1
      image_tag: hyperfaas-echo:latest
function_config:
  hyperfaas-echo:latest:
    memory: 256MB
    cpu:
      period: 100000
      quota: 50000
data_providers:
  hyperfaas-echo:latest:
    type: echo
    min_body_size: 16
    max_body_size: 1KB
";
