//! The weights step: weights of conv / depthwise / dense layers to symmetric int8 or int4 (per
//! channel, per unit or per tensor), their bias to int32 at `input_scale · weight_scale`, and
//! constant operands of element-wise ops to asymmetric int8.

use tinyq_ir::{DType, Graph, Node, Op, QParams, TensorData};

use super::{node_err, per_tensor_q, tensor_qparams};
use crate::{quantize_bias, symmetric_per_channel_q, ActivationQParams, PtqConfig, QuantError};

/// Quantizes the constants of every node of `g` that is not kept in float, into `q` (a copy of
/// `g` whose activations carry the parameters `act`).
pub(super) fn quantize_constants(
    q: &mut Graph,
    g: &Graph,
    act: &[Option<ActivationQParams>],
    cfg: &PtqConfig,
    is_float: &[bool],
    is_wide: &[bool],
) -> Result<(), QuantError> {
    for (k, n) in g.nodes.iter().enumerate() {
        let int4 = cfg.int4_nodes.contains(&k);
        if int4 {
            check_int4_layer(n, is_float[k], is_wide[k])?;
        }
        if is_float[k] {
            continue;
        }
        match &n.op {
            op if op.has_weights() => {
                // TFLM's int8 FULLY_CONNECTED takes one scale per unit (`is_per_channel` in
                // `fully_connected_common.cc`), its int4 one only one scale; tinyq's 16x8 dense
                // kernel is per tensor.
                let dense = matches!(n.op, Op::FullyConnected(_));
                let per_channel = !cfg.per_tensor && !(dense && (cfg.per_tensor_dense || is_wide[k] || int4));
                layer_weights(q, g, n, act, per_channel, int4)?;
            }
            Op::Pad(p) if p.value != 0.0 => {
                return Err(node_err(n, format!("padding with {} cannot be expressed in int8 (only 0)", p.value)))
            }
            _ => operand_constants(q, g, n, act)?,
        }
    }
    Ok(())
}

/// Fails unless layer `n` may take int4 weights: a conv, depthwise conv or fully connected layer
/// with int8 activations.
fn check_int4_layer(n: &Node, float: bool, wide: bool) -> Result<(), QuantError> {
    let why = if n.op.int4_weights_input().is_none() {
        "has no weights that can be int4 (only conv, depthwise conv and fully connected layers have)"
    } else if float {
        "is kept in float, so its weights cannot be int4"
    } else if wide {
        "runs with int16 activations, and TFLM takes int4 weights only with int8 activations"
    } else {
        return Ok(());
    };
    Err(node_err(n, why.into()))
}

/// Weights and bias of the layer `n`.
fn layer_weights(
    q: &mut Graph,
    g: &Graph,
    n: &Node,
    act: &[Option<ActivationQParams>],
    per_channel: bool,
    int4: bool,
) -> Result<(), QuantError> {
    let axis = n.op.weights().map_or(0, |w| w.channel_axis);
    let w = g.tensor(n.inputs[1]);
    let data = w.f32_data().ok_or_else(|| node_err(n, "weights are not constant".into()))?;
    if let Some(v) = data.iter().find(|v| !v.is_finite()) {
        return Err(QuantError::Tensor {
            tensor: w.name.clone(),
            msg: format!("holds {v}: weights must be finite to be quantized"),
        });
    }
    let qmax = if int4 { tinyq_ir::I4_MAX } else { i8::MAX };
    let (wq, scales) = if per_channel {
        symmetric_per_channel_q(&data, &w.shape, axis, qmax)
    } else {
        symmetric_per_channel_q(&data, &[1, data.len()], 0, qmax)
    };
    let q_axis = per_channel.then_some(axis);
    let wt = &mut q.tensors[n.inputs[1]];
    wt.data = Some(TensorData::I8(wq));
    wt.dtype = if int4 { DType::I4 } else { DType::I8 };
    wt.qparams = Some(QParams { zero_point: vec![0; scales.len()], scale: scales.clone(), axis: q_axis });
    let Some(&b) = n.inputs.get(2) else { return Ok(()) };
    let s_in = act[n.inputs[0]].map(|p| p.scale).ok_or_else(|| node_err(n, "input has no quantization".into()))?;
    let bias = g.const_f32(b).ok_or_else(|| node_err(n, "bias is not constant".into()))?;
    let bias_scales: Vec<f32> = if per_channel {
        scales.iter().map(|&s| (s_in as f64 * s as f64) as f32).collect()
    } else {
        vec![s_in * scales[0]]
    };
    let bt = &mut q.tensors[b];
    bt.data = Some(TensorData::I32(quantize_bias(&bias, s_in, &scales)));
    bt.dtype = DType::I32;
    bt.qparams = Some(QParams { zero_point: vec![0; bias_scales.len()], scale: bias_scales, axis: q_axis.map(|_| 0) });
    Ok(())
}

/// Constant operands of element-wise ops: their own asymmetric int8 parameters, or the output's
/// for an op whose inputs share them ([`Op::shares_qparams`]; values beyond the output's range
/// saturate, which MAXIMUM and MINIMUM do not tell apart from the range's end).
fn operand_constants(q: &mut Graph, g: &Graph, n: &Node, act: &[Option<ActivationQParams>]) -> Result<(), QuantError> {
    let shared = act[n.outputs[0]].filter(|_| n.op.shares_qparams());
    for &c in n.inputs.iter().filter(|&&c| g.tensor(c).is_constant()) {
        let v = g.const_f32(c).unwrap_or_default();
        let (lo, hi) = v.iter().fold((0f32, 0f32), |(a, b), &x| (a.min(x), b.max(x)));
        let p = match shared {
            Some(p) => p,
            None => tensor_qparams(g, c, (lo, hi))?,
        };
        let data = v.iter().map(|&x| ((x / p.scale).round() as i32 + p.zero_point).clamp(-128, 127) as i8).collect();
        let ct = &mut q.tensors[c];
        ct.data = Some(TensorData::I8(data));
        ct.dtype = DType::I8;
        ct.qparams = Some(per_tensor_q(p));
    }
    Ok(())
}
