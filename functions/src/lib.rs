//! HyperFaaS's workload functions and the SDK they are written with.
//!
//! A function is an async handler from the request bytes to the response bytes
//! or an error message. [`sdk::serve`] runs it as `function.FunctionService` on
//! port 50052, the way the worker expects every function container to behave;
//! each binary in `src/bin` is one such function and becomes the image
//! `hyperfaas-<name>:latest` (built by `scripts/build-function-images.sh`).
//!
//! ```no_run
//! use bytes::Bytes;
//!
//! async fn shout(input: Bytes) -> Result<Vec<u8>, String> {
//!     let text = std::str::from_utf8(&input).map_err(|e| format!("input is not UTF-8: {e}"))?;
//!     Ok(text.to_uppercase().into_bytes())
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     functions::sdk::run(shout)
//! }
//! ```

pub mod sdk;
pub mod workload;

pub use workload::{NAMES, image_tag};
