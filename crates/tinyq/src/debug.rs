//! The quantization debugger: runs the float model and its INT8 counterpart on the same samples,
//! aligns their tensors by name, and measures per layer how much error the INT8 model carries
//! and how much each layer adds on its own (the layer alone, fed with the float model's input).

use rayon::prelude::*;
use serde::Serialize;
use tinyq_float::Plan;
use tinyq_int8::{Int8Plan, TensorValue};
use tinyq_ir::{DType, Graph, Op, TensorId};

use crate::{BoundInputs, Model, TinyqError};

/// Error statistics of one tensor, accumulated over samples.
#[derive(Clone, Copy, Debug, Default)]
struct ErrorStats {
    signal: f64,
    noise: f64,
    dot: f64,
    quantized: f64,
    max_abs: f64,
    sum_abs: f64,
    sum_abs_signal: f64,
    count: u64,
    clipped: u64,
}

impl ErrorStats {
    fn add(&mut self, f: &[f32], q: &[f32], range: (f32, f32)) {
        for (&a, &b) in f.iter().zip(q) {
            let (a, b) = (a as f64, b as f64);
            let e = a - b;
            self.signal += a * a;
            self.noise += e * e;
            self.dot += a * b;
            self.quantized += b * b;
            self.max_abs = self.max_abs.max(e.abs());
            self.sum_abs += e.abs();
            self.sum_abs_signal += a.abs();
            self.clipped += u64::from(a < range.0 as f64 || a > range.1 as f64);
        }
        self.count += f.len() as u64;
    }

    fn merge(&mut self, o: &ErrorStats) {
        self.signal += o.signal;
        self.noise += o.noise;
        self.dot += o.dot;
        self.quantized += o.quantized;
        self.max_abs = self.max_abs.max(o.max_abs);
        self.sum_abs += o.sum_abs;
        self.sum_abs_signal += o.sum_abs_signal;
        self.count += o.count;
        self.clipped += o.clipped;
    }

    fn sqnr_db(&self) -> f64 {
        if self.noise == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (self.signal / self.noise).log10()
        }
    }
}

/// Per-channel error of a layer run alone (channels = the last axis).
#[derive(Clone, Debug, Default)]
struct ChannelStats {
    signal: Vec<f64>,
    noise: Vec<f64>,
    /// Values seen per channel.
    count: u64,
}

impl ChannelStats {
    fn add(&mut self, reference: &[f32], q: &[f32], channels: usize) {
        if self.signal.is_empty() {
            self.signal = vec![0.0; channels];
            self.noise = vec![0.0; channels];
        }
        for (i, (&a, &b)) in reference.iter().zip(q).enumerate() {
            let c = i % channels;
            self.signal[c] += (a as f64).powi(2);
            self.noise[c] += (a as f64 - b as f64).powi(2);
        }
        self.count += (reference.len() / channels) as u64;
    }

    /// How many channels have an RMS value under `lsb` steps of `scale`, of how many.
    fn quiet_channels(&self, scale: f64, lsb: f64) -> (usize, usize) {
        let n = self.count.max(1) as f64;
        let quiet = self.signal.iter().filter(|&&s| (s / n).sqrt() / scale < lsb).count();
        (quiet, self.signal.len())
    }

    fn merge(&mut self, o: &ChannelStats) {
        if self.signal.is_empty() {
            *self = o.clone();
        } else if !o.signal.is_empty() {
            self.signal.iter_mut().zip(&o.signal).for_each(|(a, b)| *a += b);
            self.noise.iter_mut().zip(&o.noise).for_each(|(a, b)| *a += b);
            self.count += o.count;
        }
    }

    /// Mean over channels of each channel's SQNR (capped at 100 dB), so that a channel with a
    /// large signal cannot hide the others.
    fn mean_sqnr_db(&self) -> Option<f64> {
        let per: Vec<f64> = self
            .signal
            .iter()
            .zip(&self.noise)
            .filter(|(s, _)| **s > 0.0)
            .map(|(s, n)| if *n == 0.0 { 100.0 } else { (10.0 * (s / n).log10()).min(100.0) })
            .collect();
        (!per.is_empty()).then(|| per.iter().sum::<f64>() / per.len() as f64)
    }

    fn noise(&self) -> f64 {
        self.noise.iter().sum()
    }
}

