//! Loading numeric datasets from the files a user passes as `--data FILE`.
//!
//! A [`Dataset`] is a set of named n-dimensional arrays ([`NdArray`]), opened from
//! an `.npz`/`.npy` file, MNIST-style IDX files, a folder of class subfolders of
//! images, or headerless `.bin` sample files (see [`Dataset::open`] for how the
//! format is chosen). [`write_npz`] saves arrays back to an `.npz`.
//!
//! This crate deliberately knows nothing about models: it does not decide which
//! array is an input or a label, does not batch, shuffle or quantize, and does not
//! guess preprocessing beyond what [`ImageOptions`] spells out.
//!
//! Key decision: arrays keep the dtype they were stored with ([`ArrayData`] has one
//! variant per supported dtype) and conversion is explicit ([`NdArray::to_f32`],
//! [`NdArray::to_i64`]). Every problem with user input is reported as a
//! [`DataError`] whose message names the file (and array or entry); nothing in
//! here panics on bad input. The `.npy` header is parsed by this crate (the `.npz`
//! container by `zip`), so hostile headers (huge shapes, odd dtypes) become errors too.

mod array;
mod idx;
mod images;
mod npy;
mod raw;

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use array::{ArrayData, NdArray};
pub(crate) use array::{DType, DTYPE_NAMES};
pub use npy::write_npz;

/// Every way loading or saving data can fail. Messages name the file first.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file or directory could not be read or written.
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The content is malformed, truncated, inconsistent or unsupported.
    #[error("{}: {msg}", .path.display())]
    Format { path: PathBuf, msg: String },
    /// The requested array does not exist; `available` lists the keys.
    #[error("{}: no array \"{key}\" (arrays: {available})", .path.display())]
    MissingKey { path: PathBuf, key: String, available: String },
    /// A `.bin` file was given without [`RawOptions`].
    #[error("{}: raw .bin data has no header; pass --shape and --dtype to describe one sample", .path.display())]
    NeedRawOptions { path: PathBuf },
    /// [`NdArray::check_finite`] found a NaN or infinity.
    #[error("{what}: non-finite value {value} at flat index {index}")]
    NonFinite { what: String, index: usize, value: f64 },
}

pub(crate) fn format_err(path: &Path, msg: impl Into<String>) -> DataError {
    DataError::Format { path: path.to_path_buf(), msg: msg.into() }
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io { path: path.to_path_buf(), source }
}

/// Axis order of the image tensor built from an image folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// `[N, H, W, C]`
    #[default]
    Nhwc,
    /// `[N, C, H, W]`
    Nchw,
}

/// How an image folder becomes a float tensor: `x = (pixel * scale - mean[c]) / std[c]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageOptions {
    /// Resize every image to `(height, width)` (bilinear). Without it all images
    /// must have the same size.
    pub resize: Option<(u32, u32)>,
    /// Multiplies raw 0..=255 pixels; default `1/255`.
    pub scale: f32,
    /// Subtracted after scaling: one value per channel, one value for all, or empty for 0.
    pub mean: Vec<f32>,
    /// Divides after the mean: one value per channel, one value for all, or empty for 1.
    pub std: Vec<f32>,
    pub layout: Layout,
    /// One luminance channel instead of three RGB channels.
    pub grayscale: bool,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions {
            resize: None,
            scale: 1.0 / 255.0,
            mean: Vec::new(),
            std: Vec::new(),
            layout: Layout::Nhwc,
            grayscale: false,
        }
    }
}

/// Describes headerless `.bin` files: each holds whole samples of `shape` elements of
/// `dtype` (float32, float64, uint8, int8, int16, int32, int64 or bool), little-endian.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOptions {
    /// Shape of one sample; the sample count N is inferred from the file size.
    pub shape: Vec<usize>,
    pub dtype: String,
}

/// Everything [`Dataset::open`] may need besides the path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadOptions {
    pub image: ImageOptions,
    /// Required for `.bin` data, ignored otherwise.
    pub raw: Option<RawOptions>,
}

/// An opened dataset: a set of named arrays.
///
/// Arrays of `.npz` files are decoded on first request and cached, so each array is
/// read from disk at most once; every other format is decoded by [`Dataset::open`].
pub struct Dataset {
    path: PathBuf,
    keys: Vec<String>,
    arrays: Mutex<HashMap<String, NdArray>>,
    npz: Option<npy::NpzSource>,
    classes: Option<Vec<String>>,
}

impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset").field("path", &self.path).field("keys", &self.keys).finish()
    }
}

