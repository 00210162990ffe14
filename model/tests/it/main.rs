//! Integration tests of `hyperfake-model` that need no ONNX writer: JSON
//! files (ours and HyperFake's), metadata helpers, errors. ONNX round trips
//! are tested in the trainer, which writes ONNX files.

/// JSON linear-model files.
mod json;
