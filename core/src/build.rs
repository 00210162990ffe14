//! Which build a binary runs, for the header of a benchmark or report: the
//! build profile and what it optimises.

/// The workspace crates the dev profile compiles at `opt-level = 2`, as
/// `Cargo.toml`'s `[profile.dev.package.<name>]` sections say (a test keeps
/// the two equal). Every dependency is at `opt-level = 2` too; the rest of
/// the workspace (tests' helpers, functions, CLI glue) is unoptimised.
pub const DEV_OPTIMISED: [&str; 8] =
    ["fakeworker", "hyperfake-model", "processing", "trainer", "fidelity", "loadgen", "leaf", "worker"];

/// The build profile of a binary compiled with `debug_assertions` (pass the
/// caller's own `cfg!(debug_assertions)`: this crate's flag could differ).
pub fn profile(debug_assertions: bool) -> String {
    if debug_assertions {
        format!(
            "dev (dependencies and {} at opt-level 2, the rest of hyperfake unoptimised; debug assertions on)",
            DEV_OPTIMISED.join(", ")
        )
    } else {
        "release (everything optimised)".to_owned()
    }
}

/// CPUs, CPU model and kernel of this machine.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".to_string(), |k| k.trim().to_string());
    format!("{cpus} CPUs ({model}), Linux {kernel}")
}

/// The 1-, 5- and 15-minute load averages, as `/proc/loadavg` gives them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `[profile.dev.package.<name>]` sections of the workspace manifest
    /// that set an opt-level, without the `"*"` one for dependencies.
    fn optimised_in_manifest() -> Vec<String> {
        let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
            .expect("the workspace manifest is readable");
        let mut names = Vec::new();
        let mut section: Option<String> = None;
        for line in manifest.lines().map(str::trim) {
            if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = header.strip_prefix("profile.dev.package.").map(|n| n.trim_matches('"').to_owned());
            } else if line.starts_with("opt-level")
                && let Some(name) = section.as_ref().filter(|n| *n != "*")
            {
                names.push(name.clone());
            }
        }
        names
    }

    #[test]
    fn the_optimised_list_is_the_manifests() {
        let mut listed: Vec<String> = DEV_OPTIMISED.iter().map(|s| (*s).to_owned()).collect();
        let mut manifest = optimised_in_manifest();
        listed.sort();
        manifest.sort();
        assert_eq!(listed, manifest, "hyperfake_core::build::DEV_OPTIMISED and Cargo.toml disagree");
    }

    #[test]
    fn the_profile_names_what_is_optimised() {
        assert!(profile(true).starts_with("dev (") && profile(true).contains("trainer"));
        assert!(profile(false).starts_with("release"));
    }
}
