use std::path::{Path, PathBuf};

use tinyq_ir::Graph;

use crate::TinyqError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelFormat {
    Onnx,
    Tflite,
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

/// Loads a model file by extension (`.onnx`, `.tflite`).
pub fn load_model(path: &Path) -> Result<Model, TinyqError> {
    load_model_with(path, &[])
}

/// [`load_model`] with graph inputs' dynamic axes fixed: `input_shapes` maps input names to
/// shapes (ONNX `dim_param`s, TFLite `-1`s in `shape_signature`); every other shape follows.
pub fn load_model_with(path: &Path, input_shapes: &[(String, Vec<usize>)]) -> Result<Model, TinyqError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let format = match ext.as_str() {
        "onnx" => ModelFormat::Onnx,
        "tflite" => ModelFormat::Tflite,
        _ => {
            return Err(TinyqError::Model(format!(
                "{}: unknown model format (expected a .onnx or .tflite file)",
                path.display()
            )))
        }
    };
    let graph = match format {
        ModelFormat::Onnx => {
            let opts = tinyq_onnx::ImportOptions { input_shapes: input_shapes.to_vec(), ..Default::default() };
            tinyq_onnx::import_model(path, &opts)?
        }
        ModelFormat::Tflite => tinyq_tflite::read_tflite_file_with(path, input_shapes)?,
    };
    check_runnable(&graph, path)?;
    let file_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(Model { graph, path: path.to_path_buf(), format, file_bytes })
}

/// A quantized graph is prepared as `run` prepares it, so every command accepts exactly the files
/// the integer engine runs (the checks of TFLM's Prepare, and those of LiteRT's it adds).
pub(crate) fn check_runnable(graph: &Graph, path: &Path) -> Result<(), TinyqError> {
    use crate::error::InFile;
    if !crate::is_float_graph(graph) {
        tinyq_int8::Int8Plan::new(graph).in_file(path)?;
    }
    Ok(())
}

/// A `.tflite` model from its bytes; `name` stands for the file in messages.
pub fn load_model_bytes(bytes: &[u8], name: &Path) -> Result<Model, TinyqError> {
    if bytes.get(4..8) != Some(&tinyq_tflite::FILE_IDENTIFIER[..]) {
        return Err(TinyqError::Model(format!(
            "{}: not a .tflite model (no `TFL3` identifier); an .onnx model loads from its file",
            name.display()
        )));
    }
    let graph = tinyq_tflite::read_tflite(bytes).map_err(|e| e.in_file(name.display().to_string()))?;
    check_runnable(&graph, name)?;
    Ok(Model { graph, path: name.to_path_buf(), format: ModelFormat::Tflite, file_bytes: bytes.len() as u64 })
}
