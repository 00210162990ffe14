//! Helpers shared by the fuzz targets in `fuzz_targets/`. Each target is one
//! file with its own notes on what it bounds and why; `scripts/fuzz.sh` runs
//! them and writes `bench-results/fuzz.{md,json}`.

use std::path::PathBuf;
use std::sync::OnceLock;

/// `data` cut at the first `sep` byte: the bytes before it and after it (the
/// second part is empty when there is no `sep`). Lets a seed hold two parts
/// written by hand, e.g. a JSON declaration and a payload.
pub fn split(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// `bytes` read as little-endian `f32`s (a trailing partial value is dropped).
pub fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// A directory of this process's own for targets whose API reads a file
/// (under `/dev/shm` when it exists, so an exec costs no disk write).
pub fn scratch_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base =
            ["/dev/shm"].iter().map(PathBuf::from).find(|p| p.is_dir()).unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("hyperfake-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the scratch directory can be created");
        dir
    })
}
