//! A function's resource configuration, validated. The wire's `common.Config`
//! is converted into [`FunctionConfig`] by `proto::convert`; everything past the
//! edge works on the validated form.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::image_ref::ImageRefError;
use crate::units::{Bytes, Cores};

/// The smallest memory limit Docker accepts for a container.
pub const MIN_MEMORY: Bytes = Bytes(6 * Bytes::MIB);
/// CFS period bounds enforced by the kernel (microseconds).
pub const CPU_PERIOD_RANGE_US: std::ops::RangeInclusive<u64> = 1_000..=1_000_000;
/// The smallest CFS quota the kernel accepts (microseconds).
pub const MIN_CPU_QUOTA_US: u64 = 1_000;

/// A CFS CPU limit: `quota_us` of CPU time per `period_us` of wall time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuQuota {
    pub period_us: u64,
    pub quota_us: u64,
}

impl CpuQuota {
    pub fn cores(self) -> Cores {
        Cores::from_cfs(self.quota_us, self.period_us)
    }
}

/// The validated configuration an instance runs with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionConfig {
    /// Memory limit of one instance.
    pub memory: Bytes,
    /// CPU limit of one instance; `None` means unlimited.
    pub cpu: Option<CpuQuota>,
    /// An instance without calls for this long is stopped; `None` never.
    pub idle_timeout: Option<Duration>,
    /// Calls one instance serves at once; `None` means unlimited.
    pub max_concurrency: Option<u32>,
}

/// What is wrong with a function configuration, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FunctionConfigError {
    #[error("image_tag: must not be empty")]
    MissingImageTag,
    /// The image is not one a worker may start (see [`crate::ImageRef`]).
    #[error("image_tag: {0}")]
    ImageTag(#[from] ImageRefError),
    #[error("config: missing (memory and cpu must be given)")]
    MissingConfig,
    #[error("config.memory: {0} bytes is not a valid memory limit (must be at least {min} bytes)", min = MIN_MEMORY.0)]
    Memory(i64),
    #[error("config.cpu.quota: {quota} is set but config.cpu.period is {period}; give both or neither")]
    QuotaWithoutPeriod { quota: i64, period: i64 },
    #[error("config.cpu.period: {period} is set but config.cpu.quota is {quota}; give both or neither")]
    PeriodWithoutQuota { period: i64, quota: i64 },
    #[error("config.cpu.period: {0} µs is outside the kernel's range 1000..=1000000")]
    CpuPeriod(i64),
    #[error("config.cpu.quota: {0} µs is below the kernel's minimum of 1000")]
    CpuQuota(i64),
    #[error("config.timeout: {0} s is negative (0 disables the idle timeout)")]
    Timeout(i64),
    #[error("config.max_concurrency: {0} is negative (0 means unlimited)")]
    MaxConcurrency(i64),
}

/// The raw numbers as they arrive on the wire (`common.Config`), before validation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawConfig {
    pub memory_bytes: i64,
    /// `(period_us, quota_us)`; `None` when the message has no `cpu`.
    pub cpu: Option<(i64, i64)>,
    pub timeout_s: i64,
    pub max_concurrency: i64,
}

impl FunctionConfig {
    /// Validates wire values. The one place that decides what a valid config is.
    pub fn validate(raw: RawConfig) -> Result<Self, FunctionConfigError> {
        let RawConfig { memory_bytes, cpu, timeout_s, max_concurrency } = raw;
        let memory = u64::try_from(memory_bytes)
            .ok()
            .filter(|m| *m >= MIN_MEMORY.0)
            .map(Bytes)
            .ok_or(FunctionConfigError::Memory(memory_bytes))?;
        let cpu = match cpu {
            None | Some((0, 0)) => None,
            Some((period, quota)) if period == 0 => {
                return Err(FunctionConfigError::QuotaWithoutPeriod { quota, period });
            }
            Some((period, quota)) if quota == 0 => {
                return Err(FunctionConfigError::PeriodWithoutQuota { period, quota });
            }
            Some((period, quota)) => {
                let period_us = u64::try_from(period)
                    .ok()
                    .filter(|p| CPU_PERIOD_RANGE_US.contains(p))
                    .ok_or(FunctionConfigError::CpuPeriod(period))?;
                let quota_us = u64::try_from(quota)
                    .ok()
                    .filter(|q| *q >= MIN_CPU_QUOTA_US)
                    .ok_or(FunctionConfigError::CpuQuota(quota))?;
                Some(CpuQuota { period_us, quota_us })
            }
        };
        let timeout = u64::try_from(timeout_s).map_err(|_| FunctionConfigError::Timeout(timeout_s))?;
        let max_concurrency = u32::try_from(max_concurrency)
            .map_err(|_| FunctionConfigError::MaxConcurrency(max_concurrency))?;
        Ok(FunctionConfig {
            memory,
            cpu,
            idle_timeout: (timeout > 0).then(|| Duration::from_secs(timeout)),
            max_concurrency: (max_concurrency > 0).then_some(max_concurrency),
        })
    }

