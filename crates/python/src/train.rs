//! Quantization-aware training for Python: the facade's train job, as `tinyq train` runs it.

use std::path::PathBuf;

use pyo3::prelude::*;
use tinyq::jobs::{DataSpec, LabelledData, TrainRequest, TrainSettings};

use crate::model::Model;
use crate::{to_py, Data, PyProgress};

/// Trains `model` with INT8 (or int4 weights') rounding simulated; returns the INT8 model (named `output`) and the
/// report as `tinyq train --json` prints it. With `fp32_out`, also writes the fine-tuned float
/// model as ONNX.
#[pyfunction]
#[pyo3(signature = (model, data, keys, labels, limit, calib, calib_samples, val, val_x, val_y, epochs, batch_size,
    lr, optimizer, momentum, schedule, loss, temperature, ranges, seed, calibration, per_tensor, weights, io, metric,
    output, fp32_out, progress))]
#[allow(clippy::too_many_arguments)]
pub fn train(
    py: Python<'_>,
    model: PyRef<'_, Model>,
    data: PyRef<'_, Data>,
    keys: Vec<String>,
    labels: Option<String>,
    limit: Option<usize>,
    calib: Option<PyRef<'_, Data>>,
    calib_samples: usize,
    val: Option<PyRef<'_, Data>>,
    val_x: String,
    val_y: String,
    epochs: usize,
    batch_size: usize,
    lr: Option<f32>,
    optimizer: &str,
    momentum: f32,
    schedule: &str,
    loss: Option<&str>,
    temperature: f32,
    ranges: &str,
    seed: u64,
    calibration: &str,
    per_tensor: Option<&str>,
    weights: &str,
    io: &str,
    metric: Option<&str>,
    output: PathBuf,
    fp32_out: Option<PathBuf>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Model, String)> {
    let settings = TrainSettings {
        calibration,
        per_tensor,
        weights: Some(weights),
        io,
        optimizer,
        momentum,
        lr,
        loss,
        temperature,
        ranges,
        schedule,
        metric,
        epochs,
        batch_size,
        seed,
    };
    let req = TrainRequest {
        data: DataSpec { source: data.source.clone(), keys: keys.clone(), limit },
        labels,
        calib: calib.map(|c| DataSpec { source: c.source.clone(), keys, limit: None }),
        calib_samples,
        val: val.map(|v| LabelledData { source: v.source.clone(), x: val_x, y: val_y }),
        options: settings.parse().map_err(to_py)?,
        output,
    };
    let bar = PyProgress::new(progress);
    let fp32 = model.inner();
    let outcome = py
        .detach(|| {
            let prepared = req.prepare(fp32)?;
            let total = prepared.samples();
            let batch = |epoch: usize, done: usize| {
                if done == 0 || epoch == 0 {
                    return;
                }
                tinyq::jobs::Progress::advance(&bar, done);
            };
            let epoch = |r: &tinyq::EpochRow| {
                tinyq::jobs::Progress::end(&bar);
                if r.epoch < epochs {
                    tinyq::jobs::Progress::begin(&bar, &format!("epoch {}/{epochs}", r.epoch + 1), total);
                }
            };
            tinyq::jobs::Progress::begin(&bar, &format!("epoch 1/{epochs}"), total);
            let outcome = prepared.run(&tinyq::TrainProgress { batch: &batch, epoch: &epoch })?;
            if let Some(path) = &fp32_out {
                let tuned = tinyq::Model { graph: outcome.float.clone(), ..fp32.clone() };
                tinyq::save_onnx(&tuned, path)?;
            }
            Ok::<_, tinyq::TinyqError>(outcome)
        })
        .map_err(to_py)?;
    // Through a JSON value, as `tinyq train --json` prints it (f32 fields widened to f64).
    let report = serde_json::to_value(&outcome.report).map_err(to_py)?.to_string();
    let int8 = Model::from_tflite(outcome.bytes, req.output).map_err(to_py)?;
    Ok((int8, report))
}
