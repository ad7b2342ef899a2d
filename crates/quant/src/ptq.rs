//! Post-training quantization of an IR graph: float graph + calibrated ranges → int8 graph,
//! following the TFLite int8 spec op by op (see `docs/numerics.md`).

use tinyq_ir::{DType, Graph, Node, Op, QParams, Tensor, TensorData, TensorId};

use crate::{
    asymmetric_qparams, quantize_bias, quantize_bias_i64, symmetric_int16_scale, symmetric_per_channel,
    ActivationQParams, QuantError,
};

/// Knobs of the quantization rules.
#[derive(Clone, Debug, Default)]
pub struct PtqConfig {
    /// One weight scale per tensor instead of per output channel, for every layer (for targets
    /// that need it).
    pub per_tensor: bool,
    /// One weight scale per tensor for FULLY_CONNECTED layers only (convolutions stay per
    /// channel): the files tinyq wrote before per-channel dense layers.
    pub per_tensor_dense: bool,
    /// Keep float model inputs and outputs, with QUANTIZE / DEQUANTIZE at the edges.
    pub float_io: bool,
}

/// How an op's output quantization is decided.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OutputRule {
    /// From the output's own calibrated range.
    Own,
    /// Equal to input 0's (ops that only move or select values).
    SameAsInput,
    /// Fixed by the spec.
    Fixed(f32, i32),
}

/// The output rule of `op` under the TFLite int8 spec; an error for ops without an int8 kernel.
pub fn output_rule(op: &Op) -> Result<OutputRule, String> {
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
        | Op::PRelu
        | Op::Elu
        | Op::HardSwish
        | Op::Concat(_) => OutputRule::Own,
        Op::Reshape
        | Op::Transpose(_)
        | Op::Pad(_)
        | Op::ResizeNearest(_)
        | Op::ReduceMax(_)
        | Op::MaxPool2D(_)
        | Op::AvgPool2D(_) => OutputRule::SameAsInput,
        Op::Softmax(_) | Op::Sigmoid => OutputRule::Fixed(1.0 / 256.0, -128),
        Op::Tanh => OutputRule::Fixed(1.0 / 128.0, 0),
        Op::Clip(c) => return Err(format!("Clip({}, {}) has no int8 TFLite kernel", c.min, c.max)),
        Op::Quantize | Op::Dequantize => return Err("the graph is already quantized".into()),
    })
}

fn per_tensor_q(p: ActivationQParams) -> QParams {
    QParams { scale: vec![p.scale], zero_point: vec![p.zero_point], axis: None }
}

/// Whether a node with `op` can be left in float inside an int8 graph: the ops whose float
/// kernels the integer engine reproduces bit for bit (TFLM's float reference kernels) — the
/// layers with weights, and the reshapes and transposes that move their values.
pub fn can_keep_in_float(op: &Op) -> bool {
    match op {
        Op::Conv2D(_) | Op::DepthwiseConv2D(_) | Op::FullyConnected(_) | Op::Reshape | Op::Transpose(_) => true,
        Op::Add(_)
        | Op::Sub(_)
        | Op::Mul(_)
        | Op::Mean(_)
        | Op::Relu
        | Op::Relu6
        | Op::LeakyRelu(_)
        | Op::PRelu
        | Op::Elu
        | Op::HardSwish
        | Op::Concat(_)
        | Op::Pad(_)
        | Op::ResizeNearest(_)
        | Op::ReduceMax(_)
        | Op::MaxPool2D(_)
        | Op::AvgPool2D(_)
        | Op::Softmax(_)
        | Op::Sigmoid
        | Op::Tanh
        | Op::Clip(_)
        | Op::Quantize
        | Op::Dequantize => false,
    }
}

/// Whether a node with `op` can run with int16 activations: the layers TFLM has 16x8 kernels
/// for (int16 activations, int8 weights), and the int16 ADD, CONCATENATION, pools, MEAN and
/// RESHAPE that carry int16 tensors between them, as tinyq's integer engine reproduces them.
pub fn can_run_16x8(op: &Op) -> bool {
    match op {
        Op::Conv2D(_)
        | Op::DepthwiseConv2D(_)
        | Op::FullyConnected(_)
        | Op::Add(_)
        | Op::MaxPool2D(_)
        | Op::AvgPool2D(_)
        | Op::Mean(_)
        | Op::Reshape
        | Op::Concat(_) => true,
        Op::Transpose(_)
        | Op::Sub(_)
        | Op::Mul(_)
        | Op::Relu
        | Op::Relu6
        | Op::LeakyRelu(_)
        | Op::PRelu
        | Op::Elu
        | Op::HardSwish
        | Op::Pad(_)
        | Op::ResizeNearest(_)
        | Op::ReduceMax(_)
        | Op::Softmax(_)
        | Op::Sigmoid
        | Op::Tanh
        | Op::Clip(_)
        | Op::Quantize
        | Op::Dequantize => false,
    }
}

