//! `tinyq._tinyq`: the native half of the `tinyq` Python package.
//!
//! Every call goes to the facade's jobs ([`tinyq::jobs`]), the same ones the `tinyq` binary
//! calls, so that a file written from Python is the file the CLI writes. Arrays cross the
//! boundary as `(dtype, shape, bytes)` (native byte order, C order); the Python half turns them
//! into numpy arrays. Long work runs with the GIL released.

mod model;
mod train;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tinyq::data::{ArrayData, LoadOptions, NdArray, RawOptions};
use tinyq::jobs::DataSource;

create_exception!(
    _tinyq,
    TinyqError,
    PyException,
    "An error of tinyq; the message names the file, array, node or option it concerns."
);

/// The error and its causes joined by `: `, leaving out causes the message already quotes (as
/// the CLI prints them).
pub(crate) fn to_py(e: impl std::error::Error) -> PyErr {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        cause = c.source();
    }
    TinyqError::new_err(msg)
}

pub(crate) fn input_err(msg: impl Into<String>) -> PyErr {
    TinyqError::new_err(msg.into())
}

/// An array as Python hands it over: dtype name, shape and the raw bytes.
pub(crate) type RawArray<'py> = (String, Vec<usize>, Bound<'py, PyBytes>);

fn decode<T, const N: usize>(bytes: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
    bytes.chunks_exact(N).map(|c| f(c.try_into().expect("chunks of N bytes"))).collect()
}

/// `(dtype, shape, bytes)` → an array; the byte count must match.
pub(crate) fn to_ndarray(dtype: &str, shape: Vec<usize>, bytes: &[u8]) -> PyResult<NdArray> {
    let n: usize = shape.iter().product();
    let data = match dtype {
        "float32" => ArrayData::F32(decode(bytes, f32::from_ne_bytes)),
        "float64" => ArrayData::F64(decode(bytes, f64::from_ne_bytes)),
        "uint8" => ArrayData::U8(bytes.to_vec()),
        "int8" => ArrayData::I8(decode(bytes, i8::from_ne_bytes)),
        "int16" => ArrayData::I16(decode(bytes, i16::from_ne_bytes)),
        "int32" => ArrayData::I32(decode(bytes, i32::from_ne_bytes)),
        "int64" => ArrayData::I64(decode(bytes, i64::from_ne_bytes)),
        "bool" => ArrayData::Bool(bytes.iter().map(|&b| b != 0).collect()),
        other => {
            return Err(input_err(format!(
                "arrays of dtype {other} are not supported (float32, float64, uint8, int8, int16, int32, int64 or bool)"
            )))
        }
    };
    let a = NdArray { shape, data };
    if a.len() != n {
        return Err(input_err(format!("an array of shape {:?} needs {n} elements, got {}", a.shape, a.len())));
    }
    Ok(a)
}

/// An array → `(dtype, shape, bytes)`.
pub(crate) fn from_ndarray<'py>(py: Python<'py>, a: &NdArray) -> RawArray<'py> {
    fn raw<T: Copy, const N: usize>(v: &[T], f: fn(T) -> [u8; N]) -> Vec<u8> {
        v.iter().flat_map(|&x| f(x)).collect()
    }
    let bytes = match &a.data {
        ArrayData::F32(v) => raw(v, f32::to_ne_bytes),
        ArrayData::F64(v) => raw(v, f64::to_ne_bytes),
        ArrayData::U8(v) => v.clone(),
        ArrayData::I8(v) => raw(v, i8::to_ne_bytes),
        ArrayData::I16(v) => raw(v, i16::to_ne_bytes),
        ArrayData::I32(v) => raw(v, i32::to_ne_bytes),
        ArrayData::I64(v) => raw(v, i64::to_ne_bytes),
        ArrayData::Bool(v) => v.iter().map(|&b| b as u8).collect(),
    };
    (a.dtype_name().to_string(), a.shape.clone(), PyBytes::new(py, &bytes))
}

/// A dataset: a file or folder tinyq reads, or named arrays.
#[pyclass(frozen, module = "tinyq._tinyq")]
pub struct Data {
    pub(crate) source: DataSource,
}

