//! `crash`: on a call, waits [`DELAY`] and then exits the process with
//! [`EXIT_CODE`], as HyperFaaS's crash function does (a Go panic exits with 2).
//! The worker must see the container go down mid-call.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use tracing::error;

pub const DELAY: Duration = Duration::from_secs(2);
pub const EXIT_CODE: i32 = 2;

pub async fn handle(_input: Bytes) -> Result<Vec<u8>, Infallible> {
    tokio::time::sleep(DELAY).await;
    error!(exit_code = EXIT_CODE, "crashing on purpose");
    // Exiting is the point: a panic would be caught by the SDK and reported
    // as a handler error, and the container would keep running.
    #[allow(clippy::exit)]
    std::process::exit(EXIT_CODE)
}
