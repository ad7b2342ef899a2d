//! Models, quantization and the debugger for Python: thin calls of the facade's jobs.

use std::path::{Path, PathBuf};

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tinyq::jobs::{BudgetRequest, DataSpec, Io, LabelledData, PerTensor, QuantizeRequest};

use crate::{from_ndarray, input_err, to_py, Data, PyProgress, RawArray};

/// A model loaded into tinyq: a float .onnx / .tflite, or an INT8 .tflite (loaded or made by
/// `quantize`). `bytes` holds the .tflite file's bytes.
#[pyclass(frozen, module = "tinyq._tinyq")]
pub struct Model {
    model: tinyq::Model,
    bytes: Option<Vec<u8>>,
}

fn same_file(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// Writes `bytes` to `path` through a temporary file beside it, renamed once complete.
fn write_atomic(path: &Path, bytes: &[u8]) -> PyResult<()> {
    let name = path.file_name().ok_or_else(|| input_err(format!("{}: not a file name", path.display())))?;
    let tmp = path.with_file_name(format!(".{}.{}.tinyq-tmp", name.to_string_lossy(), std::process::id()));
    let cannot = |e: std::io::Error| input_err(format!("{}: cannot write: {e}", path.display()));
    std::fs::write(&tmp, bytes).map_err(cannot)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        cannot(e)
    })
}

fn parse<T: std::str::FromStr<Err = String>>(what: &str, v: &str) -> PyResult<T> {
    v.parse().map_err(|e: String| input_err(format!("{what} `{v}`: {e}")))
}

#[pymethods]
impl Model {
    /// Loads a .onnx or .tflite file; `input_shapes` fixes dynamic input axes.
    #[staticmethod]
    #[pyo3(signature = (path, input_shapes=Vec::new()))]
    fn load(py: Python<'_>, path: PathBuf, input_shapes: Vec<(String, Vec<usize>)>) -> PyResult<Model> {
        py.detach(|| {
            let model = tinyq::load_model_with(&path, &input_shapes).map_err(to_py)?;
            let bytes = match model.format {
                tinyq::ModelFormat::Tflite => Some(std::fs::read(&path).map_err(to_py)?),
                tinyq::ModelFormat::Onnx => None,
            };
            Ok(Model { model, bytes })
        })
    }

