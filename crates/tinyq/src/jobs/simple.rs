//! The jobs of `run`, `eval` and `debug`: bind the data, run, score.

use std::time::Instant;

use tinyq_data::{ArrayData, NdArray};

use super::{score, DataSpec, Progress};
use crate::{DebugReport, Metric, MetricValue, Model, TinyqError};

/// Every sample's outputs: arrays `y`, `y_1`, … (one per model output, samples stacked).
#[derive(Clone, Debug)]
pub struct RunOutcome {
    pub samples: usize,
    pub arrays: Vec<(String, NdArray)>,
    pub seconds: f64,
}

/// Runs every sample of `data` through `model`.
pub fn run_job(model: &Model, data: &DataSpec, progress: &dyn Progress) -> Result<RunOutcome, TinyqError> {
    let (_, inputs) = data.bind(model)?;
    progress.begin("run", inputs.samples);
    let start = Instant::now();
    let out = crate::run_samples(model, &inputs, &|n| progress.advance(n))?;
    let seconds = start.elapsed().as_secs_f64();
    progress.end();
    let arrays = out
        .values
        .into_iter()
        .zip(out.shapes)
        .enumerate()
        .map(|(k, (v, shape))| {
            let key = if k == 0 { "y".to_string() } else { format!("y_{k}") };
            (key, NdArray { shape, data: v })
        })
        .collect();
    Ok(RunOutcome { samples: out.samples, arrays, seconds })
}

/// A metric of a model on a labelled set.
#[derive(Clone, Debug)]
pub struct EvalOutcome {
    pub value: MetricValue,
    pub seconds: f64,
}

/// Scores `model` on `data` against the labels array `y`, with `metric` or the one the labels
/// suggest; with a sample limit the labels are cut to the samples used.
pub fn eval_job(
    model: &Model,
    data: &DataSpec,
    y: &str,
    metric: Option<Metric>,
    progress: &dyn Progress,
) -> Result<EvalOutcome, TinyqError> {
    let (ds, inputs) = data.bind(model)?;
    let mut labels = ds.array(y)?;
    if labels.shape.first().is_some_and(|&n| n > inputs.samples) && data.limit.is_some() {
        labels = truncate_rows(labels, inputs.samples);
    }
    let start = Instant::now();
    let described = format!("{}: labels `{y}`", data.source.path().display());
    let value = score(model, &inputs, (&labels, &described), metric, ("eval", progress))?;
    Ok(EvalOutcome { value, seconds: start.elapsed().as_secs_f64() })
}

/// The per-layer error of `int8` against its float original `fp32` on `data`. The footprint
/// comes from `int8`'s file, or from `int8_bytes` for a model not (yet) written to one.
pub fn debug_job(
    fp32: &Model,
    int8: &Model,
    data: &DataSpec,
    int8_bytes: Option<&[u8]>,
) -> Result<DebugReport, TinyqError> {
    let (_, f_inputs) = data.bind(fp32)?;
    let (_, q_inputs) = data.bind(int8)?;
    let mut r = crate::debug(fp32, int8, &f_inputs, &q_inputs)?;
    if let Some(bytes) = int8_bytes {
        let width = crate::debug::FOOTPRINT_POINTER_WIDTH;
        (r.footprint, r.footprint_error) =
            match crate::report_bytes(bytes, &int8.path, width, tinyq_arena::Kernels::Reference) {
                Ok(f) => (Some(f), None),
                Err(e) => (None, Some(e.to_string())),
            };
    }
    Ok(r)
}

/// The first `n` rows of `a` (all of them when it has fewer), as a sample limit keeps them.
pub fn truncate_rows(a: NdArray, n: usize) -> NdArray {
    use ArrayData as A;
    let Some(&rows) = a.shape.first() else { return a };
    let n = n.min(rows);
    let per: usize = a.shape[1..].iter().product();
    let k = n * per;
    let data = match a.data {
        A::F32(v) => A::F32(v[..k].to_vec()),
        A::F64(v) => A::F64(v[..k].to_vec()),
        A::U8(v) => A::U8(v[..k].to_vec()),
        A::I8(v) => A::I8(v[..k].to_vec()),
        A::I16(v) => A::I16(v[..k].to_vec()),
        A::I32(v) => A::I32(v[..k].to_vec()),
        A::I64(v) => A::I64(v[..k].to_vec()),
        A::Bool(v) => A::Bool(v[..k].to_vec()),
    };
    let mut shape = a.shape;
    shape[0] = n;
    NdArray { shape, data }
}
