//! Integration tests of the trainer: real SQLite files in temporary
//! directories, real ONNX Runtime (they fail, never skip, when
//! `scripts/install-onnxruntime.sh` has not been run).

mod common;

/// The binary end to end: train, compare, evaluate, deploy.
mod cli;
/// Deploying a run's files into a watched directory.
mod deploy;
/// Broken, corrupt and wrong-shape model files give clear errors.
mod errors;
/// JSON and ONNX round trips: train → export → load in ort → same predictions.
mod export;
/// Each model kind recovers known coefficients or fits a known nonlinear function.
mod fit;
/// HyperFake's own training database schema, read as it is.
mod hyperfake_schema;
/// Files with payload features and five outputs load and predict in hyperfake-model.
mod model_load;
/// Payload features, extra targets, spreads and cold starts.
mod payload;
/// Reports, compare and evaluate.
mod reports;
