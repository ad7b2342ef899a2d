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
        .filter(|(_, n)| n.op.has_weights())
        .filter(|(_, n)| {
            n.inputs.get(2).is_some_and(|&b| q.tensor(b).dtype == DType::I32)
                && q.tensor(n.outputs[0]).dtype == DType::I8
        })
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
        .map(|&(k, _)| {
            Some((file_id(&q.tensor(q.nodes[k].inputs[0]).name)?, file_id(&q.tensor(q.nodes[k].outputs[0]).name)?))
        })
        .collect();
    let fplan = Plan::new(g).map_err(|e| engine(e.to_string()))?;
    let qplan = Int8Plan::new(&file).map_err(|e| engine(e.to_string()))?;
    let sub = calib.spread(BIAS_CORRECTION_SAMPLES);
    let empty = tinyq_float::Activations { values: vec![None; g.tensors.len()] };
    let qsub = sub.rebind(&file)?;
    let channels = |k: usize| *q.tensor(q.nodes[k].outputs[0]).shape.last().unwrap_or(&1);
    let zero: Vec<Drift> =
        layers.iter().map(|&(k, _)| Drift { sum: vec![0.0; channels(k)], count: vec![0; channels(k)] }).collect();
    // Each sample's drift in parallel, then summed in sample order: the sums do not depend on
    // how the work is split between threads.
    let per_sample: Vec<Vec<Drift>> = (0..sub.samples)
        .into_par_iter()
        .map(|i| -> Result<_, TinyqError> {
            let mut acc = zero.clone();
            let args: Vec<TensorValue> = qsub.sample(i).into_iter().map(|s| s.to_value()).collect();
            let qacts = qplan.run_observed(&args, &mut |_, _| {}).map_err(|e| engine(e.to_string()))?;
            let real = |t: usize| -> Option<Vec<f32>> {
                let (TensorValue::I8(v), Some(p)) = (qplan.value(&qacts, t), file.tensor(t).qparams.as_ref()) else {
                    return None;
                };
                Some(v.iter().map(|&y| ((y as i32 - p.zero_point[0]) as f64 * p.scale[0] as f64) as f32).collect())
            };
            for (d, (&(_, f), t)) in acc.iter_mut().zip(layers.iter().zip(&targets)) {
                let Some((x, y)) = *t else { continue };
                let (Some(xr), Some(yr)) = (real(x), real(y)) else { continue };
                let node = &g.nodes[f];
                let inputs: Vec<&[f32]> = node
                    .inputs
                    .iter()
                    .enumerate()
                    .map(|(j, &t)| if j == 0 { xr.as_slice() } else { fplan.value(&empty, t) })
                    .collect();
                let reference = fplan.eval_node(node, &inputs);
                let c = d.sum.len();
                for (j, (&x, &y)) in reference.iter().zip(&yr).enumerate() {
                    d.sum[j % c] += x as f64 - y as f64;
                    d.count[j % c] += 1;
                }
            }
            Ok(acc)
        })
        .collect::<Result<_, _>>()?;
    let mut drift = zero;
    for sample in &per_sample {
        for (x, y) in drift.iter_mut().zip(sample) {
            x.sum.iter_mut().zip(&y.sum).for_each(|(s, t)| *s += t);
            x.count.iter_mut().zip(&y.count).for_each(|(s, t)| *s += t);
        }
    }
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