impl Dataset {
    /// Opens `path`, choosing the format as follows:
    ///
    /// * a directory holding `.bin` files: raw samples (needs `opts.raw`), files in
    ///   name order concatenated into `x` of shape `[N, ..raw.shape]`;
    /// * any other directory: one subfolder per class (sorted by name; hidden ones
    ///   skipped) of `.png`/`.jpg`/`.jpeg`/`.bmp` files (sorted by name; other files
    ///   ignored). Gives `x` float32 `[N,H,W,C]` or `[N,C,H,W]` per [`ImageOptions`]
    ///   and `y` int64 class indices; [`Dataset::class_names`] returns the folders;
    /// * a file named `*.npz` / `*.npy` / `*.bin`: that format (`.npy` becomes key
    ///   `x`; `.bin` needs `opts.raw` and becomes `x`);
    /// * a file whose name contains `idx` or ends in `ubyte` (optionally `.gz`): IDX.
    ///   A 1-D IDX file becomes `y`, otherwise `x`. For an `...images-idx3...` file, a
    ///   sibling named with `labels-idx1` instead is loaded as `y` when it exists;
    /// * otherwise the first bytes decide: zip → npz, `\x93NUMPY` → npy, gzip or an
    ///   IDX magic number → IDX. Anything else is an error.
    ///
    /// In `.npz` files, arrays with unsupported dtypes (e.g. numpy strings `<U25`) are
    /// left out of [`Dataset::keys`]; requesting one gives an error naming its dtype.
    pub fn open(path: &Path, opts: &LoadOptions) -> Result<Dataset, DataError> {
        let meta = std::fs::metadata(path).map_err(io_err(path))?;
        if meta.is_dir() {
            return open_dir(path, opts);
        }
        let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
        let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        match ext {
            "npz" => return open_npz(path),
            "npy" => return Ok(Dataset::eager(path, vec![("x".into(), npy::read_npy(path)?)], None)),
            "bin" => return open_raw(path, &[path.to_path_buf()], opts),
            _ => {}
        }
        if idx::looks_like_idx_name(&name) {
            return Ok(Dataset::eager(path, idx::load(path)?, None));
        }
        let mut head = Vec::new();
        let file = std::fs::File::open(path).map_err(io_err(path))?;
        file.take(6).read_to_end(&mut head).map_err(io_err(path))?;
        match &head[..] {
            [b'P', b'K', 3, 4, ..] | [b'P', b'K', 5, 6, ..] => open_npz(path),
            [0x93, b'N', b'U', b'M', b'P', b'Y'] => {
                Ok(Dataset::eager(path, vec![("x".into(), npy::read_npy(path)?)], None))
            }
            [0x1f, 0x8b, ..] | [0, 0, 0x08..=0x0e, 1..=255, ..] => Ok(Dataset::eager(path, idx::load(path)?, None)),
            _ => Err(format_err(
                path,
                "unrecognized data format (expected .npz, .npy, IDX (optionally .gz), \
                 .bin with --shape/--dtype, or a folder of class subfolders with images)",
            )),
        }
    }

    /// Names of the loadable arrays, in file order (`.npz` archive order; `x` before
    /// `y` for the other formats).
    pub fn keys(&self) -> Vec<String> {
        self.keys.clone()
    }

    pub fn has(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k == key)
    }

    /// A copy of the array named `key`. A missing key gives [`DataError::MissingKey`]
    /// listing the available keys.
    pub fn array(&self, key: &str) -> Result<NdArray, DataError> {
        let mut cache = self.arrays.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = cache.get(key) {
            return Ok(a.clone());
        }
        if let Some(npz) = &self.npz {
            if let Some(a) = npz.read(&self.path, key)? {
                cache.insert(key.to_string(), a.clone());
                return Ok(a);
            }
        }
        Err(DataError::MissingKey {
            path: self.path.clone(),
            key: key.to_string(),
            available: if self.keys.is_empty() { "none".into() } else { self.keys.join(", ") },
        })
    }

    /// The shape of array `key` without decoding it when the format allows (the `.npy` header of
    /// an `.npz` entry), so callers can refuse a mismatched array before it is inflated.
    pub fn array_shape(&self, key: &str) -> Option<Vec<usize>> {
        if let Some(a) = self.arrays.lock().unwrap_or_else(|e| e.into_inner()).get(key) {
            return Some(a.shape.clone());
        }
        self.npz.as_ref().and_then(|n| n.shape(key)).map(<[usize]>::to_vec)
    }

    /// The class folder names (index = label in `y`) for an image folder, else `None`.
    pub fn class_names(&self) -> Option<&[String]> {
        self.classes.as_deref()
    }

    /// The path this dataset was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A dataset of arrays already in memory (e.g. handed over by a Python caller); `name` stands
    /// for the file in messages.
    pub fn from_arrays(name: &Path, arrays: Vec<(String, NdArray)>) -> Dataset {
        Dataset::eager(name, arrays, None)
    }

    fn eager(path: &Path, arrays: Vec<(String, NdArray)>, classes: Option<Vec<String>>) -> Dataset {
        Dataset {
            path: path.to_path_buf(),
            keys: arrays.iter().map(|(k, _)| k.clone()).collect(),
            arrays: Mutex::new(arrays.into_iter().collect()),
            npz: None,
            classes,
        }
    }
}

fn open_npz(path: &Path) -> Result<Dataset, DataError> {
    let (src, keys) = npy::NpzSource::open(path)?;
    Ok(Dataset { path: path.to_path_buf(), keys, arrays: Mutex::default(), npz: Some(src), classes: None })
}

fn open_raw(path: &Path, files: &[PathBuf], opts: &LoadOptions) -> Result<Dataset, DataError> {
    let raw = opts.raw.as_ref().ok_or_else(|| DataError::NeedRawOptions { path: path.to_path_buf() })?;
    Ok(Dataset::eager(path, vec![("x".into(), raw::load(path, files, raw)?)], None))
}

fn open_dir(path: &Path, opts: &LoadOptions) -> Result<Dataset, DataError> {
    let mut bins = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io_err(path))? {
        let p = entry.map_err(io_err(path))?.path();
        let is_bin = p.extension().is_some_and(|e| e.eq_ignore_ascii_case("bin"));
        if is_bin && p.is_file() {
            bins.push(p);
        }
    }
    if !bins.is_empty() {
        bins.sort();
        return open_raw(path, &bins, opts);
    }
    let (x, y, classes) = images::load_folder(path, &opts.image)?;
    Ok(Dataset::eager(path, vec![("x".into(), x), ("y".into(), y)], Some(classes)))
}
