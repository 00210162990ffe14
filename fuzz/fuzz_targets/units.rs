//! Units and durations as users write them: `Bytes::parse_size` (`256MB`),
//! the workload's Go-style durations (`loadgen::duration::parse`, `1h30m`,
//! `1.5s`) and their formatter, which must read back to the same duration,
//! and the unit conversions of `Nanos`/`Cores` on arbitrary numbers.
//!
//! Input: text; its bytes also serve as numbers for the conversions.
#![no_main]

use std::time::Duration;

use hyperfake_core::{Bytes, Cores, Nanos};
use libfuzzer_sys::fuzz_target;
use loadgen::duration;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(size) = Bytes::parse_size(text) {
            let _ = size.to_string();
            let _ = size.as_i64();
        }
        if let Ok(d) = duration::parse(text) {
            let written = duration::format(d);
            assert_eq!(duration::parse(&written), Ok(d), "format({d:?}) = {written:?} reads back");
        }
    }
    let mut word = [0u8; 8];
    let n = data.len().min(8);
    word[..n].copy_from_slice(&data[..n]);
    let bits = u64::from_le_bytes(word);
    let d = Duration::from_nanos(bits);
    assert_eq!(duration::parse(&duration::format(d)), Ok(d), "every duration formats and reads back");
    let ns = Nanos::from_f64_saturating(f64::from_bits(bits));
    assert_eq!(Nanos::from_duration(ns.as_duration()), ns);
    let _ = Cores::from_cpu_time(Nanos(bits), Nanos(bits.rotate_left(17)));
    let _ = Cores::from_cfs(bits >> 32, bits & 0xffff_ffff);
});