#[pymethods]
impl Data {
    /// A dataset file (.npz, .npy, IDX, raw .bin with `shape` and `dtype`) or an image folder.
    #[staticmethod]
    #[pyo3(signature = (path, shape=None, dtype=None))]
    fn file(path: PathBuf, shape: Option<Vec<usize>>, dtype: Option<String>) -> PyResult<Data> {
        let raw = match (shape, dtype) {
            (None, None) => None,
            (Some(shape), Some(dtype)) => Some(RawOptions { shape, dtype }),
            _ => return Err(input_err("shape and dtype go together (raw .bin data)")),
        };
        Ok(Data { source: DataSource::file(path, LoadOptions { raw, ..LoadOptions::default() }) })
    }

    /// Named arrays `(key, dtype, shape, bytes)`; `name` stands for the file in messages.
    #[staticmethod]
    fn arrays(name: String, arrays: Vec<(String, String, Vec<usize>, Bound<'_, PyBytes>)>) -> PyResult<Data> {
        let arrays = arrays
            .into_iter()
            .map(|(k, dtype, shape, b)| Ok((k, to_ndarray(&dtype, shape, b.as_bytes())?)))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Data { source: DataSource::Arrays { name: name.into(), arrays } })
    }

    /// The array names.
    fn keys(&self) -> PyResult<Vec<String>> {
        Ok(self.source.open().map_err(to_py)?.keys())
    }

    /// One array as `(dtype, shape, bytes)`.
    fn array<'py>(&self, py: Python<'py>, key: &str) -> PyResult<RawArray<'py>> {
        let a = self.source.open().map_err(to_py)?.array(key).map_err(to_py)?;
        Ok(from_ndarray(py, &a))
    }
}

/// Progress for Python: calls `callback(event, what, n)` with `("begin", stage, total)`,
/// `("advance", stage, done)` (at most about a hundred times a stage) and `("end", stage, 0)`.
pub(crate) struct PyProgress {
    callback: Option<Py<PyAny>>,
    total: AtomicUsize,
    shown: AtomicUsize,
    stage: std::sync::Mutex<String>,
}

impl PyProgress {
    pub(crate) fn new(callback: Option<Py<PyAny>>) -> PyProgress {
        PyProgress { callback, total: AtomicUsize::new(0), shown: AtomicUsize::new(0), stage: Default::default() }
    }

    fn call(&self, event: &str, n: usize) {
        if let Some(cb) = &self.callback {
            let stage = self.stage.lock().map(|s| s.clone()).unwrap_or_default();
            // A failing callback must not stop the job: its error is dropped.
            Python::attach(|py| {
                let _ = cb.call1(py, (event, stage, n));
            });
        }
    }
}

impl tinyq::jobs::Progress for PyProgress {
    fn begin(&self, what: &str, total: usize) {
        if let Ok(mut s) = self.stage.lock() {
            *s = what.to_string();
        }
        self.total.store(total, Ordering::Relaxed);
        self.shown.store(0, Ordering::Relaxed);
        self.call("begin", total);
    }

    fn advance(&self, done: usize) {
        let step = (self.total.load(Ordering::Relaxed) / 100).max(1);
        let shown = self.shown.load(Ordering::Relaxed);
        if done >= shown + step
            && self.shown.compare_exchange(shown, done, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            self.call("advance", done);
        }
    }

    fn end(&self) {
        self.call("end", 0);
    }
}

#[pymodule]
fn _tinyq(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("TinyqError", m.py().get_type::<TinyqError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Data>()?;
    m.add_class::<model::Model>()?;
    m.add_class::<model::DebugReport>()?;
    m.add_function(wrap_pyfunction!(model::quantize, m)?)?;
    m.add_function(wrap_pyfunction!(model::debug, m)?)?;
    m.add_function(wrap_pyfunction!(train::train, m)?)?;
    m.add_function(wrap_pyfunction!(model::supported_onnx_ops, m)?)?;
    Ok(())
}
