use std::time::Duration;

use hyperfake_core::Bytes;

use super::Problem;
use super::raw::Scalar;
use super::scalar::{image_size, seconds_or_duration, size};

#[test]
fn timeout_accepts_seconds_and_durations() {
    assert_eq!(seconds_or_duration(&Scalar::Int(60)), Ok(Duration::from_secs(60)));
    assert_eq!(seconds_or_duration(&Scalar::Text("30s".into())), Ok(Duration::from_secs(30)));
    assert_eq!(seconds_or_duration(&Scalar::Int(-1)), Err(Problem::Negative(-1)));
}

#[test]
fn sizes_accept_bytes_and_units() {
    assert_eq!(size(&Scalar::Int(1024)), Ok(Bytes(1024)));
    assert_eq!(size(&Scalar::Text("2GB".into())), Ok(Bytes(2 * Bytes::GIB)));
    assert!(matches!(size(&Scalar::Text("12XB".into())), Err(Problem::Size(_))));
}

#[test]
fn image_sizes() {
    assert_eq!(image_size("1920x1080"), Ok((1920, 1080)));
    assert!(image_size("1920").is_err());
    assert!(image_size("0x10").is_err());
}
