//! `sleep`: waits [`DURATION`], then returns nothing. A long call for testing
//! timeouts, concurrency limits and graceful shutdown.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;

pub const DURATION: Duration = Duration::from_secs(20);

pub async fn handle(_input: Bytes) -> Result<Vec<u8>, Infallible> {
    tokio::time::sleep(DURATION).await;
    Ok(Vec::new())
}
