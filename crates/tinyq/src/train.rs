//! Quantization-aware training: calibrate as PTQ does, fine-tune the float model with the int8
//! rounding simulated, keep the best epoch by validation metric of the exported int8 model, and
//! return that int8 graph (and the fine-tuned float graph).

use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;
use tinyq_data::NdArray;
use tinyq_float::Plan;
use tinyq_ir::Graph;
use tinyq_quant::PtqConfig;
use tinyq_train::{Example, Loss, OptimizerKind, QatConfig, RangeMode, Schedule, Target, Trainer};

use crate::{
    compute_metric, default_metric, run_samples, BoundInputs, Calibration, Metric, Model, ModelFormat, TinyqError,
};

#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Calibration of the starting ranges, weight granularity and I/O type, as for `quantize`.
    pub calibration: Calibration,
    pub per_tensor: bool,
    pub per_tensor_dense: bool,
    /// Int8 or int4 conv, depthwise conv and fully connected weights, simulated in training
    /// exactly as the file stores them.
    pub weights: crate::WeightBits,
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
    /// The loss, when the user names it; otherwise cross-entropy or MSE for labels, and for
    /// distillation KL only when the outputs are class scores (see [`distill_loss`]).
    pub loss: Option<Loss>,
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
    /// Why that loss: named by the user, or what the outputs were taken to be.
    pub loss_reason: String,
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