    /// A .tflite model from its bytes; `name` stands for the file in messages.
    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: Bound<'_, PyBytes>, name: PathBuf) -> PyResult<Model> {
        let bytes = data.as_bytes().to_vec();
        py.detach(|| {
            let model = tinyq::load_model_bytes(&bytes, &name).map_err(to_py)?;
            Ok(Model { model, bytes: Some(bytes) })
        })
    }

    /// Where the model came from (or the name it was given).
    #[getter]
    fn path(&self) -> String {
        self.model.path.display().to_string()
    }

    /// `onnx` or `tflite`.
    #[getter]
    fn format(&self) -> &'static str {
        match self.model.format {
            tinyq::ModelFormat::Onnx => "onnx",
            tinyq::ModelFormat::Tflite => "tflite",
        }
    }

    /// `tinyq inspect --json` of the model.
    fn summary_json(&self) -> PyResult<String> {
        serde_json::to_string(&tinyq::inspect(&self.model)).map_err(to_py)
    }

    /// Every sample's outputs, as `tinyq run` writes them (`y`, `y_1`, …).
    #[pyo3(signature = (data, keys, progress=None))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        data: PyRef<'_, Data>,
        keys: Vec<String>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Vec<RawArray<'py>>> {
        let spec = DataSpec { source: data.source.clone(), keys, limit: None };
        let bar = PyProgress::new(progress);
        let out = py.detach(|| tinyq::jobs::run_job(&self.model, &spec, &bar)).map_err(to_py)?;
        Ok(out.arrays.iter().map(|(_, a)| from_ndarray(py, a)).collect())
    }

    /// `(metric, value, samples)` of the model on `data` against the labels array `y`.
    #[pyo3(signature = (data, keys, y, metric=None, progress=None))]
    fn eval(
        &self,
        py: Python<'_>,
        data: PyRef<'_, Data>,
        keys: Vec<String>,
        y: String,
        metric: Option<String>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<(String, f64, usize)> {
        let metric = metric.map(|m| parse::<tinyq::Metric>("metric", &m)).transpose()?;
        let spec = DataSpec { source: data.source.clone(), keys, limit: None };
        let bar = PyProgress::new(progress);
        let out = py.detach(|| tinyq::jobs::eval_job(&self.model, &spec, &y, metric, &bar)).map_err(to_py)?;
        Ok((out.value.metric.name().to_string(), out.value.value, out.value.samples))
    }

    /// The .tflite file's bytes.
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, self.tflite()?))
    }

    /// Writes the .tflite file (complete or not at all; never over the file it was loaded from).
    fn save(&self, path: PathBuf) -> PyResult<()> {
        let bytes = self.tflite()?;
        if path.extension().and_then(|e| e.to_str()) != Some("tflite") {
            return Err(input_err(format!("{}: the output must be a .tflite file", path.display())));
        }
        if same_file(&path, &self.model.path) {
            return Err(input_err(format!("{}: refusing to overwrite an input file", path.display())));
        }
        write_atomic(&path, bytes)
    }

    /// `tinyq report --json` of the .tflite model.
    #[pyo3(signature = (pointer_width=32, kernels="reference", device=None, ram_budget=None, flash_budget=None))]
    fn report_json(
        &self,
        pointer_width: usize,
        kernels: &str,
        device: Option<&str>,
        ram_budget: Option<&str>,
        flash_budget: Option<&str>,
    ) -> PyResult<String> {
        let kernels = kernels_of(kernels)?;
        let limits = tinyq::Limits::parse(device, ram_budget, flash_budget).map_err(to_py)?;
        let r = tinyq::report_bytes(self.tflite()?, &self.model.path, pointer_width, kernels).map_err(to_py)?;
        Ok(tinyq::jobs::Fit::new(r, &limits).to_json().to_string())
    }

    /// Writes the C sources for TFLM into `dir`; returns the files written.
    #[pyo3(signature = (dir, name=None, pointer_width=32, kernels="reference"))]
    fn export_c(&self, dir: PathBuf, name: Option<&str>, pointer_width: usize, kernels: &str) -> PyResult<Vec<String>> {
        let kernels = kernels_of(kernels)?;
        let files = tinyq::export_c_bytes(self.tflite()?, &self.model.path, &dir, name, pointer_width, kernels)
            .map_err(to_py)?;
        Ok(files.iter().map(|f| f.display().to_string()).collect())
    }
}

impl Model {
    pub(crate) fn inner(&self) -> &tinyq::Model {
        &self.model
    }

    /// The model a `.tflite` file's bytes hold, named `path`.
    pub(crate) fn from_tflite(bytes: Vec<u8>, path: PathBuf) -> Result<Model, tinyq::TinyqError> {
        let model = tinyq::load_model_bytes(&bytes, &path)?;
        Ok(Model { model, bytes: Some(bytes) })
    }

    fn tflite(&self) -> PyResult<&[u8]> {
        self.bytes.as_deref().ok_or_else(|| {
            input_err(format!("{}: an ONNX model; quantize it to get a .tflite file", self.model.path.display()))
        })
    }
}

fn kernels_of(s: &str) -> PyResult<tinyq::Kernels> {
    tinyq::Kernels::parse(s).ok_or_else(|| input_err(format!("kernels `{s}`: expected reference or cmsis-nn")))
}

/// Post-training quantization, as `tinyq quantize`: returns the INT8 model (named `output`) and
/// the outcome as `tinyq quantize --json` prints it.
#[pyfunction]
#[pyo3(signature = (model, calib, calib_keys, calib_limit, calibration, per_tensor, io, bias_correction, equalize,
    corrections, adaround, weights, kernels, keep_float, int16, eval, eval_x, eval_y, metric, max_drop, tune, allow_float, allow_int16, max_candidates,
    output, progress))]
