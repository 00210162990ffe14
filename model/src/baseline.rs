//! The host load a simulated worker reports besides its simulated calls.
//!
//! Two of the five fixed inputs, `worker_cpu_usage` and `worker_ram_usage`,
//! are the whole worker host's usage: on the real platform that is the
//! calls' containers plus everything else the host runs (the worker, Docker,
//! the leaf, the load generator, idle instances, the kernel). A fake worker
//! knows only its simulated calls, so without a base it feeds the models
//! values far below any they were trained on (measured: 14 MB and 0.18 cores
//! where the real worker reported 669 MB and 0.44 cores), and the models
//! answer for an idle host. The trainer measures the base on the training
//! run — each call's recorded host usage minus the usage of the other calls
//! in flight at its start — and stores its quantiles; the fake worker draws a
//! base per call and adds its simulated load.

use serde::{Deserialize, Serialize};

use crate::spread::{check_quantiles, quantile_at};

/// Evenly spaced quantiles (0 %, …, 100 %) of the host's base CPU (cores) and
/// RAM (bytes), both non-decreasing and ≥ 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostBaseline {
    /// Quantiles of the base CPU, cores.
    pub cpu_cores: Vec<f64>,
    /// Quantiles of the base RAM, bytes.
    pub ram_bytes: Vec<f64>,
}

/// A base host load: CPU in cores and RAM in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HostLoad {
    /// CPU, cores.
    pub cpu_cores: f64,
    /// RAM, bytes.
    pub ram_bytes: f64,
}

impl HostBaseline {
    /// Checks both quantile lists: non-empty, finite, non-decreasing, ≥ 0.
    pub fn check(&self) -> Result<(), String> {
        for (name, q) in [("cpu_cores", &self.cpu_cores), ("ram_bytes", &self.ram_bytes)] {
            check_quantiles(q).map_err(|e| format!("{name}: {e}"))?;
            if q[0] < 0.0 {
                return Err(format!("{name}: a usage is negative ({})", q[0]));
            }
        }
        Ok(())
    }

    /// The base load at quantile `u` ∈ [0, 1] of both distributions (the
    /// same `u` for both: a busier host is busier in both).
    pub fn sample(&self, u: f64) -> HostLoad {
        HostLoad { cpu_cores: quantile_at(&self.cpu_cores, u), ram_bytes: quantile_at(&self.ram_bytes, u) }
    }

    /// The median base load.
    pub fn median(&self) -> HostLoad {
        self.sample(0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_interpolate_and_check_refuses_bad_lists() {
        let b = HostBaseline { cpu_cores: vec![0.1, 0.3, 0.5], ram_bytes: vec![1e8, 2e8, 4e8] };
        b.check().unwrap();
        assert_eq!(b.median(), HostLoad { cpu_cores: 0.3, ram_bytes: 2e8 });
        assert_eq!(b.sample(0.75), HostLoad { cpu_cores: 0.4, ram_bytes: 3e8 });
        let negative = HostBaseline { cpu_cores: vec![-0.1, 0.2], ..b.clone() };
        assert!(negative.check().unwrap_err().contains("cpu_cores: a usage is negative"));
        let unsorted = HostBaseline { ram_bytes: vec![2e8, 1e8], ..b.clone() };
        assert!(unsorted.check().unwrap_err().starts_with("ram_bytes:"));
        let empty = HostBaseline { cpu_cores: vec![], ..b };
        assert!(empty.check().is_err());
    }
}
