//! MNIST-style IDX files, optionally gzip-compressed.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{format_err, io_err, DType, DataError, NdArray};

/// True for names like `t10k-images-idx3-ubyte` or `data.idx1.gz` (lowercase input).
pub(crate) fn looks_like_idx_name(name: &str) -> bool {
    let stem = name.strip_suffix(".gz").unwrap_or(name);
    stem.contains("idx") || stem.ends_with("ubyte")
}

/// Loads an IDX file as `x` (or `y` if 1-D), plus the sibling labels file of an
/// `images-idx3` file as `y` when one exists.
pub(crate) fn load(path: &Path) -> Result<Vec<(String, NdArray)>, DataError> {
    let main = read_idx(path)?;
    let key = if main.shape.len() == 1 { "y" } else { "x" };
    let mut out = vec![(key.to_string(), main)];
    if let Some(labels_path) = sibling_labels(path).filter(|p| p.is_file()) {
        let labels = read_idx(&labels_path)?;
        let n = out[0].1.shape[0];
        if labels.shape != [n] {
            let msg = format!("labels have shape {:?} but {} has {n} images", labels.shape, path.display());
            return Err(format_err(&labels_path, msg));
        }
        out.push(("y".to_string(), labels));
    }
    Ok(out)
}

fn sibling_labels(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    name.contains("images-idx3").then(|| path.with_file_name(name.replace("images-idx3", "labels-idx1")))
}

fn read_idx(path: &Path) -> Result<NdArray, DataError> {
    let mut bytes = std::fs::read(path).map_err(io_err(path))?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut plain)
            .map_err(|e| format_err(path, format!("corrupt gzip data: {e}")))?;
        bytes = plain;
    }
    let truncated = || format_err(path, format!("truncated IDX header ({} bytes)", bytes.len()));
    let magic = bytes.get(..4).ok_or_else(truncated)?;
    if magic[..2] != [0, 0] || magic[3] == 0 {
        let m = u32::from_be_bytes([magic[0], magic[1], magic[2], magic[3]]);
        return Err(format_err(path, format!("bad IDX magic number 0x{m:08x} (not an IDX file)")));
    }
    let dtype = match magic[2] {
        0x08 => DType::U8,
        0x09 => DType::I8,
        0x0b => DType::I16,
        0x0c => DType::I32,
        0x0d => DType::F32,
        0x0e => DType::F64,
        c => return Err(format_err(path, format!("unknown IDX data type code 0x{c:02x}"))),
    };
    let ndim = magic[3] as usize;
    let dims = bytes.get(4..4 + 4 * ndim).ok_or_else(truncated)?;
    let shape: Vec<usize> =
        dims.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
    let data = &bytes[4 + 4 * ndim..];
    let expected = shape.iter().try_fold(dtype.size(), |acc, &d| acc.checked_mul(d));
    if expected != Some(data.len()) {
        let what = format!("header declares {shape:?} {} elements", dtype.name());
        let msg = match expected {
            Some(n) if data.len() < n => format!("truncated: {what} ({n} bytes) but only {} bytes follow", data.len()),
            Some(n) => format!("{what} ({n} bytes) but {} bytes follow ({} extra)", data.len(), data.len() - n),
            None => format!("{what}, which is too large"),
        };
        return Err(format_err(path, msg));
    }
    Ok(NdArray { data: dtype.decode(data, true), shape })
}
