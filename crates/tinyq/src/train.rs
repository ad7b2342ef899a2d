//! Quantization-aware training: calibrate as PTQ does, fine-tune the float model with the int8
//! rounding simulated, keep the best epoch by validation metric of the exported int8 model, and
//! return that int8 graph (and the fine-tuned float graph).

use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;
use tinyq_data::NdArray;
use tinyq_float::Plan;
use tinyq_ir::Graph;
use tinyq_quant::{choose_range, PtqConfig};
use tinyq_train::{Example, Loss, OptimizerKind, QatConfig, RangeMode, Schedule, Target, Trainer};

use crate::{
    calibrate, compute_metric, default_metric, run_samples, BoundInputs, Calibration, Metric, Model, ModelFormat,
    TinyqError,
};

#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Calibration of the starting ranges, weight granularity and I/O type, as for `quantize`.
    pub calibration: Calibration,
    pub per_tensor: bool,
    pub per_tensor_dense: bool,
    pub float_io: bool,
    pub ranges: RangeMode,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f32,
    pub optimizer: OptimizerKind,
    pub schedule: Schedule,
    pub seed: u64,
    /// Softmax temperature of distillation (used when no labels are given).
    pub temperature: f32,
    /// Metric of validation (default from the labels).
    pub metric: Option<Metric>,
}

/// Targets of the training samples.
pub enum Supervision<'a> {
    /// Labels: class ids (cross-entropy) or values (MSE), one entry (or row) per sample.
    Labels(&'a NdArray),
    /// No labels: match the float model's own outputs (KL on logits, MSE on values).
    Distill,
}

/// What happened in one epoch.
#[derive(Clone, Debug, Serialize)]
pub struct EpochRow {
    pub epoch: usize,
    pub learning_rate: f32,
    /// Mean training loss.
    pub loss: f64,
    /// Training metric of the fake-quantized model: top-1 against the labels (or agreement with
    /// the teacher's top class when distilling), or RMSE.
    pub train_metric: f64,
    /// Validation metric of the exported int8 model.
    pub val_metric: Option<f64>,
    /// Validation metric of the fake-quantized float model (what training optimizes); it
    /// should track `val_metric` closely.
    pub val_simulated: Option<f64>,
    pub seconds: f64,
    pub samples_per_second: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    pub loss: &'static str,
    pub metric: Option<Metric>,
    pub samples: usize,
    pub calibration_samples: usize,
    /// Validation metric of the float model and of plain PTQ (the starting point).
    pub fp32_val: Option<f64>,
    pub ptq_val: Option<f64>,
    pub epochs: Vec<EpochRow>,
    /// The epoch whose state was exported (0 = the PTQ starting point).
    pub best_epoch: usize,
    pub best_val: Option<f64>,
}

/// Validation inputs with their labels.
pub struct Validation<'a> {
    pub inputs: &'a BoundInputs,
    pub labels: &'a NdArray,
}

/// Progress callbacks: `(epoch, samples done in the epoch)` during an epoch, then the epoch's row.
pub struct TrainProgress<'a> {
    pub batch: &'a (dyn Fn(usize, usize) + Sync),
    pub epoch: &'a dyn Fn(&EpochRow),
}

fn engine_err(model: &Model) -> impl Fn(tinyq_train::TrainError) -> TinyqError + '_ {
    move |e| TinyqError::Engine(format!("{}: training: {e}", model.path.display()))
}

/// Metric on the validation set of the .tflite an int8 graph is written as.
fn validate(model: &Model, graph: Graph, val: &Validation<'_>, metric: Metric) -> Result<f64, TinyqError> {
    let bytes = tinyq_tflite::write_tflite(&graph)?;
    let graph = tinyq_tflite::read_tflite(&bytes)?;
    let m = Model { graph, path: model.path.clone(), format: ModelFormat::Tflite, file_bytes: bytes.len() as u64 };
    let out = run_samples(&m, &val.inputs.rebind(&m.graph)?, &|_| {})?;
    let per_sample = m.graph.tensor(m.graph.outputs[0]).numel();
    Ok(compute_metric(metric, &out.real(&m, 0), per_sample, val.labels, out.samples)?.value)
}

fn better(metric: Metric, a: f64, b: f64) -> bool {
    match metric {
        Metric::Top1 | Metric::Auc => a > b,
        Metric::Rmse => a < b,
    }
}