/// One layer of the INT8 model next to its float counterpart.
#[derive(Clone, Debug, Serialize)]
pub struct LayerDebug {
    pub tensor: String,
    pub op: &'static str,
    /// Signal-to-quantization-noise ratio of the INT8 tensor against the float one, in dB.
    pub sqnr_db: f64,
    pub cosine: f64,
    /// Largest and mean absolute error, in units of the tensor's scale (LSB).
    pub max_abs_error_lsb: f64,
    pub mean_abs_error_lsb: f64,
    /// Fraction of float values outside the INT8 tensor's representable range.
    pub clipped_fraction: f64,
    /// Mean |value| of the float tensor in LSB: small means the range is wide for the values.
    pub mean_abs_value_lsb: f64,
    /// Largest over smallest per-output-channel weight range (conv, depthwise, dense).
    pub weight_spread: Option<f64>,
    /// The error the layer adds on its own: the INT8 layer fed with the float model's input
    /// (quantized) against the float layer fed with the same values; mean of per-channel SQNRs.
    pub own_sqnr_db: Option<f64>,
    /// Share of this tensor's error power the layer adds itself (the rest it inherits).
    pub own_error_share: Option<f64>,
    pub suggestion: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DebugReport {
    pub samples: usize,
    /// Layers in execution order.
    pub layers: Vec<LayerDebug>,
    /// Tensor names, the layers that hurt most first (lowest own SQNR).
    pub ranking: Vec<String>,
    /// SQNR of the model's first output.
    pub output_sqnr_db: f64,
}

fn dequantize(v: &TensorValue, g: &Graph, t: TensorId) -> Option<Vec<f32>> {
    match v {
        TensorValue::F32(x) => Some(x.clone()),
        TensorValue::I8(x) => {
            let q = g.tensor(t).qparams.as_ref()?;
            Some(x.iter().map(|&v| ((v as i32 - q.zero_point[0]) as f64 * q.scale[0] as f64) as f32).collect())
        }
        TensorValue::I32(_) => None,
    }
}

fn representable(g: &Graph, t: TensorId) -> (f32, f32, f32) {
    match (&g.tensor(t).qparams, g.tensor(t).dtype) {
        (Some(q), DType::I8) => {
            let (s, z) = (q.scale[0], q.zero_point[0]);
            (((-128 - z) as f32 - 0.5) * s, ((127 - z) as f32 + 0.5) * s, s)
        }
        _ => (f32::NEG_INFINITY, f32::INFINITY, 1.0),
    }
}

/// The layer alone, fed at tensors that have a float twin: its node plus any glue before it that
/// the float model does not have (the PAD an explicit padding became). Returns the plan and its
/// input tensors (ids of `g`).
fn layer_alone(g: &Graph, n: usize, has_twin: &dyn Fn(TensorId) -> bool) -> Option<(Int8Plan, Vec<TensorId>)> {
    let mut nodes = vec![n];
    let mut inputs = Vec::new();
    let mut pending: Vec<TensorId> = g.nodes[n].inputs.clone();
    while let Some(t) = pending.pop() {
        if g.tensor(t).is_constant() || inputs.contains(&t) {
            continue;
        }
        if has_twin(t) {
            inputs.push(t);
            continue;
        }
        let p = g.producer(t)?;
        if nodes.len() > 4 || nodes.contains(&p) {
            return None;
        }
        nodes.push(p);
        pending.extend(g.nodes[p].inputs.iter().copied());
    }
    if inputs.is_empty() || inputs.iter().any(|&t| g.tensor(t).dtype != DType::I8) {
        return None;
    }
    nodes.sort_unstable();
    let mut sub = g.clone();
    sub.nodes = nodes.iter().map(|&k| g.nodes[k].clone()).collect();
    sub.inputs = inputs.clone();
    sub.outputs = vec![g.nodes[n].outputs[0]];
    sub.compact();
    Int8Plan::new(&sub).ok().map(|p| (p, inputs))
}

/// The float layer producing `ft`, fed at `inputs` (float tensor ids, in this order).
fn float_alone(g: &Graph, ft: TensorId, inputs: &[TensorId]) -> Option<Plan> {
    let n = g.producer(ft)?;
    let node = &g.nodes[n];
    let mut needed: Vec<TensorId> = node.inputs.iter().copied().filter(|&t| !g.tensor(t).is_constant()).collect();
    let mut given = inputs.to_vec();
    needed.sort_unstable();
    given.sort_unstable();
    if needed != given {
        return None;
    }
    let mut sub = g.clone();
    sub.nodes = vec![node.clone()];
    sub.inputs = inputs.to_vec();
    sub.outputs = vec![ft];
    sub.compact();
    Plan::new(&sub).ok()
}

fn weight_spread(g: &Graph, n: &tinyq_ir::Node) -> Option<f64> {
    let axis = match n.op {
        Op::Conv2D(_) | Op::FullyConnected(_) => 0,
        Op::DepthwiseConv2D(_) => 3,
        _ => return None,
    };
    let w = g.tensor(*n.inputs.get(1)?);
    let data = w.f32_data()?;
    let channels = w.shape[axis];
    let inner: usize = w.shape[axis + 1..].iter().product();
    let mut max = vec![0f64; channels];
    for (i, &v) in data.iter().enumerate() {
        let c = (i / inner) % channels;
        max[c] = max[c].max(v.abs() as f64);
    }
    let lo = max.iter().copied().filter(|&m| m > 0.0).fold(f64::INFINITY, f64::min);
    let hi = max.iter().copied().fold(0.0, f64::max);
    (lo.is_finite() && lo > 0.0).then(|| hi / lo)
}

/// Compares `int8` (a quantized model, tensors named as in `fp32`) with `fp32` on the samples.
pub fn debug(fp32: &Model, int8: &Model, f_inputs: &BoundInputs, q_inputs: &BoundInputs) -> Result<DebugReport, TinyqError> {
    let err = |e: String| TinyqError::Engine(e);
    let fplan = Plan::new(&fp32.graph).map_err(|e| err(format!("{}: {e}", fp32.path.display())))?;
    let qplan = Int8Plan::new(&int8.graph).map_err(|e| err(format!("{}: {e}", int8.path.display())))?;
    let (fg, qg) = (&fp32.graph, &int8.graph);
    let by_name: std::collections::HashMap<&str, TensorId> = fg.tensors.iter().enumerate().map(|(i, t)| (t.name.as_str(), i)).collect();
    // Every INT8 node output with a float twin of the same size.
    let aligned: Vec<(usize, TensorId, TensorId)> = qg
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(n, node)| {
            let t = node.outputs[0];
            let name = qg.tensor(t).name.trim_end_matches("_int8");
            let f = *by_name.get(name)?;
            (fg.tensor(f).numel() == qg.tensor(t).numel() && qg.tensor(t).dtype == DType::I8).then_some((n, t, f))
        })
        .collect();
    if aligned.is_empty() {
        return Err(TinyqError::Model(format!(
            "{} and {}: no INT8 tensor has a float counterpart of the same name",
            fp32.path.display(),
            int8.path.display()
        )));
    }
    let twin = |t: TensorId| by_name.get(qg.tensor(t).name.trim_end_matches("_int8")).copied();
    let has_twin = |t: TensorId| twin(t).is_some();
    let singles: Vec<Option<(Int8Plan, Vec<TensorId>)>> = aligned.iter().map(|&(n, _, _)| layer_alone(qg, n, &has_twin)).collect();
    let input_twins = |inputs: &[TensorId]| -> Option<Vec<TensorId>> { inputs.iter().map(|&t| twin(t)).collect() };
    let twins: Vec<Option<Vec<TensorId>>> = singles.iter().map(|s| s.as_ref().and_then(|(_, ins)| input_twins(ins))).collect();
    let floats: Vec<Option<Plan>> =
        aligned.iter().zip(&twins).map(|(&(_, _, ft), fins)| fins.as_ref().and_then(|fins| float_alone(fg, ft, fins))).collect();
    let zero = || (vec![ErrorStats::default(); aligned.len()], vec![ChannelStats::default(); aligned.len()]);
    let (total, own) = (0..f_inputs.samples)
        .into_par_iter()
        .try_fold(zero, |(mut total, mut own), i| -> Result<_, TinyqError> {
            let fs = f_inputs.sample_f32(i).ok_or_else(|| err("the float model needs float data".into()))?;
            let facts = fplan.run_observed(&fs, &mut |_, _| {}).map_err(|e| err(e.to_string()))?;
            let qs: Vec<TensorValue> = q_inputs
                .sample(i)
                .into_iter()
                .map(|s| match s {
                    crate::SampleRef::F32(v) => TensorValue::F32(v.to_vec()),
                    crate::SampleRef::I8(v) => TensorValue::I8(v.to_vec()),
                })
                .collect();
            let qacts = qplan.run_observed(&qs, &mut |_, _| {}).map_err(|e| err(e.to_string()))?;
            for (k, &(_, qt, ft)) in aligned.iter().enumerate() {
                let f = fplan.value(&facts, ft);
                let (lo, hi, _) = representable(qg, qt);
                if let Some(q) = dequantize(qplan.value(&qacts, qt), qg, qt) {
                    total[k].add(f, &q, (lo, hi));
                }
                let (Some((plan, ins)), Some(fins), Some(fl)) = (&singles[k], &twins[k], &floats[k]) else { continue };
                let args: Vec<TensorValue> = ins
                    .iter()
                    .zip(fins)
                    .map(|(&qi, &fi)| {
                        let p = qg.tensor(qi).qparams.as_ref().expect("int8 tensors carry qparams");
                        TensorValue::I8(crate::quantize_s8(fplan.value(&facts, fi), p.scale[0], p.zero_point[0]))
                    })
                    .collect();
                let real: Vec<Vec<f32>> = args.iter().zip(ins).filter_map(|(a, &qi)| dequantize(a, qg, qi)).collect();
                let reference = fl.run(&real.iter().map(Vec::as_slice).collect::<Vec<_>>()).map_err(|e| err(e.to_string()))?;
                let out = plan.run(&args).map_err(|e| err(e.to_string()))?;
                if let Some(q) = dequantize(&out[0], plan.graph(), plan.graph().outputs[0]) {
                    let channels = *qg.tensor(qt).shape.last().unwrap_or(&1);
                    own[k].add(&reference[0], &q, channels.max(1));
                }
            }
            Ok((total, own))
        })
        .try_reduce(zero, |(mut a, mut b), (c, d)| {
            a.iter_mut().zip(&c).for_each(|(x, y)| x.merge(y));
            b.iter_mut().zip(&d).for_each(|(x, y)| x.merge(y));
            Ok((a, b))
        })?;

