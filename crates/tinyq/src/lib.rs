//! tinyq's facade: every stage of the pipeline as one plain function call.
//!
//! `load_model` → [`run_samples`] / [`compute_metric`] / [`inspect`] / [`quantize`] / [`report`] /
//! [`export_c`], and in [`jobs`] each command as one whole job (request in, outcome out). The CLI
//! and the Python package are thin layers of arguments over these calls; all logic that a user
//! can reach lives here or below.
//!
//! What this crate deliberately is not: a numeric engine or a file format. It wires the IR, the
//! importers, the engines and the data loaders together and owns the user-facing rules (how
//! data arrays map to model inputs, which metric applies, what a report contains).

pub mod adaround;
pub mod autocal;
pub mod budget;
pub mod choose;
mod compile;
pub mod corrections;
mod debug;
mod deploy;
mod error;
mod guards;
mod inputs;
pub mod jobs;
mod metrics;
pub mod mixed;
mod model;
mod onnx_out;
pub mod pipeline;
mod quantize;
mod summary;
mod train;
mod verify;
mod verify_c;

pub use compile::{compile_c, compile_footprint, export_c_no_interpreter};
pub use debug::{debug, DebugReport, LayerDebug, OutputDebug, ValueHistogram, WeightRanges};
pub use deploy::{
    check_fit, export_c, export_c_bytes, parse_size, report, report_bytes, report_bytes_for, report_for,
    LayerFootprint, Limits, Overrun, Report,
};
use error::InFile;
pub use error::TinyqError;
pub use guards::{calibration_warnings, input_findings};
pub use inputs::{bind_inputs, default_input_keys, quantize_s16, quantize_s8, BoundInputs, SampleRef};
pub use metrics::{compute_metric, default_metric, Metric, MetricValue};
pub use model::{load_model, load_model_bytes, load_model_with, Model, ModelFormat};
pub use onnx_out::{
    save_onnx, save_onnx_opset, OnnxWritten, DEFAULT_OPSET as ONNX_DEFAULT_OPSET,
    EXPORT_OPSET_RANGE as ONNX_OPSET_RANGE,
};
pub use quantize::{calibrate, quantize, quantize_passes, QuantizeOptions, Quantized, RangeRow, WeightBits};
pub use summary::{inspect, ModelSummary, TensorSummary};
pub use tinyq_arena::{Kernels, TflmBuild};
pub use tinyq_cgen::{Footprint as CFootprint, KernelSet as CKernels};
pub use tinyq_data as data;
pub use tinyq_export_c::{boards, find_board, Board};
pub use tinyq_ir as ir;
pub use tinyq_onnx::supported_ops as supported_onnx_ops;
pub use tinyq_quant::Calibration;
pub use tinyq_tflite as tflite;
pub use tinyq_train::{Loss, OptimizerKind, RangeMode, Schedule};
pub use train::{distill_loss, train, EpochRow, Supervision, TrainOptions, TrainProgress, TrainReport, Validation};
pub use verify::{
    load_measured, predicted_arena, save_measured, verify, verify_many, ArenaCheck, OutputComparison, VerifyOptions,
    VerifyReport, CORTEX_M4_CPI_ESTIMATE,
};
pub use verify_c::{load_measured_c, save_measured_c, verify_no_interpreter, CVerifyReport};

use rayon::prelude::*;

/// Outputs of a run over many samples: one buffer per graph output (in the output's dtype),
/// samples stacked.
pub struct RunOutputs {
    pub samples: usize,
    /// Per output: all samples' values back to back.
    pub values: Vec<tinyq_data::ArrayData>,
    /// Per output: the array shape the values form (leading sample axis per [`BoundInputs`] rules).
    pub shapes: Vec<Vec<usize>>,
}

impl RunOutputs {
    /// Output `k` as real values (int8 outputs dequantized with the output's qparams).
    pub fn real(&self, model: &Model, k: usize) -> Vec<f32> {
        let t = model.graph.tensor(model.graph.outputs[k]);
        match (&self.values[k], &t.qparams) {
            (tinyq_data::ArrayData::I8(v), Some(q)) => {
                v.iter().map(|&x| ((x as i32 - q.zero_point[0]) as f64 * q.scale[0] as f64) as f32).collect()
            }
            (tinyq_data::ArrayData::I16(v), Some(q)) => {
                v.iter().map(|&x| ((x as i32 - q.zero_point[0]) as f64 * q.scale[0] as f64) as f32).collect()
            }
            (other, _) => tinyq_data::NdArray { shape: vec![], data: other.clone() }.to_f32(),
        }
    }
}

/// The engine a graph runs on: float graphs on the float engine, quantized graphs on the integer
/// engine (bit-exact with TFLM's reference kernels).
enum Engine {
    Float(tinyq_float::Plan),
    Int8(tinyq_int8::Int8Plan),
}

fn is_float_graph(g: &tinyq_ir::Graph) -> bool {
    g.tensors.iter().all(|t| t.is_constant() || t.dtype == tinyq_ir::DType::F32)
}

impl Engine {
    fn new(model: &Model) -> Result<Engine, TinyqError> {
        if is_float_graph(&model.graph) {
            tinyq_float::Plan::new(&model.graph).map(Engine::Float).in_file(&model.path)
        } else {
            tinyq_int8::Int8Plan::new(&model.graph).map(Engine::Int8).in_file(&model.path)
        }
    }