/// Quantizes `g` given the calibrated `[min, max]` of every non-constant tensor (by tensor id).
pub fn quantize_graph(g: &Graph, ranges: &[Option<(f32, f32)>], cfg: &PtqConfig) -> Result<Graph, QuantError> {
    quantize_graph_with_float(g, ranges, cfg, &[])
}

/// [`quantize_graph`], leaving the nodes `float_nodes` (indices into `g.nodes`) in float: they
/// keep their float32 weights and compute in float between a DEQUANTIZE of each int8 input and a
/// QUANTIZE of their output, which keeps the parameters its range gives. A tensor between two
/// float nodes stays float; with `float_io`, a float node's graph output stays float too.
/// Only ops for which [`can_keep_in_float`] holds are accepted.
pub fn quantize_graph_with_float(
    g: &Graph,
    ranges: &[Option<(f32, f32)>],
    cfg: &PtqConfig,
    float_nodes: &[usize],
) -> Result<Graph, QuantError> {
    quantize_graph_mixed(g, ranges, cfg, float_nodes, &[])
}

/// [`quantize_graph_with_float`], running the nodes `int16_nodes` as 16x8 layers: their input
/// and output activations are int16, symmetric (`max(|min|, |max|) / 32767`, zero point 0),
/// their weights int8 as usual and their bias int64 with scale `input_scale · weight_scale`.
/// An int16 tensor whose readers are all 16x8 layers (and which is not a graph output) is shared
/// as it is; elsewhere a QUANTIZE converts int8 → int16 before a 16x8 layer (one per tensor,
/// shared by its 16x8 readers) and int16 → int8 after it, to the int8 parameters the tensor's
/// range gives. Graph inputs and outputs keep their int8 (or float) types. Only ops for which
/// [`can_run_16x8`] holds are accepted, and a node cannot be both float and 16x8.
pub fn quantize_graph_mixed(
    g: &Graph,
    ranges: &[Option<(f32, f32)>],
    cfg: &PtqConfig,
    float_nodes: &[usize],
    int16_nodes: &[usize],
) -> Result<Graph, QuantError> {
    let node_err = |n: &Node, msg: String| QuantError::Node { node: n.name.clone(), op: n.op.name(), msg };
    let mut is_wide = vec![false; g.nodes.len()];
    for &k in int16_nodes {
        let n = g
            .nodes
            .get(k)
            .ok_or_else(|| QuantError::Graph(format!("node index {k} is beyond the {} nodes", g.nodes.len())))?;
        if !can_run_16x8(&n.op) {
            return Err(node_err(
                n,
                "cannot run with int16 activations (only CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD, CONCATENATION, MAX_POOL_2D, AVERAGE_POOL_2D, MEAN and RESHAPE have int16 kernels)".into(),
            ));
        }
        if float_nodes.contains(&k) {
            return Err(node_err(n, "cannot be both kept in float and run with int16 activations".into()));
        }
        is_wide[k] = true;
    }
    let mut is_float = vec![false; g.nodes.len()];
    for &k in float_nodes {
        let n = g
            .nodes
            .get(k)
            .ok_or_else(|| QuantError::Graph(format!("node index {k} is beyond the {} nodes", g.nodes.len())))?;
        if !can_keep_in_float(&n.op) {
            return Err(node_err(
                n,
                "cannot be kept in float (only CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, RESHAPE and TRANSPOSE have float kernels checked against TFLM)".into(),
            ));
        }
        is_float[k] = true;
    }
    let mut ranges: Vec<Option<(f32, f32)>> = ranges.to_vec();
    ranges.resize(g.tensors.len(), None);
    // CONCATENATION needs its inputs and output on one scale: the union of their ranges.
    for n in &g.nodes {
        if let Op::Concat(_) = n.op {
            let ids: Vec<TensorId> =
                n.inputs.iter().chain(&n.outputs).copied().filter(|&t| !g.tensor(t).is_constant()).collect();
            let union =
                ids.iter().filter_map(|&t| ranges[t]).fold((0f32, 0f32), |(a, b), (lo, hi)| (a.min(lo), b.max(hi)));
            ids.iter().for_each(|&t| ranges[t] = Some(union));
        }
    }
    let mut act: Vec<Option<ActivationQParams>> = vec![None; g.tensors.len()];
    let range_of = |t: TensorId| -> Result<(f32, f32), QuantError> {
        ranges[t].ok_or_else(|| QuantError::Tensor {
            tensor: g.tensor(t).name.clone(),
            msg: "has no calibrated range".into(),
        })
    };
    let qp = |t: TensorId, r: (f32, f32)| {
        asymmetric_qparams(r.0, r.1)
            .map_err(|e| QuantError::Tensor { tensor: g.tensor(t).name.clone(), msg: e.to_string() })
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
            OutputRule::SameAsInput => {
                act[n.inputs[0]].ok_or_else(|| node_err(n, "input has no quantization".into()))?
            }
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
    for (k, n) in g.nodes.iter().enumerate() {
        if is_float[k] {
            continue;
        }
        let input_scale = |k: usize| act[n.inputs[k]].map(|p| p.scale);
        match &n.op {
            Op::Conv2D(_) | Op::DepthwiseConv2D(_) | Op::FullyConnected(_) => {
                let axis = if matches!(n.op, Op::DepthwiseConv2D(_)) { 3 } else { 0 };
                // TFLM's int8 FULLY_CONNECTED takes one scale per unit (`is_per_channel` in
                // `fully_connected_common.cc`); tinyq's 16x8 dense kernel is per tensor.
                let dense = matches!(n.op, Op::FullyConnected(_));
                let per_channel = !cfg.per_tensor && !(dense && (cfg.per_tensor_dense || is_wide[k]));
                let w = g.tensor(n.inputs[1]);
                let data = w.f32_data().ok_or_else(|| node_err(n, "weights are not constant".into()))?;
                if let Some(v) = data.iter().find(|v| !v.is_finite()) {
                    return Err(QuantError::Tensor {
                        tensor: w.name.clone(),
                        msg: format!("holds {v}: weights must be finite to be quantized"),
                    });
                }
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
                    bt.qparams = Some(QParams {
                        zero_point: vec![0; bias_scales.len()],
                        scale: bias_scales,
                        axis: q_axis.map(|_| 0),
                    });
                }
            }
            Op::Pad(p) if p.value != 0.0 => {
                return Err(node_err(n, format!("padding with {} cannot be expressed in int8 (only 0)", p.value)))
            }
            _ => {
                // Constant operands of element-wise ops get their own asymmetric int8 params.
                for &c in n.inputs.iter().filter(|&&c| g.tensor(c).is_constant()) {
                    let v = g.const_f32(c).unwrap_or_default();
                    let (lo, hi) = v.iter().fold((0f32, 0f32), |(a, b), &x| (a.min(x), b.max(x)));
                    let p = qp(c, (lo, hi))?;
                    let data = v
                        .iter()
                        .map(|&x| ((x / p.scale).round() as i32 + p.zero_point).clamp(-128, 127) as i8)
                        .collect();
                    let ct = &mut q.tensors[c];
                    ct.data = Some(TensorData::I8(data));
                    ct.dtype = DType::I8;
                    ct.qparams = Some(per_tensor_q(p));
                }
            }
        }
    }
    let origin: Vec<Option<usize>> = if int16_nodes.is_empty() {
        (0..g.nodes.len()).map(Some).collect()
    } else {
        to_16x8(&mut q, g, &ranges, &is_wide)?
    };
    if !float_nodes.is_empty() {
        keep_in_float(&mut q, g, &is_float, &origin, cfg.float_io);
    }
    if cfg.float_io {
        add_float_edges(&mut q);
    }
    crate::concat::requantize_concat_inputs(&mut q);
    check_scales(&q)?;
    q.validate().map_err(|e| QuantError::Graph(e.to_string()))?;
    Ok(q)
}

