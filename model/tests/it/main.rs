//! Integration tests of `hyperfake-model`: JSON files (ours and HyperFake's,
//! with and without payload features and extra outputs), ONNX files written
//! by a small protobuf encoder (5 and 5+k inputs, 3 and 5 outputs), metadata
//! checks and errors. The trainer tests its own ONNX writer against this crate.

/// JSON linear-model files.
mod json;
/// ONNX files.
mod onnx;
