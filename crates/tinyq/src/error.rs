/// Errors of the facade; each message carries its context (file, array, node).
#[derive(Debug, thiserror::Error)]
pub enum TinyqError {
    #[error(transparent)]
    Onnx(#[from] tinyq_onnx::OnnxError),
    #[error(transparent)]
    Tflite(#[from] tinyq_tflite::TfliteError),
    #[error(transparent)]
    Data(#[from] tinyq_data::DataError),
    #[error("{0}")]
    Model(String),
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Engine(String),
    #[error("{0}")]
    Metric(String),
}