/// The loss of distillation: the one the user names, else KL on the logits when the outputs are
/// class scores, MSE otherwise (a regression or a reconstruction has no class distribution to
/// match). In order: a softmax output is class scores; `--metric` top1 means logits, rmse or auc
/// not; one output value, or as many as an input has (an autoencoder), is a regression; then the
/// validation labels' default metric decides; a vector of outputs without any of these is taken
/// as logits. Returns the loss and why it was chosen.
pub fn distill_loss(
    g: &Graph,
    named: Option<Loss>,
    metric: Option<Metric>,
    labels_metric: Option<Metric>,
    temperature: f32,
) -> Result<(Loss, String), TinyqError> {
    let kl = Loss::Kl { temperature };
    let Some(&out) = g.outputs.first() else { return Ok((Loss::Mse, "no output".into())) };
    let softmax = g.producer(out).is_some_and(|n| matches!(g.nodes[n].op, tinyq_ir::Op::Softmax(_)));
    let width = g.tensor(out).numel();
    let reconstructs = g.inputs.iter().any(|&i| g.tensor(i).numel() == width);
    Ok(match named {
        Some(Loss::CrossEntropy) => {
            return Err(TinyqError::Input("--loss cross-entropy needs labels; distillation takes kl or mse".into()))
        }
        Some(Loss::Kl { .. }) => (kl, "named with --loss".into()),
        Some(Loss::Mse) => (Loss::Mse, "named with --loss".into()),
        None if softmax => (kl, "the output is a softmax: class scores".into()),
        None => match (metric, width <= 1, reconstructs, labels_metric) {
            (Some(Metric::Top1), ..) => (kl, "--metric top1: the outputs are class logits".into()),
            (Some(m), ..) => (Loss::Mse, format!("--metric {}: the outputs are not class scores", m.name())),
            (None, true, ..) => (Loss::Mse, "one output value: a regression".into()),
            (None, _, true, _) => (Loss::Mse, "the output is the size of an input: a reconstruction".into()),
            (None, _, _, Some(Metric::Top1)) => {
                (kl, "the validation labels are classes: the outputs are class logits".into())
            }
            (None, _, _, Some(_)) => (Loss::Mse, "the validation labels are values: a regression".into()),
            (None, _, _, None) => {
                (kl, format!("{width} outputs without a softmax, taken as class logits (--loss mse if they are not)"))
            }
        },
    })
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

/// The float graph quantization-aware training with int4 weights starts from: the file
/// `quantize --weights int4` writes (`start`, its pipeline's state: AdaRound's rounding and the
/// corrections its choice kept), read back into float so that training's rounding gives the
/// same integers. Each int4 weight is set to its rounded value `q · s` (the largest of each
/// channel keeps its value, and with it the channel's scale), each bias to `b · s_in · s`.
fn int4_start(start: &crate::pipeline::PtqState<'_>) -> Result<Graph, TinyqError> {
    use tinyq_ir::{DType, TensorData};
    let g = &start.model.graph;
    let q = start.int8.as_ref().ok_or_else(|| TinyqError::Model("the pipeline ran no quantize pass".into()))?;
    let mut init = g.clone();
    for n in g.nodes.iter().filter(|n| n.op.int4_weights_input().is_some()) {
        let out = &g.tensor(n.outputs[0]).name;
        let Some(qn) = q.tensors.iter().position(|t| &t.name == out).and_then(|t| q.producer(t)) else { continue };
        for (slot, keep_largest) in [(1, true), (2, false)] {
            let (Some(&fw), Some(&qw)) = (n.inputs.get(slot), q.nodes[qn].inputs.get(slot)) else { continue };
            let qt = q.tensor(qw);
            let values: Vec<f64> = match (&qt.data, qt.dtype) {
                (Some(TensorData::I8(v)), DType::I4) => v.iter().map(|&x| x as f64).collect(),
                (Some(TensorData::I32(v)), DType::I32) if slot == 2 => v.iter().map(|&x| x as f64).collect(),
                _ => continue,
            };
            let Some(p) = &qt.qparams else { continue };
            let Some(TensorData::F32(w)) = &mut init.tensors[fw].data else { continue };
            if g.consumers(fw).len() != 1 || w.len() != values.len() || p.scale.is_empty() {
                continue;
            }
            set_dequantized(w, &values, &p.scale, p.axis.unwrap_or(0), &qt.shape, keep_largest);
        }
    }
    Ok(init)
}

/// `w[i] = values[i] · scale[channel of i]` (channels along `axis` of `shape`; one scale: one
/// channel), leaving each channel's largest `|w|` as it is when `keep_largest`.
fn set_dequantized(w: &mut [f32], values: &[f64], scale: &[f32], axis: usize, shape: &[usize], keep_largest: bool) {
    let (channels, inner) = if scale.len() == 1 || shape.len() <= axis {
        (1, w.len())
    } else {
        (shape[axis], shape[axis + 1..].iter().product::<usize>())
    };
    let channel = |i: usize| (i / inner.max(1)) % channels.max(1);
    let mut largest = vec![None::<usize>; channels.max(1)];
    if keep_largest {
        for (i, v) in w.iter().enumerate() {
            let c = &mut largest[channel(i)];
            if c.is_none_or(|j| v.abs() > w[j].abs()) {
                *c = Some(i);
            }
        }
    }
    for (i, (v, &r)) in w.iter_mut().zip(values).enumerate() {
        let c = channel(i);
        if largest[c] != Some(i) {
            *v = (r * scale[c.min(scale.len() - 1)] as f64) as f32;
        }
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
    // With `auto` calibration, equalization where PTQ's choice keeps it (the float function is
    // the same; training starts from the equalized weights). int4 weights start where
    // `quantize --weights int4` ends; the float model (the teacher, FP32's figure) stays as it is.
    let q = crate::QuantizeOptions {
        calibration: opts.calibration,
        per_tensor: opts.per_tensor,
        per_tensor_dense: opts.per_tensor_dense,
        float_io: opts.float_io,
        keep_float: Vec::new(),
        int16: Vec::new(),
        bias_correction: false,
        equalize: false,
        choose_corrections: true,
        adaround: false,
        weights: opts.weights,
        kernels: None,
    };
    let int4_nodes = crate::quantize::int4_node_indices(&q, g, &[], &[]);
    let (start, init) = if int4_nodes.is_empty() {
        let spec = crate::pipeline::QuantizeSpec {
            per_tensor: opts.per_tensor,
            per_tensor_dense: opts.per_tensor_dense,
            float_io: opts.float_io,
            ..Default::default()
        };
        (crate::pipeline::training_start(model, calib, opts.calibration, &spec)?, None)
    } else {
        let (st, _) = crate::quantize::ptq_state(model, calib, &q, Some(&int4_nodes), &|_| {})?;
        let init = int4_start(&st)?;
        (st, Some(init))
    };
    let ranges = start.ranges;
    let model = &start.model;
    let g = &model.graph;

    let classes = per_sample > 1;
    let mut loss_reason = String::from("labels");
    let (loss, labels) = match supervision {
        Supervision::Labels(_) if matches!(opts.loss, Some(Loss::Kl { .. })) => {
            return Err(input(
                "--loss kl is a distillation loss: train with --distill, or with labels use cross-entropy or mse"
                    .into(),
            ))
        }
        Supervision::Labels(y) => {
            let metric = opts.metric.unwrap_or_else(|| default_metric(y, per_sample));
            let cross_entropy = match opts.loss {
                Some(l) => l == Loss::CrossEntropy,
                None => metric == Metric::Top1 && classes,
            };
            if cross_entropy {
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
        Supervision::Distill => {
            let from_labels = val.as_ref().map(|v| default_metric(v.labels, per_sample));
            let (loss, why) = distill_loss(g, opts.loss, opts.metric, from_labels, opts.temperature)?;
            loss_reason = why;
            (loss, LabelData::Teacher(Vec::new()))
        }
    };
    let cfg = QatConfig {
        ptq: PtqConfig {
            per_tensor: opts.per_tensor,
            per_tensor_dense: opts.per_tensor_dense,
            float_io: false,
            int4_nodes: int4_nodes.clone(),
        },
        fake_quant: true,
        ranges: opts.ranges,
        ema_momentum: 0.99,
        optimizer: opts.optimizer,
        loss,
    };
    let mut trainer = Trainer::new(init.as_ref().unwrap_or(g), ranges, cfg).map_err(engine_err(model))?;
    let labels = match labels {
        LabelData::Teacher(_) => {
            // The float model's values at the tensor the loss is taken on (its logits).
            let plan = Plan::new(g)?;
            let at = trainer.loss_tensor();
            let rows: Vec<Vec<f32>> = samples
                .par_iter()
                .map(|s| plan.run_observed(s, &mut |_, _| {}).map(|a| plan.value(&a, at).to_vec()))
                .collect::<Result<_, _>>()?;
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
    let ptq_cfg = PtqConfig {
        per_tensor: opts.per_tensor,
        per_tensor_dense: opts.per_tensor_dense,
        float_io: opts.float_io,
        int4_nodes,
    };
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
        loss_reason,
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

#[cfg(test)]
mod tests {
    use super::*;
    use tinyq_ir::op::{FullyConnected, Softmax};
    use tinyq_ir::{DType, Node, Op, Tensor, TensorData};

    /// x [1, 4] → dense → y [1, units], optionally followed by a softmax.
    fn dense(units: usize, softmax: bool) -> Graph {
        let mut g = Graph::default();
        let x = g.add_tensor(Tensor::activation("x", vec![1, 4], DType::F32));
        let w = g.add_tensor(Tensor::constant("w", vec![units, 4], TensorData::F32(vec![0.1; units * 4])));
        let y = g.add_tensor(Tensor::activation("y", vec![1, units], DType::F32));
        g.nodes.push(Node {
            name: "fc".into(),
            op: Op::FullyConnected(FullyConnected::default()),
            inputs: vec![x, w],
            outputs: vec![y],
        });
        g.inputs = vec![x];
        g.outputs = vec![y];
        if softmax {
            let p = g.add_tensor(Tensor::activation("p", vec![1, units], DType::F32));
            g.nodes.push(Node {
                name: "sm".into(),
                op: Op::Softmax(Softmax { beta: 1.0 }),
                inputs: vec![y],
                outputs: vec![p],
            });
            g.outputs = vec![p];
        }
        g
    }

    fn chosen(g: &Graph, named: Option<Loss>, metric: Option<Metric>, labels: Option<Metric>) -> &'static str {
        distill_loss(g, named, metric, labels, 2.0).unwrap().0.name()
    }

    #[test]
    fn distillation_uses_kl_only_for_class_scores() {
        let (classes, recon, one) = (dense(10, false), dense(4, false), dense(1, false));
        assert_eq!(chosen(&dense(10, true), None, None, None), "kl");
        assert_eq!(chosen(&classes, None, None, None), "kl");
        assert_eq!(chosen(&classes, None, Some(Metric::Rmse), None), "mse");
        assert_eq!(chosen(&classes, None, None, Some(Metric::Rmse)), "mse");
        // A reconstruction (output the input's size) and a single value are regressions, even
        // when the validation labels are integers (anomaly labels scored by AUC).
        assert_eq!(chosen(&recon, None, None, Some(Metric::Top1)), "mse");
        assert_eq!(chosen(&one, None, None, None), "mse");
        assert_eq!(chosen(&recon, None, Some(Metric::Top1), None), "kl");
        // The user's word wins; cross-entropy needs labels.
        assert_eq!(chosen(&classes, Some(Loss::Mse), None, None), "mse");
        assert_eq!(chosen(&recon, Some(Loss::Kl { temperature: 1.0 }), None, None), "kl");
        assert!(distill_loss(&classes, Some(Loss::CrossEntropy), None, None, 1.0).is_err());
    }
}