/// Fine-tunes `model` on `data` with quantization simulated and returns the int8 graph to
/// export, the fine-tuned float graph and the report.
pub fn train(
    model: &Model,
    data: &BoundInputs,
    calib: &BoundInputs,
    supervision: Supervision<'_>,
    val: Option<Validation<'_>>,
    opts: &TrainOptions,
    progress: &TrainProgress<'_>,
) -> Result<(Graph, Graph, TrainReport), TinyqError> {
    let g = &model.graph;
    let input = |msg: String| TinyqError::Input(msg);
    if data.samples == 0 || opts.epochs == 0 || opts.batch_size == 0 {
        return Err(input(format!(
            "training needs samples, epochs and a batch size above 0 (got {} samples, {} epochs, batch size {})",
            data.samples, opts.epochs, opts.batch_size
        )));
    }
    if g.outputs.len() != 1 {
        return Err(TinyqError::Model(format!(
            "{}: training needs a model with one output; it has {}",
            model.path.display(),
            g.outputs.len()
        )));
    }
    let samples: Vec<Vec<&[f32]>> = (0..data.samples)
        .map(|i| data.sample_f32(i).ok_or_else(|| input("training needs float input data".into())))
        .collect::<Result<_, _>>()?;
    let per_sample = g.tensor(g.outputs[0]).numel();

    // Starting point: the PTQ ranges.
    if calib.samples < 2 {
        return Err(input(format!("calibration needs at least 2 samples, got {}", calib.samples)));
    }
    let stats = calibrate(model, calib, opts.calibration, &|_| {})?;
    let ranges: Vec<Option<(f32, f32)>> = stats
        .iter()
        .enumerate()
        .map(|(t, s)| (!g.tensor(t).is_constant() && s.count > 0).then(|| choose_range(opts.calibration, s)))
        .collect();

    let classes = per_sample > 1;
    let (loss, labels) = match supervision {
        Supervision::Labels(y) => {
            let metric = opts.metric.unwrap_or_else(|| default_metric(y, per_sample));
            if metric == Metric::Top1 && classes {
                let ids = y.to_i64().filter(|v| v.len() == data.samples).ok_or_else(|| {
                    input(format!(
                        "cross-entropy needs one integer class label per sample ({} samples, {} labels)",
                        data.samples,
                        y.len()
                    ))
                })?;
                if let Some((i, c)) = ids.iter().enumerate().find(|(_, &c)| c < 0 || c as usize >= per_sample) {
                    return Err(input(format!(
                        "label {c} of sample {i} is not one of the model's {per_sample} classes"
                    )));
                }
                (Loss::CrossEntropy, LabelData::Classes(ids.into_iter().map(|c| c as usize).collect()))
            } else {
                let v = y.to_f32();
                if v.len() != data.samples * per_sample {
                    return Err(input(format!(
                        "{} label values for {} samples of {per_sample} outputs",
                        v.len(),
                        data.samples
                    )));
                }
                (Loss::Mse, LabelData::Values(v))
            }
        }
        Supervision::Distill if classes => (Loss::Kl { temperature: opts.temperature }, LabelData::Teacher(Vec::new())),
        Supervision::Distill => (Loss::Mse, LabelData::Teacher(Vec::new())),
    };
    let cfg = QatConfig {
        ptq: PtqConfig { per_tensor: opts.per_tensor, per_tensor_dense: opts.per_tensor_dense, float_io: false },
        fake_quant: true,
        ranges: opts.ranges,
        ema_momentum: 0.99,
        optimizer: opts.optimizer,
        loss,
    };
    let mut trainer = Trainer::new(g, ranges, cfg).map_err(engine_err(model))?;
    let labels = match labels {
        LabelData::Teacher(_) => {
            // The float model's values at the tensor the loss is taken on (its logits).
            let plan = Plan::new(g).map_err(|e| TinyqError::Engine(e.to_string()))?;
            let at = trainer.loss_tensor();
            let rows: Vec<Vec<f32>> = samples
                .par_iter()
                .map(|s| plan.run_observed(s, &mut |_, _| {}).map(|a| plan.value(&a, at).to_vec()))
                .collect::<Result<_, _>>()
                .map_err(|e| TinyqError::Engine(e.to_string()))?;
            LabelData::Teacher(rows.concat())
        }
        other => other,
    };
    let width = labels.width(per_sample, g.tensor(trainer.loss_tensor()).numel());
    let target = |i: usize| match &labels {
        LabelData::Classes(c) => Target::Class(c[i]),
        LabelData::Values(v) | LabelData::Teacher(v) => Target::Values(&v[i * width..(i + 1) * width]),
    };

    let metric = val.as_ref().map(|v| opts.metric.unwrap_or_else(|| default_metric(v.labels, per_sample)));
    let ptq_cfg = PtqConfig { per_tensor: opts.per_tensor, per_tensor_dense: opts.per_tensor_dense, float_io: opts.float_io };
    let quantized = |t: &Trainer| t.quantized(&ptq_cfg).map_err(engine_err(model));
    let (fp32_val, ptq_val) = match (&val, metric) {
        (Some(v), Some(m)) => {
            let out = run_samples(model, v.inputs, &|_| {})?;
            let fp32 = compute_metric(m, &out.real(model, 0), per_sample, v.labels, out.samples)?.value;
            (Some(fp32), Some(validate(model, quantized(&trainer)?, v, m)?))
        }
        _ => (None, None),
    };

    let steps_per_epoch = data.samples.div_ceil(opts.batch_size);
    let total_steps = steps_per_epoch * opts.epochs;
    let mut best = (0, ptq_val, trainer.checkpoint());
    let mut rows = Vec::new();
    for epoch in 1..=opts.epochs {
        let start = Instant::now();
        let order = tinyq_train::shuffled(data.samples, opts.seed, epoch);
        let mut stats = tinyq_train::StepStats::default();
        let mut lr = opts.learning_rate;
        for (k, idx) in order.chunks(opts.batch_size).enumerate() {
            let step = (epoch - 1) * steps_per_epoch + k;
            lr = opts.schedule.rate(opts.learning_rate, step, total_steps, epoch - 1);
            let batch: Vec<Example> =
                idx.iter().map(|&i| Example { inputs: samples[i].clone(), target: target(i) }).collect();
            stats.add(&trainer.step(&batch, lr).map_err(engine_err(model))?);
            (progress.batch)(epoch, stats.samples);
        }
        let seconds = start.elapsed().as_secs_f64();
        let n = stats.samples.max(1) as f64;
        let train_metric = match loss {
            Loss::Mse => (stats.sq_error / (n * width as f64)).sqrt(),
            _ => stats.correct as f64 / n,
        };
        let (val_metric, val_simulated) = match (&val, metric) {
            (Some(v), Some(m)) => {
                let inputs: Vec<Vec<&[f32]>> = (0..v.inputs.samples).filter_map(|i| v.inputs.sample_f32(i)).collect();
                let out = trainer.predict_all(&inputs).map_err(engine_err(model))?.concat();
                let simulated = compute_metric(m, &out, out.len() / inputs.len().max(1), v.labels, inputs.len())?.value;
                (Some(validate(model, quantized(&trainer)?, v, m)?), Some(simulated))
            }
            _ => (None, None),
        };
        let row = EpochRow {
            epoch,
            learning_rate: lr,
            loss: stats.loss / n,
            train_metric,
            val_metric,
            val_simulated,
            seconds,
            samples_per_second: n / seconds.max(1e-9),
        };
        (progress.epoch)(&row);
        rows.push(row);
        // Without validation the last epoch is kept.
        let improved = match (val_metric, best.1, metric) {
            (Some(v), Some(b), Some(m)) => better(m, v, b),
            _ => true,
        };
        if improved {
            best = (epoch, val_metric, trainer.checkpoint());
        }
    }
    trainer.restore(&best.2);
    let report = TrainReport {
        loss: loss.name(),
        metric,
        samples: data.samples,
        calibration_samples: calib.samples,
        fp32_val,
        ptq_val,
        epochs: rows,
        best_epoch: best.0,
        best_val: best.1,
    };
    Ok((quantized(&trainer)?, trainer.float_graph(), report))
}

/// Training targets by sample.
enum LabelData {
    Classes(Vec<usize>),
    Values(Vec<f32>),
    /// The float model's values at the loss tensor, back to back.
    Teacher(Vec<f32>),
}

impl LabelData {
    /// Values per sample.
    fn width(&self, outputs: usize, loss_tensor: usize) -> usize {
        match self {
            LabelData::Classes(_) => 1,
            LabelData::Values(_) => outputs,
            LabelData::Teacher(_) => loss_tensor,
        }
    }
}
