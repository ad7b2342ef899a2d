/// Errors raised by graph construction, shape inference and rewrite rules.
#[derive(Debug, thiserror::Error)]
pub enum IrError {
    #[error("node `{node}` ({op}): {msg}")]
    Node { node: String, op: &'static str, msg: String },
    #[error("{0}")]
    Graph(String),
}
