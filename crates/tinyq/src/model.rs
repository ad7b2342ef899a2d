use std::path::{Path, PathBuf};

use tinyq_ir::Graph;

use crate::TinyqError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelFormat {
    Onnx,
}

/// A model loaded into the IR, with where it came from.
#[derive(Clone, Debug)]
pub struct Model {
    pub graph: Graph,
    pub path: PathBuf,
    pub format: ModelFormat,
    /// Size of the file on disk.
    pub file_bytes: u64,
}

/// Loads a model file by extension (`.onnx`).
pub fn load_model(path: &Path) -> Result<Model, TinyqError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let format = match ext.as_str() {
        "onnx" => ModelFormat::Onnx,
        "tflite" => {
            return Err(TinyqError::Model(format!(
                "{}: reading .tflite files is not available in this version of tinyq",
                path.display()
            )))
        }
        _ => {
            return Err(TinyqError::Model(format!(
                "{}: unknown model format (expected a .onnx file)",
                path.display()
            )))
        }
    };
    let graph = tinyq_onnx::import_model(path, &Default::default())?;
    let file_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(Model { graph, path: path.to_path_buf(), format, file_bytes })
}
