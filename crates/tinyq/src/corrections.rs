//! Corrections applied to a quantized graph after the PTQ passes, measured on calibration data.
//!
//! `bias_correction` (empirical bias correction, Nagel et al. 2019, "Data-Free Quantization
//! Through Weight Equalization and Bias Correction", §4.2 in its empirical form): the int8 model
//! as its `.tflite` file runs it is run on calibration samples; for every convolution,
//! depthwise convolution and dense layer with an int32 bias, the layer's own error is measured
//! — its int8 output against its float kernel applied to the same (dequantized) int8 input, so
//! upstream errors do not count — and its mean per channel is added to the bias, in bias steps.

use rayon::prelude::*;
use tinyq_float::Plan;
use tinyq_int8::{Int8Plan, TensorValue};
use tinyq_ir::{DType, Graph, Op, TensorData};

use crate::{BoundInputs, Model, TinyqError};

/// Calibration samples the correction is measured on (spread evenly over the set).
pub const BIAS_CORRECTION_SAMPLES: usize = 64;

/// Per-channel sums of `float − int8` at one layer output, and the sample count.
#[derive(Clone)]
struct Drift {
    sum: Vec<f64>,
    count: Vec<u64>,
}

/// Corrects the int32 biases of `q` (quantized from `model`) in place; returns the number of
/// layers whose bias changed.
pub fn bias_correction(model: &Model, q: &mut Graph, calib: &BoundInputs) -> Result<usize, TinyqError> {
    let engine = |e: String| TinyqError::Engine(format!("{}: bias correction: {e}", model.path.display()));
    let g = &model.graph;
    // The layers to correct: int8 output, int32 bias, a float twin of the node by output name.
    let layers: Vec<(usize, usize)> = q
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| matches!(n.op, Op::Conv2D(_) | Op::DepthwiseConv2D(_) | Op::FullyConnected(_)))
        .filter(|(_, n)| n.inputs.get(2).is_some_and(|&b| q.tensor(b).dtype == DType::I32) && q.tensor(n.outputs[0]).dtype == DType::I8)
        .filter_map(|(k, n)| {
            let f = g.tensors.iter().position(|t| t.name == q.tensor(n.outputs[0]).name)?;
            g.producer(f).map(|p| (k, p))
        })
        .collect();
    if layers.is_empty() {
        return Ok(0);
    }
    // The file as TFLM runs it (explicit paddings lowered), its tensors found by name.
    let file = tinyq_tflite::read_tflite(&tinyq_tflite::write_tflite(q)?)?;
    let file_id = |name: &str| file.tensors.iter().position(|t| t.name == name);
    // Each layer's int8 input and output in the file.
    let targets: Vec<Option<(usize, usize)>> = layers
        .iter()
        .map(|&(k, _)| Some((file_id(&q.tensor(q.nodes[k].inputs[0]).name)?, file_id(&q.tensor(q.nodes[k].outputs[0]).name)?)))
        .collect();
    let fplan = Plan::new(g).map_err(|e| engine(e.to_string()))?;
    let qplan = Int8Plan::new(&file).map_err(|e| engine(e.to_string()))?;
    let sub = calib.spread(BIAS_CORRECTION_SAMPLES);
    let empty = tinyq_float::Activations { values: vec![None; g.tensors.len()] };
    let qsub = sub.rebind(&file)?;
    let channels = |k: usize| *q.tensor(q.nodes[k].outputs[0]).shape.last().unwrap_or(&1);
    let zero: Vec<Drift> = layers.iter().map(|&(k, _)| Drift { sum: vec![0.0; channels(k)], count: vec![0; channels(k)] }).collect();
    let drift = (0..sub.samples)
        .into_par_iter()
        .try_fold(
            || zero.clone(),
            |mut acc, i| -> Result<_, TinyqError> {
                let args: Vec<TensorValue> = qsub.sample(i).into_iter().map(|s| s.to_value()).collect();
                let qacts = qplan.run_observed(&args, &mut |_, _| {}).map_err(|e| engine(e.to_string()))?;
                let real = |t: usize| -> Option<Vec<f32>> {
                    let (TensorValue::I8(v), Some(p)) = (qplan.value(&qacts, t), file.tensor(t).qparams.as_ref()) else { return None };
                    Some(v.iter().map(|&y| ((y as i32 - p.zero_point[0]) as f64 * p.scale[0] as f64) as f32).collect())
                };
                for (d, (&(_, f), t)) in acc.iter_mut().zip(layers.iter().zip(&targets)) {
                    let Some((x, y)) = *t else { continue };
                    let (Some(xr), Some(yr)) = (real(x), real(y)) else { continue };
                    let node = &g.nodes[f];
                    let inputs: Vec<&[f32]> = node.inputs.iter().enumerate().map(|(j, &t)| if j == 0 { xr.as_slice() } else { fplan.value(&empty, t) }).collect();
                    let reference = fplan.eval_node(node, &inputs);
                    let c = d.sum.len();
                    for (j, (&x, &y)) in reference.iter().zip(&yr).enumerate() {
                        d.sum[j % c] += x as f64 - y as f64;
                        d.count[j % c] += 1;
                    }
                }
                Ok(acc)
            },
        )
        .try_reduce(
            || zero.clone(),
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(&b) {
                    x.sum.iter_mut().zip(&y.sum).for_each(|(s, t)| *s += t);
                    x.count.iter_mut().zip(&y.count).for_each(|(s, t)| *s += t);
                }
                Ok(a)
            },
        )?;
    let mut changed = 0;
    for (&(k, _), d) in layers.iter().zip(&drift) {
        let n = &q.nodes[k];
        let (x, w, b) = (n.inputs[0], n.inputs[1], n.inputs[2]);
        let (Some(xq), Some(wq)) = (q.tensor(x).qparams.clone(), q.tensor(w).qparams.clone()) else { continue };
        let Some(TensorData::I32(bias)) = &mut q.tensors[b].data else { continue };
        if bias.len() != d.sum.len() {
            continue;
        }
        let mut any = false;
        for (c, v) in bias.iter_mut().enumerate() {
            let step = xq.scale[0] as f64 * wq.scale[c % wq.scale.len()] as f64;
            let delta = (d.sum[c] / d.count[c].max(1) as f64 / step).round();
            if delta != 0.0 && step > 0.0 {
                *v = (*v as f64 + delta).clamp(i32::MIN as f64, i32::MAX as f64) as i32;
                any = true;
            }
        }
        changed += any as usize;
    }
    Ok(changed)
}
