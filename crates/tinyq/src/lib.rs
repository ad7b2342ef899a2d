//! tinyq's facade: every stage of the pipeline as one plain function call.
//!
//! `load_model` → [`run_samples`] / [`compute_metric`] / [`inspect`] (and, as the pipeline grows,
//! calibrate, quantize, export, report). The CLI is a thin layer of flags over these calls; all
//! logic that a user can reach lives here or below.
//!
//! What this crate deliberately is not: a numeric engine or a file format. It wires the IR, the
//! importers, the engines and the data loaders together and owns the user-facing rules (how
//! data arrays map to model inputs, which metric applies, what a report contains).

mod error;
mod inputs;
mod metrics;
mod model;
mod quantize;
mod summary;

pub use error::TinyqError;
pub use inputs::{bind_inputs, default_input_keys, BoundInputs};
pub use metrics::{compute_metric, default_metric, Metric, MetricValue};
pub use model::{load_model, Model, ModelFormat};
pub use quantize::{calibrate, quantize, QuantizeOptions, RangeRow};
pub use summary::{inspect, ModelSummary, TensorSummary};
pub use tinyq_quant::Calibration;
pub use tinyq_tflite as tflite;
pub use tinyq_data as data;
pub use tinyq_ir as ir;
pub use tinyq_onnx::supported_ops as supported_onnx_ops;

use rayon::prelude::*;

/// Outputs of a run over many samples: one flat f32 buffer per graph output, samples stacked.
pub struct RunOutputs {
    pub samples: usize,
    /// Per output: all samples' values back to back.
    pub values: Vec<Vec<f32>>,
    /// Per output: the array shape the values form (leading sample axis per [`BoundInputs`] rules).
    pub shapes: Vec<Vec<usize>>,
}

/// Runs every sample through the float engine in parallel (order preserved, results independent
/// of the thread count). `progress` is called with the number of samples finished so far.
pub fn run_samples(model: &Model, inputs: &BoundInputs, progress: &(dyn Fn(usize) + Sync)) -> Result<RunOutputs, TinyqError> {
    let plan = tinyq_float::Plan::new(&model.graph)
        .map_err(|e| TinyqError::Engine(format!("{}: {e}", model.path.display())))?;
    let done = std::sync::atomic::AtomicUsize::new(0);
    let per_sample: Vec<Vec<Vec<f32>>> = (0..inputs.samples)
        .into_par_iter()
        .map(|i| {
            let args: Vec<&[f32]> = inputs.sample(i);
            let out = plan.run(&args).map_err(|e| TinyqError::Engine(e.to_string()));
            progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
            out
        })
        .collect::<Result<_, _>>()?;
    let g = &model.graph;
    let mut values: Vec<Vec<f32>> = g.outputs.iter().map(|&o| Vec::with_capacity(g.tensor(o).numel() * inputs.samples)).collect();
    for sample in per_sample {
        for (k, v) in sample.into_iter().enumerate() {
            values[k].extend(v);
        }
    }
    let shapes = g.outputs.iter().map(|&o| inputs.output_shape(&g.tensor(o).shape)).collect();
    Ok(RunOutputs { samples: inputs.samples, values, shapes })
}
