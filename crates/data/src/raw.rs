//! Headerless little-endian sample files (`.bin`).

use std::path::{Path, PathBuf};

use crate::{format_err, io_err, DType, DataError, NdArray, RawOptions, DTYPE_NAMES};

/// Concatenates the samples of `files` into one array of shape `[N, ..raw.shape]`.
/// `path` is what the user named (a file or a directory) for option errors.
pub(crate) fn load(path: &Path, files: &[PathBuf], raw: &RawOptions) -> Result<NdArray, DataError> {
    let dtype = DType::from_name(&raw.dtype).ok_or_else(|| {
        format_err(path, format!("unknown --dtype \"{}\" (expected one of {DTYPE_NAMES})", raw.dtype))
    })?;
    let sample = raw.shape.iter().try_fold(dtype.size(), |acc, &d| acc.checked_mul(d));
    let sample = match sample {
        Some(s) if s > 0 => s,
        _ => return Err(format_err(path, format!("invalid --shape {:?} for one sample", raw.shape))),
    };
    let mut bytes = Vec::new();
    for file in files {
        let content = std::fs::read(file).map_err(io_err(file))?;
        if content.len() % sample != 0 {
            let msg = format!(
                "{} bytes is not a whole number of samples (shape {:?} x {} = {sample} bytes each)",
                content.len(),
                raw.shape,
                dtype.name()
            );
            return Err(format_err(file, msg));
        }
        bytes.extend_from_slice(&content);
    }
    if bytes.is_empty() {
        return Err(format_err(path, "no samples (empty .bin data)"));
    }
    let mut shape = vec![bytes.len() / sample];
    shape.extend_from_slice(&raw.shape);
    Ok(NdArray { shape, data: dtype.decode(&bytes, false) })
}
