//! Post-training quantization of an IR graph: float graph + calibrated ranges → int8 graph,
//! following the TFLite int8 spec op by op (see `docs/numerics.md`).

use tinyq_ir::{DType, Graph, Node, Op, QParams, Tensor, TensorData, TensorId};

use crate::{asymmetric_qparams, quantize_bias, symmetric_per_channel, ActivationQParams, QuantError};

/// Knobs of the quantization rules.
#[derive(Clone, Debug, Default)]
pub struct PtqConfig {
    /// One weight scale per tensor instead of per output channel (for targets that need it).
    pub per_tensor: bool,
    /// Keep float model inputs and outputs, with QUANTIZE / DEQUANTIZE at the edges.
    pub float_io: bool,
}

/// How an op's output quantization is decided.
enum OutputRule {
    /// From the output's own calibrated range.
    Own,
    /// Equal to input 0's (ops that only move or select values).
    SameAsInput,
    /// Fixed by the spec.
    Fixed(f32, i32),
}

fn output_rule(op: &Op) -> Result<OutputRule, String> {
    Ok(match op {
        Op::Conv2D(_)
        | Op::DepthwiseConv2D(_)
        | Op::FullyConnected(_)
        | Op::Add(_)
        | Op::Sub(_)
        | Op::Mul(_)
        | Op::Mean(_)
        | Op::Relu
        | Op::Relu6
        | Op::LeakyRelu(_)
        | Op::HardSwish
        | Op::Concat(_) => OutputRule::Own,
        Op::Reshape | Op::Transpose(_) | Op::Pad(_) | Op::MaxPool2D(_) | Op::AvgPool2D(_) => OutputRule::SameAsInput,
        Op::Softmax(_) | Op::Sigmoid => OutputRule::Fixed(1.0 / 256.0, -128),
        Op::Tanh => OutputRule::Fixed(1.0 / 128.0, 0),
        Op::Clip(c) => return Err(format!("Clip({}, {}) has no int8 TFLite kernel", c.min, c.max)),
        Op::Quantize | Op::Dequantize => return Err("the graph is already quantized".into()),
    })
}

fn per_tensor_q(p: ActivationQParams) -> QParams {
    QParams { scale: vec![p.scale], zero_point: vec![p.zero_point], axis: None }
}

