use std::path::PathBuf;

/// Everything that can go wrong reading an ONNX model. Messages name the file, node and op.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: the file is {bytes} bytes, over the 2 GB limit of an ONNX protobuf (keep large weights in external data)")]
    TooLarge { path: PathBuf, bytes: u64 },
    #[error("{path}: not a valid ONNX model ({msg})")]
    Decode { path: PathBuf, msg: String },
    #[error("{path}: tensor `{tensor}`: {msg}")]
    Tensor { path: PathBuf, tensor: String, msg: String },
    #[error("node `{node}` ({op_type}, opset {opset}): {msg}")]
    Node { node: String, op_type: String, opset: i64, msg: String },
    #[error("{0}")]
    Model(String),
    /// A node error with the file it came from.
    #[error("{}: {source}", .path.display())]
    InFile { path: PathBuf, source: Box<OnnxError> },
}