/// Every quantized tensor of `q` must have finite, positive scales (TFLM divides by them and
/// derives multipliers from them), and float constants finite values: an error names the first
/// tensor that does not.
fn check_scales(q: &Graph) -> Result<(), QuantError> {
    for t in &q.tensors {
        if let Some(s) = t.qparams.as_ref().and_then(|p| p.scale.iter().find(|s| !(s.is_finite() && **s > 0.0))) {
            return Err(QuantError::Tensor {
                tensor: t.name.clone(),
                msg: format!("would get scale {s}: every scale must be finite and above 0"),
            });
        }
        if let Some(TensorData::F32(d)) = &t.data {
            let Some(v) = d.iter().find(|v| !v.is_finite()) else { continue };
            return Err(QuantError::Tensor {
                tensor: t.name.clone(),
                msg: format!("holds {v}: float constants must be finite"),
            });
        }
    }
    Ok(())
}

/// Rewrites the int16 nodes of `q` (its nodes are still `g`'s, one for one): int16 activations
/// with QUANTIZE nodes at the int8 boundaries, int64 bias for the layers with weights, int16
/// constant operands. Returns, for each node of the new list, the index of the `g` node it comes
/// from (`None` for an added QUANTIZE).
fn to_16x8(
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
        let has_weights = matches!(n.op, Op::Conv2D(_) | Op::DepthwiseConv2D(_) | Op::FullyConnected(_));
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

/// Rewrites the float nodes of `q` (`origin[i]` is the `g` node that node `i` of `q` comes
/// from): float32 weights and bias from `g`, a DEQUANTIZE per int8 tensor they read (shared
/// between readers), a QUANTIZE of the output unless every reader is a float node too.
fn keep_in_float(q: &mut Graph, g: &Graph, is_float: &[bool], origin: &[Option<usize>], float_io: bool) {
    let old = std::mem::take(&mut q.nodes);
    let mut float_twin: std::collections::HashMap<TensorId, TensorId> = Default::default();
    let mut nodes = Vec::with_capacity(old.len() + 2);
    for (pos, mut n) in old.into_iter().enumerate() {
        if !origin[pos].is_some_and(|k| is_float[k]) {
            nodes.push(n);
            continue;
        }
        for slot in 0..n.inputs.len() {
            let t = n.inputs[slot];
            if g.tensor(t).is_constant() {
                let shared = g.consumers(t).iter().any(|&c| !is_float[c]);
                if shared {
                    let mut copy = g.tensor(t).clone();
                    copy.name = format!("{}_float", copy.name);
                    n.inputs[slot] = q.add_tensor(copy);
                } else {
                    q.tensors[t] = g.tensor(t).clone();
                }
                continue;
            }
            if let Some(&f) = float_twin.get(&t) {
                n.inputs[slot] = f;
                continue;
            }
            let name = q.tensors[t].name.clone();
            let f = q.add_tensor(Tensor::activation(format!("{name}_float"), q.tensors[t].shape.clone(), DType::F32));
            nodes.push(Node {
                name: format!("{name}/dequantize"),
                op: Op::Dequantize,
                inputs: vec![t],
                outputs: vec![f],
            });
            float_twin.insert(t, f);
            n.inputs[slot] = f;
        }
        let o = n.outputs[0];
        let is_output = g.outputs.contains(&o);
        let all_float = g.consumers(o).iter().all(|&c| is_float[c]);
        if all_float && (!is_output || float_io) {
            q.tensors[o].dtype = DType::F32;
            q.tensors[o].qparams = None;
            float_twin.insert(o, o);
            nodes.push(n);
        } else {
            let name = q.tensors[o].name.clone();
            let f = q.add_tensor(Tensor::activation(format!("{name}_float"), q.tensors[o].shape.clone(), DType::F32));
            n.outputs[0] = f;
            float_twin.insert(o, f);
            nodes.push(n);
            nodes.push(Node { name: format!("{name}/quantize"), op: Op::Quantize, inputs: vec![f], outputs: vec![o] });
        }
    }
    q.nodes = nodes;
}

/// Float inputs and outputs around the int8 graph: QUANTIZE after each int8 input, DEQUANTIZE
/// before each int8 output (an output a float node computes is float already). The float
/// tensors keep the model's names.
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
        if q.tensors[o].dtype == DType::F32 {
            continue;
        }
        let name = q.tensors[o].name.clone();
        q.tensors[o].name = format!("{name}_int8");
        let f = q.add_tensor(Tensor::activation(name.clone(), q.tensors[o].shape.clone(), DType::F32));
        q.nodes.push(Node {
            name: format!("{name}/dequantize"),
            op: Op::Dequantize,
            inputs: vec![o],
            outputs: vec![f],
        });
        q.outputs[k] = f;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinyq_ir::op::FullyConnected;
    use tinyq_ir::FusedActivation;

    /// x [1, 4] → dense `fc1` → h [1, 3] → dense `fc2` → y [1, 2], with ReLU after fc1.
    fn two_dense() -> (Graph, Vec<Option<(f32, f32)>>) {
        let mut g = Graph::default();
        let x = g.add_tensor(Tensor::activation("x", vec![1, 4], DType::F32));
        let w1 = g.add_tensor(Tensor::constant(
            "w1",
            vec![3, 4],
            TensorData::F32((0..12).map(|i| i as f32 / 10.0 - 0.5).collect()),
        ));
        let b1 = g.add_tensor(Tensor::constant("b1", vec![3], TensorData::F32(vec![0.1, -0.2, 0.3])));
        let h = g.add_tensor(Tensor::activation("h", vec![1, 3], DType::F32));
        let w2 =
            g.add_tensor(Tensor::constant("w2", vec![2, 3], TensorData::F32(vec![0.5, -1.0, 0.25, 2.0, 0.0, -0.75])));
        let y = g.add_tensor(Tensor::activation("y", vec![1, 2], DType::F32));
        let dense = |activation| Op::FullyConnected(FullyConnected { activation, keep_num_dims: false });
        g.nodes.push(Node {
            name: "fc1".into(),
            op: dense(FusedActivation::Relu),
            inputs: vec![x, w1, b1],
            outputs: vec![h],
        });
        g.nodes.push(Node {
            name: "fc2".into(),
            op: dense(FusedActivation::None),
            inputs: vec![h, w2],
            outputs: vec![y],
        });
        g.inputs = vec![x];
        g.outputs = vec![y];
        let ranges = vec![Some((-1.0, 1.0)), None, None, Some((0.0, 2.0)), None, Some((-3.0, 3.0))];
        (g, ranges)
    }

    /// x [1, 4, 4, 2] → conv → c, then `add` (c + x) → s → avgpool → p → reshape → r [1, 2] →
    /// dense `fc` → y [1, 3], and a second `add_k` of s with a constant.
    fn residual() -> (Graph, Vec<Option<(f32, f32)>>) {
        use tinyq_ir::op::{Binary, Conv2D, Pool2D};
        use tinyq_ir::Padding;
        let mut g = Graph::default();
        let x = g.add_tensor(Tensor::activation("x", vec![1, 4, 4, 2], DType::F32));
        let w = g.add_tensor(Tensor::constant("w", vec![2, 1, 1, 2], TensorData::F32(vec![0.5, -0.25, 0.75, 1.0])));
        let b = g.add_tensor(Tensor::constant("b", vec![2], TensorData::F32(vec![0.1, -0.1])));
        let c = g.add_tensor(Tensor::activation("c", vec![1, 4, 4, 2], DType::F32));
        let sum = g.add_tensor(Tensor::activation("s", vec![1, 4, 4, 2], DType::F32));
        let p = g.add_tensor(Tensor::activation("p", vec![1, 1, 1, 2], DType::F32));
        let r = g.add_tensor(Tensor::activation("r", vec![1, 2], DType::F32));
        let fw =
            g.add_tensor(Tensor::constant("fw", vec![3, 2], TensorData::F32(vec![1.0, -1.0, 0.5, 0.25, -0.5, 2.0])));
        let y = g.add_tensor(Tensor::activation("y", vec![1, 3], DType::F32));
        let k = g.add_tensor(Tensor::constant("k", vec![2], TensorData::F32(vec![0.5, -2.0])));
        let z = g.add_tensor(Tensor::activation("z", vec![1, 4, 4, 2], DType::F32));
        let conv =
            Conv2D { stride: [1, 1], dilation: [1, 1], padding: Padding::Valid, activation: FusedActivation::None };
        let pool =
            Pool2D { filter: [4, 4], stride: [4, 4], padding: Padding::Valid, activation: FusedActivation::None };
        let fc = Op::FullyConnected(FullyConnected { activation: FusedActivation::None, keep_num_dims: false });
        for (name, op, inputs, out) in [
            ("conv", Op::Conv2D(conv), vec![x, w, b], c),
            ("add", Op::Add(Binary::default()), vec![c, x], sum),
            ("pool", Op::AvgPool2D(pool), vec![sum], p),
            ("reshape", Op::Reshape, vec![p], r),
            ("fc", fc, vec![r, fw], y),
            ("add_k", Op::Add(Binary::default()), vec![sum, k], z),
        ] {
            g.nodes.push(Node { name: name.into(), op, inputs, outputs: vec![out] });
        }
        g.inputs = vec![x];
        g.outputs = vec![y, z];
        let mut ranges = vec![None; g.tensors.len()];
        for (t, r) in [
            (x, (-1.0, 1.0)),
            (c, (-2.0, 2.0)),
            (sum, (-3.0, 3.0)),
            (p, (-3.0, 3.0)),
            (r, (-3.0, 3.0)),
            (y, (-4.0, 4.0)),
            (z, (-5.0, 5.0)),
        ] {
            ranges[t] = Some(r);
        }
        (g, ranges)
    }

    #[test]
    fn int16_runs_through_add_pool_and_reshape() {
        let (g, ranges) = residual();
        let all: Vec<usize> = (0..g.nodes.len()).collect();
        let q = quantize_graph_mixed(&g, &ranges, &PtqConfig::default(), &[], &all).unwrap();
        let names: Vec<&str> = q.nodes.iter().map(|n| n.name.as_str()).collect();
        // x is read twice in int16 through one QUANTIZE; the outputs go back to int8.
        assert_eq!(names, ["x/to_int16", "conv", "add", "pool", "reshape", "fc", "y/to_int8", "add_k", "z/to_int8"]);
        let scale = |t: TensorId| {
            (
                q.tensor(t).dtype,
                q.tensor(t).qparams.as_ref().unwrap().scale[0],
                q.tensor(t).qparams.as_ref().unwrap().zero_point[0],
            )
        };
        let node = |name: &str| q.nodes.iter().find(|n| n.name == name).unwrap();
        let (add, pool, reshape, add_k) = (node("add"), node("pool"), node("reshape"), node("add_k"));
        // Both ADD inputs are int16: the conv's output and the input's int16 twin.
        assert_eq!(add.inputs[1], node("conv").inputs[0]);
        assert_eq!(scale(add.inputs[0]), (DType::I16, 2.0 / 32767.0, 0));
        assert_eq!(scale(add.outputs[0]), (DType::I16, 3.0 / 32767.0, 0));
        // The pool and the reshape keep their input's int16 scale.
        assert_eq!(scale(pool.outputs[0]), scale(pool.inputs[0]));
        assert_eq!(scale(reshape.outputs[0]), scale(pool.inputs[0]));
        // The constant of add_k is int16 in place, symmetric over its values [-2, 0.5].
        let kt = q.tensor(add_k.inputs[1]);
        assert_eq!((kt.name.as_str(), kt.dtype), ("k", DType::I16));
        let ks = kt.qparams.as_ref().unwrap().scale[0];
        assert_eq!(ks, 2.0 / 32767.0);
        assert_eq!(kt.data, Some(TensorData::I16(vec![(0.5 / ks).round() as i16, -32767])));
        // Only the fc needs no bias; the conv's is int64.
        assert_eq!(q.tensor(node("conv").inputs[2]).dtype, DType::I64);
        // An ADD output range far narrower than its inputs' needs a rescale TFLM cannot do.
        let mut narrow = ranges.clone();
        narrow[g.nodes[1].outputs[0]] = Some((-1e-5, 1e-5));
        let e = quantize_graph_mixed(&g, &narrow, &PtqConfig::default(), &[], &all).unwrap_err().to_string();
        assert!(e.contains("add") && e.contains("16384"), "{e}");
        // A constant input of an int16 CONCATENATION would need the output's scale: refused.
        let mut cat = g.clone();
        cat.nodes[5].op = Op::Concat(tinyq_ir::op::Concat { axis: 3, activation: FusedActivation::None });
        cat.tensors[cat.nodes[5].outputs[0]].shape = vec![1, 4, 4, 4];
        let k = cat.add_tensor(Tensor::constant("k4", vec![1, 4, 4, 2], TensorData::F32(vec![0.5; 32])));
        cat.nodes[5].inputs[1] = k;
        let e = quantize_graph_mixed(&cat, &ranges, &PtqConfig::default(), &[], &[5]).unwrap_err().to_string();
        assert!(e.contains("add_k") && e.contains("constant input of CONCATENATION"), "{e}");
        // SUB has no int16 kernel here: refused by name.
        let mut sub = g.clone();
        sub.nodes[1].op = Op::Sub(tinyq_ir::op::Binary::default());
        let e = quantize_graph_mixed(&sub, &ranges, &PtqConfig::default(), &[], &[1]).unwrap_err().to_string();
        assert!(e.contains("add") && e.contains("int16"), "{e}");
    }

    #[test]
    fn non_finite_weights_or_ranges_are_refused_by_tensor() {
        let (mut g, ranges) = two_dense();
        let mut inf = ranges.clone();
        inf[3] = Some((0.0, f32::INFINITY));
        let e = quantize_graph(&g, &inf, &PtqConfig::default()).unwrap_err().to_string();
        assert!(e.contains("`h`") && e.contains("not finite"), "{e}");
        // A range so wide that its scale overflows to infinity.
        let mut huge = ranges.clone();
        huge[3] = Some((-f32::MAX, f32::MAX));
        let e = quantize_graph(&g, &huge, &PtqConfig::default()).unwrap_err().to_string();
        assert!(e.contains("`h`") && e.contains("scale inf"), "{e}");
        g.tensors[4].data = Some(TensorData::F32(vec![0.5, f32::INFINITY, 0.25, 2.0, 0.0, -0.75]));
        let e = quantize_graph(&g, &ranges, &PtqConfig::default()).unwrap_err().to_string();
        assert!(e.contains("`w2`") && e.contains("inf"), "{e}");
        // Kept in float, the weights are still checked.
        let e = quantize_graph_with_float(&g, &ranges, &PtqConfig::default(), &[1]).unwrap_err().to_string();
        assert!(e.contains("`w2`") && e.contains("finite"), "{e}");
    }

    #[test]
    fn dense_weights_are_per_unit_unless_asked_otherwise() {
        let (g, ranges) = two_dense();
        let axis_and_scales = |cfg: &PtqConfig| {
            let q = quantize_graph(&g, &ranges, cfg).unwrap();
            let w = q.tensor(q.nodes[0].inputs[1]).qparams.clone().unwrap();
            let b = q.tensor(q.nodes[0].inputs[2]).qparams.clone().unwrap();
            (w.axis, w.scale.len(), b.axis, b.scale.len())
        };
        // fc1 has 3 units: one scale each, bias scales per unit along axis 0.
        assert_eq!(axis_and_scales(&PtqConfig::default()), (Some(0), 3, Some(0), 3));
        let dense = PtqConfig { per_tensor_dense: true, ..PtqConfig::default() };
        assert_eq!(axis_and_scales(&dense), (None, 1, None, 1));
        let all = PtqConfig { per_tensor: true, ..PtqConfig::default() };
        assert_eq!(axis_and_scales(&all), (None, 1, None, 1));
        // Units' scales are max|w| / 127 of each row of fc1's [3, 4] weights.
        let q = quantize_graph(&g, &ranges, &PtqConfig::default()).unwrap();
        let s = &q.tensor(q.nodes[0].inputs[1]).qparams.as_ref().unwrap().scale;
        for (got, want) in s.iter().zip([0.5f32, 0.2, 0.6]) {
            assert!((got - want / 127.0).abs() < 1e-8, "{s:?}");
        }
        // A 16x8 dense layer stays per tensor (tinyq's int16 dense kernel has one scale).
        let q = quantize_graph_mixed(&g, &ranges, &PtqConfig::default(), &[], &[0]).unwrap();
        let fc1 = q.nodes.iter().find(|n| n.name == "fc1").unwrap();
        assert_eq!(q.tensor(fc1.inputs[1]).qparams.as_ref().unwrap().scale.len(), 1);
    }

    fn ops(q: &Graph) -> Vec<(&str, &'static str)> {
        q.nodes.iter().map(|n| (n.name.as_str(), n.op.name())).collect()
    }

    #[test]
    fn a_float_layer_sits_between_dequantize_and_quantize_with_float_weights() {
        let (g, ranges) = two_dense();
        let plain = quantize_graph(&g, &ranges, &PtqConfig::default()).unwrap();
        let q = quantize_graph_with_float(&g, &ranges, &PtqConfig::default(), &[1]).unwrap();
        let dq = plain.nodes[0].op.name();
        assert_eq!(
            ops(&q).iter().map(|o| o.0).collect::<Vec<_>>(),
            ["fc1", "h/dequantize", "fc2", "y/quantize"],
            "{:?}",
            ops(&q)
        );
        assert_eq!(q.nodes[1].op, Op::Dequantize);
        assert_eq!(q.nodes[3].op, Op::Quantize);
        assert_eq!(dq, q.nodes[0].op.name());
        // fc1 is quantized exactly as without float layers; fc2 keeps the float weights.
        assert_eq!(q.nodes[0], plain.nodes[0]);
        assert_eq!(q.tensors[1], plain.tensors[1]);
        assert_eq!(q.tensors[4], g.tensors[4]);
        let fc2 = &q.nodes[2];
        assert!(fc2.inputs.iter().chain(&fc2.outputs).all(|&t| q.tensor(t).dtype == DType::F32));
        // The int8 output keeps its name and its parameters from the range.
        assert_eq!(q.tensor(q.outputs[0]).name, "y");
        assert_eq!(q.tensor(q.outputs[0]).qparams, plain.tensor(plain.outputs[0]).qparams);
    }

    #[test]
    fn a_tensor_between_float_layers_stays_float() {
        let (g, ranges) = two_dense();
        let q = quantize_graph_with_float(&g, &ranges, &PtqConfig::default(), &[0, 1]).unwrap();
        let kinds: Vec<&str> = q.nodes.iter().map(|n| n.op.name()).collect();
        assert_eq!(kinds.iter().filter(|&&k| k == Op::Dequantize.name()).count(), 1, "{kinds:?}");
        assert_eq!(kinds.iter().filter(|&&k| k == Op::Quantize.name()).count(), 1, "{kinds:?}");
        assert_eq!(q.tensors[3].dtype, DType::F32);
        assert!(q.tensors[3].qparams.is_none());
        assert_eq!(q.tensors[0].dtype, DType::I8, "the int8 graph input is dequantized for fc1");
    }

    #[test]
    fn with_float_io_a_float_layer_writes_the_float_output_itself() {
        let (g, ranges) = two_dense();
        let cfg = PtqConfig { float_io: true, ..PtqConfig::default() };
        let q = quantize_graph_with_float(&g, &ranges, &cfg, &[1]).unwrap();
        let last = q.nodes.last().unwrap();
        assert_eq!(last.name, "fc2");
        assert_eq!(q.tensor(q.outputs[0]).name, "y");
        assert_eq!(q.tensor(q.outputs[0]).dtype, DType::F32);
        assert_eq!(q.nodes[0].op, Op::Quantize, "the float input is still quantized at the edge");
    }

    #[test]
    fn int16_layers_share_int16_tensors_and_meet_int8_through_quantize() {
        let (g, ranges) = two_dense();
        let plain = quantize_graph(&g, &ranges, &PtqConfig::default()).unwrap();
        let q = quantize_graph_mixed(&g, &ranges, &PtqConfig::default(), &[], &[0, 1]).unwrap();
        let names: Vec<&str> = q.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["x/to_int16", "fc1", "fc2", "y/to_int8"], "{names:?}");
        // h is read only by a 16x8 layer: it is int16 itself, symmetric over [0, 2].
        let h = &q.tensors[3];
        assert_eq!(
            (h.dtype, h.qparams.as_ref().unwrap().scale[0], h.qparams.as_ref().unwrap().zero_point[0]),
            (DType::I16, 2.0 / 32767.0, 0)
        );
        // Graph input and output keep their int8 types and parameters.
        for t in [q.inputs[0], q.outputs[0]] {
            assert_eq!(q.tensor(t).dtype, DType::I8);
            assert_eq!(q.tensor(t).qparams, plain.tensor(t).qparams);
        }
        // fc1's bias is int64 at input_scale16 · weight_scale: 0.1 / (1/32767 · w_s).
        let x16 = q.nodes[1].inputs[0];
        assert_eq!(q.tensor(x16).qparams.as_ref().unwrap().scale[0], 1.0 / 32767.0);
        let w_s = q.tensor(q.nodes[1].inputs[1]).qparams.as_ref().unwrap().scale[0];
        let Some(TensorData::I64(b)) = &q.tensor(q.nodes[1].inputs[2]).data else { panic!("int64 bias") };
        assert_eq!(b[0], (0.1f32 as f64 / ((1.0f32 / 32767.0) as f64 * w_s as f64)).round() as i64);
        // One 16x8 layer next to an int8 one: its output goes back to int8 for fc2.
        let q = quantize_graph_mixed(&g, &ranges, &PtqConfig::default(), &[], &[0]).unwrap();
        let names: Vec<&str> = q.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["x/to_int16", "fc1", "h/to_int8", "fc2"], "{names:?}");
        assert_eq!(q.tensors[3].dtype, DType::I8);
        // With a float layer after it.
        let q = quantize_graph_mixed(&g, &ranges, &PtqConfig::default(), &[1], &[0]).unwrap();
        let kinds: Vec<&str> = q.nodes.iter().map(|n| n.op.name()).collect();
        assert_eq!(kinds.len(), 6, "{kinds:?}");
        assert!(quantize_graph_mixed(&g, &ranges, &PtqConfig::default(), &[0], &[0]).is_err());
        // An output range far narrower than input × weights needs a rescale TFLM cannot do.
        let mut narrow = ranges.clone();
        narrow[3] = Some((0.0, 1e-6));
        let e = quantize_graph_mixed(&g, &narrow, &PtqConfig::default(), &[], &[0]).unwrap_err().to_string();
        assert!(e.contains("fc1") && e.contains("128"), "{e}");
        assert!(quantize_graph_mixed(&g, &narrow, &PtqConfig::default(), &[], &[]).is_ok());
    }

    #[test]
    fn only_layers_with_float_kernels_can_stay_float() {
        let (mut g, mut ranges) = two_dense();
        let y = g.outputs[0];
        let r = g.add_tensor(Tensor::activation("r", vec![1, 2], DType::F32));
        g.nodes.push(Node { name: "relu".into(), op: Op::Relu, inputs: vec![y], outputs: vec![r] });
        g.outputs = vec![r];
        ranges.push(Some((0.0, 3.0)));
        let e = quantize_graph_with_float(&g, &ranges, &PtqConfig::default(), &[2]).unwrap_err().to_string();
        assert!(e.contains("relu") && e.contains("cannot be kept in float"), "{e}");
        let e = quantize_graph_mixed(&g, &ranges, &PtqConfig::default(), &[], &[2]).unwrap_err().to_string();
        assert!(e.contains("relu") && e.contains("int16"), "{e}");
        assert!(quantize_graph_with_float(&g, &ranges, &PtqConfig::default(), &[7]).is_err());
    }
}
