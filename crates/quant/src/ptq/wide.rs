//! The int16 step: layers run as TFLM's 16x8 kernels, with QUANTIZE at the int8 boundaries.

use tinyq_ir::{DType, Graph, Node, Op, QParams, Tensor, TensorData, TensorId};

use super::{output_rule, OutputRule};
use crate::{quantize_bias_i64, symmetric_int16_scale, QuantError};

/// Rewrites the int16 nodes of `q` (its nodes are still `g`'s, one for one): int16 activations
/// with QUANTIZE nodes at the int8 boundaries, int64 bias for the layers with weights, int16
/// constant operands. Returns, for each node of the new list, the index of the `g` node it comes
/// from (`None` for an added QUANTIZE).
pub(super) fn to_16x8(
    q: &mut Graph,
    g: &Graph,
    ranges: &[Option<(f32, f32)>],
    is_wide: &[bool],
) -> Result<Vec<Option<usize>>, QuantError> {
    let tensor_err = |t: TensorId, msg: String| QuantError::Tensor { tensor: g.tensor(t).name.clone(), msg };
    let scale_of = |t: TensorId| -> Result<f32, QuantError> {
        let (lo, hi) = ranges[t].ok_or_else(|| tensor_err(t, "has no calibrated range".into()))?;
        symmetric_int16_scale(lo, hi).map_err(|e| tensor_err(t, e.to_string()))
    };
    let int16_q = |scale: f32| QParams { scale: vec![scale], zero_point: vec![0], axis: None };
    let old = std::mem::take(&mut q.nodes);
    let mut twin: std::collections::HashMap<TensorId, TensorId> = Default::default();
    let mut nodes = Vec::with_capacity(old.len() + 4);
    let mut origin = Vec::with_capacity(old.len() + 4);
    for (k, mut n) in old.into_iter().enumerate() {
        if !is_wide[k] {
            nodes.push(n);
            origin.push(Some(k));
            continue;
        }
        let node_err = |msg: String| QuantError::Node { node: n.name.clone(), op: n.op.name(), msg };
        let has_weights = n.op.has_weights();
        // A layer reads one activation (its weights and bias are constants); ADD and
        // CONCATENATION read all their inputs.
        let activations = if has_weights { 1 } else { n.inputs.len() };
        for slot in 0..activations {
            let x = n.inputs[slot];
            if g.tensor(x).is_constant() {
                if let Op::Concat(_) = n.op {
                    // Its inputs share the output's scale, which calibration sets without it.
                    return Err(node_err(
                        "cannot run with int16 activations: a constant input of CONCATENATION".into(),
                    ));
                }
                // A constant operand of ADD: int16, symmetric over its values.
                let v = g.const_f32(x).ok_or_else(|| tensor_err(x, "is not a float constant".into()))?;
                let (lo, hi) = v.iter().fold((0f32, 0f32), |(a, b), &x| (a.min(x), b.max(x)));
                let scale = symmetric_int16_scale(lo, hi).map_err(|e| tensor_err(x, e.to_string()))?;
                let mut c = g.tensor(x).clone();
                c.dtype = DType::I16;
                c.data = Some(TensorData::I16(
                    v.iter().map(|&x| (x / scale).round().clamp(-32768.0, 32767.0) as i16).collect(),
                ));
                c.qparams = Some(int16_q(scale));
                if g.consumers(x).iter().all(|&r| is_wide[r]) {
                    q.tensors[x] = c;
                } else {
                    c.name = format!("{}_int16", c.name);
                    n.inputs[slot] = q.add_tensor(c);
                }
                continue;
            }
            n.inputs[slot] = match twin.get(&x) {
                Some(&t) => t,
                None => {
                    let name = q.tensors[x].name.clone();
                    let mut t = Tensor::activation(format!("{name}_int16"), q.tensors[x].shape.clone(), DType::I16);
                    t.qparams = Some(int16_q(scale_of(x)?));
                    let t = q.add_tensor(t);
                    nodes.push(Node {
                        name: format!("{name}/to_int16"),
                        op: Op::Quantize,
                        inputs: vec![x],
                        outputs: vec![t],
                    });
                    origin.push(None);
                    twin.insert(x, t);
                    t
                }
            };
        }
        let s_in = q.tensors[n.inputs[0]].qparams.as_ref().map_or(1.0, |p| p.scale[0]);
        let o = n.outputs[0];
        // Pools and reshapes keep their input's parameters, in int16 as in int8.
        let s_out = match output_rule(&n.op).map_err(node_err)? {
            OutputRule::SameAsInput => s_in,
            _ => scale_of(o)?,
        };
        if has_weights {
            if let Some(&b) = n.inputs.get(2) {
                let bias = g.const_f32(b).ok_or_else(|| node_err("bias is not constant".into()))?;
                let wq = q.tensors[n.inputs[1]]
                    .qparams
                    .clone()
                    .ok_or_else(|| QuantError::Graph("weights without quantization".into()))?;
                let mut bt = q.tensors[b].clone();
                bt.data = Some(TensorData::I64(quantize_bias_i64(&bias, s_in, &wq.scale)));
                bt.dtype = DType::I64;
                let scales: Vec<f32> = wq.scale.iter().map(|&s| (s_in as f64 * s as f64) as f32).collect();
                bt.qparams =
                    Some(QParams { zero_point: vec![0; scales.len()], scale: scales, axis: wq.axis.map(|_| 0) });
                if g.consumers(b).len() > 1 {
                    bt.name = format!("{}_int64", bt.name);
                    n.inputs[2] = q.add_tensor(bt);
                } else {
                    q.tensors[b] = bt;
                }
            }
            // TFLM's 16x8 kernels reduce the int64 accumulator with a left shift of at most 7.
            if let Some(w) = q.tensors[n.inputs[1]].qparams.as_ref() {
                if let Some(&ws) = w.scale.iter().find(|&&ws| s_in as f64 * ws as f64 / s_out as f64 >= 128.0) {
                    return Err(node_err(format!(
                        "cannot run with int16 activations: input scale {s_in:e} × weight scale {ws:e} / output scale {s_out:e} is 128 or more (TFLM's 16x8 kernels need less)"
                    )));
                }
            }
        }
        // TFLM's int16 ADD rescales both inputs to 2 · max(s1, s2) / 2^15 and needs a multiplier
        // below 1 from there to the output.
        if let Op::Add(_) = n.op {
            let s_max =
                n.inputs.iter().filter_map(|&t| q.tensors[t].qparams.as_ref()).map(|p| p.scale[0]).fold(0f32, f32::max);
            if s_max as f64 / 16384.0 >= s_out as f64 {
                return Err(node_err(format!(
                    "cannot run with int16 activations: output scale {s_out:e} is not above the larger input scale {s_max:e} / 16384 (TFLM's int16 ADD needs it)"
                )));
            }
        }
        let readers = g.consumers(o);
        let shared = !g.outputs.contains(&o) && !readers.is_empty() && readers.iter().all(|&c| is_wide[c]);
        if shared {
            q.tensors[o].dtype = DType::I16;
            q.tensors[o].qparams = Some(int16_q(s_out));
            twin.insert(o, o);
            nodes.push(n);
            origin.push(Some(k));
        } else {
            let name = q.tensors[o].name.clone();
            let mut t = Tensor::activation(format!("{name}_int16"), q.tensors[o].shape.clone(), DType::I16);
            t.qparams = Some(int16_q(s_out));
            let t = q.add_tensor(t);
            n.outputs[0] = t;
            twin.insert(o, t);
            nodes.push(n);
            origin.push(Some(k));
            nodes.push(Node { name: format!("{name}/to_int8"), op: Op::Quantize, inputs: vec![t], outputs: vec![o] });
            origin.push(None);
        }
    }
    q.nodes = nodes;
    Ok(origin)
}
