use tinyq_kernels::KernelError;

/// Why a graph cannot be prepared, or a sample cannot be run. Node errors name the node and op.
#[derive(Debug, thiserror::Error)]
pub enum Int8Error {
    #[error("invalid graph: {0}")]
    Graph(#[source] tinyq_ir::IrError),
    #[error("node `{node}` ({op}): {msg}")]
    Node { node: String, op: &'static str, msg: String },
    #[error("node `{node}` ({op}): {error}")]
    Kernel { node: String, op: &'static str, error: KernelError },
    #[error("graph input `{name}` is {dtype}; the integer engine takes int8, int16, int32 or float32 inputs")]
    InputType { name: String, dtype: &'static str },
    #[error("graph output `{name}`: {msg}")]
    Output { name: String, msg: String },
    #[error("expected {expected} inputs, got {got}")]
    InputCount { expected: usize, got: usize },
    #[error("input `{name}`: expected {expected} values, got {got}")]
    InputDType { name: String, expected: &'static str, got: &'static str },
    #[error("input `{name}`: expected {expected} values (shape {shape:?}), got {got}")]
    InputSize { name: String, shape: Vec<usize>, expected: usize, got: usize },
}
