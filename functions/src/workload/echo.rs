//! `echo`: returns its input byte for byte.

use std::convert::Infallible;

use bytes::Bytes;

pub async fn handle(input: Bytes) -> Result<Vec<u8>, Infallible> {
    Ok(input.to_vec())
}
