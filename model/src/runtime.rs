//! Finding and initialising the ONNX Runtime shared library. `ort` is built
//! with `load-dynamic` because its build-time download cannot work here; the
//! library comes from the PyPI wheel via `scripts/install-onnxruntime.sh`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;

use hyperfake_core::defaults::env::ORT_DYLIB_PATH;
use ort::environment::Environment;

use crate::ModelError;

/// The ONNX Runtime release `scripts/install-onnxruntime.sh` installs.
pub const ONNXRUNTIME_VERSION: &str = "1.31.1";

/// Environment variable naming hyperfake's cache directory (default
/// `$HOME/.cache/hyperfake`); the install script uses the same one.
const HYPERFAKE_CACHE: &str = "HYPERFAKE_CACHE";

/// Where the library is looked for, in order: `ORT_DYLIB_PATH` if set, else
/// `${HYPERFAKE_CACHE:-$HOME/.cache/hyperfake}/onnxruntime/libonnxruntime.so.<version>`.
pub fn onnxruntime_search_paths() -> Vec<PathBuf> {
    search_paths(|k| std::env::var_os(k))
}

/// [`onnxruntime_search_paths`] over any environment (tests pass a map).
fn search_paths(env: impl Fn(&str) -> Option<OsString>) -> Vec<PathBuf> {
    if let Some(p) = env(ORT_DYLIB_PATH).filter(|p| !p.is_empty()) {
        return vec![PathBuf::from(p)];
    }
    let cache = env(HYPERFAKE_CACHE)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".cache/hyperfake")));
    cache
        .map(|c| c.join("onnxruntime").join(format!("libonnxruntime.so.{ONNXRUNTIME_VERSION}")))
        .into_iter()
        .collect()
}

/// The ONNX Runtime library that will be loaded, or
/// [`ModelError::RuntimeMissing`] saying where it was looked for.
pub fn onnxruntime_library() -> Result<PathBuf, ModelError> {
    let tried = onnxruntime_search_paths();
    tried.iter().find(|p| p.is_file()).cloned().ok_or(ModelError::RuntimeMissing { tried })
}

/// The process-wide ONNX Runtime environment, created on first use. A failure
/// is remembered: the library can be loaded only once per process.
pub(crate) fn environment() -> Result<&'static Environment, ModelError> {
    static ENV: OnceLock<Result<Environment, (PathBuf, String)>> = OnceLock::new();
    if ENV.get().is_none() {
        // Checked before entering the once-cell so a missing library can still
        // be installed and found later in a long-running process.
        let path = onnxruntime_library()?;
        let _ = ENV.get_or_init(|| {
            let built = ort::init_from(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| b.with_name("hyperfake").build().map_err(|e| e.to_string()));
            built.map_err(|message| (path.clone(), message))
        });
    }
    match ENV.get() {
        Some(Ok(env)) => Ok(env),
        Some(Err((path, message))) => {
            Err(ModelError::RuntimeLoad { path: path.clone(), message: message.clone() })
        }
        None => unreachable!("initialised above"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn paths(vars: &[(&str, &str)]) -> Vec<PathBuf> {
        let map: HashMap<String, OsString> =
            vars.iter().map(|(k, v)| (k.to_string(), OsString::from(v))).collect();
        search_paths(|k| map.get(k).cloned())
    }

    #[test]
    fn env_var_wins_then_cache_then_home() {
        assert_eq!(paths(&[(ORT_DYLIB_PATH, "/x/lib.so"), ("HOME", "/h")]), vec![PathBuf::from("/x/lib.so")]);
        assert_eq!(
            paths(&[(HYPERFAKE_CACHE, "/c"), ("HOME", "/h")]),
            vec![PathBuf::from("/c/onnxruntime/libonnxruntime.so.1.31.1")]
        );
        assert_eq!(
            paths(&[(ORT_DYLIB_PATH, ""), ("HOME", "/h")]),
            vec![PathBuf::from("/h/.cache/hyperfake/onnxruntime/libonnxruntime.so.1.31.1")]
        );
        assert!(paths(&[]).is_empty());
    }

    #[test]
    fn missing_runtime_says_how_to_install_it() {
        let err = ModelError::RuntimeMissing { tried: paths(&[("HOME", "/nowhere")]) };
        let msg = err.to_string();
        assert!(msg.contains("scripts/install-onnxruntime.sh") && msg.contains("/nowhere/.cache"), "{msg}");
        assert!(err.is_runtime_missing());
    }
}
