use std::path::PathBuf;

/// Everything that can go wrong reading or writing a `.tflite` file. Messages name the place:
/// the file (via [`TfliteError::File`]), the operator index and op, or the tensor.
#[derive(Debug, thiserror::Error)]
pub enum TfliteError {
    #[error("cannot read `{path}`: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("`{file}`: {source}")]
    File { file: String, source: Box<TfliteError> },
    #[error("not a TFLite model: {0}")]
    NotTflite(String),
    #[error("malformed flatbuffer in {what}: {msg}")]
    Malformed { what: String, msg: String },
    #[error("tensor {index} `{name}`: {msg}")]
    Tensor { index: usize, name: String, msg: String },
    #[error("operator {index} ({op}): {msg}")]
    Operator { index: usize, op: String, msg: String },
    #[error("operator {index}: unsupported operator {op} (builtin code {code})")]
    UnsupportedOp { index: usize, op: String, code: i32 },
    #[error("invalid graph: {0}")]
    Graph(#[source] tinyq_ir::IrError),
    #[error("cannot export node `{node}` ({op}): {msg}")]
    Export { node: String, op: &'static str, msg: String },
    #[error("cannot export: {0}")]
    ExportGraph(String),
}

impl TfliteError {
    /// Wraps the error with the file it came from.
    pub fn in_file(self, file: impl Into<String>) -> TfliteError {
        TfliteError::File { file: file.into(), source: Box::new(self) }
    }
}

pub(crate) fn malformed(what: impl Into<String>) -> impl FnOnce(planus::Error) -> TfliteError {
    let what = what.into();
    move |e| TfliteError::Malformed { what, msg: e.to_string() }
}
