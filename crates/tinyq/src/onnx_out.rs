//! A float model written out as ONNX (`tinyq convert`, and the fine-tuned model after training).
//!
//! The graph goes through `tinyq_onnx::export` as it is: the ONNX file has the model's inputs and
//! outputs (names, shapes, layout), so it runs on the same data as the model it came from.

use crate::error::InFile;
use std::path::Path;

use tinyq_ir::DType;
pub use tinyq_onnx::export::{DEFAULT_OPSET, EXPORT_OPSET_RANGE};

use crate::{Model, TinyqError};

/// What [`save_onnx`] wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OnnxWritten {
    pub opset: i64,
    /// ONNX nodes in the file.
    pub nodes: usize,
    pub bytes: u64,
}

/// Writes a float model as an ONNX file at the default opset ([`DEFAULT_OPSET`]).
pub fn save_onnx(model: &Model, path: &Path) -> Result<OnnxWritten, TinyqError> {
    save_onnx_opset(model, path, DEFAULT_OPSET)
}

/// Writes a float model as an ONNX file at `opset` (within [`EXPORT_OPSET_RANGE`]). Refuses
/// quantized models and a `path` that is the model's own file; the file appears complete or not
/// at all.
pub fn save_onnx_opset(model: &Model, path: &Path, opset: i64) -> Result<OnnxWritten, TinyqError> {
    let g = &model.graph;
    if let Some(t) = g.tensors.iter().find(|t| t.qparams.is_some() || (!t.is_constant() && t.dtype != DType::F32)) {
        return Err(TinyqError::Model(format!(
            "{}: tensor `{}` is {}{}; only float models can be written as ONNX",
            model.path.display(),
            t.name,
            t.dtype.name(),
            if t.qparams.is_some() { " (quantized)" } else { "" }
        )));
    }
    if same_file(path, &model.path) {
        return Err(TinyqError::Model(format!("{}: refusing to overwrite the model being converted", path.display())));
    }
    let onnx = tinyq_onnx::export::to_onnx_model(g, &tinyq_onnx::ExportOptions { opset }).in_file(&model.path)?;
    let nodes = onnx.graph.as_ref().map_or(0, |g| g.node.len());
    tinyq_onnx::export::write_model(&onnx, path)?;
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(OnnxWritten { opset, nodes, bytes })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}