/// Quantizes `g` given the calibrated `[min, max]` of every non-constant tensor (by tensor id).
pub fn quantize_graph(g: &Graph, ranges: &[Option<(f32, f32)>], cfg: &PtqConfig) -> Result<Graph, QuantError> {
    let node_err = |n: &Node, msg: String| QuantError::Node { node: n.name.clone(), op: n.op.name(), msg };
    let mut ranges: Vec<Option<(f32, f32)>> = ranges.to_vec();
    ranges.resize(g.tensors.len(), None);
    // CONCATENATION needs its inputs and output on one scale: the union of their ranges.
    for n in &g.nodes {
        if let Op::Concat(_) = n.op {
            let ids: Vec<TensorId> = n.inputs.iter().chain(&n.outputs).copied().filter(|&t| !g.tensor(t).is_constant()).collect();
            let union = ids.iter().filter_map(|&t| ranges[t]).fold((0f32, 0f32), |(a, b), (lo, hi)| (a.min(lo), b.max(hi)));
            ids.iter().for_each(|&t| ranges[t] = Some(union));
        }
    }
    let mut act: Vec<Option<ActivationQParams>> = vec![None; g.tensors.len()];
    let range_of = |t: TensorId| -> Result<(f32, f32), QuantError> {
        ranges[t].ok_or_else(|| QuantError::Tensor { tensor: g.tensor(t).name.clone(), msg: "has no calibrated range".into() })
    };
    let qp = |t: TensorId, r: (f32, f32)| {
        asymmetric_qparams(r.0, r.1).map_err(|e| QuantError::Tensor { tensor: g.tensor(t).name.clone(), msg: e.to_string() })
    };
    for &i in &g.inputs {
        act[i] = Some(qp(i, range_of(i)?)?);
    }
    for n in &g.nodes {
        let out = n.outputs[0];
        act[out] = Some(match output_rule(&n.op).map_err(|m| node_err(n, m))? {
            OutputRule::Own if n.op == Op::HardSwish => {
                // TFLM needs input_scale / 128 / output_scale < 1: widen a narrow output range.
                let floor = act[n.inputs[0]].map_or(0.0, |p| p.scale / 128.0) * (1.0 + 1e-5);
                let (lo, hi) = range_of(out)?;
                let (lo, hi) = (lo.min(0.0), hi.max(0.0));
                qp(out, (lo, hi.max(lo + 255.0 * floor)))?
            }
            OutputRule::Own => qp(out, range_of(out)?)?,
            OutputRule::SameAsInput => act[n.inputs[0]].ok_or_else(|| node_err(n, "input has no quantization".into()))?,
            OutputRule::Fixed(scale, zero_point) => ActivationQParams { scale, zero_point },
        });
    }

    let mut q = g.clone();
    for (t, p) in act.iter().enumerate() {
        if let Some(p) = p {
            q.tensors[t].dtype = DType::I8;
            q.tensors[t].qparams = Some(per_tensor_q(*p));
        }
    }
    for n in &g.nodes {
        let input_scale = |k: usize| act[n.inputs[k]].map(|p| p.scale);
        match &n.op {
            Op::Conv2D(_) | Op::DepthwiseConv2D(_) | Op::FullyConnected(_) => {
                let axis = if matches!(n.op, Op::DepthwiseConv2D(_)) { 3 } else { 0 };
                let per_channel = !cfg.per_tensor && !matches!(n.op, Op::FullyConnected(_));
                let w = g.tensor(n.inputs[1]);
                let data = w.f32_data().ok_or_else(|| node_err(n, "weights are not constant".into()))?;
                let (wq, scales) = if per_channel {
                    symmetric_per_channel(&data, &w.shape, axis)
                } else {
                    symmetric_per_channel(&data, &[1, data.len()], 0)
                };
                let q_axis = per_channel.then_some(axis);
                let wt = &mut q.tensors[n.inputs[1]];
                wt.data = Some(TensorData::I8(wq));
                wt.dtype = DType::I8;
                wt.qparams = Some(QParams { zero_point: vec![0; scales.len()], scale: scales.clone(), axis: q_axis });
                if let Some(&b) = n.inputs.get(2) {
                    let s_in = input_scale(0).ok_or_else(|| node_err(n, "input has no quantization".into()))?;
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
                }
            }
            Op::Pad(p) if p.value != 0.0 => return Err(node_err(n, format!("padding with {} cannot be expressed in int8 (only 0)", p.value))),
            _ => {
                // Constant operands of element-wise ops get their own asymmetric int8 params.
                for &c in n.inputs.iter().filter(|&&c| g.tensor(c).is_constant()) {
                    let v = g.const_f32(c).unwrap_or_default();
                    let (lo, hi) = v.iter().fold((0f32, 0f32), |(a, b), &x| (a.min(x), b.max(x)));
                    let p = qp(c, (lo, hi))?;
                    let data = v.iter().map(|&x| ((x / p.scale).round() as i32 + p.zero_point).clamp(-128, 127) as i8).collect();
                    let ct = &mut q.tensors[c];
                    ct.data = Some(TensorData::I8(data));
                    ct.dtype = DType::I8;
                    ct.qparams = Some(per_tensor_q(p));
                }
            }
        }
    }
    if cfg.float_io {
        add_float_edges(&mut q);
    }
    q.validate().map_err(|e| QuantError::Graph(e.to_string()))?;
    Ok(q)
}

/// Float inputs and outputs around the int8 graph: QUANTIZE after each input, DEQUANTIZE
/// before each output. The float tensors keep the model's names.
fn add_float_edges(q: &mut Graph) {
    let mut front = Vec::new();
    for k in 0..q.inputs.len() {
        let i = q.inputs[k];
        let name = q.tensors[i].name.clone();
        q.tensors[i].name = format!("{name}_int8");
        let f = q.add_tensor(Tensor::activation(name.clone(), q.tensors[i].shape.clone(), DType::F32));
        front.push(Node { name: format!("{name}/quantize"), op: Op::Quantize, inputs: vec![f], outputs: vec![i] });
        q.inputs[k] = f;
    }
    q.nodes.splice(0..0, front);
    for k in 0..q.outputs.len() {
        let o = q.outputs[k];
        let name = q.tensors[o].name.clone();
        q.tensors[o].name = format!("{name}_int8");
        let f = q.add_tensor(Tensor::activation(name.clone(), q.tensors[o].shape.clone(), DType::F32));
        q.nodes.push(Node { name: format!("{name}/dequantize"), op: Op::Dequantize, inputs: vec![o], outputs: vec![f] });
        q.outputs[k] = f;
    }
}
