use std::path::PathBuf;

/// Why a model file could not be loaded or run. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file or directory could not be read.
    #[error("cannot read model file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not JSON of the linear-model format.
    #[error("{} is not a linear-model JSON file (an object keyed by image tag)", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// What serde found.
        #[source]
        source: serde_json::Error,
    },
    /// The file's extension is neither `.onnx` nor `.json`.
    #[error("{}: unknown model file type (expected .onnx or .json)", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// A JSON file holds several images and the caller asked for one model.
    #[error(
        "{} holds models for {count} images; name one (Model::load_image) or load them all (ModelSet::load)",
        path.display()
    )]
    Ambiguous {
        /// The file.
        path: PathBuf,
        /// How many images it holds.
        count: usize,
    },
    /// The file has no model for the requested image.
    #[error("{} has no model for image {image}", path.display())]
    NoSuchImage {
        /// The file.
        path: PathBuf,
        /// The image asked for.
        image: String,
    },
    /// The file loads but is not a model of 5 inputs and 3 outputs, or its
    /// metadata is malformed.
    #[error("{}: {what}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// No ONNX Runtime library was found.
    #[error(
        "ONNX Runtime library not found (looked at {}); run scripts/install-onnxruntime.sh or set ORT_DYLIB_PATH",
        tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    RuntimeMissing {
        /// The paths that were tried.
        tried: Vec<PathBuf>,
    },
    /// The ONNX Runtime library exists but could not be initialised.
    #[error("cannot initialise ONNX Runtime from {}: {message}", path.display())]
    RuntimeLoad {
        /// The library.
        path: PathBuf,
        /// ONNX Runtime's message.
        message: String,
    },
    /// ONNX Runtime refused the file.
    #[error("{} is not a loadable ONNX model: {message}", path.display())]
    Onnx {
        /// The file.
        path: PathBuf,
        /// ONNX Runtime's message.
        message: String,
    },
    /// Running the model failed.
    #[error("running model {} failed: {message}", path.display())]
    Run {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl ModelError {
    /// True when the ONNX Runtime library is missing or broken, as opposed to
    /// a problem with a model file.
    pub fn is_runtime_missing(&self) -> bool {
        matches!(self, ModelError::RuntimeMissing { .. } | ModelError::RuntimeLoad { .. })
    }
}