    /// Back to wire values (inverse of [`FunctionConfig::validate`]).
    pub fn to_raw(&self) -> RawConfig {
        RawConfig {
            memory_bytes: self.memory.as_i64(),
            cpu: self.cpu.map(|c| {
                (
                    i64::try_from(c.period_us).unwrap_or(i64::MAX),
                    i64::try_from(c.quota_us).unwrap_or(i64::MAX),
                )
            }),
            timeout_s: self.idle_timeout.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
            max_concurrency: self.max_concurrency.map_or(0, i64::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(memory: i64, cpu: Option<(i64, i64)>) -> RawConfig {
        RawConfig { memory_bytes: memory, cpu, timeout_s: 10, max_concurrency: 2 }
    }

    #[test]
    fn accepts_a_typical_config_and_round_trips() {
        let cfg = FunctionConfig::validate(raw(256 * Bytes::MIB as i64, Some((100_000, 50_000)))).unwrap();
        assert_eq!(cfg.memory, Bytes::mib(256));
        assert_eq!(cfg.cpu.unwrap().cores(), Cores(0.5));
        assert_eq!(cfg.idle_timeout, Some(Duration::from_secs(10)));
        assert_eq!(cfg.max_concurrency, Some(2));
        assert_eq!(FunctionConfig::validate(cfg.to_raw()).unwrap(), cfg);
    }

    #[test]
    fn rejects_each_bad_field_by_name() {
        let mb = Bytes::MIB as i64;
        assert_eq!(FunctionConfig::validate(raw(0, None)), Err(FunctionConfigError::Memory(0)));
        assert_eq!(FunctionConfig::validate(raw(-5, None)), Err(FunctionConfigError::Memory(-5)));
        assert_eq!(
            FunctionConfig::validate(raw(64 * mb, Some((0, 50_000)))),
            Err(FunctionConfigError::QuotaWithoutPeriod { quota: 50_000, period: 0 })
        );
        assert_eq!(
            FunctionConfig::validate(raw(64 * mb, Some((100_000, 0)))),
            Err(FunctionConfigError::PeriodWithoutQuota { period: 100_000, quota: 0 })
        );
        assert_eq!(
            FunctionConfig::validate(raw(64 * mb, Some((10, 5_000)))),
            Err(FunctionConfigError::CpuPeriod(10))
        );
        assert_eq!(
            FunctionConfig::validate(raw(64 * mb, Some((100_000, 10)))),
            Err(FunctionConfigError::CpuQuota(10))
        );
        let mut r = raw(64 * mb, None);
        r.timeout_s = -1;
        assert_eq!(FunctionConfig::validate(r), Err(FunctionConfigError::Timeout(-1)));
        r.timeout_s = 0;
        r.max_concurrency = -3;
        assert_eq!(FunctionConfig::validate(r), Err(FunctionConfigError::MaxConcurrency(-3)));
        assert!(FunctionConfigError::Memory(0).to_string().starts_with("config.memory"));
    }

    #[test]
    fn zero_means_unlimited() {
        let r = RawConfig {
            memory_bytes: 64 * Bytes::MIB as i64,
            cpu: Some((0, 0)),
            timeout_s: 0,
            max_concurrency: 0,
        };
        let cfg = FunctionConfig::validate(r).unwrap();
        assert_eq!((cfg.cpu, cfg.idle_timeout, cfg.max_concurrency), (None, None, None));
    }
}
