use std::path::{Path, PathBuf};

/// Errors of the facade; each message carries its context (file, array, node).
///
/// Errors of the lower crates are carried as they are (`#[from]`), so a library user can match on
/// them; [`TinyqError::In`] adds the file (or other place) they concern without turning them into
/// strings.
#[derive(Debug, thiserror::Error)]
pub enum TinyqError {
    #[error(transparent)]
    Onnx(#[from] tinyq_onnx::OnnxError),
    #[error(transparent)]
    Tflite(#[from] tinyq_tflite::TfliteError),
    #[error(transparent)]
    Data(#[from] tinyq_data::DataError),
    #[error(transparent)]
    Float(#[from] tinyq_float::FloatError),
    #[error(transparent)]
    Int8(#[from] tinyq_int8::Int8Error),
    #[error(transparent)]
    Quant(#[from] tinyq_quant::QuantError),
    #[error(transparent)]
    Arena(#[from] tinyq_arena::ArenaError),
    #[error(transparent)]
    ExportC(#[from] tinyq_export_c::ExportError),
    #[error(transparent)]
    Cgen(#[from] tinyq_cgen::CgenError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Any of these errors with the file it concerns.
    #[error("{}: {source}", .path.display())]
    In { path: PathBuf, source: Box<TinyqError> },
    #[error("{0}")]
    Model(String),
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Engine(String),
    #[error("{0}")]
    Metric(String),
    /// The accuracy budget could not be met: the search's report, whether float layers were
    /// allowed and whether it was `--weights mixed`'s search (for the hint).
    #[error("{}", crate::jobs::budget_refusal(report, *allow_float, *mixed))]
    BudgetNotMet { report: Box<crate::budget::BudgetReport>, allow_float: bool, mixed: bool },
}

impl TinyqError {
    /// The error without its [`TinyqError::In`] wrappers.
    pub fn root(&self) -> &TinyqError {
        match self {
            TinyqError::In { source, .. } => source.root(),
            other => other,
        }
    }
}

/// Adds the file an error concerns: `result.in_file(path)?`.
pub(crate) trait InFile<T> {
    fn in_file(self, path: &Path) -> Result<T, TinyqError>;
}

impl<T, E: Into<TinyqError>> InFile<T> for Result<T, E> {
    fn in_file(self, path: &Path) -> Result<T, TinyqError> {
        self.map_err(|e| TinyqError::In { path: path.to_path_buf(), source: Box::new(e.into()) })
    }
}
