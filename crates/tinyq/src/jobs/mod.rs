//! Whole jobs, one per command: a request in, an outcome out. Every front end (the `tinyq`
//! binary, the Python package) builds a request from its own arguments, calls the job and
//! presents the outcome; what is computed, checked and written is decided here, once.
//!
//! Jobs never write the user's output files: they return the bytes (or the report) and the front
//! end stores them, so that each one keeps its own rules for where and how outputs appear.

mod deploy;
mod quantize;
mod simple;
mod train;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use tinyq_data::{Dataset, LoadOptions, NdArray};

use crate::{bind_inputs, default_input_keys, BoundInputs, Model, TinyqError};

pub use deploy::{measured_at_clock, Fit};
pub(crate) use quantize::budget_refusal;
pub use quantize::{quantize_job, BudgetRequest, HeldOut, LabelledData, MetricPair, QuantizeOutcome, QuantizeRequest};
pub use simple::{debug_job, eval_job, run_job, truncate_rows, EvalOutcome, RunOutcome};
pub use train::{PreparedTrain, TrainOutcome, TrainRequest, TrainSettings};

/// Reports how far a long job is. Jobs go through stages (`calibrate`, `FP32 eval`, …), each
/// over a number of samples.
pub trait Progress: Sync {
    /// A stage over `total` samples begins.
    fn begin(&self, what: &str, total: usize);
    /// `done` samples of the current stage are finished.
    fn advance(&self, done: usize);
    /// The current stage is over.
    fn end(&self);
}

/// No progress shown.
impl Progress for () {
    fn begin(&self, _: &str, _: usize) {}
    fn advance(&self, _: usize) {}
    fn end(&self) {}
}

/// Where a dataset comes from: a file or folder in any format [`Dataset::open`] reads, or arrays
/// already in memory.
#[derive(Clone, Debug)]
pub enum DataSource {
    File {
        path: PathBuf,
        load: LoadOptions,
    },
    /// Named arrays; `name` stands for the file in messages.
    Arrays {
        name: PathBuf,
        arrays: Vec<(String, NdArray)>,
    },
}

impl DataSource {
    pub fn file(path: impl Into<PathBuf>, load: LoadOptions) -> DataSource {
        DataSource::File { path: path.into(), load }
    }

    pub fn open(&self) -> Result<Dataset, TinyqError> {
        match self {
            DataSource::File { path, load } => Ok(Dataset::open(path, load)?),
            DataSource::Arrays { name, arrays } => Ok(Dataset::from_arrays(name, arrays.clone())),
        }
    }

    /// The file (or the name standing for it) in messages.
    pub fn path(&self) -> &Path {
        match self {
            DataSource::File { path, .. } => path,
            DataSource::Arrays { name, .. } => name,
        }
    }
}

/// Samples for a model: the dataset, the arrays bound to the model's inputs (none: `x`, or the
/// model's input names when it has several) and how many samples to use at most.
#[derive(Clone, Debug)]
pub struct DataSpec {
    pub source: DataSource,
    pub keys: Vec<String>,
    pub limit: Option<usize>,
}

impl DataSpec {
    pub fn new(source: DataSource) -> DataSpec {
        DataSpec { source, keys: Vec::new(), limit: None }
    }

    /// Opens the data and binds it to `model`'s inputs.
    pub fn bind(&self, model: &Model) -> Result<(Dataset, BoundInputs), TinyqError> {
        let ds = self.source.open()?;
        let keys = if self.keys.is_empty() { default_input_keys(&model.graph) } else { self.keys.clone() };
        let inputs = bind_limited(model, &ds, &keys, self.limit)?;
        Ok((ds, inputs))
    }
}

/// Binds arrays `keys` of `ds` to `model`'s inputs, keeping the first `limit` samples.
fn bind_limited(model: &Model, ds: &Dataset, keys: &[String], limit: Option<usize>) -> Result<BoundInputs, TinyqError> {
    let mut inputs = bind_inputs(&model.graph, ds, keys)?;
    if let Some(n) = limit {
        if n == 0 {
            return Err(TinyqError::Input("a sample limit of 0 leaves no samples".into()));
        }
        inputs.truncate(n);
    }
    Ok(inputs)
}

/// Runs `model` on `inputs` and scores its first output against `labels` (named by `what` in
/// errors), with `metric` or the one the labels suggest; `stage` names the progress stage.
pub(crate) fn score(
    model: &Model,
    inputs: &BoundInputs,
    labels: (&NdArray, &str),
    metric: Option<crate::Metric>,
    stage: (&str, &dyn Progress),
) -> Result<crate::MetricValue, TinyqError> {
    let per_sample = model.graph.tensor(model.graph.outputs[0]).numel();
    let metric = metric.unwrap_or_else(|| crate::default_metric(labels.0, per_sample));
    let (what, progress) = stage;
    progress.begin(what, inputs.samples);
    let out = crate::run_samples(model, inputs, &|n| progress.advance(n))?;
    progress.end();
    crate::compute_metric(metric, &out.real(model, 0), per_sample, labels.0, out.samples)
        .map_err(|e| TinyqError::In { path: PathBuf::from(labels.1), source: Box::new(e) })
}

/// The data types at the edges of a quantized model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Io {
    /// Inputs and outputs are int8 (int16 for 16x8 edges).
    #[default]
    Int8,
    /// Float inputs and outputs, with QUANTIZE/DEQUANTIZE at the edges.
    Float,
}

impl FromStr for Io {
    type Err = String;
    fn from_str(s: &str) -> Result<Io, String> {
        match s {
            "int8" => Ok(Io::Int8),
            "float" => Ok(Io::Float),
            _ => Err("expected int8 or float".into()),
        }
    }
}

/// Which weights get one scale per tensor instead of one per output channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PerTensor {
    /// Per channel everywhere.
    #[default]
    None,
    /// Per tensor for every layer.
    All,
    /// Per tensor for fully-connected layers only.
    Dense,
}

impl FromStr for PerTensor {
    type Err = String;
    fn from_str(s: &str) -> Result<PerTensor, String> {
        match s {
            "all" => Ok(PerTensor::All),
            "dense" => Ok(PerTensor::Dense),
            _ => Err("expected all (every layer) or dense (fully-connected layers only)".into()),
        }
    }
}

impl PerTensor {
    /// (every layer per tensor, dense layers per tensor), as [`crate::QuantizeOptions`] holds it.
    pub fn flags(self) -> (bool, bool) {
        (self == PerTensor::All, self == PerTensor::Dense)
    }
}