/// Cross-layer equalization (Nagel et al. 2019, §4.1): for each convolution or depthwise
/// convolution whose only reader is another one, through no activation or a ReLU (positive
/// scaling commutes with both; ReLU6 and other clipping activations do not, and are skipped),
/// output channel `c` of the first is divided by `s_c = sqrt(r1_c / r2_c)` and input channel `c`
/// of the second multiplied by it (`r` the channels' largest absolute weights), so both weight
/// tensors' channels span equal ranges. The float function is unchanged. Returns the new graph and
/// the number of layer pairs equalized.
pub fn equalize(g: &Graph) -> (Graph, usize) {
    use tinyq_ir::FusedActivation;
    let mut q = g.clone();
    let mut pairs = 0;
    for k in 0..g.nodes.len() {
        let n1 = &q.nodes[k];
        let act = match &n1.op {
            Op::Conv2D(p) => p.activation,
            Op::DepthwiseConv2D(p) => p.conv.activation,
            _ => continue,
        };
        if !matches!(act, FusedActivation::None | FusedActivation::Relu) || q.outputs.contains(&n1.outputs[0]) {
            continue;
        }
        let readers = q.consumers(n1.outputs[0]);
        let [r] = readers[..] else { continue };
        let n2 = &q.nodes[r];
        // The second layer must be a convolution (4-D weights), reading the first one's output.
        if n2.op.weights().is_none_or(|w| w.rank != 4) || n2.inputs[0] != n1.outputs[0] {
            continue;
        }
        let Some(out_axis) = n1.op.weights().map(|w| w.channel_axis) else { continue };
        let (w1, w2, b1) = (n1.inputs[1], n2.inputs[1], n1.inputs.get(2).copied());
        let (s1, s2) = (q.tensor(w1).shape.clone(), q.tensor(w2).shape.clone());
        let (Some(d1), Some(d2)) = (q.tensor(w1).f32_data(), q.tensor(w2).f32_data()) else { continue };
        let channels = s1[out_axis];
        // The second layer's input channel is its last axis (OHWI conv, [1, H, W, C] depthwise).
        if s2.last() != Some(&channels) || (matches!(n2.op, Op::DepthwiseConv2D(_)) && s2[3] != channels) {
            continue;
        }
        let inner1: usize = s1[out_axis + 1..].iter().product();
        let ch1 = |i: usize| (i / inner1) % channels;
        let ch2 = |i: usize| i % channels;
        let (mut r1, mut r2) = (vec![0f32; channels], vec![0f32; channels]);
        d1.iter().enumerate().for_each(|(i, v)| r1[ch1(i)] = r1[ch1(i)].max(v.abs()));
        d2.iter().enumerate().for_each(|(i, v)| r2[ch2(i)] = r2[ch2(i)].max(v.abs()));
        let s: Vec<f32> =
            r1.iter().zip(&r2).map(|(&a, &b)| if a > 0.0 && b > 0.0 { (a / b).sqrt() } else { 1.0 }).collect();
        let d1: Vec<f32> = d1.iter().enumerate().map(|(i, v)| v / s[ch1(i)]).collect();
        let d2: Vec<f32> = d2.iter().enumerate().map(|(i, v)| v * s[ch2(i)]).collect();
        q.tensors[w1].data = Some(TensorData::F32(d1));
        q.tensors[w2].data = Some(TensorData::F32(d2));
        if let Some(b) = b1.and_then(|b| q.tensor(b).f32_data().map(|d| (b, d))) {
            q.tensors[b.0].data =
                Some(TensorData::F32(b.1.iter().enumerate().map(|(c, v)| v / s[c % channels]).collect()));
        }
        pairs += 1;
    }
    (q, pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinyq_ir::op::{Conv2D, DepthwiseConv2D};
    use tinyq_ir::{FusedActivation, Node, Padding, Tensor};

    /// x [1, 3, 3, 2] → conv 1×1 (ReLU, channel ranges 1 and 8) → depthwise 3×3 → y.
    fn conv_then_depthwise(act: FusedActivation) -> Graph {
        let mut g = Graph::default();
        let x = g.add_tensor(Tensor::activation("x", vec![1, 3, 3, 2], DType::F32));
        let w1 = g.add_tensor(Tensor::constant("w1", vec![2, 1, 1, 2], TensorData::F32(vec![1.0, -0.5, 8.0, 4.0])));
        let b1 = g.add_tensor(Tensor::constant("b1", vec![2], TensorData::F32(vec![0.1, -0.2])));
        let h = g.add_tensor(Tensor::activation("h", vec![1, 3, 3, 2], DType::F32));
        let w2 = g.add_tensor(Tensor::constant(
            "w2",
            vec![1, 3, 3, 2],
            TensorData::F32((0..18).map(|i| (i as f32 - 8.0) / 4.0).collect()),
        ));
        let y = g.add_tensor(Tensor::activation("y", vec![1, 1, 1, 2], DType::F32));
        let conv = Conv2D { stride: [1, 1], dilation: [1, 1], padding: Padding::Valid, activation: act };
        let dw = DepthwiseConv2D { conv: Conv2D { activation: FusedActivation::None, ..conv }, depth_multiplier: 1 };
        g.nodes.push(Node { name: "conv".into(), op: Op::Conv2D(conv), inputs: vec![x, w1, b1], outputs: vec![h] });
        g.nodes.push(Node { name: "dw".into(), op: Op::DepthwiseConv2D(dw), inputs: vec![h, w2], outputs: vec![y] });
        g.inputs = vec![x];
        g.outputs = vec![y];
        g
    }

    #[test]
    fn equalization_balances_channels_and_keeps_the_function() {
        let g = conv_then_depthwise(FusedActivation::Relu);
        let (e, pairs) = equalize(&g);
        assert_eq!(pairs, 1);
        let x: Vec<f32> = (0..18).map(|i| (i as f32 * 0.37).sin()).collect();
        let (a, b) = (Plan::new(&g).unwrap().run(&[&x]).unwrap(), Plan::new(&e).unwrap().run(&[&x]).unwrap());
        for (p, q) in a[0].iter().zip(&b[0]) {
            assert!((p - q).abs() <= 1e-5 * (1.0 + p.abs()), "{a:?} vs {b:?}");
        }
        // After equalization both layers' channel ranges are sqrt(r1 · r2) per channel.
        let w1 = e.tensor(1).f32_data().unwrap();
        let w2 = e.tensor(4).f32_data().unwrap();
        let r = |d: &[f32], c: usize, f: &dyn Fn(usize) -> usize| {
            d.iter().enumerate().filter(|(i, _)| f(*i) == c).fold(0f32, |m, (_, v)| m.max(v.abs()))
        };
        for c in 0..2 {
            let (r1, r2) = (r(&w1, c, &|i| i / 2), r(&w2, c, &|i| i % 2));
            assert!((r1 - r2).abs() < 1e-5, "channel {c}: {r1} vs {r2}");
        }
        // ReLU6 clips at 6 and does not commute with scaling: left alone.
        assert_eq!(equalize(&conv_then_depthwise(FusedActivation::Relu6)).1, 0);
    }
}
