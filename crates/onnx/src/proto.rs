//! Generated types of the ONNX schema subset in `proto/onnx_subset.proto`.
#![allow(clippy::all, missing_docs)]
include!(concat!(env!("OUT_DIR"), "/tinyq.onnx.rs"));
