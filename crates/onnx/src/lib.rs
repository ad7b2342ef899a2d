//! ONNX → tinyq IR.
//!
//! Reads what current exporters write (PyTorch's TorchScript and dynamo exporters, tf2onnx;
//! opsets 7–21, weights inline or in an external `.onnx.data` file) and translates it into the
//! NHWC IR. Translation tracks, for every ONNX value, how the IR stores it (a permutation of the
//! ONNX axes, or a flattened NHWC block), so layout glue is added only where a consumer needs
//! it and weights absorb the rest (a Flatten→Gemm after a conv permutes the Gemm's columns, not
//! the activations). Shape subgraphs are evaluated at import time.
//!
//! [`export`] goes the other way: a float IR graph written back out as an ONNX model.
//!
//! This crate does not compute model numerics: it folds only constants.

mod constfold;
mod error;
pub mod export;
mod import;
mod load;
mod ops;
pub mod proto;

pub use error::OnnxError;
pub use export::{to_onnx_bytes, write_onnx, ExportOptions};
pub use import::{import_model, supported_ops, ImportOptions, OpSupport};
pub use load::{load_model_proto, MAX_MODEL_BYTES};