    /// Samples `range` of `inputs`; each output holds theirs back to back. The integer engine
    /// runs them in one call, the float engine one by one.
    fn run_batch(
        &self,
        inputs: &BoundInputs,
        range: std::ops::Range<usize>,
    ) -> Result<Vec<tinyq_data::ArrayData>, TinyqError> {
        let Engine::Int8(plan) = self else {
            let mut values: Vec<tinyq_data::ArrayData> = Vec::new();
            for i in range {
                let out = self.run(&inputs.sample(i))?;
                if values.is_empty() {
                    values = out;
                } else {
                    values.iter_mut().zip(out).for_each(|(acc, v)| append(acc, v));
                }
            }
            return Ok(values);
        };
        let n = range.len();
        let args: Vec<tinyq_int8::TensorValue> = inputs.samples(range).into_iter().map(|s| s.to_value()).collect();
        let out = plan.run_batch(&args, n)?;
        Ok(out.into_iter().map(int8_to_array).collect())
    }

    fn run(&self, sample: &[inputs::SampleRef<'_>]) -> Result<Vec<tinyq_data::ArrayData>, TinyqError> {
        use inputs::SampleRef;
        use tinyq_data::ArrayData;
        use tinyq_int8::TensorValue;
        let err = |e: String| TinyqError::Engine(e);
        match self {
            Engine::Float(plan) => {
                let args: Vec<&[f32]> = sample
                    .iter()
                    .map(|s| {
                        if let SampleRef::F32(v) = s {
                            Ok(*v)
                        } else {
                            Err(err("integer data for a float model".into()))
                        }
                    })
                    .collect::<Result<_, _>>()?;
                Ok(plan.run(&args)?.into_iter().map(ArrayData::F32).collect())
            }
            Engine::Int8(plan) => {
                let args: Vec<TensorValue> = sample.iter().map(|s| s.to_value()).collect();
                let out = plan.run(&args)?;
                Ok(out.into_iter().map(int8_to_array).collect())
            }
        }
    }
}

/// Samples per engine call in [`run_samples`] unless `TINYQ_BATCH` says otherwise: enough for the
/// integer engine's GEMMs to reuse each layer's weights from cache, few enough to spread a small
/// eval set over the cores.
pub const DEFAULT_BATCH: usize = 16;

/// The batch size [`run_samples`] uses: `TINYQ_BATCH` when it holds a positive integer, else
/// [`DEFAULT_BATCH`].
pub fn batch_size() -> usize {
    std::env::var("TINYQ_BATCH").ok().and_then(|v| v.parse().ok()).filter(|&b| b > 0).unwrap_or(DEFAULT_BATCH)
}

/// Runs every sample through the model's engine, [`batch_size`] samples per call, the calls in
/// parallel (order preserved; results independent of the thread count and the batch size).
/// `progress` is called with the number of samples finished.
pub fn run_samples(
    model: &Model,
    inputs: &BoundInputs,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<RunOutputs, TinyqError> {
    run_samples_in_batches(model, inputs, batch_size(), progress)
}

/// [`run_samples`] with `batch` samples per engine call.
pub fn run_samples_in_batches(
    model: &Model,
    inputs: &BoundInputs,
    batch: usize,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<RunOutputs, TinyqError> {
    let engine = Engine::new(model)?;
    let done = std::sync::atomic::AtomicUsize::new(0);
    let batch = batch.max(1);
    let chunks: Vec<std::ops::Range<usize>> =
        (0..inputs.samples).step_by(batch).map(|s| s..(s + batch).min(inputs.samples)).collect();
    let per_chunk: Vec<Vec<tinyq_data::ArrayData>> = chunks
        .into_par_iter()
        .map(|range| {
            let n = range.len();
            let out = engine.run_batch(inputs, range);
            progress(done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n);
            out
        })
        .collect::<Result<_, _>>()?;
    let g = &model.graph;
    let mut values: Vec<tinyq_data::ArrayData> = Vec::new();
    for chunk in per_chunk {
        if values.is_empty() {
            values = chunk;
            continue;
        }
        for (acc, v) in values.iter_mut().zip(chunk) {
            append(acc, v);
        }
    }
    let shapes = g.outputs.iter().map(|&o| inputs.output_shape(&g.tensor(o).shape)).collect();
    Ok(RunOutputs { samples: inputs.samples, values, shapes })
}

fn int8_to_array(v: tinyq_int8::TensorValue) -> tinyq_data::ArrayData {
    use tinyq_data::ArrayData;
    use tinyq_int8::TensorValue;
    match v {
        TensorValue::I8(v) => ArrayData::I8(v),
        TensorValue::F32(v) => ArrayData::F32(v),
        TensorValue::I32(v) => ArrayData::I32(v),
        TensorValue::I16(v) => ArrayData::I16(v),
    }
}

fn append(acc: &mut tinyq_data::ArrayData, v: tinyq_data::ArrayData) {
    use tinyq_data::ArrayData as A;
    match (acc, v) {
        (A::F32(a), A::F32(b)) => a.extend(b),
        (A::I8(a), A::I8(b)) => a.extend(b),
        (A::I32(a), A::I32(b)) => a.extend(b),
        (A::I16(a), A::I16(b)) => a.extend(b),
        _ => unreachable!("an output keeps its dtype across samples"),
    }
}