    let layers: Vec<LayerDebug> = aligned
        .iter()
        .enumerate()
        .map(|(k, &(n, qt, ft))| {
            let (t, o) = (&total[k], &own[k]);
            let (_, _, scale) = representable(qg, qt);
            let count = t.count.max(1) as f64;
            let producer = fg.producer(ft).map(|p| &fg.nodes[p]);
            let spread = producer.and_then(|p| weight_spread(fg, p));
            let own_sqnr = o.mean_sqnr_db();
            let clipped = t.clipped as f64 / count;
            let mean_abs_value_lsb = t.sum_abs_signal / count / scale as f64;
            let suggestion = if clipped > 0.01 {
                Some(format!("{:.1}% of values clipped: try --calibration percentile or mse", clipped * 100.0))
            } else if spread.is_some_and(|s| s > 100.0) {
                Some(format!("per-channel weight spread {:.0}×: try equalization or int16 activations", spread.unwrap_or(0.0)))
            } else if let Some((quiet, all)) = Some(o.quiet_channels(scale as f64, 2.0)).filter(|&(q, a)| a > 1 && 2 * q > a) {
                Some(format!(
                    "{quiet} of {all} channels stay under 2 LSB: the range is set by a few outliers; try --calibration percentile or mse, or equalization"
                ))
            } else if mean_abs_value_lsb < 2.0 {
                Some(format!(
                    "values average {mean_abs_value_lsb:.1} LSB: the range is wide for them (outliers?); try --calibration percentile or mse"
                ))
            } else {
                None
            };
            LayerDebug {
                tensor: qg.tensor(qt).name.trim_end_matches("_int8").to_string(),
                op: qg.nodes[n].op.name(),
                sqnr_db: t.sqnr_db(),
                cosine: t.dot / (t.signal.sqrt() * t.quantized.sqrt()).max(f64::MIN_POSITIVE),
                max_abs_error_lsb: t.max_abs / scale as f64,
                mean_abs_error_lsb: t.sum_abs / count / scale as f64,
                clipped_fraction: clipped,
                mean_abs_value_lsb,
                weight_spread: spread,
                own_sqnr_db: own_sqnr,
                own_error_share: (own_sqnr.is_some() && t.noise > 0.0).then(|| (o.noise() / t.noise).min(1.0)),
                suggestion,
            }
        })
        .collect();
    let mut order: Vec<usize> = (0..layers.len()).collect();
    let key = |l: &LayerDebug| l.own_sqnr_db.unwrap_or(l.sqnr_db);
    order.sort_by(|&a, &b| key(&layers[a]).total_cmp(&key(&layers[b])));
    let out_name = qg.tensor(qg.outputs[0]).name.trim_end_matches("_int8").to_string();
    let output_sqnr_db = layers.iter().find(|l| l.tensor == out_name).map_or(f64::NAN, |l| l.sqnr_db);
    Ok(DebugReport { samples: f_inputs.samples, ranking: order.iter().map(|&i| layers[i].tensor.clone()).collect(), layers, output_sqnr_db })
}
