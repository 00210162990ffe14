//! `hello`: returns `HELLO WORLD!` whatever the input.

use std::convert::Infallible;

use bytes::Bytes;

pub const GREETING: &[u8] = b"HELLO WORLD!";

pub async fn handle(_input: Bytes) -> Result<Vec<u8>, Infallible> {
    Ok(GREETING.to_vec())
}
