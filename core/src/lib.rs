//! Types shared by every hyperfake crate. Units are fixed here and documented in
//! `docs/units.md`; nothing in this crate does I/O.
//!
//! ```
//! use hyperfake_core::{Bytes, Cores, Nanos};
//! let runtime = Nanos::from_millis(50);
//! assert_eq!(runtime.as_duration().as_millis(), 50);
//! assert_eq!(Bytes::parse_size("256MB").unwrap(), Bytes(256 * 1024 * 1024));
//! assert_eq!(Cores::from_cpu_time(Nanos::from_millis(500), Nanos::from_millis(1000)), Cores(0.5));
//! ```

pub mod build;
pub mod config;
pub mod defaults;
pub mod format;
pub mod ids;
pub mod image_ref;
pub mod payload;
pub mod time;
pub mod trailers;
pub mod units;

pub use config::{CpuQuota, FunctionConfig, FunctionConfigError};
pub use ids::{FunctionId, FunctionIdError, ImageTag, InstanceId, RequestId};
pub use image_ref::{ImageRef, ImageRefError};
pub use payload::{PayloadFeature, PayloadFeatures};
pub use units::{Bytes, Cores, Nanos, UnitError};