#[allow(clippy::too_many_arguments)]
pub fn quantize(
    py: Python<'_>,
    model: PyRef<'_, Model>,
    calib: PyRef<'_, Data>,
    calib_keys: Vec<String>,
    calib_limit: Option<usize>,
    calibration: &str,
    per_tensor: Option<&str>,
    io: &str,
    bias_correction: bool,
    equalize: bool,
    corrections: bool,
    adaround: bool,
    weights: &str,
    kernels: Option<&str>,
    keep_float: Vec<String>,
    int16: Vec<String>,
    eval: Option<PyRef<'_, Data>>,
    eval_x: String,
    eval_y: String,
    metric: Option<&str>,
    max_drop: Option<f64>,
    tune: Option<PyRef<'_, Data>>,
    allow_float: bool,
    allow_int16: bool,
    max_candidates: usize,
    output: PathBuf,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Model, String)> {
    let calibration: tinyq::Calibration = calibration.parse().map_err(|e| input_err(format!("calibration {e}")))?;
    let (per_tensor, per_tensor_dense) =
        per_tensor.map_or(Ok(PerTensor::None), |p| parse::<PerTensor>("per_tensor", p))?.flags();
    let io: Io = parse("io", io)?;
    let req = QuantizeRequest {
        calib: DataSpec { source: calib.source.clone(), keys: calib_keys, limit: calib_limit },
        options: tinyq::QuantizeOptions {
            calibration,
            per_tensor,
            per_tensor_dense,
            bias_correction,
            equalize,
            choose_corrections: corrections,
            adaround,
            weights: parse("weights", weights)?,
            kernels: kernels.map(kernels_of).transpose()?,
            float_io: io == Io::Float,
            keep_float,
            int16,
        },
        eval: eval.map(|e| LabelledData { source: e.source.clone(), x: eval_x, y: eval_y }),
        metric: metric.map(|m| parse("metric", m)).transpose()?,
        budget: max_drop.map(|max_drop| BudgetRequest {
            options: tinyq::budget::BudgetOptions { max_drop, allow_float, allow_int16, max_candidates },
            tune: tune.map(|t| t.source.clone()),
        }),
        output,
    };
    let bar = PyProgress::new(progress);
    let fp32 = &model.model;
    let (outcome, int8) = py
        .detach(|| {
            let outcome = tinyq::jobs::quantize_job(fp32, &req, &bar)?;
            let int8 = outcome.model(req.output.clone())?;
            Ok::<_, tinyq::TinyqError>((outcome, int8))
        })
        .map_err(to_py)?;
    let json = outcome.to_json(&req).to_string();
    Ok((Model { model: int8, bytes: Some(outcome.bytes) }, json))
}

/// The per-layer error of an INT8 model against its float original, as `tinyq debug`.
#[pyclass(frozen, module = "tinyq._tinyq")]
pub struct DebugReport {
    report: tinyq::DebugReport,
}

#[pymethods]
impl DebugReport {
    /// `tinyq debug --json`.
    fn to_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.report).map_err(to_py)
    }

    /// Writes the self-contained HTML report (`tinyq debug --html`).
    fn to_html(&self, path: PathBuf) -> PyResult<()> {
        if !matches!(path.extension().and_then(|e| e.to_str()), Some("html" | "htm")) {
            return Err(input_err(format!("{}: the report must be an .html file", path.display())));
        }
        let r = &self.report;
        if same_file(&path, Path::new(&r.fp32_model)) || same_file(&path, Path::new(&r.int8_model)) {
            return Err(input_err(format!("{}: refusing to overwrite an input file", path.display())));
        }
        tinyq_html::write_debug_page(&path, r).map_err(|e| input_err(format!("{}: cannot write: {e}", path.display())))
    }
}

/// Per-layer error of `int8` against `fp32` on `data` (arrays `keys`, at most `limit` samples).
#[pyfunction]
#[pyo3(signature = (fp32, int8, data, keys, limit=None))]
pub fn debug(
    py: Python<'_>,
    fp32: PyRef<'_, Model>,
    int8: PyRef<'_, Model>,
    data: PyRef<'_, Data>,
    keys: Vec<String>,
    limit: Option<usize>,
) -> PyResult<DebugReport> {
    let spec = DataSpec { source: data.source.clone(), keys, limit };
    let (f, q, bytes) = (&fp32.model, &int8.model, int8.bytes.as_deref());
    let report = py.detach(|| tinyq::jobs::debug_job(f, q, &spec, bytes)).map_err(to_py)?;
    Ok(DebugReport { report })
}

/// The ONNX ops tinyq imports: `(op, first opset, last opset)`.
#[pyfunction]
pub fn supported_onnx_ops() -> Vec<(String, i64, i64)> {
    tinyq::supported_onnx_ops().iter().map(|o| (o.op.to_string(), o.since, o.until)).collect()
}
