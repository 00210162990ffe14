//! HyperFaaS's workload functions. Each module holds one function's handler;
//! `src/bin/<name>.rs` serves it, and the image is `hyperfaas-<name>:latest`.

pub mod bfs;
pub mod crash;
pub mod echo;
pub mod hello;
pub mod simul;
pub mod sleep;
pub mod thumbnailer;
pub mod trace;

use hyperfake_core::ImageTag;
use hyperfake_core::defaults::IMAGE_PREFIX;

/// Every function, by binary name. `scripts/build-function-images.sh` builds
/// one image per binary in `src/bin`; a unit test keeps the two lists equal.
pub const NAMES: [&str; 8] = ["bfs", "crash", "echo", "hello", "simul", "sleep", "thumbnailer", "trace"];

/// The image a function is built into: `hyperfaas-<name>:latest`.
pub fn image_tag(name: &str) -> ImageTag {
    ImageTag::new(format!("{IMAGE_PREFIX}{name}:latest"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_binaries() {
        let bin_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin");
        let mut binaries: Vec<String> = std::fs::read_dir(&bin_dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
            .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        binaries.sort();
        assert_eq!(binaries, NAMES, "NAMES must list exactly the binaries in {}", bin_dir.display());
    }

    #[test]
    fn image_tags() {
        assert_eq!(image_tag("echo").as_str(), "hyperfaas-echo:latest");
        assert_eq!(image_tag("echo").name(), "hyperfaas-echo");
    }
}
